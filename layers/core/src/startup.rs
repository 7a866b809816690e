//! What every function builds once per process from its environment: the configuration,
//! the AWS SDK configuration, the server's RSA key, and the task table and uploads bucket.
//! Each function adds its own parts (the OCR engine, the LLM client) on top.

use aws_config::SdkConfig;

use crate::config::{Config, ConfigError};
use crate::crypto::ServerKey;
use crate::keys::{load_server_key, KeyLoadError};
use crate::store::{DynamoTaskStore, S3BlobStore};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyLoadError),
}

/// The parts every function starts with.
pub struct Common {
    pub config: Config,
    pub sdk: SdkConfig,
    pub key: ServerKey,
    pub tasks: DynamoTaskStore,
    pub blobs: S3BlobStore,
}

impl Common {
    pub async fn from_env() -> Result<Self, StartupError> {
        let Stores { config, sdk, tasks, blobs } = Stores::from_env().await?;
        let key = load_server_key(&config.key_source, &sdk).await?;
        Ok(Self { config, sdk, key, tasks, blobs })
    }
}

/// What a function that opens nothing sealed starts with (the callback function): the
/// parts of [`Common`] but the server's key, whose secret it then never reads.
pub struct Stores {
    pub config: Config,
    pub sdk: SdkConfig,
    pub tasks: DynamoTaskStore,
    pub blobs: S3BlobStore,
}

impl Stores {
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let sdk = crate::aws::sdk_config().await;
        let (tasks, blobs) = crate::store::aws_stores(&config, &sdk);
        Ok(Self { config, sdk, tasks, blobs })
    }
}
