//! A task: what one client asked of one upload, and the rules of its lifetime.

use crate::clock::Timestamp;
use crate::codes::ErrorCode;
use crate::ids::{ClientId, TaskType};
#[cfg(test)]
use crate::limits::MAX_ID_CHARS;
use crate::limits::{PROCESSING_TIMEOUT_SECS, TASK_RETENTION_SECS};

/// A task's identity in v1: (client_id, SHA256, type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskId {
    pub client_id: ClientId,
    pub task_type: TaskType,
    pub sha256: String,
}

impl TaskId {
    pub fn new(client_id: ClientId, task_type: TaskType, sha256: impl Into<String>) -> Self {
        Self { client_id, task_type, sha256: sha256.into() }
    }

    /// The sort key within a client's tasks: `type#sha256`.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", self.task_type, self.sha256)
    }

    pub fn from_sort_key(client_id: ClientId, sort_key: &str) -> Option<Self> {
        let (task_type, sha256) = sort_key.split_once('#')?;
        Some(Self::new(client_id, TaskType::parse(task_type)?, sha256))
    }

    /// Where a task's objects live in the uploads bucket: under its client's prefix, then
    /// `type/sha256/`. A created task's `sha256` is the 64 hex digits of its content's
    /// hash, so every key is short and of one shape.
    pub fn object_prefix(&self) -> String {
        format!("{}{}/{}/", client_prefix(&self.client_id), self.task_type, self.sha256)
    }

    /// The object that holds the envelope as the client sent it; its creation starts OCR.
    pub fn envelope_key(&self) -> String {
        format!("{}{ENVELOPE_OBJECT}", self.object_prefix())
    }

    /// Whether `key` is where some task's envelope would be. The key does not name the
    /// client (only its digest): the envelope itself does (`protocol::Envelope`), and a
    /// reader checks that the envelope's task has this very key.
    pub fn is_envelope_key(key: &str) -> bool {
        let Some(rest) = key.strip_prefix(TASKS_PREFIX) else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        matches!(parts.as_slice(), [digest, task_type, sha256, object]
            if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
                && TaskType::parse(task_type).is_some() && !sha256.is_empty() && *object == ENVELOPE_OBJECT)
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

/// The prefix of every object of one client: `tasks/<SHA-256 of the client id, hex>/`.
/// A digest, not the id: an id of 128 characters of any script escapes to as much as 1.5
/// KB, past S3's 1,024-byte key limit, while a digest keeps every key near 160 bytes and
/// no client's prefix can cover another's.
pub fn client_prefix(client_id: &ClientId) -> String {
    format!("{TASKS_PREFIX}{}/", crate::crypto::sha256_hex(client_id.as_str().as_bytes()))
}

/// How far a processing task has come, as the store conditions name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A v2 task waiting for its pages: the client uploads them straight to S3, and each
    /// arrival is counted; the last moves the task to `Uploaded`. v1 tasks never have it.
    Receiving,
    /// The envelope (v2: every page) is stored; OCR has not finished.
    Uploaded,
    /// OCR output is stored and the extract queue told; a redelivered OCR message skips it.
    Read,
    /// An extract function holds the task; a second delivery of the same message leaves it
    /// alone until the claim is older than [`extract_claim_secs`].
    Extracting,
}

/// How long an extraction claim holds, for an extract function whose timeout is
/// `timeout_secs`: a fifth longer, so only a claim whose holder is surely gone is taken
/// over (360 s for template.yaml's 300 s; the extract queue's visibility timeout must
/// outlast it, which the template test checks). Derived rather than fixed so that a local
/// stack run on a shorter clock (scripts/chaos) keeps the same order.
pub const fn extract_claim_secs(timeout_secs: u64) -> i64 {
    (timeout_secs + timeout_secs / 5) as i64
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Receiving => "receiving",
            Stage::Uploaded => "uploaded",
            Stage::Read => "read",
            Stage::Extracting => "extracting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Receiving, Stage::Uploaded, Stage::Read, Stage::Extracting]
            .into_iter()
            .find(|stage| stage.as_str() == s)
    }
}

/// The LLM tokens a task used, as the provider counted them (prompt and completion): kept
/// on the task, shown in v2's task answer, and counted as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl TokenUsage {
    pub fn add(&mut self, other: TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }

    pub fn is_zero(&self) -> bool {
        self.input_tokens == 0 && self.output_tokens == 0
    }
}

/// What made a result. Recorded beside the result, not in it, since v1 clients render
/// every key they get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtractorKind {
    /// An LLM, by its model name, and the answer format it was asked for (none for a
    /// task recorded before formats were).
    Llm { model: String, format: Option<AnswerFormat> },
    /// The offline rules, with no LLM configured.
    Rules,
    /// The offline rules, because the LLM failed.
    RulesFallback,
}

/// How an LLM is held to the answer's shape (docs/extraction.md, "Structured outputs").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnswerFormat {
    /// The provider enforces the answer's JSON schema: OpenAI's `json_schema` response
    /// format (vLLM, llama-server), Bedrock's `outputConfig.textFormat`.
    JsonSchema,
    /// The schema inside `{"type": "json_object", "schema": ...}`: llama-cpp-python's
    /// server, which takes no `json_schema`.
    JsonObjectSchema,
    /// Bedrock: one tool whose input schema is the answer's, and the model made to call it.
    Tool,
    /// Any JSON object (`json_object`): Zhipu's only form.
    JsonObject,
    /// Nothing but the prompt.
    Off,
}

impl AnswerFormat {
    pub const ALL: [AnswerFormat; 5] = [
        AnswerFormat::JsonSchema,
        AnswerFormat::JsonObjectSchema,
        AnswerFormat::Tool,
        AnswerFormat::JsonObject,
        AnswerFormat::Off,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnswerFormat::JsonSchema => "json-schema",
            AnswerFormat::JsonObjectSchema => "json-object-schema",
            AnswerFormat::Tool => "tool",
            AnswerFormat::JsonObject => "json-object",
            AnswerFormat::Off => "off",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the provider is given the answer's schema (not only "JSON").
    pub fn has_schema(self) -> bool {
        matches!(self, AnswerFormat::JsonSchema | AnswerFormat::JsonObjectSchema | AnswerFormat::Tool)
    }
}

impl ExtractorKind {
    /// The metric dimension: the kind without the model.
    pub fn label(&self) -> &'static str {
        match self {
            ExtractorKind::Llm { .. } => "llm",
            ExtractorKind::Rules => "rules",
            ExtractorKind::RulesFallback => "rules-fallback",
        }
    }

    /// The stored form: `llm:<model> (<format>)`, `rules` or `rules-fallback`; an older
    /// `llm:<model>` without its format is read too. Model ids hold no spaces.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rules" => Some(ExtractorKind::Rules),
            "rules-fallback" => Some(ExtractorKind::RulesFallback),
            _ => {
                let rest = s.strip_prefix("llm:")?;
                let (model, format) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
                    Some((model, format)) => (model, Some(AnswerFormat::parse(format)?)),
                    None => (rest, None),
                };
                (!model.is_empty() && !model.contains(' '))
                    .then(|| ExtractorKind::Llm { model: model.to_owned(), format })
            }
        }
    }
}

impl std::fmt::Display for ExtractorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtractorKind::Llm { model, format: Some(format) } => write!(f, "llm:{model} ({})", format.name()),
            ExtractorKind::Llm { model, format: None } => write!(f, "llm:{model}"),
            other => f.write_str(other.label()),
        }
    }
}

/// Where a processing task is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Receiving,
    Uploaded,
    Read,
    /// Claimed for extraction at `claimed_at`.
    Extracting {
        claimed_at: Timestamp,
    },
}

impl Progress {
    pub fn stage(&self) -> Stage {
        match self {
            Progress::Receiving => Stage::Receiving,
            Progress::Uploaded => Stage::Uploaded,
            Progress::Read => Stage::Read,
            Progress::Extracting { .. } => Stage::Extracting,
        }
    }
}

/// The states a task can be in, and what each one carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Still running. (The client's RSA-wrapped key is in the task's envelope in S3, and
    /// nowhere in the table, so no table backup holds it.)
    Processing {
        progress: Progress,
    },
    /// Done: `result` is base64(IV || AES-256-CBC(result JSON)) under the client's key.
    Completed {
        result: String,
        extractor: ExtractorKind,
    },
    Failed {
        code: ErrorCode,
    },
}

/// A task's status as v1 names it.
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

impl TaskState {
    pub fn status(&self) -> TaskStatus {
        match self {
            TaskState::Processing { .. } => TaskStatus::Processing,
            TaskState::Completed { .. } => TaskStatus::Completed,
            TaskState::Failed { .. } => TaskStatus::Error,
        }
    }

    /// The stage of a processing task; `None` once it has ended.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            TaskState::Processing { progress } => Some(progress.stage()),
            _ => None,
        }
    }
}

/// What a queue message between stages carries: the task's identity, never its content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskMessage {
    pub client_id: ClientId,
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

/// An OCR message for one group of a long task's pages: the OCR function fans a task out
/// into such messages on its own queue when it has more pages than one invocation should
/// read, and the last group to finish sends the task on to extraction.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupMessage {
    #[serde(flatten)]
    pub task: TaskMessage,
    /// From 0.
    pub group: u32,
    pub groups: u32,
    /// v2: how many pages each upload holds (a PDF or TIFF holds several), so that a group
    /// fetches only the uploads its pages are in. Empty for v1, whose pages all come from
    /// one envelope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layout: Vec<u32>,
}

/// The sealed OCR output's object name within a task's prefix.
pub const OCR_OBJECT: &str = "ocr.bin";

impl TaskId {
    /// Where the OCR output is kept, sealed under the client's key.
    pub fn ocr_key(&self) -> String {
        format!("{}{OCR_OBJECT}", self.object_prefix())
    }

    /// Where one page group's OCR output is kept (sealed like [`Self::ocr_key`]'s) until
    /// the last group joins them; under the task's prefix, so ending the task removes it.
    pub fn group_key(&self, group: u32) -> String {
        format!("{}groups/{group}.bin", self.object_prefix())
    }
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub state: TaskState,
    pub created_at: Timestamp,
    pub last_access: Timestamp,
}

impl Task {
    /// A task just accepted for processing.
    pub fn new_processing(id: TaskId, now: Timestamp) -> Self {
        Self { id, state: TaskState::Processing { progress: Progress::Uploaded }, created_at: now, last_access: now }
    }

    pub fn status(&self) -> TaskStatus {
        self.state.status()
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
        self.status() == TaskStatus::Processing && now >= self.created_at + PROCESSING_TIMEOUT_SECS
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
    fn object_keys_are_short_whatever_the_client_id() {
        let long_cjk = "文".repeat(MAX_ID_CHARS);
        for client in ["plain", "with/slash", "spaces and ü", "a%2Fb", "tasks/x", long_cjk.as_str()] {
            let client = ClientId::parse(client).unwrap();
            let id = TaskId::new(client.clone(), TaskType::Form, "ab".repeat(32));
            let key = id.envelope_key();
            assert!(key.starts_with(&client_prefix(&client)));
            assert!(key.len() <= 200, "{} bytes: {key}", key.len());
            assert!(TaskId::is_envelope_key(&key), "{key}");
        }
        for not_one in [
            "tasks/c/doc/ab/envelope.json",
            "batch/x/doc/ab/envelope.json",
            &format!("tasks/{}/doc/ab/ocr.bin", "0".repeat(64)),
            &format!("tasks/{}/nope/ab/envelope.json", "0".repeat(64)),
        ] {
            assert!(!TaskId::is_envelope_key(not_one), "{not_one}");
        }
    }

    #[test]
    fn timeout_and_expiry_follow_v1_minutes() {
        let task = Task::new_processing(TaskId::new(ClientId::parse("c").unwrap(), TaskType::Doc, "s"), 1_000);
        assert!(!task.is_timed_out(1_000 + 599));
        assert!(task.is_timed_out(1_000 + 600));
        assert!(!task.is_expired(1_000 + 1440 * 60 - 1));
        assert!(task.is_expired(1_000 + 1440 * 60));
        let done = Task { state: TaskState::Completed { result: "r".into(), extractor: ExtractorKind::Rules }, ..task };
        assert!(!done.is_timed_out(1_000 + 10_000));
    }

    #[test]
    fn sort_keys_parse_back() {
        let c = ClientId::parse("c").unwrap();
        let id = TaskId::new(c.clone(), TaskType::Fill, "ff");
        assert_eq!(TaskId::from_sort_key(c.clone(), &id.sort_key()), Some(id));
        assert_eq!(TaskId::from_sort_key(c, "nope#ff"), None);
    }

    #[test]
    fn extractors_round_trip_through_their_stored_names() {
        let llm = |model: &str, format| ExtractorKind::Llm { model: model.into(), format };
        for kind in [
            ExtractorKind::Rules,
            ExtractorKind::RulesFallback,
            llm("glm-4-plus", None),
            llm("amazon.nova-lite-v1:0", Some(AnswerFormat::Tool)),
            llm("qwen2.5:7b", Some(AnswerFormat::JsonObjectSchema)),
        ] {
            assert_eq!(ExtractorKind::parse(&kind.to_string()), Some(kind));
        }
        assert_eq!(llm("m:1", None).to_string(), "llm:m:1");
        assert_eq!(llm("m:1", Some(AnswerFormat::JsonSchema)).to_string(), "llm:m:1 (json-schema)");
        assert_eq!(ExtractorKind::parse("llm:m (telepathy)"), None);
        assert_eq!(ExtractorKind::parse("llm: (off)"), None);
        assert_eq!(ExtractorKind::parse("llm:"), None);
        assert_eq!(ExtractorKind::parse("magic"), None);
    }
}
