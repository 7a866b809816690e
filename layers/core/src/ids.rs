//! Identities parsed once at the edge: what a client asks for ([`TaskType`]) and who asks
//! ([`ClientId`]). Past the edge an invalid id cannot exist.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::MAX_ID_CHARS;

/// What a client asks of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    Doc,
    Form,
    Fill,
}

impl TaskType {
    pub const ALL: [TaskType; 3] = [TaskType::Doc, TaskType::Form, TaskType::Fill];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Doc => "doc",
            TaskType::Form => "form",
            TaskType::Fill => "fill",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Doc and form tasks carry page images to read; fill tasks carry an earlier result.
    pub fn has_pages(self) -> bool {
        !matches!(self, TaskType::Fill)
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Client ids of batch tasks start with this; no client may use the namespace, so no
/// client can read or clear the bucket's own tasks.
pub const BATCH_NAMESPACE: &str = "batch:";
/// Where batch documents are dropped in the uploads bucket: the batch area.
pub const BATCH_PREFIX: &str = "batch/";

/// Client ids of v2 tasks start with this: a v2 task is its own "client", reached only
/// with its token, so no v1 client may use the namespace either.
pub const V2_NAMESPACE: &str = "v2:";

/// Who a task belongs to: a client's `client_id`, or a batch document's own id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

/// Why a client id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    #[error("the client id is empty")]
    Empty,
    #[error("the client id is longer than {MAX_ID_CHARS} characters")]
    TooLong,
    #[error("the client id is in the batch namespace")]
    BatchNamespace,
    #[error("the client id is in the v2 namespace")]
    V2Namespace,
    /// Control characters have no place in an id that ends up in logs and storage keys.
    #[error("the client id holds a control character")]
    ControlCharacter,
}

impl ClientId {
    /// A client's id as a request carries it: non-empty, at most [`MAX_ID_CHARS`]
    /// characters, no control characters, outside the batch namespace.
    pub fn parse(id: &str) -> Result<Self, ClientIdError> {
        if id.chars().any(char::is_control) {
            return Err(ClientIdError::ControlCharacter);
        }
        let id = Self::stored(id)?;
        if id.is_batch() {
            return Err(ClientIdError::BatchNamespace);
        }
        if id.0.starts_with(V2_NAMESPACE) {
            return Err(ClientIdError::V2Namespace);
        }
        Ok(id)
    }

    /// An id read back from our own stores (table items, object keys, queue messages),
    /// where batch ids are legitimate.
    pub fn stored(id: &str) -> Result<Self, ClientIdError> {
        if id.is_empty() {
            return Err(ClientIdError::Empty);
        }
        if id.chars().count() > MAX_ID_CHARS {
            return Err(ClientIdError::TooLong);
        }
        Ok(Self(id.to_owned()))
    }

    /// The id of a batch document, named by its key or folder prefix in the bucket.
    pub fn batch(document: &str) -> Self {
        Self(format!("{BATCH_NAMESPACE}{document}"))
    }

    /// The partition of one v2 task, named by its random part (`v2::V2TaskId`).
    pub fn v2(random_hex: &str) -> Self {
        Self(format!("{V2_NAMESPACE}{random_hex}"))
    }

    pub fn is_v2(&self) -> bool {
        self.0.starts_with(V2_NAMESPACE)
    }

    /// The batch document a batch task reads, or `None` for a client's task.
    pub fn batch_document(&self) -> Option<&str> {
        self.0.strip_prefix(BATCH_NAMESPACE)
    }

    pub fn is_batch(&self) -> bool {
        self.batch_document().is_some()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ClientId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        ClientId::stored(&id).map_err(serde::de::Error::custom)
    }
}

/// A principal's id is kept in a table key (DynamoDB allows 2,048 bytes); a token's `sub`
/// is at most 255 characters in the OIDC providers we know, a v1 client id 128.
pub const MAX_PRINCIPAL_BYTES: usize = 512;

/// Who a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    /// A verified token's subject (the HTTP API's JWT authorizer checked the token).
    pub fn subject(sub: &str) -> Option<Self> {
        Self::of("sub", sub)
    }

    /// A v1 client, on an open API.
    pub fn client(id: &ClientId) -> Self {
        Self(format!("client:{}", id.as_str()))
    }

    /// A caller known only by its address (an open v2).
    pub fn address(ip: &str) -> Option<Self> {
        Self::of("ip", ip)
    }

    /// A caller with neither a token nor an address (an event from no gateway): all such
    /// share one quota.
    pub fn unknown() -> Self {
        Self("ip:unknown".into())
    }

    fn of(kind: &str, id: &str) -> Option<Self> {
        let id = id.trim();
        (!id.is_empty() && id.len() + kind.len() < MAX_PRINCIPAL_BYTES && !id.chars().any(char::is_control))
            .then(|| Self(format!("{kind}:{id}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_checked_once_at_the_edge() {
        assert_eq!(ClientId::parse("phone-1").map(|c| c.to_string()), Ok("phone-1".to_owned()));
        assert_eq!(ClientId::parse(""), Err(ClientIdError::Empty));
        assert_eq!(ClientId::parse(&"é".repeat(MAX_ID_CHARS)).map(|c| c.as_str().chars().count()), Ok(MAX_ID_CHARS));
        assert_eq!(ClientId::parse(&"x".repeat(MAX_ID_CHARS + 1)), Err(ClientIdError::TooLong));
        assert_eq!(ClientId::parse("batch:batch/x.jpg"), Err(ClientIdError::BatchNamespace));
        assert_eq!(ClientId::parse("v2:00ff"), Err(ClientIdError::V2Namespace));
        assert!(ClientId::v2("00ff").is_v2() && ClientId::stored("v2:00ff").unwrap().is_v2());
        for control in ["a\u{1}b", "tab\there", "line\n", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(ClientId::parse(control), Err(ClientIdError::ControlCharacter), "{control:?}");
        }
        let batch = ClientId::batch("batch/x.jpg");
        assert_eq!(ClientId::stored(batch.as_str()), Ok(batch.clone()));
        assert_eq!(batch.batch_document(), Some("batch/x.jpg"));
        assert!(!ClientId::parse("phone").unwrap().is_batch());
    }

    #[test]
    fn task_types_round_trip_through_their_names() {
        for t in TaskType::ALL {
            assert_eq!(TaskType::parse(t.as_str()), Some(t));
        }
        assert_eq!(TaskType::parse("Doc"), None);
    }
}
