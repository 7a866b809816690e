//! Configuration from environment variables. Every variable is documented in the README's
//! configuration table; names are constants here so code and docs agree.

use std::path::PathBuf;

use crate::limits::{MAX_IMAGE_BYTES, MAX_PAGES, MAX_TASKS_IN_FLIGHT};

pub mod var {
    pub const TASKS_TABLE: &str = "DOCUSNAP_TASKS_TABLE";
    pub const UPLOADS_BUCKET: &str = "DOCUSNAP_UPLOADS_BUCKET";
    pub const EXTRACT_QUEUE_URL: &str = "DOCUSNAP_EXTRACT_QUEUE_URL";
    pub const KEYS_TABLE: &str = "DOCUSNAP_KEYS_TABLE";
    /// The OCR queue: the OCR function's fan-out, and v2's deadline and start messages.
    pub const OCR_QUEUE_URL: &str = "DOCUSNAP_OCR_QUEUE_URL";
    /// The callback queue, which every function that ends a v2 task writes to.
    pub const CALLBACK_QUEUE_URL: &str = "DOCUSNAP_CALLBACK_QUEUE_URL";
    /// v2's upload window in seconds (at most 900, the default): shorter in tests.
    pub const V2_UPLOAD_WINDOW_SECS: &str = "DOCUSNAP_V2_UPLOAD_WINDOW_SECS";
    /// `true` lets callbacks go to loopback over plain HTTP: local runs and tests only.
    pub const V2_CALLBACK_ALLOW_LOOPBACK: &str = "DOCUSNAP_V2_CALLBACK_ALLOW_LOOPBACK";
    pub const RSA_KEY_PATH: &str = "DOCUSNAP_RSA_KEY_PATH";
    pub const RSA_KEY_SECRET_ID: &str = "DOCUSNAP_RSA_KEY_SECRET_ID";
    pub const S3_FORCE_PATH_STYLE: &str = "DOCUSNAP_S3_FORCE_PATH_STYLE";
    pub const MAX_PAGES: &str = "DOCUSNAP_MAX_PAGES";
    pub const MAX_IMAGE_BYTES: &str = "DOCUSNAP_MAX_IMAGE_BYTES";
    pub const MAX_TASKS_IN_FLIGHT: &str = "DOCUSNAP_MAX_TASKS_IN_FLIGHT";
    /// Read by the AWS SDK itself; named here because it also decides path-style S3.
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var}={value:?} is not valid: {why}")]
    Invalid { var: &'static str, value: String, why: &'static str },
}

/// Where the server's RSA private key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM file (local development, tests).
    File(PathBuf),
    /// A Secrets Manager secret whose string is the PEM (production).
    Secret(String),
}

/// Limits a deployment may tighten; the defaults are the named constants in [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_pages: usize,
    pub max_image_bytes: usize,
    pub max_tasks_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_pages: MAX_PAGES, max_image_bytes: MAX_IMAGE_BYTES, max_tasks_in_flight: MAX_TASKS_IN_FLIGHT }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tasks_table: String,
    pub uploads_bucket: String,
    pub extract_queue_url: Option<String>,
    /// The key-binding table (the upload function's alone).
    pub keys_table: Option<String>,
    pub key_source: KeySource,
    /// Path-style S3 addressing: needed for local endpoints, where `bucket.localhost`
    /// does not resolve. Defaults to on whenever an endpoint override is set.
    pub s3_force_path_style: bool,
    pub limits: Limits,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process
    /// environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| lookup(name).ok_or(ConfigError::Missing(name));
        let key_source = match (lookup(var::RSA_KEY_SECRET_ID), lookup(var::RSA_KEY_PATH)) {
            (Some(secret), _) => KeySource::Secret(secret),
            (None, Some(path)) => KeySource::File(PathBuf::from(path)),
            (None, None) => return Err(ConfigError::Missing(var::RSA_KEY_PATH)),
        };
        let s3_force_path_style = match lookup(var::S3_FORCE_PATH_STYLE) {
            Some(value) => parse_bool(var::S3_FORCE_PATH_STYLE, &value)?,
            None => lookup(var::AWS_ENDPOINT_URL).is_some(),
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_pages: parse_limit(&lookup, var::MAX_PAGES, defaults.max_pages)?,
            max_image_bytes: parse_limit(&lookup, var::MAX_IMAGE_BYTES, defaults.max_image_bytes)?,
            max_tasks_in_flight: parse_limit(&lookup, var::MAX_TASKS_IN_FLIGHT, defaults.max_tasks_in_flight)?,
        };
        Ok(Self {
            tasks_table: required(var::TASKS_TABLE)?,
            uploads_bucket: required(var::UPLOADS_BUCKET)?,
            extract_queue_url: lookup(var::EXTRACT_QUEUE_URL),
            keys_table: lookup(var::KEYS_TABLE),
            key_source,
            s3_force_path_style,
            limits,
        })
    }
}

/// A yes/no setting: `1`, `true`, `yes` or `0`, `false`, `no`, in any case.
pub fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(ConfigError::Invalid { var, value: value.into(), why: "expected true or false" }),
    }
}

/// A limit may be lowered by configuration but never raised past its constant, which is
/// where the reason for the bound lives.
fn parse_limit(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    ceiling: usize,
) -> Result<usize, ConfigError> {
    let Some(value) = lookup(var) else { return Ok(ceiling) };
    match value.parse::<usize>() {
        Ok(n) if (1..=ceiling).contains(&n) => Ok(n),
        _ => Err(ConfigError::Invalid { var, value, why: "expected a whole number from 1 up to the built-in limit" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn required_variables_are_named_when_missing() {
        assert_eq!(config(&[]), Err(ConfigError::Missing(var::RSA_KEY_PATH)));
        assert_eq!(config(&[(var::RSA_KEY_PATH, "k.pem")]), Err(ConfigError::Missing(var::TASKS_TABLE)));
    }

    #[test]
    fn a_secret_wins_over_a_file_and_endpoints_imply_path_style() {
        let base = [
            (var::TASKS_TABLE, "t"),
            (var::UPLOADS_BUCKET, "b"),
            (var::RSA_KEY_PATH, "k.pem"),
            (var::RSA_KEY_SECRET_ID, "docusnap/rsa"),
            (var::AWS_ENDPOINT_URL, "http://127.0.0.1:5000"),
        ];
        let c = config(&base).unwrap();
        assert_eq!(c.key_source, KeySource::Secret("docusnap/rsa".into()));
        assert!(c.s3_force_path_style);
        assert_eq!(c.limits, Limits::default());
        let c = config(&base[..3]).unwrap();
        assert_eq!(c.key_source, KeySource::File("k.pem".into()));
        assert!(!c.s3_force_path_style);
    }

    #[test]
    fn limits_can_be_lowered_not_raised() {
        let base = [(var::TASKS_TABLE, "t"), (var::UPLOADS_BUCKET, "b"), (var::RSA_KEY_PATH, "k")];
        let lowered = config(&[base[0], base[1], base[2], (var::MAX_PAGES, "3")]).unwrap();
        assert_eq!(lowered.limits.max_pages, 3);
        let raised = format!("{}", MAX_PAGES + 1);
        assert!(matches!(
            config(&[base[0], base[1], base[2], (var::MAX_PAGES, &raised)]),
            Err(ConfigError::Invalid { var: var::MAX_PAGES, .. })
        ));
    }
}
