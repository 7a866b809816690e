//! The LLM's configuration from environment variables (docs/configuration.md, from
//! `docusnap_core::config::REGISTRY`). Without a key for Zhipu, or without a base URL for an OpenAI-compatible
//! server, there is no LLM and the rules extractor answers.

use std::time::Duration;

use docusnap_core::config::{parse_bool, ConfigError};

use docusnap_core::task::AnswerFormat;

use crate::llm::{LlmSettings, Provider, DEFAULT_CALL_TIMEOUT, DEFAULT_TOTAL_BUDGET};

pub mod var {
    pub const PROVIDER: &str = "DOCUSNAP_LLM_PROVIDER";
    pub const BASE_URL: &str = "DOCUSNAP_LLM_BASE_URL";
    pub const MODEL: &str = "DOCUSNAP_LLM_MODEL";
    pub const API_KEY: &str = "DOCUSNAP_LLM_API_KEY";
    pub const API_KEY_SECRET_ID: &str = "DOCUSNAP_LLM_API_KEY_SECRET_ID";
    pub const TIMEOUT_SECS: &str = "DOCUSNAP_LLM_TIMEOUT_SECS";
    pub const BUDGET_SECS: &str = "DOCUSNAP_LLM_BUDGET_SECS";
    pub const FALLBACK: &str = "DOCUSNAP_LLM_FALLBACK";
    pub const ANSWER_FORMAT: &str = "DOCUSNAP_LLM_ANSWER_FORMAT";
}

/// Where the API key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Value(docusnap_core::secret::Secret),
    /// A Secrets Manager secret whose string is the key (production).
    Secret(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    /// `api_key` is filled in from `key` once it is read.
    pub settings: LlmSettings,
    pub key: Option<KeySource>,
    /// Answer with the rules when the LLM fails, instead of `LLM_FAILURE`.
    pub fallback_to_rules: bool,
}

/// The LLM's configuration, or `None` when no LLM is configured.
pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<LlmConfig>, ConfigError> {
    let provider = match lookup(var::PROVIDER) {
        None => Provider::Zhipu,
        Some(name) if name.eq_ignore_ascii_case("none") || name.eq_ignore_ascii_case("rules") => return Ok(None),
        Some(name) => Provider::parse(&name).ok_or(ConfigError::Invalid {
            var: var::PROVIDER,
            value: name,
            why: "expected zhipu, openai, bedrock or none",
        })?,
    };
    let key = match (lookup(var::API_KEY_SECRET_ID), lookup(var::API_KEY)) {
        // Bedrock signs with the function's role: a key secret beside it is not read.
        _ if provider == Provider::Bedrock => None,
        (Some(secret), _) => Some(KeySource::Secret(secret)),
        (None, Some(key)) => Some(KeySource::Value(docusnap_core::secret::Secret::new(key))),
        (None, None) => None,
    };
    let base_url = match lookup(var::BASE_URL).or(provider.default_base_url().map(str::to_owned)) {
        Some(url) => url,
        None => return Err(ConfigError::Missing(var::BASE_URL)),
    };
    // Zhipu always wants a key: without one the deployment runs on the rules.
    if provider == Provider::Zhipu && key.is_none() {
        return Ok(None);
    }
    let model =
        lookup(var::MODEL).or(provider.default_model().map(str::to_owned)).ok_or(ConfigError::Missing(var::MODEL))?;
    let mut settings = LlmSettings::new(provider, base_url, model, None);
    settings.call_timeout = seconds(&lookup, var::TIMEOUT_SECS, DEFAULT_CALL_TIMEOUT)?;
    settings.total_budget = seconds(&lookup, var::BUDGET_SECS, DEFAULT_TOTAL_BUDGET)?;
    if let Some(name) = lookup(var::ANSWER_FORMAT) {
        settings.format = AnswerFormat::parse(&name).filter(|f| provider.takes(*f)).ok_or(ConfigError::Invalid {
            var: var::ANSWER_FORMAT,
            value: name,
            why: "expected a format the provider has: json-schema, json-object-schema, json-object or off \
(openai); json-object or off (zhipu); tool, json-schema or off (bedrock)",
        })?;
    }
    let fallback_to_rules = match lookup(var::FALLBACK) {
        None => true,
        Some(value) => parse_bool(var::FALLBACK, &value)?,
    };
    Ok(Some(LlmConfig { settings, key, fallback_to_rules }))
}

/// A duration in whole seconds, at most its default: the defaults are what fits the
/// extract function's timeout.
fn seconds(
    lookup: &impl Fn(&str) -> Option<String>, var: &'static str, ceiling: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = lookup(var) else { return Ok(ceiling) };
    match value.parse::<u64>() {
        Ok(n) if n >= 1 && Duration::from_secs(n) <= ceiling => Ok(Duration::from_secs(n)),
        _ => Err(ConfigError::Invalid { var, value, why: "expected whole seconds, from 1 up to the default" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<LlmConfig>, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_key_for_zhipu_means_the_rules() {
        assert_eq!(config(&[]), Ok(None));
        assert_eq!(config(&[(var::PROVIDER, "none"), (var::API_KEY, "k")]), Ok(None));
        let zhipu = config(&[(var::API_KEY_SECRET_ID, "docusnap/llm")]).unwrap().unwrap();
        assert_eq!(zhipu.settings.provider, Provider::Zhipu);
        assert_eq!(zhipu.settings.model, "glm-4-plus");
        assert_eq!(zhipu.key, Some(KeySource::Secret("docusnap/llm".into())));
        assert!(zhipu.fallback_to_rules);
    }

    #[test]
    fn an_openai_compatible_server_needs_its_url_and_model_but_no_key() {
        assert_eq!(config(&[(var::PROVIDER, "openai")]), Err(ConfigError::Missing(var::BASE_URL)));
        let local = [(var::PROVIDER, "openai"), (var::BASE_URL, "http://127.0.0.1:8080/v1")];
        assert_eq!(config(&local), Err(ConfigError::Missing(var::MODEL)));
        let ollama = config(&[local[0], local[1], (var::MODEL, "qwen2.5"), (var::FALLBACK, "false")]).unwrap().unwrap();
        assert_eq!(ollama.key, None);
        assert!(!ollama.fallback_to_rules);
        assert!(matches!(config(&[(var::PROVIDER, "bard")]), Err(ConfigError::Invalid { .. })));
        let too_long = config(&[(var::API_KEY, "k"), (var::BUDGET_SECS, "100000")]);
        assert!(matches!(too_long, Err(ConfigError::Invalid { var: var::BUDGET_SECS, .. })));
    }

    #[test]
    fn bedrock_needs_a_model_id_and_never_a_key() {
        assert_eq!(config(&[(var::PROVIDER, "bedrock")]), Err(ConfigError::Missing(var::MODEL)));
        let vars = [
            (var::PROVIDER, "bedrock"),
            (var::MODEL, "amazon.nova-lite-v1:0"),
            (var::API_KEY_SECRET_ID, "docusnap/llm"),
        ];
        let bedrock = config(&vars).unwrap().unwrap();
        assert_eq!((bedrock.settings.provider, bedrock.settings.base_url.as_str()), (Provider::Bedrock, ""));
        assert_eq!(bedrock.key, None, "the role signs; the key secret is not read");
    }

    #[test]
    fn the_answer_format_defaults_per_provider_and_must_be_one_the_provider_has() {
        let openai = [(var::PROVIDER, "openai"), (var::BASE_URL, "http://127.0.0.1:8080/v1"), (var::MODEL, "m")];
        assert_eq!(config(&openai).unwrap().unwrap().settings.format, AnswerFormat::JsonSchema);
        let zhipu = config(&[(var::API_KEY, "k")]).unwrap().unwrap();
        assert_eq!(zhipu.settings.format, AnswerFormat::JsonObject);
        let llama = config(&[openai[0], openai[1], openai[2], (var::ANSWER_FORMAT, "json-object-schema")]);
        assert_eq!(llama.unwrap().unwrap().settings.format, AnswerFormat::JsonObjectSchema);
        let zhipu_schema = config(&[(var::API_KEY, "k"), (var::ANSWER_FORMAT, "json-schema")]);
        assert!(matches!(zhipu_schema, Err(ConfigError::Invalid { var: var::ANSWER_FORMAT, .. })));
        let bedrock = [(var::PROVIDER, "bedrock"), (var::MODEL, "amazon.nova-lite-v1:0")];
        assert_eq!(config(&bedrock).unwrap().unwrap().settings.format, AnswerFormat::Tool);
        let off = config(&[bedrock[0], bedrock[1], (var::ANSWER_FORMAT, "OFF")]).unwrap().unwrap();
        assert_eq!(off.settings.format, AnswerFormat::Off);
    }
}

#[cfg(test)]
mod redaction {
    use super::*;

    #[test]
    fn no_settings_type_prints_its_key() {
        let vars = [
            (var::PROVIDER, "openai"),
            (var::BASE_URL, "http://127.0.0.1:8000/v1"),
            (var::MODEL, "m"),
            (var::API_KEY, "sk-live-789"),
        ];
        let config =
            from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())).unwrap().unwrap();
        let mut settings = config.settings.clone();
        settings.api_key = Some(docusnap_core::secret::Secret::new("sk-live-789"));
        let printed = format!("{config:?} {config:#?} {settings:?} {:?}", config.key);
        assert!(!printed.contains("sk-live-789"), "{printed}");
        assert!(matches!(&config.key, Some(KeySource::Value(key)) if key.expose() == "sk-live-789"));
    }
}
