//! Building the function's state from the environment, once per process.

use docusnap_core::config::{env_lookup, CallbackSettings};
use docusnap_core::env::Aws;
use docusnap_core::startup::{StartupError, Stores};
use docusnap_core::store::SqsQueue;
use docusnap_core::v2::CallbackPolicy;

use crate::CallbackFunction;

/// The deployed function: the task table, the bucket (its markers), the callback queue.
pub type AwsCallback = CallbackFunction<Aws>;

pub async fn from_env() -> Result<AwsCallback, StartupError> {
    let settings = CallbackSettings::from_lookup(env_lookup)?;
    let Stores { sdk, tasks, blobs, .. } = Stores::from_env().await?;
    Ok(CallbackFunction {
        tasks,
        blobs,
        queue: settings.queue_url.map(|url| SqsQueue::new(docusnap_core::aws::sqs(&sdk), url)),
        clock: docusnap_core::SystemClock,
        policy: CallbackPolicy { allow_loopback: settings.allow_loopback },
        dead_letter_arn: settings.dead_letter_arn,
    })
}
