//! How pages come in to be read, apart from reading them: batch files turned into tasks,
//! v2 pages counted as they land and the upload deadline kept, a long task fanned out
//! into page groups on the OCR queue, and the groups' outputs joined once every group is
//! read. The OCR function calls these around its engine.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use tracing::{info, warn};

use crate::batch::{self, BatchDocument};
use crate::clock::Timestamp;
use crate::codes::{ErrorCode, Failure};
use crate::config::Limits;
use crate::crypto::{sha256_hex, AesKey, ClientWrap, CryptoError, KeyError, ServerKey};
use crate::ids::TaskType;
use crate::metrics;
use crate::ocr_output::PageText;
use crate::pipeline;
use crate::protocol::Envelope;
use crate::store::{BlobStore, Created, Outcome, Queue, StoreError, StoredObject, TaskStore, V2TaskStore};
use crate::task::{GroupMessage, Stage, TaskId, TaskMessage};
use crate::v2::{upload_grace_secs, Manifest, V2TaskId};

/// Why an intake step could not finish now; the message comes back.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sealing failed: {0}")]
    Seal(#[source] CryptoError),
    #[error("the server's public key is unusable: {0}")]
    ServerKey(#[source] KeyError),
    #[error("a queue message could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),
    /// Every group counted itself read, but one's output is not (yet) readable: S3 is
    /// strongly consistent, so only a store fault gets here.
    #[error("page group {0} of the task has no output")]
    MissingGroup(u32),
    #[error("page group {0}'s output cannot be opened: {1}")]
    GroupOutput(u32, #[source] pipeline::OpenError),
    /// A v2 task's manifest that this code did not write; the message dead-letters.
    #[error("object {0:?} is not a task manifest")]
    NotAManifest(String),
}

/// What a v2 page's arrival leaves the OCR function to do.
#[derive(Debug)]
pub enum Arrival {
    /// Nothing now: pages are outstanding, the task moved on, or it is gone.
    Waiting,
    /// The task cannot go on: it ends with this failure.
    Failed(Failure),
    /// Every page is here and the task is `uploaded`: read it.
    Complete(Manifest),
}

/// One page of a v2 task has landed (`written`: when S3 stored it, if the notification
/// says): counted once (a set), and the page that completes the count moves the task to
/// `uploaded`. A page late past the deadline's grace, or of another size than declared,
/// fails the task.
pub async fn page_arrived<T: V2TaskStore, B: BlobStore>(
    tasks: &T, blobs: &B, task: &V2TaskId, (page, size, written): (usize, Option<u64>, Option<Timestamp>),
    now: Timestamp,
) -> Result<Arrival, IntakeError> {
    let id = task.task_id();
    let Some((state, record)) = tasks.get_v2(&id, now).await? else {
        info!("the task is gone (deleted or expired); the page is left to the lifecycle rule");
        return Ok(Arrival::Waiting);
    };
    match state.state.stage() {
        None => {
            info!("the task has ended; its objects go");
            pipeline::settle_ended(tasks, blobs, &id, now).await?;
            return Ok(Arrival::Waiting);
        }
        Some(Stage::Read | Stage::Extracting) => return Ok(Arrival::Waiting),
        Some(Stage::Receiving | Stage::Uploaded) => {}
    }
    if page >= record.pages {
        warn!(pages = record.pages, "a page beyond those declared; ignored");
        return Ok(Arrival::Waiting);
    }
    let window = record.upload_deadline - state.created_at;
    // Judged by when S3 stored the page (a backed-up queue delays only the notice); a
    // time after the function's clock is not believed.
    if written.map_or(now, |w| w.min(now)) > record.upload_deadline + upload_grace_secs(window) {
        return Ok(Arrival::Failed(Failure::new(ErrorCode::UploadExpired, "a page landed after the upload deadline")));
    }
    let Some(manifest) = manifest(blobs, task).await? else { return Ok(Arrival::Waiting) };
    // S3 refuses an upload of another size than the URL was signed for; a store that
    // does not (moto) is held to it here.
    if let (Some(size), Some(declared)) = (size, manifest.pages.get(page)) {
        if size != declared.size {
            let why = format!("page {page} is {size} bytes, declared {}", declared.size);
            return Ok(Arrival::Failed(Failure::new(ErrorCode::PageMismatch, why)));
        }
    }
    let Some(arrived) = tasks.page_arrived(&id, page).await? else {
        info!("the task moved on meanwhile");
        return Ok(Arrival::Waiting);
    };
    info!(arrived, pages = record.pages, "page landed");
    if arrived < record.pages {
        return Ok(Arrival::Waiting);
    }
    // Every page is here. The move may have been made by a duplicate or an earlier run
    // of this message that died before reading; either way the task is read now.
    tasks.advance(&id, Stage::Receiving, Stage::Uploaded).await?;
    Ok(Arrival::Complete(manifest))
}

/// What the upload deadline's message finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Deadline {
    /// The task is past receiving (or gone): nothing to do.
    Passed,
    /// The grace after the deadline has not run out: the message comes back this many
    /// seconds later (SQS delays a message by 15 minutes at most).
    Again(u32),
    /// Pages are missing past the grace: the task ends so.
    Expired(Failure),
}

pub async fn upload_deadline<T: V2TaskStore>(
    tasks: &T, task: &V2TaskId, now: Timestamp,
) -> Result<Deadline, IntakeError> {
    let Some((state, record)) = tasks.get_v2(&task.task_id(), now).await? else { return Ok(Deadline::Passed) };
    if state.state.stage() != Some(Stage::Receiving) {
        return Ok(Deadline::Passed);
    }
    let closes = record.upload_deadline + upload_grace_secs(record.upload_deadline - state.created_at);
    if now < closes {
        return Ok(Deadline::Again((closes - now).clamp(1, crate::v2::UPLOAD_WINDOW_SECS) as u32));
    }
    let why = format!("{} of {} pages arrived by the deadline", record.arrived, record.pages);
    Ok(Deadline::Expired(Failure::new(ErrorCode::UploadExpired, why)))
}

/// A v2 task's manifest; `None` once the task's objects are gone (deleted or ended).
pub async fn manifest<B: BlobStore>(blobs: &B, task: &V2TaskId) -> Result<Option<Manifest>, IntakeError> {
    let Some(bytes) = blobs.get(&task.manifest_key()).await? else {
        info!("the manifest is gone (the task was deleted or has ended); nothing to do");
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|_| IntakeError::NotAManifest(task.manifest_key()))
}

/// Turns a batch document into a task, as a client's upload would: its pages sealed
/// under a fresh key wrapped for the server, an envelope whose creation starts OCR.
/// `object` is the file whose notification this is; `last_receive`: earlier runs of it
/// died (loading the pages, say), so the document ends with `OCR_FAILURE` unless an
/// earlier run did make it a task.
pub async fn ingest<T: TaskStore, B: BlobStore>(
    tasks: &T, blobs: &B, server: &ServerKey, limits: &Limits, document: BatchDocument, object: &str,
    (now, last_receive): (Timestamp, bool),
) -> Result<(), IntakeError> {
    let pages: Vec<StoredObject> =
        blobs.list(document.list_prefix()).await?.into_iter().filter(|o| document.has_page(&o.key)).collect();
    // Pages of a folder arrive one by one; the newest page's notification starts the
    // document, so a folder copied in at once is read once, not once per page.
    let Some(newest) = pages.iter().max_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key))) else {
        info!("the page is gone; nothing to do");
        return Ok(());
    };
    if newest.key != object {
        info!(newest = %newest.key, "a newer page's notification starts the document");
        return Ok(());
    }
    let listing: String = pages.iter().map(|o| format!("{} {}\n", o.key, o.etag)).collect();
    let id = TaskId::new(document.client_id(), TaskType::Doc, sha256_hex(listing.as_bytes()));
    // The limits are checked from the listing, before a page is loaded: a document over
    // one gets its error result file and never becomes a task.
    let over = if last_receive && tasks.get(&id, now).await?.is_none() {
        Some(ErrorCode::OcrFailure)
    } else if pages.len() > limits.max_pages {
        Some(ErrorCode::TooManyPages)
    } else if pages.iter().any(|p| p.size > limits.max_image_bytes as u64) {
        Some(ErrorCode::ImageTooLarge)
    } else {
        None
    };
    if let (Some(code), Some(result_key)) = (over, batch::result_key(&id)) {
        warn!(code = %code, pages = pages.len(), "the batch document cannot be read");
        metrics::task_failed(code);
        blobs.put(&result_key, batch::result_file(&Outcome::Failed(code)), "application/json").await?;
        return Ok(());
    }
    let mut images = Vec::with_capacity(pages.len());
    for page in &pages {
        match blobs.get(&page.key).await? {
            Some(bytes) => images.push(BASE64.encode(bytes)),
            None => {
                info!(page = %page.key, "a page was removed meanwhile; its removal's listing decides");
                return Ok(());
            }
        }
    }
    let aes = AesKey::generate().map_err(IntakeError::Seal)?;
    let content = serde_json::json!({"to_process": images, "file_lib": {}}).to_string();
    let content = aes.seal_base64(content.as_bytes()).map_err(IntakeError::Seal)?;
    let wrap = ClientWrap::from_public_pem(server.public_key_pem()).map_err(IntakeError::ServerKey)?;
    let wrapped = wrap.wrap(aes.as_bytes()).map_err(IntakeError::Seal)?;
    let envelope = Envelope::new(&id, wrapped, content);
    if pipeline::create_task(tasks, blobs, &envelope, now).await? == Created::AlreadyExists {
        info!("this version of the document is already a task");
        return Ok(());
    }
    info!(task = %id, pages = pages.len(), "batch document queued");
    Ok(())
}

/// The pages of group `group` of `groups` over `total` pages: consecutive, as even as can
/// be, the same in every invocation (it depends on the message alone).
pub fn group_range(total: usize, groups: u32, group: u32) -> std::ops::Range<usize> {
    let per = total.div_ceil(groups.max(1) as usize).max(1);
    let start = (group as usize * per).min(total);
    start..(start + per).min(total)
}

/// Sends one message per group of `group_pages` pages to the OCR queue. A retry sends
/// them again: each group's output is the same object and its count a set, so a duplicate
/// costs a reading, never a second extraction. `layout`: a v2 task's pages per upload.
pub async fn fan_out<Q: Queue>(
    queue: &Q, id: &TaskId, pages: usize, group_pages: usize, layout: Vec<u32>,
) -> Result<(), IntakeError> {
    let groups = pages.div_ceil(group_pages.max(1)) as u32;
    for group in 0..groups {
        let message = GroupMessage { task: TaskMessage::from(id), group, groups, layout: layout.clone() };
        queue.send(&serde_json::to_string(&message).map_err(IntakeError::Encode)?).await?;
    }
    info!(pages, groups, "fanned out");
    Ok(())
}

/// Every group's pages in order, once the group just stored completes the set; `None`
/// while groups are outstanding, or when another delivery joined them first. A duplicate
/// of the last group may join too: both join the same objects, and extraction's claim
/// runs one extraction.
pub async fn join_groups<T: TaskStore, B: BlobStore>(
    tasks: &T, blobs: &B, server: &ServerKey, id: &TaskId, message: &GroupMessage, now: Timestamp,
) -> Result<Option<Vec<PageText>>, IntakeError> {
    let Some(read) = tasks.group_read(id, message.group).await? else {
        info!("the task moved on while its group was read");
        return Ok(None);
    };
    info!(read, groups = message.groups, "page group read");
    if read < message.groups as usize {
        return Ok(None);
    }
    let mut joined = Vec::new();
    for group in 0..message.groups {
        let Some(sealed) = blobs.get(&id.group_key(group)).await? else {
            // A concurrent join finished first and removed the groups.
            if tasks.get(id, now).await?.and_then(|t| t.state.stage()) != Some(Stage::Uploaded) {
                info!("another delivery joined the groups first");
                return Ok(None);
            }
            return Err(IntakeError::MissingGroup(group));
        };
        let (_, output) = pipeline::open_output(server, id, &sealed).map_err(|e| IntakeError::GroupOutput(group, e))?;
        joined.extend(output.pages);
    }
    Ok(Some(joined))
}

/// The groups' outputs once joined, or once their task has failed. The bucket's
/// lifecycle rule removes what a failed delete leaves.
pub async fn forget_groups<B: BlobStore>(blobs: &B, id: &TaskId, groups: u32) {
    let keys: Vec<String> = (0..groups).map(|g| id.group_key(g)).collect();
    if let Err(e) = blobs.delete(&keys).await {
        warn!(error = %e, "deleting the page groups' outputs failed; the lifecycle rule removes them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_page_once_in_order() {
        for total in 0..12 {
            for groups in 1..5 {
                let pages: Vec<usize> = (0..groups).flat_map(|g| group_range(total, groups, g)).collect();
                assert_eq!(pages, (0..total).collect::<Vec<_>>(), "{total} pages in {groups} groups");
            }
        }
    }
}
