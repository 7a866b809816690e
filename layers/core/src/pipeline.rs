//! The steps every stage of a task shares, in one place: opening an envelope, creating a
//! task with its envelope (and undoing it when the envelope cannot be stored), and ending
//! a task (its outcome, its failure metric, a batch document's result file).
//!
//! The upload function, batch ingestion in the OCR function, and the extract function call
//! these; none of them writes the steps again.

use tracing::{error, info, warn};

use crate::batch;
use crate::clock::Timestamp;
use crate::codes::ErrorCode;
use crate::config::Limits;
use crate::crypto::{AesKey, CryptoError, ServerKey};
use crate::metrics;
use crate::ocr_output::OcrOutput;
use crate::protocol::{ContentError, Envelope, TaskContent};
use crate::store::{BlobStore, Created, Outcome, StoreError, TaskStore};
use crate::task::{Stage, Task, TaskId, TaskState};

/// Why an envelope (or a request's encrypted part) does not open to a valid task.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the stored envelope is not an envelope: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
    #[error("the AES key does not unwrap: {0}")]
    Key(#[source] CryptoError),
    #[error("the content does not decrypt: {0}")]
    Decrypt(#[source] CryptoError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("the sealed object is not an OCR output: {0}")]
    NotOcrOutput(#[source] serde_json::Error),
    #[error("the sealed object belongs to another task")]
    OtherTask,
}

impl OpenError {
    /// The code a client's request is refused with (PROTOCOL.md checks 7-9).
    pub fn request_code(&self) -> ErrorCode {
        match self {
            OpenError::NotAnEnvelope(_) | OpenError::NotOcrOutput(_) | OpenError::OtherTask => ErrorCode::InvalidJson,
            OpenError::Key(_) => ErrorCode::RsaDecryptionFailed,
            OpenError::Decrypt(_) => ErrorCode::AesDecryptionFailed,
            OpenError::Content(e) => (*e).into(),
        }
    }

    /// The code a stored task ends with. The upload function checked the key and the
    /// ciphertext, so their failure means the stored envelope is not the one it checked.
    pub fn stored_code(&self) -> ErrorCode {
        match self {
            OpenError::Content(e) => (*e).into(),
            _ => ErrorCode::ProcessingError,
        }
    }
}

/// An opened envelope: the client's key (for sealing what goes back), still wrapped as
/// sent and unwrapped, and the content.
#[derive(Debug)]
pub struct Opened {
    pub wrapped_key: String,
    pub key: AesKey,
    pub content: TaskContent,
}

/// Unwraps the key, decrypts the content and parses it for `id`'s task type.
pub fn open(
    server: &ServerKey, id: &TaskId, wrapped_key: &str, content: &str, limits: &Limits,
) -> Result<Opened, OpenError> {
    let key = server.unwrap_aes_key(wrapped_key).map_err(OpenError::Key)?;
    let plaintext = key.open_base64(content).map_err(OpenError::Decrypt)?;
    let content = TaskContent::parse(id.task_type, &plaintext, limits)?;
    Ok(Opened { wrapped_key: wrapped_key.to_owned(), key, content })
}

/// Opens a stored envelope (already parsed, so that a reader that parses it to learn its
/// task does not parse megabytes twice).
pub fn open_envelope(server: &ServerKey, envelope: &Envelope, limits: &Limits) -> Result<Opened, OpenError> {
    open(server, &envelope.task_id(), &envelope.aes_key, &envelope.content, limits)
}

/// A task's OCR output sealed for extraction, as an envelope is: the client's wrapped key
/// beside the sealed JSON, so that extraction reads this one small object.
pub fn seal_output(id: &TaskId, wrapped_key: &str, key: &AesKey, output: &OcrOutput) -> Result<Vec<u8>, CryptoError> {
    let content = key.seal_base64(&output.to_json())?;
    Ok(Envelope::new(id, wrapped_key.to_owned(), content).to_json())
}

/// Opens what [`seal_output`] sealed: the client's key and the OCR output.
pub fn open_output(server: &ServerKey, id: &TaskId, sealed: &[u8]) -> Result<(AesKey, OcrOutput), OpenError> {
    let envelope: Envelope = serde_json::from_slice(sealed).map_err(OpenError::NotAnEnvelope)?;
    if envelope.task_id() != *id {
        return Err(OpenError::OtherTask);
    }
    let key = server.unwrap_aes_key(&envelope.aes_key).map_err(OpenError::Key)?;
    let plaintext = key.open_base64(&envelope.content).map_err(OpenError::Decrypt)?;
    let output = OcrOutput::from_json(&plaintext).map_err(OpenError::NotOcrOutput)?;
    Ok((key, output))
}

/// Creates the task an envelope starts: the item first (its conditional write makes
/// concurrent identical uploads create one task), then the envelope object, whose creation
/// starts OCR. A task whose envelope cannot be stored would never start, so its item is
/// removed again and the store's error returned: a retry creates both afresh.
///
/// An item that exists already may be this very upload's: its conditional write landed but
/// the answer was lost, and the SDK's retry found the item (seen under injected faults by
/// scripts/chaos: the task stayed processing for good, with no envelope to start it). So a
/// task still waiting for its pages whose envelope is missing gets it now.
pub async fn create_task<T: TaskStore, B: BlobStore>(
    tasks: &T, blobs: &B, envelope: &Envelope, now: Timestamp,
) -> Result<Created, StoreError> {
    let id = envelope.task_id();
    let task = Task::new_processing(id.clone(), now);
    if tasks.create(&task).await? == Created::AlreadyExists {
        let waiting = tasks.get(&id, now).await?.is_some_and(|t| t.state.stage() == Some(Stage::Uploaded));
        if waiting && !blobs.list(&id.envelope_key()).await?.iter().any(|o| o.key == id.envelope_key()) {
            warn!(task = %id, "the task exists without its envelope; storing it");
            blobs.put(&id.envelope_key(), envelope.to_json(), Envelope::CONTENT_TYPE).await?;
        }
        return Ok(Created::AlreadyExists);
    }
    if let Err(e) = blobs.put(&id.envelope_key(), envelope.to_json(), Envelope::CONTENT_TYPE).await {
        error!(error = %e, "storing the envelope failed");
        if let Err(undo) = tasks.delete(&id).await {
            error!(error = %undo, "removing the task without an envelope failed");
        }
        return Err(e);
    }
    info!(task = %id, "task created");
    Ok(Created::New)
}

/// Ends a processing task with `outcome`. Counts a failure once, for the delivery that
/// ended the task, writes a batch document's result file beside its images, and deletes
/// the task's envelope and OCR output: the result in the table is all a client can still
/// fetch, so nothing else of the document stays at rest. False, changing nothing in the
/// table, when the task had already ended (cleared, timed out, or finished by another
/// delivery).
///
/// A batch task's file is written from the table's state when the task had already ended:
/// a delivery whose file write failed after the task ended is retried by SQS, and the retry
/// must write the file rather than skip it.
pub async fn end_task<T: TaskStore, B: BlobStore>(
    tasks: &T, blobs: &B, id: &TaskId, outcome: Outcome, now: Timestamp,
) -> Result<bool, StoreError> {
    let failed = match &outcome {
        Outcome::Failed(code) => Some(*code),
        Outcome::Completed { .. } => None,
    };
    if !tasks.finish(id, outcome.clone()).await? {
        info!("the task had already ended");
        settle_ended(tasks, blobs, id, now).await?;
        return Ok(false);
    }
    // One line per result written: scripts/chaos counts them to find a task ended twice.
    info!(status = if failed.is_some() { "failed" } else { "completed" }, "task ended");
    if let Some(code) = failed {
        metrics::task_failed(code);
    }
    if let Some(key) = batch::result_key(id) {
        blobs.put(&key, batch::result_file(&outcome), "application/json").await?;
        info!(result = %key, "batch result written");
    }
    mark_v2_end(blobs, id).await?;
    forget_objects(blobs, id).await;
    Ok(true)
}

/// A v2 task's end, marked for its callback: the marker's creation notifies the callback
/// queue. Marked again by a later delivery that finds the task ended (the first may have
/// failed to), so a callback is sent at least once; receivers tell repeats by task id.
async fn mark_v2_end<B: BlobStore>(blobs: &B, id: &TaskId) -> Result<(), StoreError> {
    if let Some(task) = crate::v2::V2TaskId::of(id) {
        blobs
            .put(
                &task.callback_key(),
                serde_json::json!({"task_id": task.to_string()}).to_string().into_bytes(),
                "application/json",
            )
            .await?;
    }
    Ok(())
}

/// What a delivery that finds its task already ended still owes it: the batch result file
/// and the deletion of the task's objects. The delivery that ended the task may have
/// failed at either, or never learned that its write landed (its answer lost), and SQS
/// brought its message back.
pub async fn settle_ended<T: TaskStore, B: BlobStore>(
    tasks: &T, blobs: &B, id: &TaskId, now: Timestamp,
) -> Result<(), StoreError> {
    ensure_batch_result(tasks, blobs, id, now).await?;
    mark_v2_end(blobs, id).await?;
    forget_objects(blobs, id).await;
    Ok(())
}

/// Deletes an ended task's objects. The bucket's lifecycle rule removes them after a day in
/// any case, so a failed delete is logged, not retried.
async fn forget_objects<B: BlobStore>(blobs: &B, id: &TaskId) {
    // A v2 task's objects are its pages, manifest and OCR output, all under its prefix.
    let deleted = if crate::v2::V2TaskId::of(id).is_some() {
        blobs.delete_prefix(&id.object_prefix()).await.map(|_| ())
    } else {
        blobs.delete(&[id.envelope_key(), id.ocr_key()]).await
    };
    if let Err(e) = deleted {
        error!(error = %e, "deleting the ended task's objects failed; the lifecycle rule removes them");
    }
}

/// For a batch task that has ended, its result file from the table's state, unless the
/// file is there already. A delivery that finds its task ended calls this: the delivery
/// that ended it may have failed to write the file, and SQS brought its message back.
pub async fn ensure_batch_result<T: TaskStore, B: BlobStore>(
    tasks: &T, blobs: &B, id: &TaskId, now: Timestamp,
) -> Result<(), StoreError> {
    let Some(key) = batch::result_key(id) else {
        return Ok(());
    };
    if blobs.get(&key).await?.is_some() {
        return Ok(());
    }
    if let Some(ended) = ended_outcome(tasks, id, now).await? {
        blobs.put(&key, batch::result_file(&ended), "application/json").await?;
        info!(result = %key, "batch result written by a later delivery");
    }
    Ok(())
}

/// How a task ended, as the table holds it; `None` while it runs or once it is gone.
async fn ended_outcome<T: TaskStore>(tasks: &T, id: &TaskId, now: Timestamp) -> Result<Option<Outcome>, StoreError> {
    Ok(tasks.get(id, now).await?.and_then(|task| match task.state {
        TaskState::Completed { result, extractor } => Some(Outcome::Completed { result, extractor }),
        TaskState::Failed { code } => Some(Outcome::Failed(code)),
        TaskState::Processing { .. } => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::crypto::{generate_private_key_pem, ClientWrap};
    use crate::ids::{ClientId, TaskType};
    use crate::store::memory::{MemoryBlobStore, MemoryTaskStore};
    use crate::store::StoredObject;
    use crate::task::ExtractorKind;

    fn envelope(server: &ServerKey, plaintext: &str) -> (Envelope, AesKey) {
        let key = AesKey::generate().unwrap();
        let content = key.seal_base64(plaintext.as_bytes()).unwrap();
        let wrapped = ClientWrap::from_public_pem(server.public_key_pem()).unwrap().wrap(key.as_bytes()).unwrap();
        let id =
            TaskId::new(ClientId::parse("c").unwrap(), TaskType::Doc, crate::crypto::sha256_hex(content.as_bytes()));
        (Envelope::new(&id, wrapped, content), key)
    }

    #[tokio::test]
    async fn an_envelope_is_created_once_and_opens_to_its_content() {
        let server = ServerKey::from_pem(&generate_private_key_pem().unwrap()).unwrap();
        let (envelope, key) = envelope(&server, r#"{"to_process": ["aGk="]}"#);
        let (tasks, blobs) = (MemoryTaskStore::default(), MemoryBlobStore::default());
        let now = crate::clock::SystemClock.now();
        assert_eq!(create_task(&tasks, &blobs, &envelope, now).await.unwrap(), Created::New);
        assert_eq!(create_task(&tasks, &blobs, &envelope, now).await.unwrap(), Created::AlreadyExists);
        let id = envelope.task_id();
        let stored: Envelope = serde_json::from_slice(&blobs.get(&id.envelope_key()).await.unwrap().unwrap()).unwrap();
        let opened = open_envelope(&server, &stored, &Limits::default()).unwrap();
        assert_eq!(opened.key, key);
        assert!(matches!(opened.content, TaskContent::Pages { ref pages, .. } if pages == &["aGk="]));
        // The OCR output travels sealed beside the same wrapped key, and opens alone.
        let output = OcrOutput { form: Some(serde_json::Map::new()), ..OcrOutput::default() };
        let sealed = seal_output(&id, &opened.wrapped_key, &opened.key, &output).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("\"form\""), "sealed, not in the clear");
        assert_eq!(open_output(&server, &id, &sealed).unwrap(), (key, output));
        let elsewhere = TaskId::new(ClientId::parse("d").unwrap(), TaskType::Doc, id.sha256.clone());
        assert!(matches!(open_output(&server, &elsewhere, &sealed), Err(OpenError::OtherTask)));
        assert_eq!(open_output(&server, &id, b"{}").unwrap_err().stored_code(), ErrorCode::ProcessingError);
    }

    #[tokio::test]
    async fn a_task_whose_item_write_landed_unseen_still_gets_its_envelope() {
        let server = ServerKey::from_pem(&generate_private_key_pem().unwrap()).unwrap();
        let (envelope, _) = envelope(&server, r#"{"to_process": ["aGk="]}"#);
        let (tasks, blobs) = (MemoryTaskStore::default(), MemoryBlobStore::default());
        let now = crate::clock::SystemClock.now();
        let id = envelope.task_id();
        // The first attempt's conditional write landed, but its answer was lost: the retry
        // finds the item, and nothing else was stored.
        tasks.create(&Task::new_processing(id.clone(), now)).await.unwrap();
        assert_eq!(create_task(&tasks, &blobs, &envelope, now).await.unwrap(), Created::AlreadyExists);
        assert_eq!(
            blobs.get(&id.envelope_key()).await.unwrap(),
            Some(envelope.to_json()),
            "the envelope that starts OCR"
        );
        // A task already past its upload gets nothing stored again.
        assert!(tasks.advance(&id, Stage::Uploaded, Stage::Read).await.unwrap());
        blobs.delete(&[id.envelope_key()]).await.unwrap();
        assert_eq!(create_task(&tasks, &blobs, &envelope, now).await.unwrap(), Created::AlreadyExists);
        assert_eq!(blobs.get(&id.envelope_key()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn opening_failures_map_to_the_protocols_codes() {
        let server = ServerKey::from_pem(&generate_private_key_pem().unwrap()).unwrap();
        let (envelope, _) = envelope(&server, "not json");
        let id = envelope.task_id();
        let limits = Limits::default();
        let code = |e: OpenError| (e.request_code(), e.stored_code());
        assert_eq!(
            code(open(&server, &id, "AAAA", &envelope.content, &limits).unwrap_err()),
            (ErrorCode::RsaDecryptionFailed, ErrorCode::ProcessingError)
        );
        let truncated = &envelope.content[..envelope.content.len() - 4];
        assert_eq!(
            code(open(&server, &id, &envelope.aes_key, truncated, &limits).unwrap_err()).0,
            ErrorCode::AesDecryptionFailed
        );
        assert_eq!(
            code(open(&server, &id, &envelope.aes_key, &envelope.content, &limits).unwrap_err()),
            (ErrorCode::InvalidJson, ErrorCode::InvalidJson)
        );
    }

    #[tokio::test]
    async fn a_task_ends_once_and_a_batch_task_leaves_its_result_file() {
        let (tasks, blobs) = (MemoryTaskStore::default(), MemoryBlobStore::default());
        let id = TaskId::new(ClientId::batch("batch/r.jpg"), TaskType::Doc, "ab");
        tasks.create(&Task::new_processing(id.clone(), 1)).await.unwrap();
        blobs.put(&id.envelope_key(), b"{}".to_vec(), "application/json").await.unwrap();
        blobs.put(&id.ocr_key(), b"sealed".to_vec(), "application/octet-stream").await.unwrap();
        let outcome = Outcome::Completed { result: r#"{"title": "t"}"#.into(), extractor: ExtractorKind::Rules };
        assert!(end_task(&tasks, &blobs, &id, outcome.clone(), 2).await.unwrap());
        assert!(!end_task(&tasks, &blobs, &id, Outcome::Failed(ErrorCode::OcrFailure), 3).await.unwrap());
        let file: serde_json::Value =
            serde_json::from_slice(&blobs.get("batch/r.result.json").await.unwrap().unwrap()).unwrap();
        assert_eq!(file, serde_json::json!({"status": "completed", "result": {"title": "t"}, "extractor": "rules"}));
        assert!(matches!(tasks.get(&id, 2).await.unwrap().unwrap().state, TaskState::Completed { .. }));
        assert_eq!(blobs.keys(), vec!["batch/r.result.json".to_owned()], "nothing of the task stays but its result");
    }

    /// A bucket whose next write fails, as S3 does now and then.
    #[derive(Default)]
    struct FlakyBucket {
        inner: MemoryBlobStore,
        fail_next_put: std::sync::atomic::AtomicBool,
    }

    impl BlobStore for FlakyBucket {
        async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
            if self.fail_next_put.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Partial("S3 is unavailable".into()));
            }
            self.inner.put(key, body, content_type).await
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, StoreError> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
            self.inner.delete(keys).await
        }
        async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
            self.inner.delete_prefix(prefix).await
        }
    }

    #[tokio::test]
    async fn a_batch_result_file_that_failed_to_write_is_written_by_the_retry() {
        let (tasks, blobs) = (MemoryTaskStore::default(), FlakyBucket::default());
        let id = TaskId::new(ClientId::batch("batch/r.jpg"), TaskType::Doc, "ab");
        // The functions' clock, not the machine's: a task of a test clock is still live.
        tasks.create(&Task::new_processing(id.clone(), 1_000)).await.unwrap();
        blobs.fail_next_put.store(true, std::sync::atomic::Ordering::SeqCst);
        let outcome = Outcome::Failed(ErrorCode::OcrFailure);
        assert!(
            end_task(&tasks, &blobs, &id, outcome.clone(), 1_001).await.is_err(),
            "the first delivery fails on the write"
        );
        assert_eq!(blobs.get("batch/r.result.json").await.unwrap(), None);
        // SQS delivers the message again; the task has ended, and its file is written.
        ensure_batch_result(&tasks, &blobs, &id, 1_002).await.unwrap();
        let file: serde_json::Value =
            serde_json::from_slice(&blobs.get("batch/r.result.json").await.unwrap().unwrap()).unwrap();
        assert_eq!(file, serde_json::json!({"status": "error", "error_detail": "OCR_FAILURE"}));
    }
}
