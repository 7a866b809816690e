//! The OCR function: fed by the queue of the uploads bucket's `ObjectCreated`
//! notifications. For each new envelope it turns the task's items into pages (the input
//! stage, `docusnap_ocr::input`), reads every page, stores the OCR output
//! (`docusnap_core::ocr_output`) sealed under the client's key, and tells the extract
//! queue which task is ready (never what it says). Images dropped under `batch/` become
//! tasks of their own first (`docusnap_core::batch`). [`handle`] is the whole Lambda
//! handler, callable from tests.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use docusnap_core::batch::{self, BatchDocument};
use docusnap_core::clock::{Clock, Timestamp};
use docusnap_core::config::FastPrefixes;
use docusnap_core::config::Limits;
use docusnap_core::crypto::{AesKey, CryptoError, ServerKey};
use docusnap_core::intake::{self, group_range, IntakeError};
use docusnap_core::metrics::{self, PipelineStage};
use docusnap_core::ocr_output::{OcrOutput, Orientation, PageText, Rotation, TextLine, TextOrigin};
use docusnap_core::ocr_queue::OcrQueueMessage;
use docusnap_core::pipeline;
use docusnap_core::protocol::{decode_page, Envelope, TaskContent};
use docusnap_core::s3_event::{decode_key, Notification};
use docusnap_core::sqs_event::Record;
use docusnap_core::store::{BlobStore, Outcome, Queue, StoreError, TaskStore, V2TaskStore};
use docusnap_core::task::{GroupMessage, Stage, Task, TaskId, TaskMessage};
use docusnap_core::{Env, ErrorCode, Failure};
use docusnap_ocr::{input, Mode, OcrEngine, OcrError, Page, PageInput};
use tracing::{error, info, warn, Instrument};

mod startup;
mod v2;

pub use startup::{from_env, AwsOcr, StartupError};

/// The OCR function's state, built once per process.
pub struct OcrFunction<E: Env> {
    pub tasks: E::Tasks,
    pub blobs: E::Blobs,
    pub extract_queue: E::Queue,
    pub clock: E::Clock,
    pub key: ServerKey,
    pub engine: Arc<OcrEngine>,
    pub limits: Limits,
    /// Pages read at once: the CPUs the function may use.
    pub parallel_pages: usize,
    /// The OCR queue's receive limit (`maxReceiveCount`): on a message's last receive its
    /// task ends with `OCR_FAILURE` instead of being read once more.
    pub max_receives: u32,
    /// The OCR queue's dead-letter queue, which also feeds this function: a message from
    /// it ends its task with `OCR_FAILURE`, so no task is left processing for good.
    pub dead_letter_arn: Option<String>,
    /// Fan-out of long tasks over several invocations; `None` reads every task in one.
    pub fan_out: Option<FanOut<E::Queue>>,
    /// Batch documents read in the fast mode.
    pub fast_prefixes: FastPrefixes,
}

/// How a task with many pages is spread over invocations: one [`GroupMessage`] per group
/// of `group_pages` pages, sent to the function's own queue, so that the queue's
/// concurrency reads the groups side by side.
pub struct FanOut<Q> {
    pub ocr_queue: Q,
    pub group_pages: usize,
}

/// Why a message could not be handled now. Each fails only its own record, which SQS
/// delivers again (and after the queue's receive limit, moves to its dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the message is none of the OCR queue's: {0}")]
    NotAMessage(#[source] serde_json::Error),
    #[error("the notification has no records")]
    NoRecords,
    /// Not where an envelope goes, or not an envelope of the task whose key it has. The
    /// task cannot be told from the key alone (it names the client by digest), so the
    /// message goes to the dead-letter queue and its task, if any, times out.
    #[error("object {0:?} is not a task envelope")]
    NotAnEnvelope(String),
    /// The task's own fault (a page that is not an image, a key that does not open): it
    /// ends with this code where its id is known, and never goes back to the queue.
    #[error(transparent)]
    Task(#[from] Failure),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error("the page reader stopped: {0}")]
    Reader(#[source] tokio::task::JoinError),
    #[error("the engine cannot read pages: {0}")]
    Engine(#[source] OcrError),
    #[error("the OCR output could not be sealed: {0}")]
    Seal(#[source] CryptoError),
    #[error("the extract message could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),
    /// A v2 page counted as arrived is not (yet) readable: a store fault; it comes back.
    #[error("page {0} of the task is missing")]
    MissingPage(usize),
}

/// A page the engine cannot read, as the task's failure.
fn unreadable(why: impl std::fmt::Display) -> RecordError {
    RecordError::Task(Failure::new(ErrorCode::OcrFailure, why.to_string()))
}

/// The SQS handler: every record on its own, failures reported per record.
pub async fn handle<E: Env>(app: &OcrFunction<E>, event: SqsEvent) -> SqsBatchResponse {
    docusnap_core::sqs_event::each_record(event, |record| async move { app.handle_message(&record).await }).await
}

impl<E: Env> OcrFunction<E> {
    async fn handle_message(&self, record: &Record) -> Result<(), RecordError> {
        let dead_letter = record.is_dead_letter(self.dead_letter_arn.as_deref());
        if dead_letter {
            metrics::dead_letter();
        }
        // A message that dead-letters, or is on its last receive, ends its task with
        // OCR_FAILURE rather than being read once more.
        let last_receive = dead_letter || record.receive_count >= self.max_receives;
        let message = match OcrQueueMessage::parse(&record.body) {
            Ok(message) => message,
            // A dead letter that names no task cannot be helped by coming back: it is
            // logged and counted (the dead-letter alarm watches the count), then dropped.
            Err(e) if dead_letter => {
                error!(error = %e, "a dead letter that is none of the queue's messages; dropped");
                return Ok(());
            }
            Err(e) => return Err(RecordError::NotAMessage(e)),
        };
        match message {
            OcrQueueMessage::V2(message) => self.v2_event(message, last_receive).await,
            OcrQueueMessage::Group(message) => {
                let id = TaskId::from(message.task.clone());
                let span = tracing::info_span!("ocr", task = %id, group = message.group, groups = message.groups);
                self.read_group(id, message, last_receive).instrument(span).await
            }
            OcrQueueMessage::Notification(notification) => {
                match self.handle_notification(notification, last_receive).await {
                    Err(e @ (RecordError::NoRecords | RecordError::NotAnEnvelope(_))) if dead_letter => {
                        error!(error = %e, "a dead letter that names no task; dropped");
                        Ok(())
                    }
                    other => other,
                }
            }
        }
    }

    /// `last_receive`: earlier runs of this message did not finish (a page that runs the
    /// function out of memory or time, say). Running it once more would only cost as much
    /// again before the message goes to the dead-letter queue, so its task ends instead.
    async fn handle_notification(&self, notification: Notification, last_receive: bool) -> Result<(), RecordError> {
        if notification.event.as_deref() == Some("s3:TestEvent") {
            info!("S3 test event ignored");
            return Ok(());
        }
        if notification.records.is_empty() {
            return Err(RecordError::NoRecords);
        }
        for record in notification.records {
            let key = decode_key(&record.s3.object.key);
            if key.starts_with(batch::BATCH_PREFIX) {
                match BatchDocument::of_object(&key) {
                    Some(document) => {
                        let span = tracing::info_span!("batch", document = %document.client_id());
                        let arrival = (self.clock.now(), last_receive);
                        intake::ingest(&self.tasks, &self.blobs, &self.key, &self.limits, document, &key, arrival)
                            .instrument(span)
                            .await?;
                    }
                    // Results and other files written next to the images start nothing.
                    None => info!(key, "not a page image of the batch area; ignored"),
                }
                continue;
            }
            if let Some((task, page)) = docusnap_core::v2::V2TaskId::of_page_key(&key) {
                let written = record.event_time.as_deref().and_then(docusnap_core::s3_event::parse_event_time);
                let span = tracing::info_span!("v2 page", task = %task, page);
                self.page_landed(task, (page, record.s3.object.size, written), last_receive).instrument(span).await?;
                continue;
            }
            // The key names the client by digest only; the envelope names the task, and must
            // be this key's own.
            if !TaskId::is_envelope_key(&key) {
                return Err(RecordError::NotAnEnvelope(key));
            }
            let Some(envelope) = self.blobs.get(&key).await? else {
                info!(key, "the envelope is gone (the task was cleared or has ended); nothing to do");
                continue;
            };
            let envelope = match serde_json::from_slice::<Envelope>(&envelope) {
                Ok(parsed) if parsed.task_id().envelope_key() == key => parsed,
                _ => return Err(RecordError::NotAnEnvelope(key)),
            };
            let id = envelope.task_id();
            let span = tracing::info_span!("ocr", task = %id);
            async {
                let read = self.read_task(&id, &envelope, last_receive).await;
                self.settle(&id, read).await
            }
            .instrument(span)
            .await?;
        }
        Ok(())
    }

    /// The task, when it is still waiting for its pages to be read; a task that is gone,
    /// past OCR or ended (a redelivery) is `None`, and an ended one is settled.
    async fn awaiting_ocr(&self, id: &TaskId) -> Result<Option<Task>, RecordError> {
        let Some(task) = self.tasks.get(id, self.clock.now()).await? else {
            info!("the task is gone (cleared or expired); nothing to do");
            return Ok(None);
        };
        match task.state.stage() {
            Some(Stage::Uploaded) => Ok(Some(task)),
            Some(_) => {
                info!("already past OCR; skipped");
                Ok(None)
            }
            None => {
                info!(status = task.status().as_str(), "already ended; skipped");
                pipeline::settle_ended(&self.tasks, &self.blobs, id, self.clock.now()).await?;
                Ok(None)
            }
        }
    }

    /// Reads one task's pages. A task that cannot be read fails with its code (see
    /// [`Self::settle`]); any other error is a failure worth retrying.
    async fn read_task(&self, id: &TaskId, envelope: &Envelope, last_receive: bool) -> Result<(), RecordError> {
        let Some(task) = self.awaiting_ocr(id).await? else {
            return Ok(());
        };
        if last_receive {
            return Err(unreadable("the last receive of a message whose earlier runs did not finish"));
        }
        let opened = pipeline::open_envelope(&self.key, envelope, &self.limits)
            .map_err(|e| Failure::new(e.stored_code(), e.to_string()))?;
        let output = match &opened.content {
            TaskContent::Pages { pages, library } => {
                let inputs = input_pages(pages).await?;
                if let Some(fan_out) = self.fan_out.as_ref().filter(|f| inputs.len() > f.group_pages.max(1)) {
                    return Ok(
                        intake::fan_out(&fan_out.ocr_queue, id, inputs.len(), fan_out.group_pages, Vec::new()).await?
                    );
                }
                let pages = self.read_inputs(inputs, self.mode(id)).await?;
                OcrOutput { pages, library: library.clone(), form: None }
            }
            // A fill task has no pages: it is handed on with its form and library.
            TaskContent::Fill { form, library } => {
                OcrOutput { pages: Vec::new(), library: library.clone(), form: Some(form.clone()) }
            }
        };
        self.hand_on(id, &opened.wrapped_key, &opened.key, &output, task.created_at).await
    }

    /// Stores a task's OCR output sealed and tells the extract queue.
    async fn hand_on(
        &self, id: &TaskId, wrapped_key: &str, key: &AesKey, output: &OcrOutput, created_at: Timestamp,
    ) -> Result<(), RecordError> {
        let sealed = pipeline::seal_output(id, wrapped_key, key, output).map_err(RecordError::Seal)?;
        self.blobs.put(&id.ocr_key(), sealed, "application/json").await?;
        // Told before the stage moves: a failure in between means one more extract
        // message, which extraction's own claim makes harmless, never a lost task.
        let message = serde_json::to_string(&TaskMessage::from(id)).map_err(RecordError::Encode)?;
        self.extract_queue.send(&message).await?;
        if !self.tasks.advance(id, Stage::Uploaded, Stage::Read).await? {
            warn!("the task moved on while it was read");
        }
        metrics::stage_seconds(PipelineStage::Ocr, self.clock.now() - created_at);
        Ok(())
    }

    /// How a task's pages are read, for every kind of task and page group: fast for a
    /// batch document under one of the fast prefixes, else in the engine's own mode.
    fn mode(&self, id: &TaskId) -> Mode {
        if self.fast_prefixes.covers(id) {
            Mode::Fast
        } else {
            self.engine.config().mode
        }
    }

    /// Reads pages in `mode` and turns them into the OCR output's pages.
    async fn read_inputs(&self, inputs: Vec<PageInput>, mode: Mode) -> Result<Vec<PageText>, RecordError> {
        let read_as = match mode {
            Mode::Accurate => TextOrigin::Ocr,
            Mode::Fast => TextOrigin::OcrFast,
        };
        let origins: Vec<TextOrigin> =
            inputs.iter().map(|p| if p.from_text_layer() { TextOrigin::TextLayer } else { read_as }).collect();
        let started = std::time::Instant::now();
        let pages = self.read_pages(inputs, mode).await?;
        let pages: Vec<PageText> =
            pages.into_iter().zip(origins).map(|(page, origin)| page_text(page, origin)).collect();
        let lines: usize = pages.iter().map(|p| p.lines.len()).sum();
        info!(pages = pages.len(), lines, %mode, ms = started.elapsed().as_millis() as u64, "pages read");
        Ok(pages)
    }

    /// Reads one page group of a fanned-out task and stores its output; the group that
    /// completes the set joins every group's pages, in order, and hands the task on.
    async fn read_group(&self, id: TaskId, message: GroupMessage, last_receive: bool) -> Result<(), RecordError> {
        let read = self.read_group_pages(&id, &message, last_receive).await;
        if matches!(read, Err(RecordError::Task(_))) {
            intake::forget_groups(&self.blobs, &id, message.groups).await;
        }
        self.settle(&id, read).await
    }

    async fn read_group_pages(
        &self, id: &TaskId, message: &GroupMessage, last_receive: bool,
    ) -> Result<(), RecordError> {
        let Some(task) = self.awaiting_ocr(id).await? else {
            return Ok(());
        };
        if last_receive {
            return Err(unreadable("a page group whose earlier runs did not finish"));
        }
        let Some(GroupSource { wrapped_key, key, library, inputs }) = self.group_source(id, message).await? else {
            return Ok(());
        };
        let group_pages = self.read_inputs(inputs, self.mode(id)).await?;
        if docusnap_core::v2::V2TaskId::of(id).is_some() {
            // What the client's GET shows as read so far.
            self.tasks.pages_read(id, message.group, group_pages.len()).await?;
        }
        let output = OcrOutput { pages: group_pages, ..OcrOutput::default() };
        let sealed = pipeline::seal_output(id, &wrapped_key, &key, &output).map_err(RecordError::Seal)?;
        self.blobs.put(&id.group_key(message.group), sealed, "application/json").await?;
        let Some(pages) =
            intake::join_groups(&self.tasks, &self.blobs, &self.key, id, message, self.clock.now()).await?
        else {
            return Ok(());
        };
        let output = OcrOutput { pages, library, form: None };
        self.hand_on(id, &wrapped_key, &key, &output, task.created_at).await?;
        intake::forget_groups(&self.blobs, id, message.groups).await;
        Ok(())
    }

    /// What a page group reads: the task's key (as stored and unwrapped), its library, and
    /// the group's pages, from the envelope (v1, batch) or the group's uploads (v2). `None`
    /// when the task's objects are gone.
    async fn group_source(&self, id: &TaskId, message: &GroupMessage) -> Result<Option<GroupSource>, RecordError> {
        if let Some(task) = docusnap_core::v2::V2TaskId::of(id) {
            return self.v2_group_source(&task, message).await;
        }
        let Some(envelope) = self.blobs.get(&id.envelope_key()).await? else {
            info!("the envelope is gone (the task was cleared or has ended); nothing to do");
            return Ok(None);
        };
        let envelope = match serde_json::from_slice::<Envelope>(&envelope) {
            Ok(parsed) if parsed.task_id() == *id => parsed,
            _ => return Err(RecordError::NotAnEnvelope(id.envelope_key())),
        };
        let opened = pipeline::open_envelope(&self.key, &envelope, &self.limits)
            .map_err(|e| Failure::new(e.stored_code(), e.to_string()))?;
        let TaskContent::Pages { pages, library } = opened.content else {
            return Err(unreadable("a page group of a task without pages"));
        };
        let inputs = input_pages(&pages).await?;
        let range = group_range(inputs.len(), message.groups, message.group);
        let inputs = inputs.into_iter().skip(range.start).take(range.len()).collect();
        Ok(Some(GroupSource { wrapped_key: opened.wrapped_key, key: opened.key, library, inputs }))
    }

    /// Reads pages on blocking threads, up to `parallel_pages` at once. A page that cannot
    /// be read fails the task; PDFium that cannot load is the machine's fault, so the
    /// message comes back (and on its last receive, the task ends).
    async fn read_pages(&self, pages: Vec<PageInput>, mode: Mode) -> Result<Vec<Page>, RecordError> {
        let engine = self.engine.clone();
        let parallel = self.parallel_pages.max(1);
        let read = tokio::task::spawn_blocking(move || {
            let mut read_pages = Vec::with_capacity(pages.len());
            for chunk in pages.chunks(parallel) {
                let read: Vec<Result<Page, OcrError>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|page| {
                            scope.spawn(|| {
                                let started = std::time::Instant::now();
                                let read = engine.read_input_as(page, mode);
                                metrics::ocr_page(started.elapsed());
                                read
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(OcrError::Panicked))).collect()
                });
                for page in read {
                    read_pages.push(page?);
                }
            }
            Ok(read_pages)
        })
        .await
        .map_err(RecordError::Reader)?;
        read.map_err(|e| match e {
            OcrError::Input(e) if !e.is_item_fault() => RecordError::Engine(OcrError::Input(e)),
            e => unreadable(e),
        })
    }

    /// Ends the task of a step that failed with the task's own fault; the machine's
    /// failures go back to SQS.
    async fn settle(&self, id: &TaskId, step: Result<(), RecordError>) -> Result<(), RecordError> {
        match step {
            Err(RecordError::Task(failure)) => self.fail(id, failure).await,
            other => other,
        }
    }

    async fn fail(&self, id: &TaskId, failure: Failure) -> Result<(), RecordError> {
        warn!(code = %failure.code, why = failure.reason, "task failed");
        pipeline::end_task(&self.tasks, &self.blobs, id, Outcome::Failed(failure.code), self.clock.now()).await?;
        Ok(())
    }
}

/// What one page group reads (see `OcrFunction::group_source`).
struct GroupSource {
    wrapped_key: String,
    key: AesKey,
    library: docusnap_core::protocol::Library,
    inputs: Vec<PageInput>,
}

/// The input stage: each item (base64, possibly a data URL) decoded here, then split into
/// its pages (a PDF or a multi-page TIFF is several).
async fn input_pages(items: &[String]) -> Result<Vec<PageInput>, RecordError> {
    let mut bytes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        bytes.push(decode_page(item).map_err(|_| unreadable(format!("item {} is not base64", i + 1)))?);
    }
    split_items(bytes).await
}

/// The input stage's split of items already in bytes, on a blocking thread, since a PDF's
/// text layer is read there. An item that cannot be split fails the task; PDFium missing
/// is the machine's fault, which a retry may mend.
async fn split_items(bytes: Vec<Vec<u8>>) -> Result<Vec<PageInput>, RecordError> {
    let split = tokio::task::spawn_blocking(move || input::split_all(bytes)).await.map_err(RecordError::Reader)?;
    split.map_err(|(i, e)| {
        if e.is_item_fault() {
            unreadable(format!("item {}: {e}", i + 1))
        } else {
            RecordError::Engine(OcrError::Input(e))
        }
    })
}

/// A page as the engine (or the file's text layer) gave it, as the extract function will
/// read it.
pub fn page_text(page: Page, origin: TextOrigin) -> PageText {
    PageText {
        width: page.width,
        height: page.height,
        origin,
        orientation: orientation(page.orientation),
        lines: page
            .lines
            .into_iter()
            .map(|line| TextLine { text: line.text, score: line.score, quad: line.quad.map(|p| [p.x, p.y]) })
            .collect(),
    }
}

/// The engine's record of how it turned a page, as the extract function reads it.
fn orientation(orientation: docusnap_ocr::Orientation) -> Orientation {
    let rotation = match orientation.rotation {
        docusnap_ocr::Rotation::None => Rotation::None,
        docusnap_ocr::Rotation::Quarter => Rotation::Quarter,
        docusnap_ocr::Rotation::Half => Rotation::Half,
        docusnap_ocr::Rotation::ThreeQuarters => Rotation::ThreeQuarters,
    };
    Orientation { rotation, skew: orientation.skew }
}
