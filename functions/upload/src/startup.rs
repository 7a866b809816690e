//! Building the function's state from the environment, once per process.

use docusnap_core::clock::SystemClock;
use docusnap_core::config::{var, ConfigError};
use docusnap_core::startup::{Common, StartupError};
use docusnap_core::store::{DynamoKeyBindings, DynamoTaskStore, S3BlobStore};

use crate::Upload;

/// The deployed function: DynamoDB tasks and key bindings, S3 blobs, the system clock.
pub type AwsUpload = Upload<DynamoTaskStore, S3BlobStore, DynamoKeyBindings, SystemClock>;

pub async fn from_env() -> Result<AwsUpload, StartupError> {
    let Common { config, sdk, key, tasks, blobs } = Common::from_env().await?;
    let keys_table = config.keys_table.clone().ok_or(ConfigError::Missing(var::KEYS_TABLE))?;
    let keys = DynamoKeyBindings::new(docusnap_core::aws::dynamodb(&sdk), keys_table);
    Ok(Upload { tasks, blobs, keys, clock: SystemClock, key, limits: config.limits })
}
