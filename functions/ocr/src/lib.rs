//! The OCR function: fed by the queue of the uploads bucket's `ObjectCreated`
//! notifications. For each new envelope it turns the task's items into pages (the input
//! stage, `docusnap_ocr::input`), reads every page, stores the OCR output
//! (`docusnap_core::ocr_output`) sealed under the client's key, and tells the extract
//! queue which task is ready (never what it says). Images dropped under `batch/` become
//! tasks of their own first (`docusnap_core::batch`). [`handle`] is the whole Lambda
//! handler, callable from tests.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use docusnap_core::batch::{self, BatchDocument};
use docusnap_core::clock::Clock;
use docusnap_core::config::Limits;
use docusnap_core::crypto::{sha256_hex, AesKey, ClientWrap, CryptoError, KeyError, ServerKey};
use docusnap_core::metrics::{self, PipelineStage};
use docusnap_core::ocr_output::{OcrOutput, PageText, TextLine, TextOrigin};
use docusnap_core::pipeline;
use docusnap_core::protocol::{decode_page, Envelope, TaskContent};
use docusnap_core::sqs_event::Record;
use docusnap_core::store::{BlobStore, Created, Outcome, Queue, StoreError, StoredObject, TaskStore};
use docusnap_core::task::{GroupMessage, Stage, TaskId, TaskMessage};
use docusnap_core::{ErrorCode, TaskType};
use docusnap_ocr::{input, OcrEngine, OcrError, Page, PageInput};
use tracing::{error, info, warn, Instrument};

mod startup;
mod v2;

/// S3's `eventTime` as Unix seconds (for v2 arrivals; public for the fuzz tests).
pub use v2::parse_event_time as v2_event_time;

pub use startup::{from_env, AwsOcr, StartupError};

/// Reads one page. The engine in production; tests of the flow may fake it.
pub trait PageReader: Send + Sync + 'static {
    fn read_page(&self, page: &PageInput) -> Result<Page, OcrError>;
}

impl PageReader for OcrEngine {
    fn read_page(&self, page: &PageInput) -> Result<Page, OcrError> {
        self.read_input(page)
    }
}

/// The OCR function's state, built once per process.
pub struct OcrFunction<T, B, Q, C, R> {
    pub tasks: T,
    pub blobs: B,
    pub extract_queue: Q,
    pub clock: C,
    pub key: ServerKey,
    pub reader: Arc<R>,
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
    pub fan_out: Option<FanOut<Q>>,
}

/// How a task with many pages is spread over invocations: one [`GroupMessage`] per group
/// of `group_pages` pages, sent to the function's own queue, so that the queue's
/// concurrency reads the groups side by side.
pub struct FanOut<Q> {
    pub ocr_queue: Q,
    pub group_pages: usize,
}

/// The OCR queue's URL (for fan-out messages), which template.yaml passes to the function.
pub const OCR_QUEUE_VAR: &str = docusnap_core::config::var::OCR_QUEUE_URL;
/// Pages one invocation reads before a task is fanned out.
pub const GROUP_PAGES_VAR: &str = "DOCUSNAP_OCR_GROUP_PAGES";
/// ...and its default: four receipts take about 4 s, four dense statement pages about 10 s,
/// on the template's 1.7 vCPUs (README), so a long document spreads wide while a photo or
/// two never pays for a second invocation and the join's extra reads and writes.
pub const DEFAULT_GROUP_PAGES: usize = 4;

/// The pages of group `group` of `groups` over `total` pages: consecutive, as even as can
/// be, the same in every invocation (it depends on the message alone).
pub fn group_range(total: usize, groups: u32, group: u32) -> std::ops::Range<usize> {
    let per = total.div_ceil(groups.max(1) as usize).max(1);
    let start = (group as usize * per).min(total);
    start..(start + per).min(total)
}

/// The OCR dead-letter queue's ARN, which template.yaml passes to the function.
pub const DEAD_LETTER_ARN_VAR: &str = "DOCUSNAP_OCR_DEAD_LETTER_QUEUE_ARN";

/// The OCR queue's `maxReceiveCount`, which template.yaml passes to the function.
pub const MAX_RECEIVES_VAR: &str = "DOCUSNAP_OCR_MAX_RECEIVES";
/// ... and its value when the environment does not say (template.yaml's).
pub const DEFAULT_MAX_RECEIVES: u32 = 3;

/// Why a message could not be handled now. Each fails only its own record, which SQS
/// delivers again (and after the queue's receive limit, moves to its dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the message is not an S3 notification: {0}")]
    NotANotification(#[source] serde_json::Error),
    #[error("the notification has no records")]
    NoRecords,
    /// Not where an envelope goes, or not an envelope of the task whose key it has. The
    /// task cannot be told from the key alone (it names the client by digest), so the
    /// message goes to the dead-letter queue and its task, if any, times out.
    #[error("object {0:?} is not a task envelope")]
    NotAnEnvelope(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the page reader stopped: {0}")]
    Reader(#[source] tokio::task::JoinError),
    #[error("the engine cannot read pages: {0}")]
    Engine(#[source] OcrError),
    #[error("the OCR output could not be sealed: {0}")]
    Seal(#[source] CryptoError),
    #[error("the server's public key is unusable: {0}")]
    ServerKey(#[source] KeyError),
    #[error("the extract message could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),
    /// Every group counted itself read, but one's output is not (yet) readable: S3 is
    /// strongly consistent, so only a store fault gets here; the message comes back.
    #[error("page group {0} of the task has no output")]
    MissingGroup(u32),
    /// A v2 page counted as arrived is not (yet) readable: a store fault; it comes back.
    #[error("page {0} of the task is missing")]
    MissingPage(usize),
    #[error("page group {0}'s output cannot be opened: {1}")]
    GroupOutput(u32, String),
}

/// The SQS handler: every record on its own, failures reported per record.
pub async fn handle<T, B, Q, C, R>(app: &OcrFunction<T, B, Q, C, R>, event: SqsEvent) -> SqsBatchResponse
where
    T: TaskStore,
    B: BlobStore,
    Q: Queue,
    C: Clock,
    R: PageReader,
{
    docusnap_core::sqs_event::each_record(event, |record| async move { app.handle_message(&record).await }).await
}

use docusnap_core::s3_event::{decode_key, Notification};

impl<T, B, Q, C, R> OcrFunction<T, B, Q, C, R>
where
    T: TaskStore,
    B: BlobStore,
    Q: Queue,
    C: Clock,
    R: PageReader,
{
    async fn handle_message(&self, record: &Record) -> Result<(), RecordError> {
        let dead_letter = record.is_dead_letter(self.dead_letter_arn.as_deref());
        // A page group of a fanned-out task (the function's own message), else an S3
        // notification. A group that dead-letters, or is on its last receive, ends its
        // task with OCR_FAILURE, as a whole task's message would.
        if let Ok(message) = serde_json::from_str::<docusnap_core::v2::V2Message>(&record.body) {
            if dead_letter {
                metrics::dead_letter();
            }
            return self.v2_event(message, dead_letter || record.receive_count >= self.max_receives).await;
        }
        if let Ok(message) = serde_json::from_str::<GroupMessage>(&record.body) {
            if dead_letter {
                metrics::dead_letter();
            }
            let last_receive = dead_letter || record.receive_count >= self.max_receives;
            let id = TaskId::from(message.task.clone());
            let span = tracing::info_span!("ocr", task = %id, group = message.group, groups = message.groups);
            return self.read_group(id, message, last_receive).instrument(span).await;
        }
        if !dead_letter {
            return self.handle_notification(record, record.receive_count >= self.max_receives).await;
        }
        // Every run of this message failed, the last receive's included (a process killed
        // before it could end the task): its task ends with OCR_FAILURE now. A message that
        // names no task cannot be helped by coming back: it is logged and counted (the
        // dead-letter alarm watches the count), then dropped.
        metrics::dead_letter();
        match self.handle_notification(record, true).await {
            Err(e @ (RecordError::NotANotification(_) | RecordError::NoRecords | RecordError::NotAnEnvelope(_))) => {
                error!(error = %e, "a dead letter that names no task; dropped");
                Ok(())
            }
            other => other,
        }
    }

    /// `last_receive`: earlier runs of this message did not finish (a page that runs the
    /// function out of memory or time, say). Running it once more would only cost as much
    /// again before the message goes to the dead-letter queue, so its task ends instead.
    async fn handle_notification(&self, record: &Record, last_receive: bool) -> Result<(), RecordError> {
        let notification: Notification = serde_json::from_str(&record.body).map_err(RecordError::NotANotification)?;
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
                        self.ingest(document, &key, last_receive).instrument(span).await?;
                    }
                    // Results and other files written next to the images start nothing.
                    None => info!(key, "not a page image of the batch area; ignored"),
                }
                continue;
            }
            if let Some((task, page)) = docusnap_core::v2::V2TaskId::of_page_key(&key) {
                let written = record.event_time.as_deref().and_then(v2::parse_event_time);
                let span = tracing::info_span!("v2 page", task = %task, page);
                self.page_landed(task, page, record.s3.object.size, written, last_receive).instrument(span).await?;
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
            self.read_task(&id, &envelope, last_receive).instrument(span).await?;
        }
        Ok(())
    }

    /// The task, when it is still waiting for its pages to be read; a task that is gone,
    /// past OCR or ended (a redelivery) is `None`, and an ended one is settled.
    async fn awaiting_ocr(&self, id: &TaskId) -> Result<Option<docusnap_core::task::Task>, RecordError> {
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

    /// Reads one task's pages; a task that cannot be read ends with its code, and only a
    /// failure worth retrying is an error.
    async fn read_task(&self, id: &TaskId, envelope: &Envelope, last_receive: bool) -> Result<(), RecordError> {
        let Some(task) = self.awaiting_ocr(id).await? else { return Ok(()) };
        if last_receive {
            return self.fail(id, ErrorCode::OcrFailure, "the last receive of a message whose earlier runs did not finish").await;
        }
        let opened = match pipeline::open_envelope(&self.key, envelope, &self.limits) {
            Ok(opened) => opened,
            Err(e) => return self.fail(id, e.stored_code(), &e.to_string()).await,
        };
        let output = match &opened.content {
            TaskContent::Pages { pages, library } => {
                let inputs = match input_pages(pages).await? {
                    Ok(inputs) => inputs,
                    Err(why) => return self.fail(id, ErrorCode::OcrFailure, &why).await,
                };
                if let Some(fan_out) = self.fan_out.as_ref().filter(|f| inputs.len() > f.group_pages.max(1)) {
                    return self.fan_out(id, inputs.len(), Vec::new(), fan_out).await;
                }
                let pages = match self.read_inputs(inputs).await? {
                    Ok(pages) => pages,
                    Err(why) => return self.fail(id, ErrorCode::OcrFailure, &why).await,
                };
                OcrOutput { pages, library: library.clone(), form: None }
            }
            // A fill task has no pages: it is handed on with its form and library.
            TaskContent::Fill { form, library } => OcrOutput { pages: Vec::new(), library: library.clone(), form: Some(form.clone()) },
        };
        self.hand_on(id, &opened.wrapped_key, &opened.key, &output, task.created_at).await
    }

    /// Stores a task's OCR output sealed and tells the extract queue.
    async fn hand_on(&self, id: &TaskId, wrapped_key: &str, key: &AesKey, output: &OcrOutput, created_at: docusnap_core::clock::Timestamp) -> Result<(), RecordError> {
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

    /// Reads pages and turns them into the OCR output's pages; the error is the task's
    /// (a page that cannot be read), the outer one the machine's.
    async fn read_inputs(&self, inputs: Vec<PageInput>) -> Result<Result<Vec<PageText>, String>, RecordError> {
        let origins: Vec<TextOrigin> =
            inputs.iter().map(|p| if p.from_text_layer() { TextOrigin::TextLayer } else { TextOrigin::Ocr }).collect();
        let started = std::time::Instant::now();
        let pages = match self.read_pages(inputs).await? {
            Ok(pages) => pages,
            // PDFium could not load: not the task's fault, so the message comes back (and
            // on its last receive, the task ends).
            Err(OcrError::Input(e)) if !e.is_item_fault() => return Err(RecordError::Engine(OcrError::Input(e))),
            Err(e) => return Ok(Err(e.to_string())),
        };
        let pages: Vec<PageText> = pages.into_iter().zip(origins).map(|(page, origin)| page_text(page, origin)).collect();
        let lines: usize = pages.iter().map(|p| p.lines.len()).sum();
        info!(pages = pages.len(), lines, ms = started.elapsed().as_millis() as u64, "pages read");
        Ok(Ok(pages))
    }

    /// Sends one message per page group to the function's own queue. A retry sends them
    /// again: each group's output is the same object and its count a set, so a duplicate
    /// costs a reading, never a second extraction.
    async fn fan_out(&self, id: &TaskId, pages: usize, layout: Vec<u32>, fan_out: &FanOut<Q>) -> Result<(), RecordError> {
        let groups = pages.div_ceil(fan_out.group_pages.max(1)) as u32;
        for group in 0..groups {
            let message = GroupMessage { task: TaskMessage::from(id), group, groups, layout: layout.clone() };
            fan_out.ocr_queue.send(&serde_json::to_string(&message).map_err(RecordError::Encode)?).await?;
        }
        info!(pages, groups, "fanned out");
        Ok(())
    }

    /// Reads one page group of a fanned-out task and stores its output; the group that
    /// completes the set joins every group's pages, in order, and hands the task on.
    async fn read_group(&self, id: TaskId, message: GroupMessage, last_receive: bool) -> Result<(), RecordError> {
        let Some(task) = self.awaiting_ocr(&id).await? else { return Ok(()) };
        if last_receive {
            self.forget_groups(&id, message.groups).await;
            return self.fail(&id, ErrorCode::OcrFailure, "a page group whose earlier runs did not finish").await;
        }
        let Some(GroupSource { wrapped_key, key, library, inputs: group_inputs }) = (match self.group_source(&id, &message).await? {
            Ok(source) => source,
            Err((code, why)) => {
                self.forget_groups(&id, message.groups).await;
                return self.fail(&id, code, &why).await;
            }
        }) else {
            return Ok(());
        };
        let group_pages = match self.read_inputs(group_inputs).await? {
            Ok(pages) => pages,
            Err(why) => {
                self.forget_groups(&id, message.groups).await;
                return self.fail(&id, ErrorCode::OcrFailure, &why).await;
            }
        };
        if docusnap_core::v2::V2TaskId::of(&id).is_some() {
            // What the client's GET shows as read so far.
            self.tasks.pages_read(&id, message.group, group_pages.len()).await?;
        }
        let output = OcrOutput { pages: group_pages, ..OcrOutput::default() };
        let sealed = pipeline::seal_output(&id, &wrapped_key, &key, &output).map_err(RecordError::Seal)?;
        self.blobs.put(&id.group_key(message.group), sealed, "application/json").await?;
        let Some(read) = self.tasks.group_read(&id, message.group).await? else {
            info!("the task moved on while its group was read");
            return Ok(());
        };
        info!(read, groups = message.groups, "page group read");
        if read < message.groups as usize {
            return Ok(());
        }
        // Every group is read. A duplicate of the last group may get here too: both join
        // the same objects, and extraction's claim runs one extraction.
        let mut joined = Vec::new();
        for group in 0..message.groups {
            let Some(sealed) = self.blobs.get(&id.group_key(group)).await? else {
                // A concurrent join finished first and removed the groups.
                if self.tasks.get(&id, self.clock.now()).await?.and_then(|t| t.state.stage()) != Some(Stage::Uploaded) {
                    info!("another delivery joined the groups first");
                    return Ok(());
                }
                return Err(RecordError::MissingGroup(group));
            };
            let (_, output) = pipeline::open_output(&self.key, &id, &sealed).map_err(|e| RecordError::GroupOutput(group, e.to_string()))?;
            joined.extend(output.pages);
        }
        let output = OcrOutput { pages: joined, library, form: None };
        self.hand_on(&id, &wrapped_key, &key, &output, task.created_at).await?;
        self.forget_groups(&id, message.groups).await;
        Ok(())
    }

    /// What a page group reads: the task's key (as stored and unwrapped), its library, and
    /// the group's pages, from the envelope (v1, batch) or the group's uploads (v2). `None`
    /// when the task's objects are gone; the inner error ends the task with its code.
    async fn group_source(&self, id: &TaskId, message: &GroupMessage) -> Result<Result<Option<GroupSource>, (ErrorCode, String)>, RecordError> {
        if let Some(task) = docusnap_core::v2::V2TaskId::of(id) {
            return self.v2_group_source(&task, message).await;
        }
        let Some(envelope) = self.blobs.get(&id.envelope_key()).await? else {
            info!("the envelope is gone (the task was cleared or has ended); nothing to do");
            return Ok(Ok(None));
        };
        let envelope = match serde_json::from_slice::<Envelope>(&envelope) {
            Ok(parsed) if parsed.task_id() == *id => parsed,
            _ => return Err(RecordError::NotAnEnvelope(id.envelope_key())),
        };
        let opened = match pipeline::open_envelope(&self.key, &envelope, &self.limits) {
            Ok(opened) => opened,
            Err(e) => return Ok(Err((e.stored_code(), e.to_string()))),
        };
        let TaskContent::Pages { pages, library } = opened.content else {
            return Ok(Err((ErrorCode::OcrFailure, "a page group of a task without pages".into())));
        };
        let inputs = match input_pages(&pages).await? {
            Ok(inputs) => inputs,
            Err(why) => return Ok(Err((ErrorCode::OcrFailure, why))),
        };
        let range = group_range(inputs.len(), message.groups, message.group);
        let inputs = inputs.into_iter().skip(range.start).take(range.len()).collect();
        Ok(Ok(Some(GroupSource { wrapped_key: opened.wrapped_key, key: opened.key, library, inputs })))
    }

    /// The groups' outputs once joined, or once their task has failed. The bucket's
    /// lifecycle rule removes what a failed delete leaves.
    async fn forget_groups(&self, id: &TaskId, groups: u32) {
        let keys: Vec<String> = (0..groups).map(|g| id.group_key(g)).collect();
        if let Err(e) = self.blobs.delete(&keys).await {
            warn!(error = %e, "deleting the page groups' outputs failed; the lifecycle rule removes them");
        }
    }

    /// Reads pages on blocking threads, up to `parallel_pages` at once.
    async fn read_pages(&self, pages: Vec<PageInput>) -> Result<Result<Vec<Page>, OcrError>, RecordError> {
        let reader = self.reader.clone();
        let parallel = self.parallel_pages.max(1);
        tokio::task::spawn_blocking(move || {
            let mut read_pages = Vec::with_capacity(pages.len());
            for chunk in pages.chunks(parallel) {
                let read: Vec<Result<Page, OcrError>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|page| {
                            scope.spawn(|| {
                                let started = std::time::Instant::now();
                                let read = reader.read_page(page);
                                metrics::ocr_page(started.elapsed());
                                read
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(OcrError::Panicked))).collect()
                });
                for page in read {
                    match page {
                        Ok(page) => read_pages.push(page),
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(read_pages)
        })
        .await
        .map_err(RecordError::Reader)
    }

    async fn fail(&self, id: &TaskId, code: ErrorCode, why: &str) -> Result<(), RecordError> {
        warn!(code = %code, why, "task failed");
        pipeline::end_task(&self.tasks, &self.blobs, id, Outcome::Failed(code), self.clock.now()).await?;
        Ok(())
    }

    /// Turns a batch document into a task, as a client's upload would: its pages sealed
    /// under a fresh key wrapped for the server, an envelope whose creation starts OCR.
    async fn ingest(&self, document: BatchDocument, key: &str, last_receive: bool) -> Result<(), RecordError> {
        let pages: Vec<StoredObject> =
            self.blobs.list(document.list_prefix()).await?.into_iter().filter(|o| document.has_page(&o.key)).collect();
        // Pages of a folder arrive one by one; the newest page's notification starts the
        // document, so a folder copied in at once is read once, not once per page.
        let Some(newest) = pages.iter().max_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key))) else {
            info!("the page is gone; nothing to do");
            return Ok(());
        };
        if newest.key != key {
            info!(newest = %newest.key, "a newer page's notification starts the document");
            return Ok(());
        }
        let listing: String = pages.iter().map(|o| format!("{} {}\n", o.key, o.etag)).collect();
        let id = TaskId::new(document.client_id(), TaskType::Doc, sha256_hex(listing.as_bytes()));
        // The limits are checked from the listing, before a page is loaded: a document over
        // one gets its error result file and never becomes a task.
        // On the last receive (earlier runs died loading the pages, say) the document ends
        // with OCR_FAILURE, unless an earlier run did make it a task.
        let over = if last_receive && self.tasks.get(&id, self.clock.now()).await?.is_none() {
            Some(ErrorCode::OcrFailure)
        } else if pages.len() > self.limits.max_pages {
            Some(ErrorCode::TooManyPages)
        } else if pages.iter().any(|p| p.size > self.limits.max_image_bytes as u64) {
            Some(ErrorCode::ImageTooLarge)
        } else {
            None
        };
        if let (Some(code), Some(result_key)) = (over, batch::result_key(&id)) {
            warn!(code = %code, pages = pages.len(), "the batch document cannot be read");
            metrics::task_failed(code);
            self.blobs.put(&result_key, batch::result_file(&Outcome::Failed(code)), "application/json").await?;
            return Ok(());
        }
        let mut images = Vec::with_capacity(pages.len());
        for page in &pages {
            match self.blobs.get(&page.key).await? {
                Some(bytes) => images.push(BASE64.encode(bytes)),
                None => {
                    info!(page = %page.key, "a page was removed meanwhile; its removal's listing decides");
                    return Ok(());
                }
            }
        }
        let aes = AesKey::generate().map_err(RecordError::Seal)?;
        let content = serde_json::json!({"to_process": images, "file_lib": {}}).to_string();
        let content = aes.seal_base64(content.as_bytes()).map_err(RecordError::Seal)?;
        let wrap = ClientWrap::from_public_pem(self.key.public_key_pem()).map_err(RecordError::ServerKey)?;
        let wrapped = wrap.wrap(aes.as_bytes()).map_err(RecordError::Seal)?;
        let envelope = Envelope::new(&id, wrapped, content);
        if pipeline::create_task(&self.tasks, &self.blobs, &envelope, self.clock.now()).await? == Created::AlreadyExists {
            info!("this version of the document is already a task");
            return Ok(());
        }
        info!(task = %id, pages = pages.len(), "batch document queued");
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
/// its pages (a PDF or a multi-page TIFF is several) on a blocking thread, since a PDF's
/// text layer is read there. The inner error says which item failed and why; the outer
/// one is the machine's (PDFium missing), which a retry may mend.
async fn input_pages(items: &[String]) -> Result<Result<Vec<PageInput>, String>, RecordError> {
    let mut bytes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match decode_page(item) {
            Ok(item) => bytes.push(item),
            Err(_) => return Ok(Err(format!("item {} is not base64", i + 1))),
        }
    }
    split_items(bytes).await
}

/// The input stage's split of items already in bytes.
async fn split_items(bytes: Vec<Vec<u8>>) -> Result<Result<Vec<PageInput>, String>, RecordError> {
    tokio::task::spawn_blocking(move || match input::split_all(bytes) {
        Ok(pages) => Ok(Ok(pages)),
        Err((_, e)) if !e.is_item_fault() => Err(RecordError::Engine(OcrError::Input(e))),
        Err((i, e)) => Ok(Err(format!("item {}: {e}", i + 1))),
    })
    .await
    .map_err(RecordError::Reader)?
}

/// A page as the engine (or the file's text layer) gave it, as the extract function will
/// read it.
fn page_text(page: Page, origin: TextOrigin) -> PageText {
    PageText {
        width: page.width,
        height: page.height,
        origin,
        lines: page
            .lines
            .into_iter()
            .map(|line| TextLine { text: line.text, score: line.score, quad: line.quad.map(|p| [p.x, p.y]) })
            .collect(),
    }
}

