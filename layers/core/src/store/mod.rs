//! Where tasks, blobs and messages are kept: one small trait per capability, one AWS
//! implementation each ([`dynamo`], [`s3`], [`sqs`]) and in-memory fakes ([`memory`]) for
//! unit tests of domain logic. Integration tests run the AWS ones against moto.

use std::future::Future;

use crate::clock::Timestamp;
use crate::codes::ErrorCode;
use crate::ids::{ClientId, Principal};
use crate::task::{ExtractorKind, Stage, Task, TaskId, TokenUsage};
use crate::v2::V2Record;

pub mod dynamo;
pub mod keys;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod quotas;
pub mod s3;
pub mod sqs;

pub use dynamo::DynamoTaskStore;
pub use keys::DynamoKeyBindings;
pub use quotas::DynamoQuotaStore;
pub use s3::S3BlobStore;
pub use sqs::SqsQueue;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service failed or could not be reached.
    #[error("{operation} failed: {detail}")]
    Backend {
        operation: &'static str,
        detail: String,
        #[source]
        source: BoxError,
    },
    /// An item that this code did not write, or wrote with another schema.
    #[error("malformed stored item: {0}")]
    Malformed(String),
    /// The service took the request but left part of a batch undone.
    #[error("partly done: {0}")]
    Partial(String),
}

impl StoreError {
    /// Whether the same call may succeed later. A malformed item stays malformed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StoreError::Malformed(_))
    }
}

impl StoreError {
    /// Maps an SDK error into a `Backend` error that keeps the cause and its full context.
    pub(crate) fn backend<E>(operation: &'static str) -> impl FnOnce(E) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| StoreError::Backend {
            operation,
            detail: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            source: Box::new(e),
        }
    }
}

/// The deployed task table and uploads bucket, as the configuration names them.
pub fn aws_stores(config: &crate::config::Config, sdk: &aws_config::SdkConfig) -> (DynamoTaskStore, S3BlobStore) {
    (
        DynamoTaskStore::new(crate::aws::dynamodb(sdk), config.tasks_table.clone()),
        S3BlobStore::new(crate::aws::s3(sdk, config.s3_force_path_style), config.uploads_bucket.clone()),
    )
}

/// Whether [`TaskStore::create`] made the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    /// A live task with this id already exists (a repeated or concurrent upload).
    AlreadyExists,
}

/// How a task ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `result` is sealed for the client; `extractor` names what made it.
    Completed {
        result: String,
        extractor: ExtractorKind,
    },
    Failed(ErrorCode),
}

/// The task table: what every task has (v1's, batch's and v2's alike).
pub trait TaskStore: Send + Sync {
    /// Creates `task` unless a live task with its id exists; exactly one of any number of
    /// concurrent calls for one id gets [`Created::New`].
    fn create(&self, task: &Task) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Reads a live task without touching it.
    fn get(&self, id: &TaskId, now: Timestamp) -> impl Future<Output = Result<Option<Task>, StoreError>> + Send;

    /// Reads a live task and refreshes its last access (and so its expiry), in one step.
    fn touch(&self, id: &TaskId, now: Timestamp) -> impl Future<Output = Result<Option<Task>, StoreError>> + Send;

    /// Ends a processing task and forgets its wrapped key. Returns false, changing
    /// nothing, when the task is not (or no longer) processing.
    fn finish(&self, id: &TaskId, outcome: Outcome) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves a processing task from stage `from` to `to`; false, changing nothing, when it
    /// is not processing at `from` (another delivery got there first, or it ended).
    fn advance(&self, id: &TaskId, from: Stage, to: Stage) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes a task for extraction: moves it from [`Stage::Read`] to
    /// [`Stage::Extracting`], or takes over a claim older than `stale_before`. False,
    /// changing nothing, when it is not processing, not read yet, or freshly claimed.
    fn claim(
        &self, id: &TaskId, now: Timestamp, stale_before: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that page group `group` of a fanned-out task has its output stored, and
    /// returns how many distinct groups have: a set, so a duplicate or a retry of a group
    /// counts once, and the order groups finish in does not matter. `None`, changing
    /// nothing, when the task is not processing at [`Stage::Uploaded`].
    fn group_read(&self, id: &TaskId, group: u32) -> impl Future<Output = Result<Option<usize>, StoreError>> + Send;

    /// Forgets one task.
    fn delete(&self, id: &TaskId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds the LLM tokens an extraction used to the task's count (a task gone meanwhile
    /// is not an error).
    fn add_usage(&self, id: &TaskId, usage: TokenUsage) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many of a client's tasks are processing and were created after `since` (older
    /// ones have timed out, whether or not anyone has read them since).
    fn count_in_flight(
        &self, client_id: &ClientId, since: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Forgets every task of a client; returns how many there were.
    fn delete_client(&self, client_id: &ClientId) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// What the task table keeps of v2 tasks besides their state: their record (token digest,
/// pages, deadline, callback) and the counts of pages arrived and read.
pub trait V2TaskStore: TaskStore {
    /// Creates a v2 task with what the table keeps of it besides its state (its token's
    /// digest, its pages, its deadline and callback); as [`TaskStore::create`] otherwise.
    fn create_v2(&self, task: &Task, record: &V2Record) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Reads a live v2 task and its record, without touching it.
    fn get_v2(
        &self, id: &TaskId, now: Timestamp,
    ) -> impl Future<Output = Result<Option<(Task, V2Record)>, StoreError>> + Send;

    /// Records that page `page` of a v2 task has arrived and returns how many distinct
    /// pages have (a set: duplicates and reordered notifications count once). `None`,
    /// changing nothing, when the task is not processing at [`Stage::Receiving`] or
    /// [`Stage::Uploaded`] (the last page's run may have died before reading: a retry
    /// must still find the count complete).
    fn page_arrived(&self, id: &TaskId, page: usize) -> impl Future<Output = Result<Option<usize>, StoreError>> + Send;

    /// Records that `pages` pages of part `part` (a page group, or 0 for a task read in one
    /// go) of a v2 task are read: set, not added, so a retry counts once. What `GET` shows as
    /// the pages read so far is the sum over the parts.
    fn pages_read(&self, id: &TaskId, part: u32, pages: usize) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An object as listed: enough to tell versions apart and order them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub etag: String,
    /// Milliseconds since the epoch (S3's resolution is a second).
    pub last_modified: i64,
    /// Bytes, as stored.
    pub size: u64,
}

/// The uploads bucket.
pub trait BlobStore: Send + Sync {
    /// Every object under `prefix`, in key order.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<StoredObject>, StoreError>> + Send;

    fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Deletes these objects; keys that name no object are no error.
    fn delete(&self, keys: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes every object under `prefix`; returns how many there were.
    fn delete_prefix(&self, prefix: &str) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// What a key binding allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The key was free (now bound to this content), or is bound to this same content.
    Allowed,
    /// The key is bound to other content: refuse without decrypting anything.
    OtherContent,
}

/// Each wrapped key's first content ([`keys`] says why).
pub trait KeyBindings: Send + Sync {
    /// Binds `key` (a digest of the wrapped key) to `content` (the content's SHA-256) until
    /// `expires_at`, unless it is bound already. Of concurrent binds of one key to
    /// different contents exactly one is allowed; binding the same content again is.
    fn bind(
        &self, key: &str, content: &str, now: Timestamp, expires_at: Timestamp,
    ) -> impl Future<Output = Result<Binding, StoreError>> + Send;
}

/// A queue that hands work to the next function.
/// A presigned upload: what a client sends, straight to the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    pub method: String,
    /// Headers the request must carry, as signed (the checksum among them).
    pub headers: Vec<(String, String)>,
}

/// Upload URLs for objects a client writes itself (v2's pages).
pub trait UploadUrls: Send + Sync {
    /// A PUT of `key` that the store accepts only with exactly `size` bytes whose SHA-256
    /// is `sha256_base64`, for `expires_secs`.
    fn presign_put(
        &self, key: &str, size: u64, sha256_base64: &str, expires_secs: u64,
    ) -> impl Future<Output = Result<PresignedPut, StoreError>> + Send;
}

pub trait Queue: Send + Sync {
    fn send(&self, body: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sends a message that becomes visible `delay_secs` later (SQS allows up to 900).
    fn send_delayed(&self, body: &str, delay_secs: u32) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Hides a received message (by its receipt) for `secs` more: a failed delivery's
    /// backoff before SQS hands it out again.
    fn retry_after(&self, receipt: &str, secs: u32) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One principal's own limits, as an operator set them on its `limits` item: each unset
/// field keeps the deployment's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaOverride {
    pub tasks_in_flight: Option<u32>,
    pub pages_per_day: Option<u32>,
}

/// What adding a task to the tasks in flight did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    Added,
    /// The task was there already (a retried request): nothing added, nothing to undo.
    AlreadyHeld,
    Full,
}

/// The quota table (the quota module's policy runs over it): [`quotas`] on DynamoDB, and an
/// in-memory one for unit tests.
pub trait QuotaStore: Send + Sync {
    /// The principal's own limits, if an operator set any.
    fn own_limits(&self, who: &Principal) -> impl Future<Output = Result<Option<QuotaOverride>, StoreError>> + Send;
    /// Adds `task` to the principal's tasks in flight if fewer than `limit` are there.
    fn hold(&self, who: &Principal, task: &str, limit: u32) -> impl Future<Output = Result<Hold, StoreError>> + Send;
    /// The principal's tasks in flight, as held.
    fn held(&self, who: &Principal) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Removes `tasks` from the principal's tasks in flight (those not there are ignored).
    fn release(&self, who: &Principal, tasks: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds `pages` to the principal's count for `day` if it stays within `limit`; false
    /// (nothing added) if it would not.
    fn count_pages(
        &self, who: &Principal, day: &str, pages: u32, limit: u32, expires_at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Takes back pages counted for a task that was not made.
    fn uncount_pages(
        &self, who: &Principal, day: &str, pages: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
