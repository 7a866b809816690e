//! The extract function: fed by the extract queue, whose messages name tasks whose pages
//! have been read. For each it takes the task (a conditional claim, so a redelivered
//! message makes no second set of LLM calls), builds the result with the LLM or the
//! rules, seals it under the client's key and completes the task. [`handle`] is the whole
//! Lambda handler, callable from tests.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use docusnap_core::clock::{Clock, Timestamp};
use docusnap_core::crypto::{CryptoError, ServerKey};
use docusnap_core::metrics::{self, PipelineStage};
use docusnap_core::pipeline;
use docusnap_core::store::{BlobStore, Outcome, StoreError, TaskStore};
use docusnap_core::task::{extract_claim_secs, Progress, Stage, TaskId, TaskMessage, TaskState};
use docusnap_core::{Env, ErrorCode, TaskType};
use docusnap_extract::model::AnyChatModel;
use docusnap_extract::prompt::PromptError;
use docusnap_extract::{ExtractError, Extractor, OcrText, Want};
use tracing::{error, info, warn, Instrument};

mod startup;

pub use startup::{from_env, AwsExtract, StartupError};

/// Kept back from the Lambda's deadline for sealing, storing and, after an LLM that ran
/// out of time, the rules fallback (milliseconds of work; seconds of margin for S3): a
/// twentieth of the function's timeout, at most this (15 s of template.yaml's 300 s).
const DEADLINE_MARGIN: Duration = Duration::from_secs(15);

/// The invocation's deadline. Lambda sends it as milliseconds since the epoch; `cargo
/// lambda watch` sends the literal 600000 (a moment in 1970), which read as a time left the
/// LLM was never asked. A deadline already past when the invocation starts is therefore
/// taken as unknown, and the configured `timeout` stands in for it.
pub fn invocation_deadline(context: &lambda_runtime::Context, timeout: Duration) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    match context.deadline.checked_sub(now_ms).filter(|&left| left > 0) {
        Some(left) => Instant::now() + Duration::from_millis(left),
        None => {
            warn!(
                deadline_ms = context.deadline,
                timeout_s = timeout.as_secs(),
                "the invocation's deadline has already passed; the configured timeout stands in"
            );
            Instant::now() + timeout
        }
    }
}

/// How often, and how long each time, a message for a task not yet marked read waits
/// before it is left to SQS to deliver again.
const NOT_READ_WAITS: u32 = 3;
const NOT_READ_WAIT: Duration = Duration::from_millis(500);

/// The extract function's state, built once per process.
pub struct ExtractFunction<E: Env> {
    pub tasks: E::Tasks,
    pub blobs: E::Blobs,
    pub clock: E::Clock,
    pub key: ServerKey,
    pub extractor: Extractor<AnyChatModel>,
    /// The function's configured timeout: the deadline of an invocation whose own is
    /// unusable, and what the claim's lifetime is derived from.
    pub timeout: Duration,
    /// The extract queue's dead-letter queue, which also feeds this function: a message
    /// from it ends its task with `PROCESSING_ERROR`, so no task is left processing.
    pub dead_letter_arn: Option<String>,
}

/// Why a message could not be handled now; it fails only its own record, which SQS
/// delivers again (and after the queue's receive limit moves to the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the message does not name a task: {0}")]
    NotATaskMessage(#[source] serde_json::Error),
    /// The OCR function sends its message just before it marks the task read.
    #[error("the task's pages are not marked read yet")]
    NotReadYet,
    /// Another delivery holds a fresh claim on the task. The message must come back: if
    /// that holder dies, only a redelivery (after the queue's visibility timeout, which
    /// outlasts the claim) can take the lapsed claim over and finish the task.
    #[error("another delivery holds the task's claim")]
    ClaimHeld,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the result could not be sealed: {0}")]
    Seal(#[source] CryptoError),
}

/// The SQS handler: every record on its own, failures reported per record.
pub async fn handle<E: Env>(app: &ExtractFunction<E>, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let deadline = deadline.checked_sub((app.timeout / 20).min(DEADLINE_MARGIN)).unwrap_or_else(Instant::now);
    docusnap_core::sqs_event::each_record(event, |record| async move {
        if record.is_dead_letter(app.dead_letter_arn.as_deref()) {
            app.handle_dead_letter(&record.body).await
        } else {
            app.handle_message(&record.body, deadline).await
        }
    })
    .await
}

/// What a task fails with, when extraction cannot make its result.
fn error_code(task_type: TaskType, error: &ExtractError) -> ErrorCode {
    match (error, task_type) {
        (ExtractError::Prompt(PromptError::NoFields), _) | (ExtractError::Prompt(_), TaskType::Fill) => {
            ErrorCode::FillPromptConstructionFailed
        }
        (ExtractError::Prompt(_), TaskType::Form) => ErrorCode::FormPromptConstructionFailed,
        (ExtractError::Prompt(_), TaskType::Doc) => ErrorCode::DocPromptConstructionFailed,
        (ExtractError::Llm(_), _) => ErrorCode::LlmFailure,
        (ExtractError::Invalid(_), _) => ErrorCode::ProcessingError,
    }
}

/// How a claimed task ended, before it is written.
enum Ending {
    Done(Outcome),
    /// A store failed after the claim: the claim is handed back so the retry may run.
    Retry(RecordError),
}

impl<E: Env> ExtractFunction<E> {
    /// Claims taken before this are lapsed: their holders are surely gone.
    fn claim_stale_before(&self, now: Timestamp) -> Timestamp {
        now - extract_claim_secs(self.timeout.as_secs())
    }

    async fn handle_message(&self, body: &str, deadline: Instant) -> Result<(), RecordError> {
        let message: TaskMessage = serde_json::from_str(body).map_err(RecordError::NotATaskMessage)?;
        let id = TaskId::from(message);
        let span = tracing::info_span!("extract", task = %id);
        self.extract_task(&id, deadline).instrument(span).await
    }

    /// A message the extract queue gave up on: every run of it failed. Its task ends with
    /// `PROCESSING_ERROR` unless it ended already, is still OCR's (not read yet: the OCR
    /// queue, and its own dead-letter queue, answer for it), or is held by a fresh claim
    /// (the message comes back after the dead-letter queue's visibility timeout). A message
    /// that names no task is logged, counted and dropped.
    async fn handle_dead_letter(&self, body: &str) -> Result<(), RecordError> {
        metrics::dead_letter();
        let message: TaskMessage = match serde_json::from_str(body) {
            Ok(message) => message,
            Err(e) => {
                error!(error = %e, "a dead letter that names no task; dropped");
                return Ok(());
            }
        };
        let id = TaskId::from(message);
        let span = tracing::info_span!("extract", task = %id);
        async {
            let now = self.clock.now();
            let Some(task) = self.tasks.get(&id, now).await? else {
                return Ok(());
            };
            match task.state {
                TaskState::Processing { progress: Progress::Receiving | Progress::Uploaded } => {
                    info!("a dead letter for a task not read yet; the OCR queue answers for it");
                    Ok(())
                }
                TaskState::Processing { progress: Progress::Extracting { claimed_at } }
                    if claimed_at > self.claim_stale_before(now) =>
                {
                    Err(RecordError::ClaimHeld)
                }
                TaskState::Processing { .. } => {
                    warn!(code = %ErrorCode::ProcessingError, "every delivery of the task's message failed; it ends");
                    pipeline::end_task(&self.tasks, &self.blobs, &id, Outcome::Failed(ErrorCode::ProcessingError), now)
                        .await?;
                    Ok(())
                }
                _ => Ok(pipeline::settle_ended(&self.tasks, &self.blobs, &id, now).await?),
            }
        }
        .instrument(span)
        .await
    }

    async fn extract_task(&self, id: &TaskId, deadline: Instant) -> Result<(), RecordError> {
        let now = self.clock.now();
        let mut waited = 0;
        let task_created = loop {
            let Some(task) = self.tasks.get(id, now).await? else {
                info!("the task is gone (cleared or expired); nothing to do");
                return Ok(());
            };
            let Some(stage) = task.state.stage() else {
                info!(status = task.status().as_str(), "already ended; skipped");
                return Ok(pipeline::settle_ended(&self.tasks, &self.blobs, id, now).await?);
            };
            // The OCR function marks the task read right after it sends the message; a
            // moment's wait saves a redelivery a whole visibility timeout later.
            if stage != Stage::Uploaded {
                break task.created_at;
            }
            if waited == NOT_READ_WAITS {
                return Err(RecordError::NotReadYet);
            }
            waited += 1;
            tokio::time::sleep(NOT_READ_WAIT).await;
        };
        if !self.tasks.claim(id, now, self.claim_stale_before(now)).await? {
            // Deleted only once the task has ended or left extraction, never while a claim
            // whose holder may have died still stands.
            let held = self.tasks.get(id, now).await?.is_some_and(|task| task.state.stage() == Some(Stage::Extracting));
            if held {
                return Err(RecordError::ClaimHeld);
            }
            info!("the task ended or moved on meanwhile; nothing to do");
            return Ok(());
        }
        let started = Instant::now();
        let outcome = match self.run(id, deadline).await {
            Ending::Done(outcome) => outcome,
            Ending::Retry(e) => {
                if let Err(release) = self.tasks.advance(id, Stage::Extracting, Stage::Read).await {
                    warn!(error = %release, "the claim could not be handed back; it lapses by itself");
                }
                return Err(e);
            }
        };
        match &outcome {
            Outcome::Completed { extractor, .. } => {
                info!(extractor = %extractor, ms = started.elapsed().as_millis() as u64, "task completed");
                metrics::extracted(extractor, started.elapsed());
            }
            Outcome::Failed(code) => warn!(code = %code, "task failed"),
        }
        metrics::stage_seconds(PipelineStage::Extract, self.clock.now() - task_created);
        pipeline::end_task(&self.tasks, &self.blobs, id, outcome, self.clock.now()).await?;
        Ok(())
    }

    /// Reads what the task needs, extracts, and seals the result.
    async fn run(&self, id: &TaskId, deadline: Instant) -> Ending {
        let failed = |code: ErrorCode, why: &str| {
            warn!(code = %code, why, "extraction cannot run");
            Ending::Done(Outcome::Failed(code))
        };
        // The OCR output carries what extraction needs: the envelope (and its images) is
        // never opened here.
        let sealed = match self.blobs.get(&id.ocr_key()).await {
            Ok(Some(sealed)) => sealed,
            Ok(None) => return failed(ErrorCode::ProcessingError, "the OCR output is missing"),
            Err(e) => return Ending::Retry(e.into()),
        };
        let (key, ocr) = match pipeline::open_output(&self.key, id, &sealed) {
            Ok(opened) => opened,
            Err(e) => return failed(e.stored_code(), &e.to_string()),
        };
        let extraction = match (id.task_type, &ocr.form) {
            (TaskType::Fill, Some(form)) => self.extractor.fill(form, &ocr.library, deadline).await,
            (TaskType::Fill, None) => {
                return failed(ErrorCode::ProcessingError, "a fill task's OCR output has no form")
            }
            (task_type, _) => {
                let want = if task_type == TaskType::Form { Want::Form } else { Want::Doc };
                self.extractor.document(&OcrText::from_output(&ocr), want, &ocr.library, deadline).await
            }
        };
        let extraction = match extraction {
            Ok(extraction) => extraction,
            Err(e) => return failed(error_code(id.task_type, &e), &e.to_string()),
        };
        if !extraction.usage.is_zero() {
            // Counted already as metrics; the task's own count is for its owner to see.
            if let Err(e) = self.tasks.add_usage(id, extraction.usage).await {
                warn!(error = %e, "recording the task's LLM tokens failed");
            }
        }
        let sealed = docusnap_extract::seal_result(id, &key, &extraction, &ocr);
        match sealed {
            Ok(result) => Ending::Done(Outcome::Completed { result, extractor: extraction.extractor }),
            Err(e) => Ending::Retry(RecordError::Seal(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use docusnap_core::results::ResultError;
    use docusnap_extract::llm::LlmError;
    use docusnap_extract::LlmFailure;

    #[test]
    fn a_deadline_already_past_is_replaced_by_the_configured_timeout() {
        let mut context = lambda_runtime::Context::default();
        context.deadline = 600_000; // what cargo lambda watch sends
        let timeout = Duration::from_secs(300);
        let deadline = invocation_deadline(&context, timeout);
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(295) && left <= timeout, "{left:?}");
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        context.deadline = now_ms + 42_000; // what Lambda sends
        let left = invocation_deadline(&context, timeout).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(40) && left <= Duration::from_secs(42), "{left:?}");
    }

    #[test]
    fn each_failure_ends_with_the_code_of_its_task_type() {
        let no_text = || ExtractError::Prompt(PromptError::NoText);
        assert_eq!(error_code(TaskType::Doc, &no_text()), ErrorCode::DocPromptConstructionFailed);
        assert_eq!(error_code(TaskType::Form, &no_text()), ErrorCode::FormPromptConstructionFailed);
        assert_eq!(
            error_code(TaskType::Fill, &ExtractError::Prompt(PromptError::NoFields)),
            ErrorCode::FillPromptConstructionFailed
        );
        let refused = LlmError::Status { status: 401, body_bytes: 0 };
        assert!(!refused.is_retryable(), "a refused key is not retried like a timeout");
        assert_eq!(error_code(TaskType::Doc, &ExtractError::Llm(LlmFailure::Call(refused))), ErrorCode::LlmFailure);
        assert_eq!(
            error_code(TaskType::Doc, &ExtractError::Invalid(ResultError::EmptyTitle)),
            ErrorCode::ProcessingError
        );
    }
}
