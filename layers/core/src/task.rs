//! A task: what one client asked of one upload, and the rules of its lifetime.

use crate::clock::Timestamp;
use crate::limits::{PROCESSING_TIMEOUT_SECS, TASK_RETENTION_SECS};
use crate::protocol::{ErrorCode, TaskType};

/// A task's identity in v1: (client_id, SHA256, type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskId {
    pub client_id: String,
    pub task_type: TaskType,
    pub sha256: String,
}

impl TaskId {
    pub fn new(client_id: impl Into<String>, task_type: TaskType, sha256: impl Into<String>) -> Self {
        Self { client_id: client_id.into(), task_type, sha256: sha256.into() }
    }

    /// The sort key within a client's tasks: `type#sha256`.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", self.task_type, self.sha256)
    }

    pub fn from_sort_key(client_id: &str, sort_key: &str) -> Option<Self> {
        let (task_type, sha256) = sort_key.split_once('#')?;
        Some(Self::new(client_id, TaskType::parse(task_type)?, sha256))
    }

    /// Where a task's objects live in the uploads bucket. The client id is escaped so that
    /// one client's prefix can never contain another's.
    pub fn object_prefix(&self) -> String {
        format!("{}{}/", client_prefix(&self.client_id), self.sort_key().replace('#', "/"))
    }

    /// The object that holds the envelope as the client sent it; its creation starts OCR.
    pub fn envelope_key(&self) -> String {
        format!("{}{ENVELOPE_OBJECT}", self.object_prefix())
    }

    /// Reads a task back from its envelope key, as an S3 notification names it.
    pub fn from_envelope_key(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(TASKS_PREFIX)?;
        let mut parts = rest.split('/');
        let (client, task_type, sha256, object) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if object != ENVELOPE_OBJECT || parts.next().is_some() {
            return None;
        }
        let client_id = percent_encoding::percent_decode_str(client).decode_utf8().ok()?;
        Some(Self::new(client_id, TaskType::parse(task_type)?, sha256))
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.client_id, self.task_type, self.sha256)
    }
}

/// Every task object lives under this prefix; the bucket's OCR notification filters on it.
pub const TASKS_PREFIX: &str = "tasks/";
/// The envelope's object name within a task's prefix; the notification's suffix filter.
pub const ENVELOPE_OBJECT: &str = "envelope.json";

/// Characters kept as they are in a client's key prefix: RFC 3986 unreserved ones.
const KEY_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The prefix of every object of one client.
pub fn client_prefix(client_id: &str) -> String {
    format!("{TASKS_PREFIX}{}/", percent_encoding::utf8_percent_encode(client_id, KEY_ESCAPE))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    Processing,
    Completed,
    Error,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Processing => "processing",
            TaskStatus::Completed => "completed",
            TaskStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [TaskStatus::Processing, TaskStatus::Completed, TaskStatus::Error]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// How far a processing task has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The envelope is stored; OCR has not finished.
    Uploaded,
    /// OCR output is stored and the extract queue told; a redelivered OCR message skips it.
    Read,
    /// An extract function holds the task (since `claimed_at`); a second delivery of the
    /// same message leaves it alone until the claim is older than [`EXTRACT_CLAIM_SECS`].
    Extracting,
}

/// How long an extraction claim holds: longer than the extract function's timeout (five
/// minutes in template.yaml), so only a claim whose holder is surely gone is taken over.
pub const EXTRACT_CLAIM_SECS: i64 = 6 * 60;

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Uploaded => "uploaded",
            Stage::Read => "read",
            Stage::Extracting => "extracting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Uploaded, Stage::Read, Stage::Extracting].into_iter().find(|stage| stage.as_str() == s)
    }
}

/// What a queue message between stages carries: the task's identity, never its content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskMessage {
    pub client_id: String,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    #[serde(rename = "SHA256")]
    pub sha256: String,
}

impl From<&TaskId> for TaskMessage {
    fn from(id: &TaskId) -> Self {
        Self { client_id: id.client_id.clone(), task_type: id.task_type, sha256: id.sha256.clone() }
    }
}

impl From<TaskMessage> for TaskId {
    fn from(m: TaskMessage) -> Self {
        TaskId::new(m.client_id, m.task_type, m.sha256)
    }
}

/// The sealed OCR output's object name within a task's prefix.
pub const OCR_OBJECT: &str = "ocr.bin";

impl TaskId {
    /// Where the OCR output is kept, sealed under the client's key.
    pub fn ocr_key(&self) -> String {
        format!("{}{OCR_OBJECT}", self.object_prefix())
    }
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub status: TaskStatus,
    pub stage: Stage,
    /// Set when `status` is `Error`.
    pub error: Option<ErrorCode>,
    /// base64(IV || AES-256-CBC(result JSON)) under the client's key, when completed.
    pub result: Option<String>,
    /// The client's AES key, still RSA-wrapped exactly as sent; kept only while the task
    /// runs, so the later stages can encrypt for the client.
    pub wrapped_key: Option<String>,
    /// Which extractor made the result (`llm:<model>` or `rules`): for operators, kept
    /// beside the result rather than in it, since v1 clients render every key they get.
    pub extractor: Option<String>,
    /// When the current extraction claim was taken.
    pub claimed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub last_access: Timestamp,
}

impl Task {
    /// A task just accepted for processing.
    pub fn new_processing(id: TaskId, wrapped_key: String, now: Timestamp) -> Self {
        Self {
            id,
            status: TaskStatus::Processing,
            stage: Stage::Uploaded,
            error: None,
            result: None,
            wrapped_key: Some(wrapped_key),
            extractor: None,
            claimed_at: None,
            created_at: now,
            last_access: now,
        }
    }

    /// When the table's TTL may delete the item: a day after the last access.
    pub fn expires_at(&self) -> Timestamp {
        expiry_after(self.last_access)
    }

    /// DynamoDB deletes expired items lazily (up to days later), so readers must treat an
    /// expired item as gone themselves.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at()
    }

    /// Still processing ten minutes after creation: v1 reports `PROCESSING_TIMEOUT`.
    pub fn is_timed_out(&self, now: Timestamp) -> bool {
        self.status == TaskStatus::Processing && now >= self.created_at + PROCESSING_TIMEOUT_SECS
    }
}

/// The TTL for an item last read at `last_access`.
pub fn expiry_after(last_access: Timestamp) -> Timestamp {
    last_access + TASK_RETENTION_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keys_round_trip_even_for_odd_client_ids() {
        for client in ["plain", "with/slash", "spaces and ü", "a%2Fb", "tasks/x"] {
            let id = TaskId::new(client, TaskType::Form, "ab12");
            let key = id.envelope_key();
            assert!(key.starts_with(&client_prefix(client)));
            assert_eq!(key.matches('/').count(), 4, "{key}");
            assert_eq!(TaskId::from_envelope_key(&key), Some(id));
        }
        assert_eq!(TaskId::from_envelope_key("tasks/c/doc/ab/other.bin"), None);
        assert_eq!(TaskId::from_envelope_key("batch/c/doc/ab/envelope.json"), None);
    }

    #[test]
    fn one_clients_prefix_never_covers_another_client() {
        assert!(!client_prefix("ab/c").starts_with(&client_prefix("ab")));
        assert!(!client_prefix("abc").starts_with(&client_prefix("ab")));
    }

    #[test]
    fn timeout_and_expiry_follow_v1_minutes() {
        let task = Task::new_processing(TaskId::new("c", TaskType::Doc, "s"), "k".into(), 1_000);
        assert!(!task.is_timed_out(1_000 + 599));
        assert!(task.is_timed_out(1_000 + 600));
        assert!(!task.is_expired(1_000 + 1440 * 60 - 1));
        assert!(task.is_expired(1_000 + 1440 * 60));
        let done = Task { status: TaskStatus::Completed, ..task };
        assert!(!done.is_timed_out(1_000 + 10_000));
    }

    #[test]
    fn sort_keys_parse_back() {
        let id = TaskId::new("c", TaskType::Fill, "ff");
        assert_eq!(TaskId::from_sort_key("c", &id.sort_key()), Some(id));
        assert_eq!(TaskId::from_sort_key("c", "nope#ff"), None);
    }
}
