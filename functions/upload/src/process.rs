//! `POST /process`: the protocol's checks 4-11, in its order.

use docusnap_core::clock::{Clock, Timestamp};
use docusnap_core::crypto::sha256_hex;
use docusnap_core::limits::{KEY_BINDING_SECS, PROCESSING_TIMEOUT_SECS};
use docusnap_core::pipeline;
use docusnap_core::protocol::{Envelope, ProcessAnswer, ProcessRequest, TaskContent, Upload as Content};
use docusnap_core::quota::{self, Principal, QuotaRefusal};
use docusnap_core::store::{Binding, Created, KeyBindings, Outcome, TaskStore};
use docusnap_core::task::{Task, TaskId, TaskState};
use docusnap_core::ErrorCode;
use tracing::{error, info, warn, Instrument};

use docusnap_core::Env;

use crate::{Caller, Upload};

impl<E: Env> Upload<E> {
    /// Answers a parsed `POST /process` request.
    pub async fn process(&self, request: ProcessRequest, caller: &Caller) -> ProcessAnswer {
        let id = TaskId::new(request.client_id, request.task_type, request.sha256);
        // v1 counts its client when no token names the caller (the original's clients send none).
        let principal = caller.subject().unwrap_or_else(|| Principal::client(&id.client_id));
        let span = tracing::info_span!("process", task = %id);
        self.process_task(id, request.upload, principal).instrument(span).await
    }

    async fn process_task(&self, id: TaskId, upload: Option<Content>, principal: Principal) -> ProcessAnswer {
        let now = self.clock.now();
        // 4. An existing task answers with its state, before any content check.
        match self.tasks.touch(&id, now).await {
            Ok(Some(task)) => return self.answer(task, now).await,
            Ok(None) => {}
            Err(e) => {
                error!(error = %e, "task lookup failed");
                return ProcessAnswer::Error(ErrorCode::DatabaseError);
            }
        }
        // 5.
        let Some(upload) = upload else {
            return ProcessAnswer::Error(ErrorCode::TaskNotFound);
        };
        match self.accept(&id, &upload, now).await {
            Ok(pages) => match self.tasks.count_in_flight(&id.client_id, now - PROCESSING_TIMEOUT_SECS).await {
                Ok(n) if n >= self.limits.max_tasks_in_flight => {
                    info!(in_flight = n, "too many tasks in flight; upload refused");
                    ProcessAnswer::Error(ErrorCode::TooManyTasks)
                }
                Ok(_) => self.admit_and_create(id, upload, &principal, pages, now).await,
                Err(e) => {
                    error!(error = %e, "counting the client's tasks failed");
                    ProcessAnswer::Error(ErrorCode::DatabaseError)
                }
            },
            Err(code) => {
                info!(code = %code, "upload refused");
                ProcessAnswer::Error(code)
            }
        }
    }

    /// Checks 6-9: the hash, the key, the ciphertext and the JSON inside it. Before anything
    /// is decrypted, the wrapped key is bound to this content: a key that came before with
    /// other content is refused with `KEY_ALREADY_USED`, whatever the content holds, so
    /// variations of a victim's content tell an attacker nothing about its padding.
    /// Returns the pages the quota counts: the page images, or one for a fill.
    async fn accept(&self, id: &TaskId, upload: &Content, now: Timestamp) -> Result<u32, ErrorCode> {
        if sha256_hex(upload.content.as_bytes()) != id.sha256 {
            return Err(ErrorCode::Sha256Mismatch);
        }
        let wrapped = upload.aes_key.as_deref().ok_or(ErrorCode::RsaDecryptionFailed)?;
        let digest = wrapped_key_digest(wrapped).ok_or(ErrorCode::RsaDecryptionFailed)?;
        match self.keys.bind(&digest, &id.sha256, now, now + KEY_BINDING_SECS).await {
            Ok(Binding::Allowed) => {}
            Ok(Binding::OtherContent) => return Err(ErrorCode::KeyAlreadyUsed),
            Err(e) => {
                error!(error = %e, "binding the key failed");
                return Err(ErrorCode::DatabaseError);
            }
        }
        let opened =
            pipeline::open(&self.key, id, wrapped, &upload.content, &self.limits).map_err(|e| e.request_code())?;
        Ok(match opened.content {
            TaskContent::Pages { pages, .. } => pages.len().max(1) as u32,
            TaskContent::Fill { .. } => 1,
        })
    }

    /// The principal's quotas, then the task: a refusal stores nothing, and an admission
    /// whose task is not made is undone. A full set of tasks in flight answers v1's own
    /// `TOO_MANY_TASKS`; a day's pages `QUOTA_EXCEEDED`.
    async fn admit_and_create(
        &self, id: TaskId, upload: Content, principal: &Principal, pages: u32, now: Timestamp,
    ) -> ProcessAnswer {
        let ticket = match quota::admit(&self.quotas, &self.tasks, principal, &id, pages, self.quota, now).await {
            Ok(Ok(ticket)) => ticket,
            Ok(Err(refusal)) => {
                return ProcessAnswer::Error(match refusal {
                    QuotaRefusal::TasksInFlight { .. } => ErrorCode::TooManyTasks,
                    QuotaRefusal::PagesPerDay { .. } => ErrorCode::QuotaExceeded,
                });
            }
            Err(e) => {
                error!(error = %e, "checking the quota failed");
                return ProcessAnswer::Error(ErrorCode::DatabaseError);
            }
        };
        let (answer, made) = self.create(id, upload, now).await;
        if !made {
            ticket.undo(&self.quotas).await;
        }
        answer
    }

    /// Checks 10-11: the task item and its envelope (core's pipeline); a lost race for the
    /// same task answers the winner's state. Says whether this request made the task.
    async fn create(&self, id: TaskId, upload: Content, now: Timestamp) -> (ProcessAnswer, bool) {
        let envelope = Envelope::new(&id, upload.aes_key.unwrap_or_default(), upload.content);
        let answer = match pipeline::create_task(&self.tasks, &self.blobs, &envelope, now).await {
            Ok(Created::New) => return (ProcessAnswer::Processing, true),
            Ok(Created::AlreadyExists) => match self.tasks.touch(&id, now).await {
                Ok(Some(task)) => self.answer(task, now).await,
                Ok(None) => ProcessAnswer::Processing,
                Err(e) => {
                    error!(error = %e, "task lookup after a lost race failed");
                    ProcessAnswer::Error(ErrorCode::DatabaseError)
                }
            },
            Err(e) => {
                error!(error = %e, "task creation failed");
                ProcessAnswer::Error(ErrorCode::DatabaseError)
            }
        };
        (answer, false)
    }

    /// A stored task's state as the protocol answers it.
    async fn answer(&self, task: Task, now: Timestamp) -> ProcessAnswer {
        if task.is_timed_out(now) {
            match pipeline::end_task(
                &self.tasks,
                &self.blobs,
                &task.id,
                Outcome::Failed(ErrorCode::ProcessingTimeout),
                now,
            )
            .await
            {
                Ok(true) => {
                    warn!("task timed out");
                    return ProcessAnswer::Error(ErrorCode::ProcessingTimeout);
                }
                // It ended meanwhile: answer how.
                Ok(false) => match self.tasks.get(&task.id, now).await {
                    Ok(Some(ended)) => return state(ended),
                    Ok(None) => return ProcessAnswer::Error(ErrorCode::TaskNotFound),
                    Err(e) => error!(error = %e, "re-reading a timed-out task failed"),
                },
                Err(e) => error!(error = %e, "recording the timeout failed"),
            }
            // The store is failing; the timeout holds all the same.
            return ProcessAnswer::Error(ErrorCode::ProcessingTimeout);
        }
        state(task)
    }
}

/// The digest a wrapped key is bound under: of its bytes, so that another base64 spelling
/// of the same ciphertext is the same key. `None` when it is not base64.
fn wrapped_key_digest(wrapped: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(wrapped.trim()).ok()?;
    Some(sha256_hex(&bytes))
}

fn state(task: Task) -> ProcessAnswer {
    match task.state {
        TaskState::Processing { .. } => ProcessAnswer::Processing,
        TaskState::Completed { result, .. } => ProcessAnswer::Completed { result },
        TaskState::Failed { code } => ProcessAnswer::Error(code),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use docusnap_core::clock::ManualClock;
    use docusnap_core::config::Limits;
    use docusnap_core::crypto::{generate_private_key_pem, AesKey, ClientWrap, ServerKey};
    use docusnap_core::env::Memory;
    use docusnap_core::protocol::{ProcessAnswer, ProcessRequest};
    use docusnap_core::quota::QuotaLimits;
    use docusnap_core::store::memory::{
        MemoryBlobStore, MemoryKeyBindings, MemoryQueue, MemoryQuotaStore, MemoryTaskStore,
    };
    use docusnap_core::store::{BlobStore, PresignedPut, StoreError, UploadUrls};
    use serde_json::json;

    use super::*;

    /// A bucket that refuses every write, as S3 does when it is unreachable.
    #[derive(Default)]
    struct BrokenBucket;

    impl BlobStore for BrokenBucket {
        async fn put(&self, _: &str, _: Vec<u8>, _: &str) -> Result<(), StoreError> {
            Err(StoreError::Partial("the bucket is unreachable".into()))
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn list(&self, _: &str) -> Result<Vec<docusnap_core::store::StoredObject>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &[String]) -> Result<(), StoreError> {
            Ok(())
        }
        async fn delete_prefix(&self, _: &str) -> Result<usize, StoreError> {
            Ok(0)
        }
    }

    impl UploadUrls for BrokenBucket {
        async fn presign_put(&self, _: &str, _: u64, _: &str, _: u64) -> Result<PresignedPut, StoreError> {
            Err(StoreError::Partial("the bucket is unreachable".into()))
        }
    }

    /// The in-memory stores, but the unreachable bucket.
    enum Unreachable {}

    impl Env for Unreachable {
        type Tasks = MemoryTaskStore;
        type Blobs = BrokenBucket;
        type Keys = MemoryKeyBindings;
        type Queue = MemoryQueue;
        type Clock = Arc<ManualClock>;
        type Quotas = MemoryQuotaStore;
    }

    fn app<E>(blobs: E::Blobs, pem: &str) -> Upload<E>
    where
        E: Env<
            Tasks = MemoryTaskStore,
            Keys = MemoryKeyBindings,
            Queue = MemoryQueue,
            Clock = Arc<ManualClock>,
            Quotas = MemoryQuotaStore,
        >,
    {
        Upload {
            tasks: MemoryTaskStore::default(),
            blobs,
            keys: MemoryKeyBindings::default(),
            clock: Arc::new(ManualClock::starting_at(1_000)),
            key: ServerKey::from_pem(pem).unwrap(),
            limits: Limits::default(),
            quotas: MemoryQuotaStore::default(),
            quota: QuotaLimits { tasks_in_flight: 10, pages_per_day: 1000 },
            v2: crate::V2Api {
                ocr_queue: MemoryQueue::default(),
                callbacks: Default::default(),
                upload_window_secs: docusnap_core::v2::UPLOAD_WINDOW_SECS,
                storage_origin: "memory://".into(),
            },
        }
    }

    /// A v1 upload of one page, as a client encrypts it.
    fn request(server: &ServerKey) -> ProcessRequest {
        let key = AesKey::generate().unwrap();
        let content = key.seal_base64(json!({"to_process": ["aGk="]}).to_string().as_bytes()).unwrap();
        let wrapped = ClientWrap::from_public_pem(server.public_key_pem()).unwrap().wrap(key.as_bytes()).unwrap();
        let body = json!({
            "client_id": "c", "type": "doc", "SHA256": sha256_hex(content.as_bytes()),
            "has_content": true, "aes_key": wrapped, "content": content,
        });
        ProcessRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_new_upload_stores_one_task_and_its_envelope() {
        let pem = generate_private_key_pem().unwrap();
        let app = app::<Memory>(MemoryBlobStore::default(), &pem);
        let upload = request(&app.key);
        assert_eq!(app.process(upload.clone(), &Caller::default()).await, ProcessAnswer::Processing);
        assert_eq!(app.process(upload.clone(), &Caller::default()).await, ProcessAnswer::Processing);
        assert_eq!(app.tasks.len(), 1);
        let id = TaskId::new(upload.client_id.clone(), upload.task_type, upload.sha256.clone());
        assert_eq!(app.blobs.keys(), vec![id.envelope_key()]);
    }

    #[tokio::test]
    async fn an_envelope_that_cannot_be_stored_leaves_no_task() {
        let pem = generate_private_key_pem().unwrap();
        let app = app::<Unreachable>(BrokenBucket, &pem);
        let answer = app.process(request(&app.key), &Caller::default()).await;
        assert_eq!(answer, ProcessAnswer::Error(ErrorCode::DatabaseError));
        assert!(app.tasks.is_empty(), "a task without an envelope would never start");
    }
}
