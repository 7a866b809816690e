//! The callback function: fed by the callback queue, which the bucket tells of each v2
//! task's end marker (`callbacks/<task id>.json`, written by `core::pipeline::end_task`).
//! For a task created with a callback URL it POSTs `{task_id, status}`, signed with
//! HMAC-SHA256 under the task's callback secret (`DocuSnap-Signature: t=..,v1=..`); the
//! result itself is fetched by the client with its token. A failed POST is retried with
//! exponential backoff, then the message goes to the callback dead-letter queue.
//!
//! The URL was checked at creation; its host is resolved again here and every address
//! checked (`CallbackPolicy::allows_ip`), and the connection pinned to a checked address,
//! so a name that now resolves to a private address (DNS rebinding) gets nothing.

use std::net::SocketAddr;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use docusnap_core::clock::Clock;
use docusnap_core::metrics;
use docusnap_core::s3_event::{decode_key, Notification};
use docusnap_core::sqs_event::Record;
use docusnap_core::store::{BlobStore, Queue, StoreError, V2TaskStore};
use docusnap_core::task::TaskState;
use docusnap_core::v2::{self, CallbackPolicy, V2TaskId};
use docusnap_core::Env;
use tracing::{error, info, warn, Instrument};

mod startup;

pub use startup::{from_env, AwsCallback};

/// A callback's whole time, connection included: a receiver that takes longer is retried
/// later, and a slow one cannot hold the function.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's wait; each next one doubles, up to [`MAX_BACKOFF_SECS`].
pub const FIRST_BACKOFF_SECS: u32 = 30;
/// SQS hides a message for 12 hours at most; 15 minutes keeps a retry within reach of a
/// receiver that comes back, and eight receives (template.yaml) span 45 minutes.
pub const MAX_BACKOFF_SECS: u32 = 15 * 60;

/// The wait before receive `receive_count + 1`: 30 s, 60 s, 120 s, ... 15 min.
pub fn backoff_secs(receive_count: u32) -> u32 {
    FIRST_BACKOFF_SECS.saturating_mul(1 << receive_count.saturating_sub(1).min(10)).min(MAX_BACKOFF_SECS)
}

/// The callback function's state, built once per process.
pub struct CallbackFunction<E: Env> {
    pub tasks: E::Tasks,
    pub blobs: E::Blobs,
    /// The callback queue, to set a failed delivery's backoff.
    pub queue: Option<E::Queue>,
    pub clock: E::Clock,
    pub policy: CallbackPolicy,
    /// The callback dead-letter queue, which also feeds this function: its messages are
    /// callbacks given up on, logged and counted (the alarm watches the count).
    pub dead_letter_arn: Option<String>,
}

/// Why a callback is to be tried again.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("the message is not an S3 notification: {0}")]
    NotANotification(#[source] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the callback host could not be resolved: {0}")]
    Resolve(#[source] std::io::Error),
    #[error("the callback was not delivered: {0}")]
    Send(#[source] reqwest::Error),
    #[error("the receiver answered {0}")]
    Status(u16),
    /// The URL may not be called (it resolves to an address the policy refuses): the
    /// callback is dropped, never retried.
    #[error("the callback may not be sent: {0}")]
    NotAllowed(String),
}

pub async fn handle<E: Env>(app: &CallbackFunction<E>, event: SqsEvent) -> SqsBatchResponse {
    docusnap_core::sqs_event::each_record(event, |record| async move { app.handle_record(&record).await }).await
}

impl<E: Env> CallbackFunction<E> {
    async fn handle_record(&self, record: &Record) -> Result<(), CallbackError> {
        if record.is_dead_letter(self.dead_letter_arn.as_deref()) {
            metrics::dead_letter();
            error!(body = %record.body, "a callback given up on after every retry");
            return Ok(());
        }
        let notification: Notification = serde_json::from_str(&record.body).map_err(CallbackError::NotANotification)?;
        for entry in notification.records {
            let key = decode_key(&entry.s3.object.key);
            let Some(task) = V2TaskId::of_callback_key(&key) else {
                warn!(key, "not a callback marker; ignored");
                continue;
            };
            let span = tracing::info_span!("callback", task = %task);
            let sent = match self.call_back(&task).instrument(span).await {
                Err(CallbackError::NotAllowed(why)) => {
                    warn!(why, "the callback host resolves to an address that may not be called; dropped");
                    Ok(())
                }
                other => other,
            };
            if let Err(e) = &sent {
                if let (Some(queue), Some(receipt)) = (&self.queue, &record.receipt_handle) {
                    let wait = backoff_secs(record.receive_count);
                    if let Err(backoff) = queue.retry_after(receipt, wait).await {
                        warn!(error = %backoff, "the retry's backoff could not be set; the queue's visibility timeout applies");
                    }
                    warn!(error = %e, retry_in_secs = wait, attempt = record.receive_count, "callback failed; retried");
                }
                return sent;
            }
            // Delivered or not wanted: the marker has done its work.
            if let Err(e) = self.blobs.delete(&[key]).await {
                warn!(error = %e, "the callback marker stays until the lifecycle rule removes it");
            }
        }
        Ok(())
    }

    async fn call_back(&self, task: &V2TaskId) -> Result<(), CallbackError> {
        let Some((state, record)) = self.tasks.get_v2(&task.task_id(), self.clock.now()).await? else {
            info!("the task is gone; no callback");
            return Ok(());
        };
        let Some(callback) = record.callback else { return Ok(()) };
        let status = match state.state {
            TaskState::Completed { .. } => "completed",
            TaskState::Failed { .. } => "error",
            TaskState::Processing { .. } => {
                warn!("a callback marker for a task still processing; ignored");
                return Ok(());
            }
        };
        let url = match self.policy.check_url(&callback.url) {
            Ok(url) => url,
            Err(refusal) => {
                warn!(why = %refusal.reason, "the callback URL is no longer allowed; dropped");
                return Ok(());
            }
        };
        let address = self.resolve(&url).await?;
        let body = serde_json::json!({"task_id": task.to_string(), "status": status}).to_string();
        let signature = v2::sign_callback(callback.secret.expose(), self.clock.now(), &body);
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        // Pinned to the address just checked: the client resolves nothing itself.
        let client = reqwest::Client::builder()
            .resolve(&host, address)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALLBACK_TIMEOUT)
            .build()
            .map_err(CallbackError::Send)?;
        let response = client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("user-agent", "DocuSnap-Callback/2")
            .header(v2::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(CallbackError::Send)?;
        let code = response.status().as_u16();
        if !(200..300).contains(&code) {
            return Err(CallbackError::Status(code));
        }
        info!(status, code, "callback delivered");
        Ok(())
    }

    /// The address to connect to: every address the host resolves to must be allowed.
    async fn resolve(&self, url: &url::Url) -> Result<SocketAddr, CallbackError> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(url::Host::Domain(name)) => {
                tokio::net::lookup_host((name, port)).await.map_err(CallbackError::Resolve)?.collect()
            }
            None => Vec::new(),
        };
        if let Some(bad) = addresses.iter().find(|a| !self.policy.allows_ip(a.ip())) {
            return Err(CallbackError::NotAllowed(format!(
                "{} resolves to {}",
                url.host_str().unwrap_or_default(),
                bad.ip()
            )));
        }
        addresses.first().copied().ok_or_else(|| CallbackError::NotAllowed("no address".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_to_a_ceiling() {
        assert_eq!((1..=7).map(backoff_secs).collect::<Vec<_>>(), [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(backoff_secs(0), 30);
        assert_eq!(backoff_secs(u32::MAX), 900);
    }
}
