//! Configuration from environment variables, in one place: [`REGISTRY`] names every
//! variable any function reads, with its default, its meaning and its readers (the
//! configuration page, docs/configuration.md, is checked against it by a test). Each
//! function parses its part once at start-up, and a bad value stops the start with a
//! sentence that names the variable: no silent default.

use std::path::PathBuf;
use std::time::Duration;

use crate::ids::BATCH_PREFIX;
use crate::limits::{MAX_IMAGE_BYTES, MAX_PAGES, MAX_TASKS_IN_FLIGHT};
use crate::task::TaskId;

pub mod var {
    pub const TASKS_TABLE: &str = "DOCUSNAP_TASKS_TABLE";
    pub const UPLOADS_BUCKET: &str = "DOCUSNAP_UPLOADS_BUCKET";
    pub const EXTRACT_QUEUE_URL: &str = "DOCUSNAP_EXTRACT_QUEUE_URL";
    pub const KEYS_TABLE: &str = "DOCUSNAP_KEYS_TABLE";
    pub const QUOTAS_TABLE: &str = "DOCUSNAP_QUOTAS_TABLE";
    pub const QUOTA_TASKS_IN_FLIGHT: &str = "DOCUSNAP_QUOTA_TASKS_IN_FLIGHT";
    pub const QUOTA_PAGES_PER_DAY: &str = "DOCUSNAP_QUOTA_PAGES_PER_DAY";
    pub const OCR_QUEUE_URL: &str = "DOCUSNAP_OCR_QUEUE_URL";
    pub const CALLBACK_QUEUE_URL: &str = "DOCUSNAP_CALLBACK_QUEUE_URL";
    pub const V2_UPLOAD_WINDOW_SECS: &str = "DOCUSNAP_V2_UPLOAD_WINDOW_SECS";
    pub const V2_CALLBACK_ALLOW_LOOPBACK: &str = "DOCUSNAP_V2_CALLBACK_ALLOW_LOOPBACK";
    pub const RSA_KEY_PATH: &str = "DOCUSNAP_RSA_KEY_PATH";
    pub const RSA_KEY_SECRET_ID: &str = "DOCUSNAP_RSA_KEY_SECRET_ID";
    pub const S3_FORCE_PATH_STYLE: &str = "DOCUSNAP_S3_FORCE_PATH_STYLE";
    pub const MAX_PAGES: &str = "DOCUSNAP_MAX_PAGES";
    pub const MAX_IMAGE_BYTES: &str = "DOCUSNAP_MAX_IMAGE_BYTES";
    pub const MAX_TASKS_IN_FLIGHT: &str = "DOCUSNAP_MAX_TASKS_IN_FLIGHT";
    pub const OCR_GROUP_PAGES: &str = "DOCUSNAP_OCR_GROUP_PAGES";
    pub const OCR_MAX_RECEIVES: &str = "DOCUSNAP_OCR_MAX_RECEIVES";
    pub const OCR_DEAD_LETTER_QUEUE_ARN: &str = "DOCUSNAP_OCR_DEAD_LETTER_QUEUE_ARN";
    pub const BATCH_FAST_PREFIXES: &str = "DOCUSNAP_BATCH_FAST_PREFIXES";
    pub const EXTRACT_DEAD_LETTER_QUEUE_ARN: &str = "DOCUSNAP_EXTRACT_DEAD_LETTER_QUEUE_ARN";
    pub const CALLBACK_DEAD_LETTER_QUEUE_ARN: &str = "DOCUSNAP_CALLBACK_DEAD_LETTER_QUEUE_ARN";
    pub const FUNCTION_TIMEOUT_SECS: &str = "DOCUSNAP_FUNCTION_TIMEOUT_SECS";
    pub const LOG_FORMAT: &str = "DOCUSNAP_LOG_FORMAT";
    /// Read by the AWS SDK itself; named here because it also decides path-style S3.
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
}

/// A function that reads a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    Upload,
    Ocr,
    Extract,
    Callback,
}

impl Reader {
    pub fn as_str(self) -> &'static str {
        match self {
            Reader::Upload => "upload",
            Reader::Ocr => "ocr",
            Reader::Extract => "extract",
            Reader::Callback => "callback",
        }
    }
}

/// One environment variable.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    pub name: &'static str,
    /// What applies when it is unset, in words.
    pub default: &'static str,
    pub meaning: &'static str,
    pub read_by: &'static [Reader],
}

const ALL: &[Reader] = &[Reader::Upload, Reader::Ocr, Reader::Extract, Reader::Callback];
const SEALED: &[Reader] = &[Reader::Upload, Reader::Ocr, Reader::Extract];

macro_rules! variables {
    ($( $name:expr, $default:expr, $readers:expr, $meaning:expr; )*) => {
        &[$( Variable { name: $name, default: $default, read_by: $readers, meaning: $meaning }, )*]
    };
}

/// Every variable a function reads. The OCR engine's and the LLM client's are named here
/// too (their crates know nothing of this one; a test holds the names equal).
pub const REGISTRY: &[Variable] = variables![
    var::TASKS_TABLE, "required", ALL, "DynamoDB task table";
    var::UPLOADS_BUCKET, "required", ALL, "S3 uploads bucket";
    var::RSA_KEY_SECRET_ID, "unset", SEALED, "Secrets Manager secret whose string is the server's RSA private key PEM (production)";
    var::RSA_KEY_PATH, "required without a secret id", SEALED, "file with the server's RSA private key PEM (PKCS#8 or PKCS#1)";
    var::KEYS_TABLE, "required", &[Reader::Upload], "DynamoDB table binding each wrapped key to its first content";
    var::QUOTAS_TABLE, "required", &[Reader::Upload], "DynamoDB table of per-principal quotas: tasks in flight, pages per day, an operator's limits";
    var::QUOTA_TASKS_IN_FLIGHT, "10", &[Reader::Upload], "a principal's tasks in flight at most (0: no limit); refused with `QUOTA_EXCEEDED` (v1: `TOO_MANY_TASKS`)";
    var::QUOTA_PAGES_PER_DAY, "1000", &[Reader::Upload], "a principal's pages per UTC day at most (0: no limit); refused with `QUOTA_EXCEEDED`";
    var::OCR_QUEUE_URL, "required (upload); unset: no fan-out (ocr)", &[Reader::Upload, Reader::Ocr], "the OCR queue: v2's deadline and start messages, the OCR function's page groups";
    var::EXTRACT_QUEUE_URL, "required", &[Reader::Ocr], "the queue the OCR function tells which tasks are read";
    var::CALLBACK_QUEUE_URL, "unset: no retry backoff", &[Reader::Callback], "the callback queue, to set a failed delivery's backoff";
    var::MAX_PAGES, "20", SEALED, "pages per task, at most 20";
    var::MAX_IMAGE_BYTES, "20971520", SEALED, "decoded bytes per page image, at most 20 MiB";
    var::MAX_TASKS_IN_FLIGHT, "10", SEALED, "a client's tasks processing at once, at most 10";
    var::V2_UPLOAD_WINDOW_SECS, "900", &[Reader::Upload], "v2's upload window in seconds, 1 to 900 (shorter in tests)";
    var::V2_CALLBACK_ALLOW_LOOPBACK, "false", &[Reader::Upload, Reader::Callback], "`true` lets callbacks go to loopback over plain HTTP: local runs and tests only";
    var::OCR_GROUP_PAGES, "4", &[Reader::Ocr], "pages one invocation reads before a task is fanned out into page groups";
    var::OCR_MAX_RECEIVES, "3", &[Reader::Ocr], "the OCR queue's `maxReceiveCount`: on a message's last receive its task ends with `OCR_FAILURE`";
    var::OCR_DEAD_LETTER_QUEUE_ARN, "unset", &[Reader::Ocr], "the OCR dead-letter queue, whose messages end their tasks with `OCR_FAILURE`";
    var::BATCH_FAST_PREFIXES, "unset", &[Reader::Ocr], "comma-separated keys under `batch/` (folders or files) whose documents are read in the fast mode";
    var::EXTRACT_DEAD_LETTER_QUEUE_ARN, "unset", &[Reader::Extract], "the extract dead-letter queue, whose messages end their tasks with `PROCESSING_ERROR`";
    var::CALLBACK_DEAD_LETTER_QUEUE_ARN, "unset", &[Reader::Callback], "the callback dead-letter queue: callbacks given up on, logged and counted";
    var::FUNCTION_TIMEOUT_SECS, "300", &[Reader::Extract], "the function's own timeout, used when an invocation's deadline is unusable";
    "DOCUSNAP_ORT_LIB", "found beside the binary or under models/", &[Reader::Ocr], "ONNX Runtime's shared library";
    "DOCUSNAP_PDFIUM_LIB", "found beside the binary or under models/", &[Reader::Ocr], "PDFium's shared library";
    "DOCUSNAP_MODELS_DIR", "found beside the binary or under models/", &[Reader::Ocr], "the folder holding the model sets";
    "DOCUSNAP_OCR_MODELS", "ppocr-v6", &[Reader::Ocr], "the OCR model set: `ppocr-v6` (PP-OCRv6 small) or `ppocr-v4`";
    "DOCUSNAP_OCR_MODE", "accurate", &[Reader::Ocr], "how pages are read: `accurate`, or `fast` (about twice the pages a second, at the PP-OCRv4 reference's accuracy)";
    "DOCUSNAP_OCR_THREADS", "the CPUs the process may use", &[Reader::Ocr], "the most cores one page reads with, and pages read at once";
    "DOCUSNAP_OCR_CORES_DIR", "docusnap-ocr-cores in the temporary folder", &[Reader::Ocr], "the lock files through which the machine's engines share its cores";
    "DOCUSNAP_OCR_DET_LONG_SIDE", "the model set's", &[Reader::Ocr], "the detector's longest side in pixels, 1024 to its maximum";
    "DOCUSNAP_LLM_PROVIDER", "zhipu (with no key, the rules answer)", &[Reader::Extract], "`zhipu`, `openai` (any OpenAI-compatible server), `bedrock`, or `none` for the rules";
    "DOCUSNAP_LLM_BASE_URL", "the provider's", &[Reader::Extract], "the chat completions endpoint's base URL";
    "DOCUSNAP_LLM_MODEL", "the provider's", &[Reader::Extract], "the model name";
    "DOCUSNAP_LLM_API_KEY", "unset", &[Reader::Extract], "the API key (local runs; a secret id in production)";
    "DOCUSNAP_LLM_API_KEY_SECRET_ID", "unset", &[Reader::Extract], "Secrets Manager secret holding the API key";
    "DOCUSNAP_LLM_TIMEOUT_SECS", "the client's", &[Reader::Extract], "one LLM call's timeout";
    "DOCUSNAP_LLM_BUDGET_SECS", "the client's", &[Reader::Extract], "all LLM calls of one task, retries included";
    "DOCUSNAP_LLM_FALLBACK", "true", &[Reader::Extract], "whether the rules answer when the LLM fails";
    "DOCUSNAP_LLM_ANSWER_FORMAT", "the provider's strictest: `json-schema` (openai), `json-object` (zhipu), `tool` (bedrock)", &[Reader::Extract], "how the answer's shape is asked for: `json-schema`, `json-object-schema` (llama-cpp-python's server), `tool` (Bedrock), `json-object` or `off`";
    var::S3_FORCE_PATH_STYLE, "on when `AWS_ENDPOINT_URL` is set", ALL, "path-style S3 addressing";
    var::AWS_ENDPOINT_URL, "AWS", ALL, "endpoint override for every AWS client (moto locally)";
    var::LOG_FORMAT, "`json` on Lambda, `text` elsewhere", ALL, "log format, `json` or `text`";
    "RUST_LOG", "info", ALL, "log filter";
];

/// The variable's entry (tests; a name not in the registry is a defect).
pub fn variable(name: &str) -> Option<&'static Variable> {
    REGISTRY.iter().find(|v| v.name == name)
}

/// The process environment as a lookup: unset and empty are alike.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var}={value:?} is not valid: {why}")]
    Invalid { var: &'static str, value: String, why: &'static str },
}

/// The parts of the batch area read in the OCR engine's fast mode
/// (`DOCUSNAP_BATCH_FAST_PREFIXES`): bulk archives, where pages a second count for more
/// than the last of accuracy (docs/ocr.md, "The fast mode"). A document is read fast when
/// its key (an image's key, a folder's prefix) starts with one of them, so a prefix names
/// a folder of documents, one document or one file. Decided from the task's id each time
/// its pages are read, so a retried message or a page group reads the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FastPrefixes(Vec<String>);

/// Prefixes a deployment may list: each is compared with every batch document's key, and a
/// list longer than this is a configuration written by a program, not by hand.
pub const MAX_FAST_PREFIXES: usize = 100;

impl FastPrefixes {
    /// A comma-separated list of prefixes under `batch/` (spaces around them ignored).
    pub fn parse(list: &str) -> Result<Self, &'static str> {
        let prefixes: Vec<String> =
            list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
        if prefixes.len() > MAX_FAST_PREFIXES {
            return Err("at most 100 prefixes");
        }
        // `batch/` itself would read the whole area fast: DOCUSNAP_OCR_MODE says that.
        if prefixes.iter().any(|p| p.len() <= BATCH_PREFIX.len() || !p.starts_with(BATCH_PREFIX)) {
            return Err("each prefix is a key under batch/, such as batch/archive/");
        }
        Ok(Self(prefixes))
    }

    /// Whether the task is a batch document under one of the prefixes.
    pub fn covers(&self, id: &TaskId) -> bool {
        id.client_id.batch_document().is_some_and(|document| self.0.iter().any(|p| document.starts_with(p.as_str())))
    }
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
    pub key_source: KeySource,
    /// Path-style S3 addressing: needed for local endpoints, where `bucket.localhost`
    /// does not resolve. Defaults to on whenever an endpoint override is set.
    pub s3_force_path_style: bool,
    pub limits: Limits,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
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
            key_source,
            s3_force_path_style,
            limits,
        })
    }
}

/// A principal's limits (the quota module counts against them); 0 is no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaLimits {
    pub tasks_in_flight: u32,
    pub pages_per_day: u32,
}

/// The upload function's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSettings {
    pub keys_table: String,
    pub quotas_table: String,
    /// The deployment's quotas; a principal's `limits` item may replace them.
    pub quota: QuotaLimits,
    pub ocr_queue_url: String,
    pub upload_window_secs: i64,
    pub allow_loopback: bool,
}

impl UploadSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let window = crate::v2::UPLOAD_WINDOW_SECS as u64;
        Ok(Self {
            keys_table: lookup(var::KEYS_TABLE).ok_or(ConfigError::Missing(var::KEYS_TABLE))?,
            quotas_table: lookup(var::QUOTAS_TABLE).ok_or(ConfigError::Missing(var::QUOTAS_TABLE))?,
            quota: QuotaLimits {
                tasks_in_flight: parse_number(
                    &lookup,
                    var::QUOTA_TASKS_IN_FLIGHT,
                    0..=MAX_QUOTA_TASKS_IN_FLIGHT,
                    DEFAULT_QUOTA_TASKS_IN_FLIGHT,
                    "expected a number of tasks from 0 (no limit) to 1000",
                )? as u32,
                pages_per_day: parse_number(
                    &lookup,
                    var::QUOTA_PAGES_PER_DAY,
                    0..=u64::from(u32::MAX),
                    DEFAULT_QUOTA_PAGES_PER_DAY,
                    "expected a number of pages (0: no limit)",
                )? as u32,
            },
            ocr_queue_url: lookup(var::OCR_QUEUE_URL).ok_or(ConfigError::Missing(var::OCR_QUEUE_URL))?,
            upload_window_secs: parse_number(
                &lookup,
                var::V2_UPLOAD_WINDOW_SECS,
                1..=window,
                window,
                "expected seconds from 1 to 900",
            )? as i64,
            allow_loopback: parse_flag(&lookup, var::V2_CALLBACK_ALLOW_LOOPBACK)?,
        })
    }
}

/// Tasks in flight per principal: v1's own cap, `MAX_TASKS_IN_FLIGHT`.
pub const DEFAULT_QUOTA_TASKS_IN_FLIGHT: u64 = MAX_TASKS_IN_FLIGHT as u64;
/// Pages per principal per day: a busy office's day (a few hundred receipts and
/// statements), about $1.50 of processing with an LLM (docs/operations.md), so a leaked
/// token costs little before someone notices.
pub const DEFAULT_QUOTA_PAGES_PER_DAY: u64 = 1000;
/// The in-flight set is one item (400 KB in DynamoDB); 1000 task ids of up to 300 bytes fit.
const MAX_QUOTA_TASKS_IN_FLIGHT: u64 = 1000;

/// Pages one OCR invocation reads before a task is fanned out: four receipts take about
/// 4 s, four dense statement pages about 10 s, on the template's 1.7 vCPUs, so a long
/// document spreads wide while a photo or two never pays for a second invocation.
pub const DEFAULT_GROUP_PAGES: usize = 4;
/// The OCR queue's `maxReceiveCount` in template.yaml.
pub const DEFAULT_MAX_RECEIVES: u32 = 3;
/// The most pages a task holds once its PDFs and TIFFs are split (the input stage's
/// `MAX_ITEM_PAGES`): a larger group is the same as no fan-out, so larger is a typo.
const MAX_GROUP_PAGES: u64 = 200;
/// SQS's own ceiling for `maxReceiveCount`.
const MAX_RECEIVE_COUNT: u64 = 1000;
/// Lambda's longest function timeout, 15 minutes.
const MAX_FUNCTION_TIMEOUT_SECS: u64 = 900;

/// The OCR function's own settings (the engine's are `docusnap_ocr::EngineConfig`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrSettings {
    pub extract_queue_url: String,
    /// The function's own queue, for page groups; unset, every task is read in one go.
    pub ocr_queue_url: Option<String>,
    pub group_pages: usize,
    pub max_receives: u32,
    pub dead_letter_arn: Option<String>,
    pub fast_prefixes: FastPrefixes,
}

impl OcrSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            extract_queue_url: lookup(var::EXTRACT_QUEUE_URL).ok_or(ConfigError::Missing(var::EXTRACT_QUEUE_URL))?,
            ocr_queue_url: lookup(var::OCR_QUEUE_URL),
            group_pages: parse_number(
                &lookup,
                var::OCR_GROUP_PAGES,
                1..=MAX_GROUP_PAGES,
                DEFAULT_GROUP_PAGES as u64,
                "expected pages from 1 to 200",
            )? as usize,
            max_receives: parse_number(
                &lookup,
                var::OCR_MAX_RECEIVES,
                1..=MAX_RECEIVE_COUNT,
                DEFAULT_MAX_RECEIVES as u64,
                "expected a receive count from 1 to 1000, as SQS allows",
            )? as u32,
            dead_letter_arn: lookup(var::OCR_DEAD_LETTER_QUEUE_ARN),
            fast_prefixes: match lookup(var::BATCH_FAST_PREFIXES) {
                Some(value) => FastPrefixes::parse(&value).map_err(|why| ConfigError::Invalid {
                    var: var::BATCH_FAST_PREFIXES,
                    value,
                    why,
                })?,
                None => FastPrefixes::default(),
            },
        })
    }
}

/// The extract function's timeout in template.yaml.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(300);

/// The extract function's own settings (the LLM's are `docusnap_extract::settings`').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractSettings {
    pub timeout: Duration,
    pub dead_letter_arn: Option<String>,
}

impl ExtractSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let default = DEFAULT_FUNCTION_TIMEOUT.as_secs();
        let why = "expected seconds from 1 to 900, as Lambda allows";
        Ok(Self {
            timeout: Duration::from_secs(parse_number(
                &lookup,
                var::FUNCTION_TIMEOUT_SECS,
                1..=MAX_FUNCTION_TIMEOUT_SECS,
                default,
                why,
            )?),
            dead_letter_arn: lookup(var::EXTRACT_DEAD_LETTER_QUEUE_ARN),
        })
    }
}

/// The callback function's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSettings {
    pub queue_url: Option<String>,
    pub dead_letter_arn: Option<String>,
    pub allow_loopback: bool,
}

impl CallbackSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: lookup(var::CALLBACK_QUEUE_URL),
            dead_letter_arn: lookup(var::CALLBACK_DEAD_LETTER_QUEUE_ARN),
            allow_loopback: parse_flag(&lookup, var::V2_CALLBACK_ALLOW_LOOPBACK)?,
        })
    }
}

/// A whole number in `range`, or `default` when unset; `why` says what is expected.
fn parse_number(
    lookup: &impl Fn(&str) -> Option<String>, var: &'static str, range: std::ops::RangeInclusive<u64>, default: u64,
    why: &'static str,
) -> Result<u64, ConfigError> {
    let Some(value) = lookup(var) else { return Ok(default) };
    match value.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError::Invalid { var, value, why }),
    }
}

/// A yes/no setting that is off when unset.
fn parse_flag(lookup: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    lookup(var).map_or(Ok(false), |value| parse_bool(var, &value))
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
    lookup: &impl Fn(&str) -> Option<String>, var: &'static str, ceiling: usize,
) -> Result<usize, ConfigError> {
    let why = "expected a whole number from 1 up to the built-in limit";
    Ok(parse_number(lookup, var, 1..=ceiling as u64, ceiling as u64, why)? as usize)
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

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn fast_prefixes_cover_the_documents_under_them_and_nothing_else() {
        let fast = FastPrefixes::parse(" batch/archive/, batch/scan-0042.jpg ,").unwrap();
        // A batch task's client id names its document: an image's key, a folder's prefix.
        let task = |document: &str| TaskId::new(crate::ids::ClientId::batch(document), crate::ids::TaskType::Doc, "ab");
        assert!(fast.covers(&task("batch/archive/2019.pdf")));
        assert!(fast.covers(&task("batch/archive/trip/")), "a folder document under the prefix");
        assert!(fast.covers(&task("batch/scan-0042.jpg")), "a prefix may name one file");
        assert!(!fast.covers(&task("batch/archived.jpg")));
        assert!(!fast.covers(&task("batch/receipt.jpg")));
        let client = TaskId::new(crate::ids::ClientId::parse("client-1").unwrap(), crate::ids::TaskType::Doc, "ab");
        assert!(!fast.covers(&client), "an upload is no batch document");
        assert!(!FastPrefixes::default().covers(&task("batch/archive/2019.pdf")));
        for bad in ["batch/", "archive/", "uploads/batch/x", "batch/a,batch"] {
            assert!(FastPrefixes::parse(bad).is_err(), "{bad}");
        }
        let many = vec!["batch/a"; MAX_FAST_PREFIXES + 1].join(",");
        assert!(FastPrefixes::parse(&many).is_err());
    }

    #[test]
    fn each_functions_settings_refuse_a_bad_value_and_name_it() {
        let ocr = [(var::EXTRACT_QUEUE_URL, "q")];
        let settings = OcrSettings::from_lookup(lookup(&ocr)).unwrap();
        assert_eq!((settings.group_pages, settings.max_receives), (DEFAULT_GROUP_PAGES, DEFAULT_MAX_RECEIVES));
        for (name, bad) in [
            (var::OCR_GROUP_PAGES, "0"),
            (var::OCR_GROUP_PAGES, "201"),
            (var::OCR_MAX_RECEIVES, "three"),
            (var::BATCH_FAST_PREFIXES, "archive/"),
        ] {
            let vars = [ocr[0], (name, bad)];
            assert!(
                matches!(OcrSettings::from_lookup(lookup(&vars)), Err(ConfigError::Invalid { var, .. }) if var == name),
                "{name}={bad}"
            );
        }
        assert_eq!(OcrSettings::from_lookup(lookup(&[])), Err(ConfigError::Missing(var::EXTRACT_QUEUE_URL)));
        let timeout = [(var::FUNCTION_TIMEOUT_SECS, "901")];
        assert!(matches!(ExtractSettings::from_lookup(lookup(&timeout)), Err(ConfigError::Invalid { .. })));
        let upload = [(var::KEYS_TABLE, "k"), (var::OCR_QUEUE_URL, "q"), (var::QUOTAS_TABLE, "t")];
        let settings = UploadSettings::from_lookup(lookup(&upload)).unwrap();
        assert_eq!(settings.quota.tasks_in_flight as u64, DEFAULT_QUOTA_TASKS_IN_FLIGHT);
        for (name, bad) in [
            (var::V2_CALLBACK_ALLOW_LOOPBACK, "maybe"),
            (var::QUOTA_TASKS_IN_FLIGHT, "1001"),
            (var::QUOTA_PAGES_PER_DAY, "-1"),
        ] {
            let vars = [upload[0], upload[1], upload[2], (name, bad)];
            assert!(
                matches!(UploadSettings::from_lookup(lookup(&vars)), Err(ConfigError::Invalid { var, .. }) if var == name),
                "{name}={bad}"
            );
        }
        let callback = CallbackSettings::from_lookup(lookup(&[(var::V2_CALLBACK_ALLOW_LOOPBACK, "yes")])).unwrap();
        assert!(callback.allow_loopback);
    }

    #[test]
    fn the_registrys_number_defaults_are_the_constants() {
        let default = |name| variable(name).unwrap_or_else(|| panic!("{name} is registered")).default;
        assert_eq!(default(var::MAX_PAGES), MAX_PAGES.to_string());
        assert_eq!(default(var::MAX_IMAGE_BYTES), MAX_IMAGE_BYTES.to_string());
        assert_eq!(default(var::MAX_TASKS_IN_FLIGHT), MAX_TASKS_IN_FLIGHT.to_string());
        assert_eq!(default(var::V2_UPLOAD_WINDOW_SECS), crate::v2::UPLOAD_WINDOW_SECS.to_string());
        assert_eq!(default(var::OCR_GROUP_PAGES), DEFAULT_GROUP_PAGES.to_string());
        assert_eq!(default(var::OCR_MAX_RECEIVES), DEFAULT_MAX_RECEIVES.to_string());
        assert_eq!(default(var::FUNCTION_TIMEOUT_SECS), DEFAULT_FUNCTION_TIMEOUT.as_secs().to_string());
        assert_eq!(default(var::QUOTA_TASKS_IN_FLIGHT), DEFAULT_QUOTA_TASKS_IN_FLIGHT.to_string());
        assert_eq!(default(var::QUOTA_PAGES_PER_DAY), DEFAULT_QUOTA_PAGES_PER_DAY.to_string());
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
