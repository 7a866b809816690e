//! The OCR function: fed by the queue of the uploads bucket's `ObjectCreated`
//! notifications. For each new envelope it reads every page, stores the OCR output sealed
//! under the client's key, and tells the extract queue which task is ready (never what it
//! says). Images dropped under `batch/` become tasks of their own first
//! (`docusnap_core::batch`). [`handle`] is the whole Lambda handler, callable from tests.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use docusnap_core::clock::Clock;
use docusnap_core::config::Limits;
use docusnap_core::batch::{self, BatchDocument};
use docusnap_core::crypto::{sha256_hex, AesKey, ClientWrap, ServerKey};
use docusnap_core::metrics;
use docusnap_core::protocol::{Envelope, ErrorCode, TaskContent, TaskType};
use docusnap_core::store::{BlobStore, Created, Outcome, Queue, StoreError, StoredObject, TaskStore};
use docusnap_core::task::{Stage, Task, TaskId, TaskMessage, TaskStatus};
use docusnap_ocr::{OcrEngine, OcrError, Page};
use serde::Deserialize;
use tracing::{info, warn, Instrument};

mod startup;

pub use startup::{from_env, AwsOcr, StartupError};

/// Reads one page image. The engine in production; tests of the flow may fake it.
pub trait PageReader: Send + Sync + 'static {
    fn read_page(&self, image: &[u8]) -> Result<Page, OcrError>;
}

impl PageReader for OcrEngine {
    fn read_page(&self, image: &[u8]) -> Result<Page, OcrError> {
        self.read_image(image)
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
}

/// Why a message could not be handled now. Each fails only its own record, which SQS
/// delivers again (and after the queue's receive limit, moves to its dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the message is not an S3 notification: {0}")]
    NotANotification(String),
    #[error("object {0:?} is not a task envelope")]
    NotAnEnvelope(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the page reader stopped: {0}")]
    Reader(String),
    #[error("the OCR output or the extract message could not be encoded: {0}")]
    Encode(String),
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
    docusnap_core::sqs_event::each_record(event, |body| async move { app.handle_message(&body).await }).await
}

/// The parts of an S3 event notification this function reads. AWS's own records carry
/// more fields, moto's fewer, so only these are required.
#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<NotificationRecord>,
    /// `s3:TestEvent` when S3 checks that it may write to the queue.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
struct NotificationRecord {
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
}

/// S3 sends object keys URL-encoded, with '+' for spaces.
fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

impl<T, B, Q, C, R> OcrFunction<T, B, Q, C, R>
where
    T: TaskStore,
    B: BlobStore,
    Q: Queue,
    C: Clock,
    R: PageReader,
{
    async fn handle_message(&self, body: &str) -> Result<(), RecordError> {
        let notification: Notification =
            serde_json::from_str(body).map_err(|e| RecordError::NotANotification(e.to_string()))?;
        if notification.event.as_deref() == Some("s3:TestEvent") {
            info!("S3 test event ignored");
            return Ok(());
        }
        if notification.records.is_empty() {
            return Err(RecordError::NotANotification("no records".into()));
        }
        for record in notification.records {
            let key = decode_key(&record.s3.object.key);
            if key.starts_with(batch::BATCH_PREFIX) {
                match BatchDocument::of_object(&key) {
                    Some(document) => {
                        let span = tracing::info_span!("batch", document = %document.client_id());
                        self.ingest(document, &key).instrument(span).await?;
                    }
                    // Results and other files written next to the images start nothing.
                    None => info!(key, "not a page image of the batch area; ignored"),
                }
                continue;
            }
            let id = TaskId::from_envelope_key(&key).ok_or(RecordError::NotAnEnvelope(key))?;
            let span = tracing::info_span!("ocr", task = %id);
            self.read_task(&id).instrument(span).await?;
        }
        Ok(())
    }

    /// Reads one task's pages; a task that cannot be read ends with its code, and only a
    /// failure worth retrying is an error.
    async fn read_task(&self, id: &TaskId) -> Result<(), RecordError> {
        let Some(task) = self.tasks.get(id, self.clock.now()).await? else {
            info!("the task is gone (cleared or expired); nothing to do");
            return Ok(());
        };
        if task.status != TaskStatus::Processing || task.stage != Stage::Uploaded {
            info!(status = task.status.as_str(), stage = task.stage.as_str(), "already past OCR; skipped");
            return Ok(());
        }
        let Some(envelope) = self.blobs.get(&id.envelope_key()).await? else {
            return self.fail(id, ErrorCode::ProcessingError, "the envelope is missing").await;
        };
        let Ok(envelope) = serde_json::from_slice::<Envelope>(&envelope) else {
            return self.fail(id, ErrorCode::ProcessingError, "the envelope is not an envelope").await;
        };
        // The upload function checked all of this; a failure here means the stored
        // envelope is not the one it checked.
        let Ok(key) = self.key.unwrap_aes_key(&envelope.aes_key) else {
            return self.fail(id, ErrorCode::ProcessingError, "the envelope's key does not unwrap").await;
        };
        let Ok(plaintext) = key.open_base64(&envelope.content) else {
            return self.fail(id, ErrorCode::ProcessingError, "the envelope's content does not decrypt").await;
        };
        let content = match TaskContent::parse(id.task_type, &plaintext, &self.limits) {
            Ok(content) => content,
            Err(e) => return self.fail(id, e.into(), "the content is not a valid task").await,
        };
        if let TaskContent::Pages { pages, .. } = content {
            let images: Result<Vec<Vec<u8>>, _> = pages.iter().map(|p| decode_page(p)).collect();
            let Ok(images) = images else {
                return self.fail(id, ErrorCode::OcrFailure, "a page is not base64").await;
            };
            let started = std::time::Instant::now();
            let pages = match self.read_pages(images).await? {
                Ok(pages) => pages,
                Err(e) => return self.fail(id, ErrorCode::OcrFailure, &e.to_string()).await,
            };
            let lines: usize = pages.iter().map(|p| p.lines.len()).sum();
            info!(pages = pages.len(), lines, ms = started.elapsed().as_millis() as u64, "pages read");
            let output = serde_json::json!({"text": docusnap_ocr::document_text(&pages), "pages": pages});
            let sealed = key.seal(output.to_string().as_bytes()).map_err(|e| RecordError::Encode(e.to_string()))?;
            self.blobs.put(&id.ocr_key(), sealed, "application/octet-stream").await?;
        }
        // Told before the stage moves: a failure in between means one more extract
        // message, which extraction's own claim makes harmless, never a lost task.
        let message = serde_json::to_string(&TaskMessage::from(id)).map_err(|e| RecordError::Encode(e.to_string()))?;
        self.extract_queue.send(&message).await?;
        if !self.tasks.advance(id, Stage::Uploaded, Stage::Read).await? {
            warn!("the task moved on while it was read");
        }
        let waited = (self.clock.now() - task.created_at).max(0) as f64;
        metrics::emit(&[("Stage", "ocr")], &[("TaskStageSeconds", waited, metrics::Unit::Seconds)]);
        Ok(())
    }

    /// Reads pages on blocking threads, up to `parallel_pages` at once.
    async fn read_pages(&self, images: Vec<Vec<u8>>) -> Result<Result<Vec<Page>, OcrError>, RecordError> {
        let reader = self.reader.clone();
        let parallel = self.parallel_pages.max(1);
        tokio::task::spawn_blocking(move || {
            let mut pages = Vec::with_capacity(images.len());
            for chunk in images.chunks(parallel) {
                let read: Vec<Result<Page, OcrError>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|image| {
                            scope.spawn(|| {
                                let started = std::time::Instant::now();
                                let page = reader.read_page(image);
                                metrics::millis("OcrPageMs", started.elapsed(), &[]);
                                page
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(OcrError::Panicked))).collect()
                });
                for page in read {
                    match page {
                        Ok(page) => pages.push(page),
                        Err(e) => return Ok(Err(e)),
                    }
                }
            }
            Ok(Ok(pages))
        })
        .await
        .map_err(|e| RecordError::Reader(e.to_string()))?
    }

    async fn fail(&self, id: &TaskId, code: ErrorCode, why: &str) -> Result<(), RecordError> {
        warn!(code = %code, why, "task failed");
        metrics::count("TaskFailures", &[("Code", code.as_str())]);
        if !self.tasks.finish(id, Outcome::Failed(code)).await? {
            info!("the task had already ended");
        }
        if let Some(result_key) = batch::result_key(id) {
            let body = serde_json::json!({"status": "error", "error_detail": code}).to_string().into_bytes();
            self.blobs.put(&result_key, body, "application/json").await?;
        }
        Ok(())
    }

    /// Turns a batch document into a task, as a client's upload would: its pages sealed
    /// under a fresh key wrapped for the server, an envelope whose creation starts OCR.
    async fn ingest(&self, document: BatchDocument, key: &str) -> Result<(), RecordError> {
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
        let encode = |e: docusnap_core::crypto::CryptoError| RecordError::Encode(e.to_string());
        let aes = AesKey::generate().map_err(encode)?;
        let content = serde_json::json!({"to_process": images, "file_lib": {}}).to_string();
        let content = aes.seal_base64(content.as_bytes()).map_err(encode)?;
        let wrap = ClientWrap::from_public_pem(self.key.public_key_pem()).map_err(|e| RecordError::Encode(e.to_string()))?;
        let wrapped = wrap.wrap(aes.as_bytes()).map_err(encode)?;
        let task = Task::new_processing(id.clone(), wrapped.clone(), self.clock.now());
        if self.tasks.create(&task).await? == Created::AlreadyExists {
            info!("this version of the document is already a task");
            return Ok(());
        }
        let envelope = Envelope {
            version: Envelope::VERSION,
            client_id: id.client_id.clone(),
            task_type: id.task_type,
            sha256: id.sha256.clone(),
            aes_key: wrapped,
            content,
        };
        let body = serde_json::to_vec(&envelope).map_err(|e| RecordError::Encode(e.to_string()))?;
        if let Err(e) = self.blobs.put(&id.envelope_key(), body, Envelope::CONTENT_TYPE).await {
            // Without its envelope the task would never start: the retry makes both anew.
            self.tasks.delete(&id).await?;
            return Err(e.into());
        }
        info!(task = %id, pages = pages.len(), "batch document queued");
        Ok(())
    }
}

/// A page as clients send it: base64, possibly as a data URL.
fn decode_page(page: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let data = page.find(";base64,").map_or(page, |i| &page[i + ";base64,".len()..]);
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    BASE64.decode(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_arrive_url_encoded_with_plus_for_space() {
        assert_eq!(decode_key("tasks/my+phone%2F1/doc/ab/envelope.json"), "tasks/my phone/1/doc/ab/envelope.json");
        assert_eq!(decode_key("tasks/a%252Fb/doc/ab/envelope.json"), "tasks/a%2Fb/doc/ab/envelope.json");
    }

    #[test]
    fn pages_may_be_data_urls() {
        assert_eq!(decode_page("data:image/png;base64,aGk=").unwrap(), b"hi");
        assert_eq!(decode_page("aG\\nk=".replace("\\n", "\n").as_str()).unwrap(), b"hi");
        assert!(decode_page("***").is_err());
    }
}
