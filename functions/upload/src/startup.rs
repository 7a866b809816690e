//! Building the function's state from the environment, once per process.

use docusnap_core::config::{env_lookup, var, ConfigError, UploadSettings};
use docusnap_core::env::Aws;
use docusnap_core::startup::{Common, StartupError};
use docusnap_core::store::{DynamoKeyBindings, DynamoQuotaStore, SqsQueue, UploadUrls};
use docusnap_core::v2::CallbackPolicy;

use crate::{Upload, V2Api};

/// The deployed function: DynamoDB tasks and key bindings, S3 blobs and upload URLs, the
/// OCR queue, the system clock.
pub type AwsUpload = Upload<Aws>;

pub async fn from_env() -> Result<AwsUpload, StartupError> {
    let settings = UploadSettings::from_lookup(env_lookup)?;
    let Common { config, sdk, key, tasks, blobs } = Common::from_env().await?;
    let keys = DynamoKeyBindings::new(docusnap_core::aws::dynamodb(&sdk), settings.keys_table);
    let quotas = DynamoQuotaStore::new(docusnap_core::aws::dynamodb(&sdk), settings.quotas_table);
    // A presigned URL's origin is the bucket's, however the client is configured (path or
    // virtual-host style, a local endpoint): the page's policy names it.
    let probe = blobs.presign_put("tasks/origin-probe", 1, "", 60).await.map_err(|e| ConfigError::Invalid {
        var: var::UPLOADS_BUCKET,
        value: e.to_string(),
        why: "upload URLs cannot be presigned for this bucket",
    })?;
    let v2 = V2Api {
        storage_origin: crate::v2::origin_of(&probe.url).unwrap_or_default(),
        ocr_queue: SqsQueue::new(docusnap_core::aws::sqs(&sdk), settings.ocr_queue_url),
        callbacks: CallbackPolicy { allow_loopback: settings.allow_loopback },
        upload_window_secs: settings.upload_window_secs,
    };
    let clock = docusnap_core::SystemClock;
    Ok(Upload { tasks, blobs, keys, clock, key, limits: config.limits, quotas, quota: settings.quota, v2 })
}
