//! Building the function's state from the environment, once per process.

use docusnap_core::clock::SystemClock;
use docusnap_core::config::var;
use docusnap_core::startup::{StartupError, Stores};
use docusnap_core::store::{DynamoTaskStore, S3BlobStore, SqsQueue};
use docusnap_core::v2::CallbackPolicy;

use crate::CallbackFunction;

/// The deployed function: the task table, the bucket (its markers), the callback queue.
pub type AwsCallback = CallbackFunction<DynamoTaskStore, S3BlobStore, SqsQueue, SystemClock>;

/// The callback dead-letter queue's ARN, which template.yaml passes to the function.
pub const DEAD_LETTER_ARN_VAR: &str = "DOCUSNAP_CALLBACK_DEAD_LETTER_QUEUE_ARN";

pub async fn from_env() -> Result<AwsCallback, StartupError> {
    let Stores { sdk, tasks, blobs, .. } = Stores::from_env().await?;
    let allow_loopback = match std::env::var(var::V2_CALLBACK_ALLOW_LOOPBACK) {
        Ok(v) => docusnap_core::config::parse_bool(var::V2_CALLBACK_ALLOW_LOOPBACK, &v)?,
        Err(_) => false,
    };
    Ok(CallbackFunction {
        tasks,
        blobs,
        queue: std::env::var(var::CALLBACK_QUEUE_URL).ok().filter(|u| !u.is_empty()).map(|url| SqsQueue::new(docusnap_core::aws::sqs(&sdk), url)),
        clock: SystemClock,
        policy: CallbackPolicy { allow_loopback },
        dead_letter_arn: std::env::var(DEAD_LETTER_ARN_VAR).ok().filter(|arn| !arn.is_empty()),
    })
}
