//! The v1 wire protocol (`shared/PROTOCOL.md`): requests, answers and error codes.
//!
//! Request parsing follows the original service's order of checks exactly, so that a
//! request with several faults gets the same code it always got.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use crate::codes::ErrorCode;
use crate::config::Limits;
use crate::ids::{ClientId, TaskType};
use crate::limits::{MAX_BODY_BYTES, MAX_ID_CHARS};
use crate::task::TaskId;

/// A `POST /process` request that passed checks 1-3 of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessRequest {
    pub client_id: ClientId,
    pub task_type: TaskType,
    pub sha256: String,
    /// Present exactly when the client said `has_content: true`.
    pub upload: Option<Upload>,
}

/// The encrypted part of a request: still exactly as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// base64 of the RSA-OAEP-wrapped AES key; absent when the client left it out, which
    /// the protocol reports as `RSA_DECRYPTION_FAILED` only after the hash check.
    pub aes_key: Option<String>,
    /// base64 of IV || AES-256-CBC ciphertext.
    pub content: String,
}

impl ProcessRequest {
    /// Checks 1-3 of `POST /process`, plus the body-level checks this version adds in front
    /// of them (size, JSON, field types).
    pub fn parse(body: &[u8]) -> Result<Self, ErrorCode> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ErrorCode::PayloadTooLarge);
        }
        let value: Value = serde_json::from_slice(body).map_err(|_| ErrorCode::InvalidJson)?;
        let fields = value.as_object().ok_or(ErrorCode::InvalidJson)?;
        let present = |name: &str| fields.get(name).filter(|v| !v.is_null());

        let (Some(client_id), Some(task_type), Some(sha256), Some(has_content)) =
            (present("client_id"), present("type"), present("SHA256"), present("has_content"))
        else {
            return Err(ErrorCode::MissingRequiredField);
        };
        let task_type = task_type.as_str().and_then(TaskType::parse).ok_or(ErrorCode::InvalidType)?;
        // Empty, too long, or in the batch namespace (the bucket's own tasks).
        let client_id = client_id.as_str().and_then(|id| ClientId::parse(id).ok()).ok_or(ErrorCode::InvalidField)?;
        let sha256 = id_field(sha256)?;
        let has_content = has_content.as_bool().ok_or(ErrorCode::InvalidField)?;

        let upload = if has_content {
            let content = match present("content") {
                None => return Err(ErrorCode::MissingContent),
                Some(Value::String(s)) if s.is_empty() => return Err(ErrorCode::MissingContent),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(ErrorCode::InvalidField),
            };
            let aes_key = match present("aes_key") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(ErrorCode::InvalidField),
            };
            Some(Upload { aes_key, content })
        } else {
            None
        };
        Ok(Self { client_id, task_type, sha256, upload })
    }
}

fn id_field(value: &Value) -> Result<String, ErrorCode> {
    match value.as_str() {
        Some(s) if !s.is_empty() && s.chars().count() <= MAX_ID_CHARS => Ok(s.to_owned()),
        _ => Err(ErrorCode::InvalidField),
    }
}

/// What the uploads bucket keeps of a new task: the request's encrypted part exactly as
/// received, so no plaintext is ever written. Its creation starts OCR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub client_id: ClientId,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    #[serde(rename = "SHA256")]
    pub sha256: String,
    pub aes_key: String,
    pub content: String,
}

impl Envelope {
    pub const VERSION: u32 = 1;
    pub const CONTENT_TYPE: &'static str = "application/json";

    /// The envelope of task `id`: the wrapped key and content exactly as the client sent them.
    pub fn new(id: &TaskId, aes_key: String, content: String) -> Self {
        Self {
            version: Self::VERSION,
            client_id: id.client_id.clone(),
            task_type: id.task_type,
            sha256: id.sha256.clone(),
            aes_key,
            content,
        }
    }

    pub fn task_id(&self) -> TaskId {
        TaskId::new(self.client_id.clone(), self.task_type, self.sha256.clone())
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Strings and a number: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How `POST /process` answers: a task's state, or a refused request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessAnswer {
    Processing,
    /// base64 of IV || AES-256-CBC(result JSON) under the client's key.
    Completed {
        result: String,
    },
    Error(ErrorCode),
}

impl ProcessAnswer {
    pub fn http_status(&self) -> u16 {
        match self {
            ProcessAnswer::Processing => 202,
            ProcessAnswer::Completed { .. } => 200,
            ProcessAnswer::Error(_) => 400,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ProcessAnswer::Processing => json!({"status": "processing"}),
            ProcessAnswer::Completed { result } => json!({"status": "completed", "result": result}),
            ProcessAnswer::Error(code) => json!({"status": "error", "error_detail": code}),
        }
    }
}

/// A `POST /clear` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearRequest {
    pub client_id: ClientId,
    pub scope: ClearScope,
}

/// What a `POST /clear` forgets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClearScope {
    /// Both `SHA256` and `type` given: that one task.
    Task { task_type: TaskType, sha256: String },
    /// Both given, but the type is none of the three: it names no task, so nothing is
    /// cleared (rather than widening to every task of the client).
    NoSuchTask,
    /// Otherwise: every task of the client.
    AllTasks,
}

/// Why a `POST /clear` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClearRefusal {
    MissingClientId,
    PayloadTooLarge,
    /// `SHA256` or `type` is present but not a string. Read as absent, it would widen the
    /// clear to every task of the client; a malformed field never widens a deletion.
    InvalidField,
}

impl ClearRequest {
    pub fn parse(body: &[u8]) -> Result<Self, ClearRefusal> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ClearRefusal::PayloadTooLarge);
        }
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let client_id = value
            .get("client_id")
            .and_then(Value::as_str)
            .and_then(|id| ClientId::parse(id).ok())
            .ok_or(ClearRefusal::MissingClientId)?;
        let optional_string = |name: &str| match value.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ClearRefusal::InvalidField),
        };
        let sha256 = optional_string("SHA256")?;
        let task_type = optional_string("type")?;
        let scope = match (sha256, task_type) {
            (Some(sha256), Some(t)) => match TaskType::parse(t) {
                Some(task_type) => ClearScope::Task { task_type, sha256: sha256.to_owned() },
                None => ClearScope::NoSuchTask,
            },
            _ => ClearScope::AllTasks,
        };
        Ok(Self { client_id, scope })
    }
}

pub fn clear_ok() -> Value {
    json!({"status": "ok"})
}

pub fn clear_refused(refusal: ClearRefusal) -> (u16, Value) {
    match refusal {
        ClearRefusal::MissingClientId => (400, json!({"error": "Missing client_id"})),
        ClearRefusal::PayloadTooLarge => (400, json!({"error": ErrorCode::PayloadTooLarge})),
        ClearRefusal::InvalidField => (400, json!({"error": ErrorCode::InvalidField})),
    }
}

pub fn clear_failed() -> (u16, Value) {
    (500, json!({"error": ErrorCode::CacheClearFailed}))
}

pub fn server_status() -> Value {
    json!({"server_status": "ok"})
}

// ---------------------------------------------------------------------------------------
// The inner JSON, after decryption.

/// What a decrypted envelope holds, by task type.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskContent {
    /// Doc and form tasks: base64 page images, in page order.
    Pages { pages: Vec<String>, library: Library },
    /// Fill tasks: an earlier form result to fill in.
    Fill { form: Map<String, Value>, library: Library },
}

/// Earlier results the client keeps, used to relate documents and to fill forms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Library {
    #[serde(default, deserialize_with = "null_as_default")]
    pub doc: Vec<LibraryItem>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub form: Vec<LibraryItem>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LibraryItem {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub title: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub kv: Map<String, Value>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// Browser clients have sent numeric ids; they name the same item as their string form.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("id must be a string, not {other}"))),
    }
}

/// Why decrypted content was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("content is not JSON")]
    NotJson,
    #[error("content is not shaped as the task type requires")]
    Shape,
    #[error("too many pages")]
    TooManyPages,
    #[error("a page image is too large")]
    ImageTooLarge,
}

impl From<ContentError> for ErrorCode {
    fn from(e: ContentError) -> Self {
        match e {
            ContentError::NotJson => ErrorCode::InvalidJson,
            ContentError::Shape => ErrorCode::InvalidContent,
            ContentError::TooManyPages => ErrorCode::TooManyPages,
            ContentError::ImageTooLarge => ErrorCode::ImageTooLarge,
        }
    }
}

impl TaskContent {
    /// Parses decrypted bytes for a task of `task_type`, within the page and image limits.
    pub fn parse(task_type: TaskType, plaintext: &[u8], limits: &Limits) -> Result<Self, ContentError> {
        let value: Value = serde_json::from_slice(plaintext).map_err(|_| ContentError::NotJson)?;
        let Value::Object(mut fields) = value else {
            return Err(ContentError::Shape);
        };
        let library = match fields.remove("file_lib") {
            None | Some(Value::Null) => Library::default(),
            Some(v) => serde_json::from_value(v).map_err(|_| ContentError::Shape)?,
        };
        match (task_type.has_pages(), fields.remove("to_process")) {
            (true, Some(Value::Array(items))) => {
                if items.is_empty() {
                    return Err(ContentError::Shape);
                }
                if items.len() > limits.max_pages {
                    return Err(ContentError::TooManyPages);
                }
                let pages = items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s),
                        _ => Err(ContentError::Shape),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if pages.iter().any(|p| base64_decoded_len(p) > limits.max_image_bytes) {
                    return Err(ContentError::ImageTooLarge);
                }
                Ok(TaskContent::Pages { pages, library })
            }
            (false, Some(Value::Object(form))) => Ok(TaskContent::Fill { form, library }),
            _ => Err(ContentError::Shape),
        }
    }
}

/// A page as clients send it: base64, possibly as a data URL, possibly with line breaks.
pub fn decode_page(page: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    let data = page.find(";base64,").map_or(page, |i| &page[i + ";base64,".len()..]);
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// Upper bound of the bytes a base64 string decodes to, without decoding it. Data-URL
/// prefixes and line breaks only make the bound looser, never too small.
pub fn base64_decoded_len(s: &str) -> usize {
    s.len() / 4 * 3 + 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_in_protocol_order() {
        let cases: &[(&str, ErrorCode)] = &[
            (r#"{"type":"nope"}"#, ErrorCode::MissingRequiredField),
            (r#"{"client_id":"c","type":"nope","SHA256":"x","has_content":true}"#, ErrorCode::InvalidType),
            (r#"{"client_id":"c","type":"doc","SHA256":"x","has_content":true}"#, ErrorCode::MissingContent),
            (r#"{"client_id":"c","type":"doc","SHA256":"x","has_content":"yes"}"#, ErrorCode::InvalidField),
            (r#"{"client_id":7,"type":"doc","SHA256":"x","has_content":false}"#, ErrorCode::InvalidField),
            (r#"{"client_id":"","type":"doc","SHA256":"x","has_content":false}"#, ErrorCode::InvalidField),
            (
                r#"{"client_id":"batch:batch/x.jpg","type":"doc","SHA256":"x","has_content":false}"#,
                ErrorCode::InvalidField,
            ),
            (r#"{"client_id":null,"type":"doc","SHA256":"x","has_content":false}"#, ErrorCode::MissingRequiredField),
            (r#"[1,2]"#, ErrorCode::InvalidJson),
            (r#"{"client_id":"c""#, ErrorCode::InvalidJson),
        ];
        for (body, code) in cases {
            assert_eq!(ProcessRequest::parse(body.as_bytes()), Err(*code), "{body}");
        }
    }

    #[test]
    fn a_valid_request_keeps_its_upload_as_sent() {
        let body =
            r#"{"client_id":"c","type":"form","SHA256":"ab","has_content":true,"content":"Zm9v","aes_key":"a2V5"}"#;
        let request = ProcessRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(request.task_type, TaskType::Form);
        assert_eq!(request.upload, Some(Upload { aes_key: Some("a2V5".into()), content: "Zm9v".into() }));
    }

    #[test]
    fn oversized_bodies_and_ids_are_refused() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(ProcessRequest::parse(&body), Err(ErrorCode::PayloadTooLarge));
        let long = "x".repeat(MAX_ID_CHARS + 1);
        let body = format!(r#"{{"client_id":"{long}","type":"doc","SHA256":"x","has_content":false}}"#);
        assert_eq!(ProcessRequest::parse(body.as_bytes()), Err(ErrorCode::InvalidField));
    }

    #[test]
    fn content_is_checked_against_its_task_type_and_limits() {
        let limits = Limits { max_pages: 2, max_image_bytes: 100, ..Limits::default() };
        let pages = br#"{"to_process":["aGVsbG8="],"file_lib":{"doc":[{"id":3,"title":"t"}],"form":null}}"#;
        match TaskContent::parse(TaskType::Doc, pages, &limits).unwrap() {
            TaskContent::Pages { pages, library } => {
                assert_eq!(pages, vec!["aGVsbG8=".to_string()]);
                assert_eq!(library.doc[0].id, "3");
                assert!(library.form.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(TaskContent::parse(TaskType::Fill, pages, &limits), Err(ContentError::Shape));
        assert_eq!(TaskContent::parse(TaskType::Doc, b"not json", &limits), Err(ContentError::NotJson));
        let three = br#"{"to_process":["a","b","c"]}"#;
        assert_eq!(TaskContent::parse(TaskType::Form, three, &limits), Err(ContentError::TooManyPages));
        let big = format!(r#"{{"to_process":["{}"]}}"#, "A".repeat(400));
        assert_eq!(TaskContent::parse(TaskType::Doc, big.as_bytes(), &limits), Err(ContentError::ImageTooLarge));
        let fill = br#"{"to_process":{"title":"Visa form","fields":["Name"]}}"#;
        assert!(matches!(TaskContent::parse(TaskType::Fill, fill, &limits), Ok(TaskContent::Fill { .. })));
    }

    #[test]
    fn pages_may_be_data_urls() {
        assert_eq!(decode_page("data:image/png;base64,aGk=").unwrap(), b"hi");
        assert_eq!(decode_page("aG\nk=".replace("\\n", "\n").as_str()).unwrap(), b"hi");
        assert!(decode_page("***").is_err());
    }

    #[test]
    fn clear_names_one_task_only_with_both_hash_and_type() {
        let one = ClearRequest::parse(br#"{"client_id":"c","SHA256":"s","type":"doc"}"#).unwrap();
        assert_eq!(one.scope, ClearScope::Task { task_type: TaskType::Doc, sha256: "s".into() });
        let all = ClearRequest::parse(br#"{"client_id":"c","SHA256":"s"}"#).unwrap();
        assert_eq!(all.scope, ClearScope::AllTasks);
        let odd = ClearRequest::parse(br#"{"client_id":"c","SHA256":"s","type":"x"}"#).unwrap();
        assert_eq!(odd.scope, ClearScope::NoSuchTask);
        assert_eq!(ClearRequest::parse(b"{}"), Err(ClearRefusal::MissingClientId));
        assert_eq!(ClearRequest::parse(b"garbage"), Err(ClearRefusal::MissingClientId));
        for malformed in [
            r#"{"client_id":"c","SHA256":123,"type":"doc"}"#,
            r#"{"client_id":"c","SHA256":"s","type":["doc"]}"#,
            r#"{"client_id":"c","type":{}}"#,
        ] {
            assert_eq!(ClearRequest::parse(malformed.as_bytes()), Err(ClearRefusal::InvalidField), "{malformed}");
        }
    }
}
