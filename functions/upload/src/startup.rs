//! Building the function's state from the environment, once per process.

use docusnap_core::clock::SystemClock;
use docusnap_core::startup::{Common, StartupError};
use docusnap_core::store::{DynamoTaskStore, S3BlobStore};

use crate::Upload;

/// The deployed function: DynamoDB tasks, S3 blobs, the system clock.
pub type AwsUpload = Upload<DynamoTaskStore, S3BlobStore, SystemClock>;

pub async fn from_env() -> Result<AwsUpload, StartupError> {
    let Common { config, key, tasks, blobs, .. } = Common::from_env().await?;
    Ok(Upload { tasks, blobs, clock: SystemClock, key, limits: config.limits })
}
