//! API v2 (`functions/upload/openapi.json` is the contract): a task is created with its
//! pages declared, the client uploads each page sealed (AES-256-GCM) straight to S3 with a
//! presigned URL bound to its size and checksum, the OCR function counts the arrivals, and
//! the client reads the task with its bearer token.

use std::collections::BTreeMap;

use docusnap_core::clock::{Clock, Timestamp};
use docusnap_core::limits::PROCESSING_TIMEOUT_SECS;
use docusnap_core::pipeline;
use docusnap_core::quota::{self, Principal};
use docusnap_core::store::{BlobStore, Created, Outcome, Queue, StoreError, TaskStore, UploadUrls, V2TaskStore};
use docusnap_core::task::{Progress, Stage, Task, TaskState};
use docusnap_core::v2::{self, CallbackPolicy, CreateRequest, Manifest, Part, V2Event, V2Message, V2Record, V2TaskId};
use docusnap_core::{Env, ErrorCode, Failure, TaskType};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::Upload;

/// What v2 needs besides v1's state: the OCR queue (the upload deadline's delayed message,
/// a fill task's start) and the callback URL policy.
pub struct V2Api<Q> {
    pub ocr_queue: Q,
    pub callbacks: CallbackPolicy,
    /// [`v2::UPLOAD_WINDOW_SECS`] deployed; shorter in tests of the deadline.
    pub upload_window_secs: i64,
    /// Where the presigned uploads go (`https://<bucket>.s3.<region>.amazonaws.com`, or
    /// the local S3): the web page's policy lets it send there.
    pub storage_origin: String,
}

/// The scheme, host and port of `url`: what a Content-Security-Policy names.
pub fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// Every answer of v2's task routes, each the schema of the same name in `openapi.json`
/// (a test validates each against it).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum V2Answer {
    /// 201 to `POST /api/v2/tasks`.
    Created(CreatedTask),
    /// 200 to `GET /api/v2/tasks/{task_id}`.
    Task(TaskView),
    /// 200 to `DELETE /api/v2/tasks/{task_id}`.
    Deleted(Deleted),
    /// A refusal, with the status its code has in v2.
    Error(ErrorAnswer),
}

impl V2Answer {
    pub fn status(&self) -> u16 {
        match self {
            V2Answer::Created(_) => 201,
            V2Answer::Task(_) | V2Answer::Deleted(_) => 200,
            V2Answer::Error(answer) => v2::status_of(answer.error.code),
        }
    }
}

impl From<Failure> for V2Answer {
    fn from(failure: Failure) -> Self {
        V2Answer::Error(ErrorAnswer { error: ErrorBody { code: failure.code, message: failure.reason } })
    }
}

/// The created task's answer: the only place its token and callback secret are shown, so
/// its `Debug` leaves them out.
#[derive(Serialize)]
pub struct CreatedTask {
    pub task_id: String,
    pub token: String,
    pub status: &'static str,
    pub stage: &'static str,
    pub upload_deadline: Timestamp,
    pub uploads: Vec<PageUpload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<String>,
}

impl std::fmt::Debug for CreatedTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedTask")
            .field("task_id", &self.task_id)
            .field("token", &"[redacted]")
            .field("status", &self.status)
            .field("stage", &self.stage)
            .field("upload_deadline", &self.upload_deadline)
            .field("uploads", &self.uploads.len())
            .field("callback_secret", &self.callback_secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// One page's presigned PUT (`Upload` in the contract).
#[derive(Debug, Serialize)]
pub struct PageUpload {
    pub page: usize,
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: Timestamp,
}

/// A task as `GET` shows it (`Task` in the contract).
#[derive(Debug, Serialize)]
pub struct TaskView {
    pub task_id: String,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    pub status: &'static str,
    pub stage: &'static str,
    pub pages: PageCounts,
    pub created_at: Timestamp,
    pub upload_deadline: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extractor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// The LLM tokens the task used, once its extraction asked an LLM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<docusnap_core::task::TokenUsage>,
}

#[derive(Debug, Serialize)]
pub struct PageCounts {
    pub expected: usize,
    pub arrived: usize,
    pub read: usize,
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub task_id: String,
    pub deleted: bool,
}

#[derive(Debug, Serialize)]
pub struct ErrorAnswer {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Storage failed: logged with its cause, answered with a retryable code.
fn storage_failed(what: &str) -> impl FnOnce(StoreError) -> Failure + '_ {
    move |e| {
        error!(error = %e, "{what} failed");
        Failure::new(ErrorCode::DatabaseError, "storage is unavailable; try again")
    }
}

impl<E: Env> Upload<E> {
    /// `POST /api/v2/tasks`.
    pub async fn create_task(&self, body: &[u8], principal: &Principal) -> V2Answer {
        match self.try_create(body, principal).await {
            Ok(created) => V2Answer::Created(created),
            Err(failure) => {
                info!(code = %failure.code, why = %failure.reason, "v2 task refused");
                failure.into()
            }
        }
    }

    async fn try_create(&self, body: &[u8], principal: &Principal) -> Result<CreatedTask, Failure> {
        let request = CreateRequest::parse(body)?;
        let callback_url = request.callback_url.as_deref().map(|url| self.v2.callbacks.check_url(url)).transpose()?;
        let key = self.key.unwrap_aes_key(&request.key).map_err(|_| {
            Failure::new(
                ErrorCode::RsaDecryptionFailed,
                "`key` does not unwrap with the server key (RSA-OAEP, SHA-256)",
            )
        })?;
        let id = V2TaskId::for_key(request.task_type, &request.key)
            .ok_or_else(|| Failure::new(ErrorCode::RsaDecryptionFailed, "`key` is not base64"))?;
        // The sealed parts are checked now, so that a task that cannot be read is refused
        // here rather than failing later.
        if let Some(library) = &request.library {
            v2::open_object(&key, &id, Part::Library, library)?;
        }
        if let Some(form) = &request.form {
            v2::open_object(&key, &id, Part::Form, form)?;
        }
        let no_randomness = |_| Failure::new(ErrorCode::ProcessingError, "no randomness");
        let token = v2::new_secret().map_err(no_randomness)?;
        let callback = match &callback_url {
            Some(url) => Some(v2::Callback {
                url: url.to_string(),
                secret: docusnap_core::secret::Secret::new(v2::new_secret().map_err(no_randomness)?),
            }),
            None => None,
        };
        let now = self.clock.now();
        let window = self.v2.upload_window_secs.clamp(1, v2::UPLOAD_WINDOW_SECS);
        let deadline = now + window;
        let mut task = Task::new_processing(id.task_id(), now);
        let has_pages = request.task_type.has_pages();
        if has_pages {
            task.state = TaskState::Processing { progress: Progress::Receiving };
        }
        // The quotas, before anything is stored; undone if the task is not made after all.
        let pages = request.pages.len().max(1) as u32;
        let ticket = match quota::admit(&self.quotas, &self.tasks, principal, &task.id, pages, self.quota, now).await {
            Ok(Ok(ticket)) => ticket,
            Ok(Err(refusal)) => return Err(refusal.failure()),
            Err(e) => return Err(storage_failed("checking the quota")(e)),
        };
        // The task's item, manifest, upload URLs and deadline, once its quota admitted it.
        let made: Result<CreatedTask, Failure> = async {
            let record = V2Record {
                token_digest: v2::token_digest(&token),
                pages: request.pages.len(),
                arrived: 0,
                read: 0,
                upload_deadline: deadline,
                callback: callback.clone(),
                usage: Default::default(),
            };
            if self.tasks.create_v2(&task, &record).await.map_err(storage_failed("creating the task"))? != Created::New
            {
                // The id is the wrapped key's: this key has started a task already.
                return Err(Failure::new(
                    ErrorCode::KeyAlreadyUsed,
                    "this wrapped key has created a task already; make a fresh key for each task",
                ));
            }
            // Everything after the item: on a failure the item and manifest go again, so that the
            // client's retry with the same key creates the task afresh.
            let uploads = match self
                .start_task(
                    &id,
                    &request.pages,
                    Manifest {
                        key: request.key.clone(),
                        pages: request.pages.clone(),
                        library: request.library,
                        form: request.form,
                    },
                    window,
                    deadline,
                )
                .await
            {
                Ok(uploads) => uploads,
                Err(e) => {
                    let _ = self.blobs.delete(&[id.manifest_key()]).await;
                    let _ = self.tasks.delete(&task.id).await;
                    return Err(storage_failed("starting the task")(e));
                }
            };
            info!(task = %id, pages = request.pages.len(), callback = callback.is_some(), "v2 task created");
            Ok(CreatedTask {
                task_id: id.to_string(),
                token,
                status: "processing",
                stage: stage_name(if has_pages { Some(Stage::Receiving) } else { Some(Stage::Uploaded) }),
                upload_deadline: deadline,
                uploads,
                callback_secret: callback.map(|c| c.secret.expose().to_owned()),
            })
        }
        .await;
        if made.is_err() {
            ticket.undo(&self.quotas).await;
        }
        made
    }

    /// The manifest (written after the item, so that a second create with the same key
    /// cannot replace a task's), one presigned PUT per page, and the deadline's delayed
    /// message (a fill task's start).
    async fn start_task(
        &self, id: &V2TaskId, pages: &[v2::PageSpec], manifest: Manifest, window: i64, deadline: i64,
    ) -> Result<Vec<PageUpload>, StoreError> {
        let manifest = serde_json::to_vec(&manifest).map_err(|e| StoreError::Malformed(e.to_string()))?;
        self.blobs.put(&id.manifest_key(), manifest, "application/json").await?;
        let mut uploads = Vec::with_capacity(pages.len());
        for (index, page) in pages.iter().enumerate() {
            let put =
                self.blobs.presign_put(&id.page_key(index), page.size, &page.sha256_base64(), window as u64).await?;
            let headers = signed_headers(&put);
            uploads.push(PageUpload { page: index, method: put.method, url: put.url, headers, expires_at: deadline });
        }
        // The deadline's message comes back when the window closes (the OCR function puts
        // it back until the grace has passed too); a fill task starts now.
        let (event, delay) = if pages.is_empty() { (V2Event::Start, 0) } else { (V2Event::UploadDeadline, window) };
        let message = serde_json::to_string(&V2Message { v2_task: id.to_string(), event })
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        self.v2.ocr_queue.send_delayed(&message, delay as u32).await?;
        Ok(uploads)
    }

    /// The task the path and bearer token name, or the answer that refuses them.
    async fn authorised(
        &self, task_id: Option<&str>, bearer: Option<&str>,
    ) -> Result<(V2TaskId, Task, V2Record), Failure> {
        let not_found = || {
            Failure::new(
                ErrorCode::TaskNotFound,
                "no such task (it may have expired: tasks are kept a day after their last read)",
            )
        };
        let id = task_id.and_then(V2TaskId::parse).ok_or_else(not_found)?;
        let (task, record) = self
            .tasks
            .get_v2(&id.task_id(), self.clock.now())
            .await
            .map_err(storage_failed("reading a v2 task"))?
            .ok_or_else(not_found)?;
        match bearer {
            Some(token) if v2::token_matches(&record.token_digest, token) => Ok((id, task, record)),
            _ => Err(Failure::new(
                ErrorCode::Unauthorized,
                "the Authorization header must be `Bearer <this task's token>`",
            )),
        }
    }

    /// `GET /api/v2/tasks/{task_id}`.
    pub async fn get_task(&self, task_id: Option<&str>, bearer: Option<&str>) -> V2Answer {
        let (id, task, record) = match self.authorised(task_id, bearer).await {
            Ok(found) => found,
            Err(failure) => return failure.into(),
        };
        let now = self.clock.now();
        let overdue = match task.state.stage() {
            Some(Stage::Receiving)
                if now >= record.upload_deadline + v2::upload_grace_secs(record.upload_deadline - task.created_at) =>
            {
                Some(ErrorCode::UploadExpired)
            }
            Some(_) if now >= record.upload_deadline + PROCESSING_TIMEOUT_SECS => Some(ErrorCode::ProcessingTimeout),
            _ => None,
        };
        let task = match overdue {
            Some(code) => {
                if let Err(e) = pipeline::end_task(&self.tasks, &self.blobs, &task.id, Outcome::Failed(code), now).await
                {
                    error!(error = %e, "ending an overdue task failed");
                }
                match self.tasks.get(&task.id, now).await {
                    Ok(Some(ended)) => ended,
                    _ => Task { state: TaskState::Failed { code }, ..task },
                }
            }
            None if task.state.stage().is_none() => {
                // A read keeps an ended task a day longer, as in v1.
                if let Err(e) = self.tasks.touch(&task.id, now).await {
                    warn!(error = %e, "refreshing the task's expiry failed");
                }
                task
            }
            None => task,
        };
        V2Answer::Task(task_view(&id, &task, &record))
    }

    /// `DELETE /api/v2/tasks/{task_id}`: the task and every object of it.
    pub async fn delete_task(&self, task_id: Option<&str>, bearer: Option<&str>) -> V2Answer {
        let (id, task, _) = match self.authorised(task_id, bearer).await {
            Ok(found) => found,
            Err(failure) => return failure.into(),
        };
        let removed = async {
            self.blobs.delete_prefix(&task.id.object_prefix()).await?;
            self.tasks.delete(&task.id).await
        };
        match removed.await.map_err(storage_failed("deleting a v2 task")) {
            Ok(()) => {
                info!(task = %id, "v2 task deleted");
                V2Answer::Deleted(Deleted { task_id: id.to_string(), deleted: true })
            }
            Err(failure) => failure.into(),
        }
    }
}

/// The headers a client must send with a presigned PUT: those the signature covers
/// (`X-Amz-SignedHeaders`), but `host` and `content-length`, which any HTTP client sets
/// itself (a browser may not set them). A header the SDK adds unsigned (a trace id) is
/// left out: the bucket's CORS rule would refuse it from a browser.
fn signed_headers(put: &docusnap_core::store::PresignedPut) -> BTreeMap<String, String> {
    let signed: Vec<String> = put
        .url
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
        .map(|list| {
            percent_encoding::percent_decode_str(list)
                .decode_utf8_lossy()
                .split(';')
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    put.headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            signed.contains(&name) && name != "host" && name != "content-length"
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The stage as v2 names it.
fn stage_name(stage: Option<Stage>) -> &'static str {
    match stage {
        Some(Stage::Receiving) => "uploading",
        Some(Stage::Uploaded) => "reading",
        Some(Stage::Read | Stage::Extracting) => "extracting",
        None => "done",
    }
}

fn task_view(id: &V2TaskId, task: &Task, record: &V2Record) -> TaskView {
    // A fill task has no pages of its own.
    let pages = match task.id.task_type {
        TaskType::Fill => PageCounts { expected: 0, arrived: 0, read: 0 },
        _ => PageCounts { expected: record.pages, arrived: record.arrived, read: record.read },
    };
    let (result, extractor, error) = match &task.state {
        TaskState::Completed { result, extractor } => (Some(result.clone()), Some(extractor.to_string()), None),
        TaskState::Failed { code } => {
            (None, None, Some(ErrorBody { code: *code, message: failure_message(*code).to_owned() }))
        }
        TaskState::Processing { .. } => (None, None, None),
    };
    TaskView {
        task_id: id.to_string(),
        task_type: task.id.task_type,
        status: task.status().as_str(),
        stage: stage_name(task.state.stage()),
        pages,
        created_at: task.created_at,
        upload_deadline: record.upload_deadline,
        usage: (!record.usage.is_zero()).then_some(record.usage),
        result,
        extractor,
        error,
    }
}

/// A sentence for each code a v2 task can end with.
pub fn failure_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::UploadExpired => "not every page arrived before the upload deadline (or one arrived after it); create a new task",
        ErrorCode::PageMismatch => "an uploaded page is not the size or SHA-256 declared for it",
        ErrorCode::PageAuthenticationFailed => {
            "a page does not open under the task key with `<task_id>/page/<index>` as associated data (sealed for another task or position, or under another key)"
        }
        ErrorCode::OcrFailure => "a page could not be read (not an image or PDF, encrypted, damaged or over a limit)",
        ErrorCode::LlmFailure => "the language model failed",
        ErrorCode::ProcessingTimeout => "the task took longer than it may",
        ErrorCode::InvalidContent => "the form or library is not shaped as the task type requires",
        _ => "the task could not be completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use docusnap_core::store::PresignedPut;

    #[test]
    fn only_signed_headers_are_handed_to_the_client() {
        let put = PresignedPut {
            url: "http://s3/b/k?x-id=PutObject&X-Amz-SignedHeaders=content-length%3Bhost%3Bx-amz-checksum-sha256&X-Amz-Signature=ab".into(),
            method: "PUT".into(),
            headers: vec![
                ("content-length".into(), "10".into()),
                ("x-amz-checksum-sha256".into(), "c2hh".into()),
                ("x-amzn-trace-id".into(), "Root=1-x".into()),
            ],
        };
        let headers = signed_headers(&put);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-amz-checksum-sha256"], "c2hh");
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(origin_of("http://127.0.0.1:4566/bucket/k?x=1").as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(
            origin_of("https://b.s3.eu-west-1.amazonaws.com/k").as_deref(),
            Some("https://b.s3.eu-west-1.amazonaws.com")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}
