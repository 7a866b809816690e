//! Building the function's state from the environment, once per process.

use docusnap_core::clock::SystemClock;
use docusnap_core::config::{parse_bool, var, ConfigError};
use docusnap_core::startup::{Common, StartupError};
use docusnap_core::store::{DynamoKeyBindings, DynamoTaskStore, S3BlobStore, SqsQueue};
use docusnap_core::v2::{CallbackPolicy, UPLOAD_WINDOW_SECS};

use docusnap_core::store::UploadUrls;

use crate::{Upload, V2Api};

/// The deployed function: DynamoDB tasks and key bindings, S3 blobs and upload URLs, the
/// OCR queue, the system clock.
pub type AwsUpload = Upload<DynamoTaskStore, S3BlobStore, DynamoKeyBindings, SystemClock, SqsQueue, S3BlobStore>;

pub async fn from_env() -> Result<AwsUpload, StartupError> {
    let Common { config, sdk, key, tasks, blobs } = Common::from_env().await?;
    let keys_table = config.keys_table.clone().ok_or(ConfigError::Missing(var::KEYS_TABLE))?;
    let keys = DynamoKeyBindings::new(docusnap_core::aws::dynamodb(&sdk), keys_table);
    let ocr_queue = std::env::var(var::OCR_QUEUE_URL).ok().filter(|u| !u.is_empty()).ok_or(ConfigError::Missing(var::OCR_QUEUE_URL))?;
    // A presigned URL's origin is the bucket's, however the client is configured (path or
    // virtual-host style, a local endpoint): the page's policy names it.
    let probe = blobs.presign_put("tasks/origin-probe", 1, "", 60).await.map_err(|e| ConfigError::Invalid {
        var: var::UPLOADS_BUCKET,
        value: e.to_string(),
        why: "upload URLs cannot be presigned for this bucket",
    })?;
    let storage_origin = crate::v2::origin_of(&probe.url).unwrap_or_default();
    let v2 = V2Api {
        storage_origin,
        ocr_queue: SqsQueue::new(docusnap_core::aws::sqs(&sdk), ocr_queue),
        urls: blobs.clone(),
        callbacks: CallbackPolicy { allow_loopback: v2_allow_loopback()? },
        upload_window_secs: match std::env::var(var::V2_UPLOAD_WINDOW_SECS) {
            Ok(v) => v.parse().ok().filter(|s| (1..=UPLOAD_WINDOW_SECS).contains(s)).ok_or(ConfigError::Invalid {
                var: var::V2_UPLOAD_WINDOW_SECS,
                value: v,
                why: "expected seconds from 1 to 900",
            })?,
            Err(_) => UPLOAD_WINDOW_SECS,
        },
    };
    Ok(Upload { tasks, blobs, keys, clock: SystemClock, key, limits: config.limits, v2 })
}

/// Whether v2 callbacks may go to loopback (local runs and tests; never set in the template).
pub fn v2_allow_loopback() -> Result<bool, ConfigError> {
    std::env::var(var::V2_CALLBACK_ALLOW_LOOPBACK).map_or(Ok(false), |v| parse_bool(var::V2_CALLBACK_ALLOW_LOOPBACK, &v))
}
