//! Building the function's state from the environment, once per process: the AWS
//! clients, the RSA key and the LLM client (or none: the rules extractor).

use docusnap_core::clock::SystemClock;
use docusnap_core::keys::secret_string;
use docusnap_core::startup::Common;
use docusnap_core::store::{DynamoTaskStore, S3BlobStore};
use docusnap_extract::llm::{HttpChatModel, LlmError};
use docusnap_extract::settings::{self, KeySource};
use docusnap_extract::Extractor;
use tracing::{info, warn};

use crate::ExtractFunction;

/// The LLM key secret's placeholder value (template.yaml).
const NO_KEY: &str = "none";

pub type AwsExtract = ExtractFunction<DynamoTaskStore, S3BlobStore, SystemClock, HttpChatModel>;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Common(#[from] docusnap_core::startup::StartupError),
    #[error(transparent)]
    Config(#[from] docusnap_core::config::ConfigError),
    #[error("cannot read the LLM key secret {secret_id}: {detail}")]
    LlmKey { secret_id: String, detail: String },
    #[error(transparent)]
    Llm(#[from] LlmError),
}

pub async fn from_env() -> Result<AwsExtract, StartupError> {
    let lookup = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Common { sdk, key, tasks, blobs, .. } = Common::from_env().await?;
    let extractor = match settings::from_lookup(lookup)? {
        None => {
            info!("no LLM configured: the rules extractor answers");
            Extractor { model: None, fallback_to_rules: true }
        }
        Some(mut llm) => {
            let api_key = match llm.key.take() {
                Some(KeySource::Value(key)) => Some(key),
                Some(KeySource::Secret(secret_id)) => Some(
                    secret_string(&secret_id, &sdk)
                        .await
                        .map_err(|detail| StartupError::LlmKey { secret_id, detail })?,
                ),
                None => None,
            };
            // The template creates the secret with the placeholder "none" until an
            // operator stores a key: until then, the rules answer.
            match api_key.map(|k| k.trim().to_owned()) {
                Some(key) if key.is_empty() || key == NO_KEY => {
                    warn!("the LLM key is empty: the rules extractor answers until one is stored");
                    Extractor { model: None, fallback_to_rules: true }
                }
                api_key => {
                    llm.settings.api_key = api_key;
                    info!(model = %llm.settings.model, url = %llm.settings.base_url, "LLM configured");
                    Extractor { model: Some(HttpChatModel::new(llm.settings)?), fallback_to_rules: llm.fallback_to_rules }
                }
            }
        }
    };
    let timeout = match lookup(crate::FUNCTION_TIMEOUT_VAR) {
        None => crate::DEFAULT_FUNCTION_TIMEOUT,
        Some(value) => match value.parse::<u64>() {
            Ok(secs) if secs > 0 => std::time::Duration::from_secs(secs),
            _ => {
                return Err(docusnap_core::config::ConfigError::Invalid {
                    var: crate::FUNCTION_TIMEOUT_VAR,
                    value,
                    why: "expected whole seconds above 0",
                }
                .into())
            }
        },
    };
    let dead_letter_arn = lookup(crate::DEAD_LETTER_ARN_VAR);
    Ok(ExtractFunction { tasks, blobs, clock: SystemClock, key, extractor, timeout, dead_letter_arn })
}
