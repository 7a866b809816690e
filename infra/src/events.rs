//! The local event-source runner: what Lambda's SQS event source mappings do in AWS. For
//! each SQS event of a function in the template it polls the queue, hands batches of up to
//! `BatchSize` messages to the function as an SQS event (in a local execution environment
//! of [`crate::runtime`], or through `cargo lambda watch`'s invoke endpoint), and deletes
//! what the function handled. Failed messages (the whole batch when the invocation fails, the
//! reported items with `ReportBatchItemFailures`) stay on the queue: they come back after
//! the queue's visibility timeout, and the queue's own redrive policy moves them to the
//! dead-letter queue after `maxReceiveCount` receives, as in AWS.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_yaml_ng::Value as Yaml;
use tracing::{info, warn};

use crate::runtime::Environments;
use crate::template::{get_att_parts, intrinsic, scalar, Template};
use crate::{InfraError, LocalStack};

/// SQS hands out at most 10 messages per receive.
const MAX_RECEIVE: i32 = 10;
/// Long-poll wait per receive: short, so that stopping is quick.
const WAIT_SECONDS: i32 = 1;
/// An invocation may run this much past the function's own timeout before the runner
/// gives up on it (cargo-lambda compiles a function on its first invocation).
const INVOKE_SLACK: Duration = Duration::from_secs(600);

/// One SQS event source of a function, as the template declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The function's logical id, e.g. `OcrFunction`.
    pub function: String,
    /// The binary cargo-lambda serves it as (the one its Dockerfile builds).
    pub binary: String,
    /// The queue's logical id.
    pub queue: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    /// The function's timeout.
    pub timeout: Duration,
    /// The function's memory, in MB.
    pub memory_mb: u32,
    /// The queue's visibility timeout: how long a failed message stays hidden.
    pub visibility_timeout: Duration,
    /// Batches the local runner hands to the function at once: the mapping's
    /// [`Self::max_concurrency`] unless told less.
    pub concurrency: usize,
    /// The mapping's `ScalingConfig.MaximumConcurrency` (a parameter's default when it is
    /// a `!Ref`), what Lambda runs at once at most; 1 when the template sets none.
    pub max_concurrency: usize,
}

/// Every SQS event source in the template. `root` is where the Dockerfiles' paths start.
pub fn mappings(template: &Template, root: &Path) -> Result<Vec<Mapping>, InfraError> {
    let mut out = Vec::new();
    for (function, properties) in template.resources_of_type("AWS::Serverless::Function") {
        let events = properties.get("Events").and_then(Yaml::as_mapping).cloned().unwrap_or_default();
        for (_, event) in events {
            if event.get("Type").and_then(Yaml::as_str) != Some("SQS") {
                continue;
            }
            let unsupported =
                |what: &str| InfraError::Unsupported { resource: function.clone(), what: what.to_owned() };
            let event = event.get("Properties").ok_or_else(|| unsupported("an SQS event without Properties"))?;
            let queue = event
                .get("Queue")
                .and_then(intrinsic)
                .filter(|(f, _)| f == "GetAtt")
                .and_then(|(_, argument)| get_att_parts(&argument))
                .map(|(queue, _)| queue)
                .ok_or_else(|| unsupported("an SQS event whose Queue is not !GetAtt <queue>.Arn"))?;
            let batch_size = number_or(event, "BatchSize", 10);
            let report_batch_item_failures = event
                .get("FunctionResponseTypes")
                .and_then(Yaml::as_sequence)
                .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")));
            let (timeout, memory_mb) = timeout_and_memory(&properties);
            let max_concurrency = event
                .get("ScalingConfig")
                .and_then(|c| c.get("MaximumConcurrency"))
                .and_then(|value| {
                    scalar(value).or_else(|| match intrinsic(value) {
                        Some((f, name)) if f == "Ref" => template.parameter_default(name.as_str()?),
                        _ => None,
                    })
                })
                .and_then(|n| n.parse().ok())
                .unwrap_or(1usize)
                .max(1);
            // SQS's default visibility timeout is 30 s.
            let visibility = template
                .resource(&queue)
                .and_then(|q| q.get("Properties")?.get("VisibilityTimeout"))
                .and_then(scalar)
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            out.push(Mapping {
                binary: binary_of(template, &function, root)?,
                function: function.clone(),
                queue,
                batch_size,
                report_batch_item_failures,
                timeout,
                memory_mb,
                visibility_timeout: Duration::from_secs(visibility),
                concurrency: max_concurrency,
                max_concurrency,
            });
        }
    }
    Ok(out)
}

/// The function the template's HTTP API invokes (the one with `HttpApi` events), as the
/// local gateway runs it: (binary, timeout, memory in MB).
pub fn http_function(template: &Template, root: &Path) -> Result<Option<(String, Duration, u32)>, InfraError> {
    for (function, properties) in template.resources_of_type("AWS::Serverless::Function") {
        let events = properties.get("Events").and_then(Yaml::as_mapping).cloned().unwrap_or_default();
        if events.values().any(|event| event.get("Type").and_then(Yaml::as_str) == Some("HttpApi")) {
            let (timeout, memory_mb) = timeout_and_memory(&properties);
            return Ok(Some((binary_of(template, &function, root)?, timeout, memory_mb)));
        }
    }
    Ok(None)
}

/// A number the template gives, or `default` when it gives none.
fn number_or<T: std::str::FromStr>(properties: &Yaml, name: &str, default: T) -> T {
    properties.get(name).and_then(scalar).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A function's `Timeout` and `MemorySize`, or Lambda's defaults (3 s, 128 MB).
fn timeout_and_memory(properties: &Yaml) -> (Duration, u32) {
    let timeout = number_or(properties, "Timeout", 3);
    let memory_mb = number_or(properties, "MemorySize", 128);
    (Duration::from_secs(timeout), memory_mb)
}

/// The binary a function's image runs: the `FUNCTION` build argument its template
/// metadata passes to the Dockerfile (which installs that binary as the bootstrap).
fn binary_of(template: &Template, function: &str, root: &Path) -> Result<String, InfraError> {
    let unsupported = |what: String| InfraError::Unsupported { resource: function.to_owned(), what };
    let metadata = template.resource(function).and_then(|r| r.get("Metadata"));
    let dockerfile = metadata
        .and_then(|m| m.get("Dockerfile"))
        .and_then(Yaml::as_str)
        .ok_or_else(|| unsupported("no Metadata.Dockerfile".into()))?;
    let binary = metadata
        .and_then(|m| m.get("DockerBuildArgs"))
        .and_then(|args| args.get("FUNCTION"))
        .and_then(Yaml::as_str)
        .ok_or_else(|| unsupported("no Metadata.DockerBuildArgs.FUNCTION".into()))?;
    let text = std::fs::read_to_string(root.join(dockerfile)).map_err(|e| unsupported(format!("{dockerfile}: {e}")))?;
    if !text.contains("ARG FUNCTION") {
        return Err(unsupported(format!("{dockerfile} takes no FUNCTION argument")));
    }
    Ok(binary.to_owned())
}

impl Mapping {
    /// The mapping on a clock `factor` times faster: its function's timeout and its
    /// queue's visibility timeout divided alike, so that local fault runs see redeliveries
    /// and lapsed claims in seconds, in the order AWS would.
    pub fn scaled(mut self, factor: u32) -> Self {
        let factor = factor.max(1);
        self.timeout /= factor;
        self.visibility_timeout /= factor;
        self
    }
}

/// What one poll of a mapping did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Poll {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0} is not provisioned")]
    NoQueue(String),
    #[error("SQS {operation} failed: {detail}")]
    Sqs { operation: &'static str, detail: String },
}

fn sqs_error<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> EventError {
    move |e| EventError::Sqs { operation, detail: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string() }
}

/// How the runner reaches a function.
pub enum Invoke {
    /// An invoke endpoint such as `cargo lambda watch`'s, e.g. `http://127.0.0.1:9000`.
    Http { http: reqwest::Client, base: String },
    /// Local execution environments, by binary name.
    Local(HashMap<String, Arc<Environments>>),
}

/// Feeds functions from their queues.
#[derive(Clone)]
pub struct Runner {
    pub sqs: aws_sdk_sqs::Client,
    pub invoke: Arc<Invoke>,
    pub region: String,
    /// Fault injection: every batch is handed to the function twice at once, as SQS's
    /// at-least-once delivery may do (scripts/chaos).
    pub deliver_twice: bool,
    /// When set, a failed message comes back after this many seconds instead of the
    /// queue's visibility timeout (15-16 minutes for the OCR queue): for development and
    /// tests, where waiting that long helps nobody. `None` is AWS's behaviour.
    pub retry_after: Option<i32>,
    /// A failed message comes back after its mapping's `visibility_timeout` rather than
    /// the provisioned queue's: set when the mappings run on a shortened clock
    /// ([`Mapping::scaled`]), which keeps the timings' order (function timeout < extract
    /// claim < visibility timeout) that `retry_after` would break.
    pub visibility_from_mapping: bool,
}

impl Runner {
    /// Receives one batch from `mapping`'s queue (if any message is there), invokes the
    /// function with it, and settles each message by the function's answer.
    pub async fn poll(&self, stack: &LocalStack, mapping: &Mapping) -> Result<Poll, EventError> {
        let url = stack.queue_url(&mapping.queue).ok_or_else(|| EventError::NoQueue(mapping.queue.clone()))?;
        let arn = stack
            .resources
            .get(&mapping.queue)
            .map(|r| r.arn.clone())
            .ok_or_else(|| EventError::NoQueue(mapping.queue.clone()))?;
        let received = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(mapping.batch_size.clamp(1, MAX_RECEIVE))
            .wait_time_seconds(WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(sqs_error("ReceiveMessage"))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(Poll::default());
        }
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| self.record(m, &arn)).collect();
        let settle = |answer: Result<SqsBatchResponse, String>| -> Vec<String> {
            match answer {
                Ok(answer) if mapping.report_batch_item_failures => {
                    answer.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
                }
                Ok(_) => Vec::new(),
                Err(why) => {
                    warn!(function = %mapping.binary, why, "invocation failed; the whole batch stays on the queue");
                    messages.iter().filter_map(|m| m.message_id().map(str::to_owned)).collect()
                }
            }
        };
        let mut failed_ids = if self.deliver_twice {
            let (first, second) = tokio::join!(self.invoke(mapping, &event), self.invoke(mapping, &event));
            let mut ids = settle(first);
            ids.extend(settle(second));
            ids
        } else {
            settle(self.invoke(mapping, &event).await)
        };
        failed_ids.sort_unstable();
        failed_ids.dedup();
        let mut poll = Poll { received: messages.len(), ..Default::default() };
        for message in messages {
            let receipt = message.receipt_handle().unwrap_or_default();
            if failed_ids.iter().any(|id| Some(id.as_str()) == message.message_id()) {
                poll.failed += 1;
                let mapping_visibility =
                    self.visibility_from_mapping.then_some(mapping.visibility_timeout.as_secs() as i32);
                if let Some(seconds) = self.retry_after.or(mapping_visibility) {
                    self.sqs
                        .change_message_visibility()
                        .queue_url(url)
                        .receipt_handle(receipt)
                        .visibility_timeout(seconds)
                        .send()
                        .await
                        .map_err(sqs_error("ChangeMessageVisibility"))?;
                }
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(sqs_error("DeleteMessage"))?;
                poll.deleted += 1;
            }
        }
        info!(function = %mapping.binary, queue = %mapping.queue, received = poll.received, failed = poll.failed, "batch handled");
        Ok(poll)
    }

    /// A received message as Lambda's event source mapping delivers it.
    fn record(&self, m: &aws_sdk_sqs::types::Message, arn: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id().map(str::to_owned);
        record.receipt_handle = m.receipt_handle().map(str::to_owned);
        record.body = m.body().map(str::to_owned);
        record.md5_of_body = m.md5_of_body().map(str::to_owned);
        record.attributes = m
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
            .unwrap_or_default();
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some(arn.to_owned());
        record.aws_region = Some(self.region.clone());
        record
    }

    /// Invokes the function with `event`: its answer (an empty one when the function
    /// reports no failures), or why the invocation failed.
    async fn invoke(&self, mapping: &Mapping, event: &SqsEvent) -> Result<SqsBatchResponse, String> {
        let text = match &*self.invoke {
            Invoke::Http { http, base } => {
                let url = format!("{}/2015-03-31/functions/{}/invocations", base.trim_end_matches('/'), mapping.binary);
                let response = http
                    .post(&url)
                    .timeout(mapping.timeout + INVOKE_SLACK)
                    .json(event)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let status = response.status();
                let function_error = response.headers().get("x-amz-function-error").is_some();
                let text = response.text().await.map_err(|e| e.to_string())?;
                if !status.is_success() || function_error {
                    return Err(format!("HTTP {status}: {text:.300}"));
                }
                text
            }
            Invoke::Local(functions) => {
                let environments =
                    functions.get(&mapping.binary).ok_or_else(|| format!("no local function {}", mapping.binary))?;
                let event = serde_json::to_vec(event).map_err(|e| e.to_string())?;
                let answer = environments.invoke(event.into()).await.map_err(|e| e.to_string())?;
                String::from_utf8_lossy(&answer).into_owned()
            }
        };
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if answer.get("errorType").is_some() {
            return Err(format!("{text:.300}"));
        }
        // A function that returns nothing for the batch reports no failures.
        Ok(serde_json::from_value(answer).unwrap_or_default())
    }

    /// Polls every mapping until the process is stopped, one task per mapping.
    pub async fn run(self, stack: LocalStack, mappings: Vec<Mapping>) {
        let stack = std::sync::Arc::new(stack);
        let mut tasks = tokio::task::JoinSet::new();
        // One poller per batch in flight, as many as the mapping's concurrency.
        for mapping in mappings.into_iter().flat_map(|m| std::iter::repeat_n(m.clone(), m.concurrency.max(1))) {
            let (runner, stack) = (self.clone(), stack.clone());
            tasks.spawn(async move {
                loop {
                    let started = tokio::time::Instant::now();
                    match runner.poll(&stack, &mapping).await {
                        Ok(poll) if poll.received > 0 => continue,
                        // A long poll that waited: poll again at once, as Lambda's pollers do
                        // (a pause here was a message's wait of up to 250 ms a queue).
                        Ok(_) if started.elapsed() >= Duration::from_secs(WAIT_SECONDS as u64) / 2 => continue,
                        // A server that answers empty at once would spin this loop.
                        Ok(_) => {}
                        Err(e) => warn!(queue = %mapping.queue, error = %e, "poll failed"),
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// The queues of an already provisioned stack (`prefix` as given to [`crate::provision`]).
pub async fn locate_queues(
    template: &Template, sqs: &aws_sdk_sqs::Client, prefix: &str,
) -> Result<LocalStack, InfraError> {
    let mut stack = LocalStack { prefix: prefix.to_owned(), resources: Default::default() };
    for (id, _) in template.resources_of_type("AWS::SQS::Queue") {
        let name = crate::local_name(prefix, &id);
        let url = sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(crate::aws_error("SQS GetQueueUrl", &id))?
            .queue_url
            .unwrap_or_default();
        let arn = crate::queue_arn(sqs, &url, &id).await?;
        stack.resources.insert(id, crate::Provisioned { kind: crate::ResourceKind::Queue, name, arn, url: Some(url) });
    }
    Ok(stack)
}
