//! Building the function's state from the environment, once per process.

use docusnap_core::clock::SystemClock;
use docusnap_core::config::{Config, ConfigError};
use docusnap_core::keys::{load_server_key, KeyLoadError};
use docusnap_core::store::{DynamoTaskStore, S3BlobStore};

use crate::Upload;

/// The deployed function: DynamoDB tasks, S3 blobs, the system clock.
pub type AwsUpload = Upload<DynamoTaskStore, S3BlobStore, SystemClock>;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyLoadError),
}

pub async fn from_env() -> Result<AwsUpload, StartupError> {
    let config = Config::from_env()?;
    let sdk = docusnap_core::aws::sdk_config().await;
    let key = load_server_key(&config.key_source, &sdk).await?;
    let (tasks, blobs) = docusnap_core::store::aws_stores(&config, &sdk);
    Ok(Upload {
        tasks,
        blobs,
        clock: SystemClock,
        key,
        limits: config.limits,
    })
}
