//! Building the function's state from the environment, once per process: the AWS
//! clients, the RSA key and the OCR sessions.

use std::sync::Arc;

use docusnap_core::clock::SystemClock;
use docusnap_core::config::{Config, ConfigError};
use docusnap_core::keys::{load_server_key, KeyLoadError};
use docusnap_core::store::{DynamoTaskStore, S3BlobStore, SqsQueue};
use docusnap_ocr::{EngineConfig, OcrEngine, OcrError};

use crate::OcrFunction;

pub type AwsOcr = OcrFunction<DynamoTaskStore, S3BlobStore, SqsQueue, SystemClock, OcrEngine>;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyLoadError),
    #[error(transparent)]
    Ocr(#[from] OcrError),
}

pub async fn from_env() -> Result<AwsOcr, StartupError> {
    let config = Config::from_env()?;
    let extract_queue_url = config
        .extract_queue_url
        .clone()
        .ok_or(ConfigError::Missing(docusnap_core::config::var::EXTRACT_QUEUE_URL))?;
    let sdk = docusnap_core::aws::sdk_config().await;
    let key = load_server_key(&config.key_source, &sdk).await?;
    let engine_config = EngineConfig::from_env()?;
    let threads = engine_config.threads;
    let engine = tokio::task::spawn_blocking(move || OcrEngine::load(engine_config))
        .await
        .map_err(|e| OcrError::RuntimeLoad { path: Default::default(), detail: e.to_string() })??;
    let (tasks, blobs) = docusnap_core::store::aws_stores(&config, &sdk);
    Ok(OcrFunction {
        tasks,
        blobs,
        extract_queue: SqsQueue::new(docusnap_core::aws::sqs(&sdk), extract_queue_url),
        clock: SystemClock,
        key,
        reader: Arc::new(engine),
        limits: config.limits,
        parallel_pages: threads,
    })
}
