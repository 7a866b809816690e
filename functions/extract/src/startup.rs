//! Building the function's state from the environment, once per process: the AWS
//! clients, the RSA key and the LLM client (or none: the rules extractor).

use docusnap_core::config::{env_lookup, ExtractSettings};
use docusnap_core::env::Aws;
use docusnap_core::keys::secret_string;
use docusnap_core::startup::Common;
use docusnap_extract::bedrock::BedrockChatModel;
use docusnap_extract::llm::{ChatModel, HttpChatModel, LlmError, Provider};
use docusnap_extract::model::AnyChatModel;
use docusnap_extract::settings::{self, KeySource};
use docusnap_extract::Extractor;
use tracing::{error, info, warn};

use crate::ExtractFunction;

/// The LLM key secret's placeholder value (template.yaml).
const NO_KEY: &str = "none";

pub type AwsExtract = ExtractFunction<Aws>;

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
    let own = ExtractSettings::from_lookup(env_lookup)?;
    let Common { sdk, key, tasks, blobs, .. } = Common::from_env().await?;
    let extractor = match settings::from_lookup(env_lookup)? {
        None => {
            info!("no LLM configured: the rules extractor answers");
            Extractor { model: None, fallback_to_rules: true }
        }
        Some(mut llm) => {
            let api_key = match llm.key.take() {
                Some(KeySource::Value(key)) => Some(key.expose().to_owned()),
                Some(KeySource::Secret(secret_id)) => Some(
                    secret_string(&secret_id, &sdk)
                        .await
                        .map_err(|detail| StartupError::LlmKey { secret_id, detail })?,
                ),
                None => None,
            };
            // The template creates the secret with the placeholder "none" until an
            // operator stores a key: until then Zhipu's API (which needs one) is not
            // called and the rules answer. A local OpenAI-compatible server needs none.
            let api_key = usable_key(api_key);
            if api_key.is_none() && llm.settings.provider == Provider::Zhipu {
                warn!("the LLM key is empty: the rules extractor answers until one is stored");
                Extractor { model: None, fallback_to_rules: true }
            } else {
                llm.settings.api_key = api_key.map(docusnap_core::secret::Secret::new);
                info!(provider = ?llm.settings.provider, model = %llm.settings.model, url = %llm.settings.base_url, "LLM configured");
                let model = match llm.settings.provider {
                    Provider::Bedrock => AnyChatModel::Bedrock(BedrockChatModel::new(&sdk, llm.settings)),
                    Provider::Zhipu | Provider::OpenAi => AnyChatModel::Http(HttpChatModel::new(llm.settings)?),
                };
                probe_in_background(model.clone());
                Extractor { model: Some(model), fallback_to_rules: llm.fallback_to_rules }
            }
        }
    };
    Ok(ExtractFunction {
        tasks,
        blobs,
        clock: docusnap_core::SystemClock,
        key,
        extractor,
        timeout: own.timeout,
        dead_letter_arn: own.dead_letter_arn,
    })
}

/// The key to send, if any: the template's placeholder ("none") and an empty secret are no
/// key. Whether a provider can do without one is the caller's question.
fn usable_key(key: Option<String>) -> Option<String> {
    key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty() && k != NO_KEY)
}

/// Checks the LLM's key and endpoint once, beside the first invocations (not before them:
/// a slow provider must not hold a cold start). A failure is logged as an error that says
/// what it means, so a wrong key is seen in the logs and alarms within minutes.
fn probe_in_background(model: AnyChatModel) {
    tokio::spawn(async move {
        let settings = model.settings().clone();
        match model.probe().await {
            Ok(()) => info!(model = %settings.model, "LLM check passed: the key and endpoint answer"),
            Err(e) => error!(
                error = %e,
                model = %settings.model,
                url = %settings.base_url,
                "LLM check failed: the key, the model or the endpoint is wrong or unreachable; tasks fall back to the rules until it is fixed"
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_is_no_key() {
        assert_eq!(usable_key(Some(" none ".into())), None);
        assert_eq!(usable_key(Some(String::new())), None);
        assert_eq!(usable_key(None), None);
        assert_eq!(usable_key(Some(" sk-1 ".into())), Some("sk-1".into()));
    }
}
