//! The results clients receive (PROTOCOL.md, "Results"), the flat key/values they carry,
//! and the checks an extracted result must pass before it is sealed for the client.
//! Both extractors (the LLM and the offline rules) produce these; nothing else may reach
//! a client.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::Library;

/// Most tags a result carries (PROTOCOL.md: 1 to 4).
pub const MAX_TAGS: usize = 4;
/// Most related library items a result names (PROTOCOL.md: at most 5).
pub const MAX_RELATED: usize = 5;
/// The key every form's kv must hold.
pub const FORM_TYPE_KEY: &str = "Form Type";

/// Where a related item or a filled value comes from: `{"type": "doc"|"form", "resource_id"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    #[serde(rename = "type")]
    pub kind: LibraryKind,
    pub resource_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibraryKind {
    Doc,
    Form,
}

/// A document's result; a form's adds `fields`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocResult {
    pub title: String,
    pub tags: Vec<String>,
    pub description: String,
    pub kv: Map<String, Value>,
    pub related: Vec<ResourceRef>,
    /// Labels of the blanks to fill: forms only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fields: Option<Vec<String>>,
}

/// One filled form field: `{"value", "source": {"type", "resource_id"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilledField {
    pub value: String,
    pub source: ResourceRef,
}

/// Why an extracted result cannot go to the client as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("the title is empty")]
    EmptyTitle,
    #[error("{0} tags; a result carries 1 to {MAX_TAGS}")]
    TagCount(usize),
    #[error("a form's kv must hold \"{FORM_TYPE_KEY}\"")]
    NoFormType,
    /// The label is document text: it is in [`ResultError::for_model`], never in the
    /// message (which ends up in logs).
    #[error("a label is both a pre-printed value and a field to fill")]
    FieldInKv(String),
}

impl ResultError {
    /// The reason as the model is told it when asked once more: with the label it chose.
    pub fn for_model(&self) -> String {
        match self {
            ResultError::FieldInKv(label) => format!("\"{label}\" is both a pre-printed value and a field to fill"),
            other => other.to_string(),
        }
    }
}

/// Whether a value is only a blank to fill: nothing, or underscores, dots, dashes, boxes
/// and spaces.
pub fn is_blank(value: &str) -> bool {
    value.chars().all(|c| matches!(c, '_' | '.' | '□' | '☐' | '[' | ']' | ' ' | '…' | '-'))
}

/// Flattens nested objects and lists into dotted keys, lists numbered from 1:
/// `{"a": {"b": 1}, "c": [5, 6]}` becomes `{"a.b": 1, "c.1": 5, "c.2": 6}`.
pub fn flatten_kv(kv: &Map<String, Value>) -> Map<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, inner) in map {
                    walk(&join(prefix, key), inner, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, inner) in items.iter().enumerate() {
                    walk(&join(prefix, &(i + 1).to_string()), inner, out);
                }
            }
            // An empty object or list has no leaf: it says nothing worth a key.
            Value::Object(_) | Value::Array(_) => {}
            leaf => {
                out.insert(prefix.to_owned(), leaf.clone());
            }
        }
    }
    fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    }
    let mut out = Map::new();
    for (key, value) in kv {
        walk(key, value, &mut out);
    }
    out
}

impl DocResult {
    /// Brings an extracted result into the protocol's shape: kv flattened, tags trimmed of
    /// blanks and duplicates, related items kept only when they exist in the client's
    /// library (invented ids are dropped) and at most [`MAX_RELATED`], fields deduplicated
    /// and kept out of kv. Then checks what cannot be repaired.
    pub fn normalise(mut self, is_form: bool, library: &Library) -> Result<Self, ResultError> {
        self.title = self.title.trim().to_owned();
        if self.title.is_empty() {
            return Err(ResultError::EmptyTitle);
        }
        let mut tags: Vec<String> = Vec::new();
        for tag in self.tags.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                tags.push(tag.to_owned());
            }
        }
        if tags.is_empty() || tags.len() > MAX_TAGS {
            return Err(ResultError::TagCount(tags.len()));
        }
        self.tags = tags;
        self.kv = flatten_kv(&self.kv);
        let mut related: Vec<ResourceRef> = Vec::new();
        for item in self.related {
            let items = match item.kind {
                LibraryKind::Doc => &library.doc,
                LibraryKind::Form => &library.form,
            };
            if items.iter().any(|i| i.id == item.resource_id) && !related.contains(&item) {
                related.push(item);
            }
        }
        related.truncate(MAX_RELATED);
        self.related = related;
        if is_form {
            if !self.kv.contains_key(FORM_TYPE_KEY) {
                return Err(ResultError::NoFormType);
            }
            let mut fields: Vec<String> = Vec::new();
            for field in self.fields.take().unwrap_or_default() {
                let field = field.trim().to_owned();
                if field.is_empty() || fields.contains(&field) {
                    continue;
                }
                match self.kv.get(&field) {
                    // A blank printed as the label's value ("Name": "____") says the same as
                    // listing it to fill: the label is a field, and the blank no fact.
                    Some(value) if value.as_str().is_some_and(is_blank) => {
                        self.kv.shift_remove(&field);
                    }
                    Some(_) => return Err(ResultError::FieldInKv(field)),
                    None => {}
                }
                fields.push(field);
            }
            self.fields = Some(fields);
        } else {
            self.fields = None;
        }
        Ok(self)
    }
}

/// Keeps only filled fields that name one of the form's fields and cite an item that is
/// in the client's library, with a non-empty value.
pub fn normalise_fill(filled: Map<String, Value>, form_fields: &[String], library: &Library) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, value) in filled {
        let Ok(entry) = serde_json::from_value::<FilledField>(value) else {
            continue;
        };
        let exists = match entry.source.kind {
            LibraryKind::Doc => library.doc.iter().any(|i| i.id == entry.source.resource_id),
            LibraryKind::Form => library.form.iter().any(|i| i.id == entry.source.resource_id),
        };
        if form_fields.contains(&field) && exists && !entry.value.trim().is_empty() {
            if let Ok(value) = serde_json::to_value(entry) {
                out.insert(field, value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::LibraryItem;
    use serde_json::json;

    fn library() -> Library {
        Library {
            doc: vec![LibraryItem { id: "d1".into(), ..Default::default() }],
            form: vec![LibraryItem { id: "f1".into(), ..Default::default() }],
        }
    }

    fn result(value: Value) -> DocResult {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn kv_flattens_as_the_protocol_says() {
        let kv = json!({"a": {"b": 1}, "c": [5, 6], "d": "x", "e": {}, "f": [{"g": true}]});
        let flat = flatten_kv(kv.as_object().unwrap());
        assert_eq!(Value::Object(flat), json!({"a.b": 1, "c.1": 5, "c.2": 6, "d": "x", "f.1.g": true}));
    }

    #[test]
    fn a_document_result_is_repaired_where_it_can_be() {
        let raw = result(json!({
            "title": " Receipt ", "tags": ["receipt", "Receipt", " ", "food"], "description": "d",
            "kv": {"Total": {"Amount": "9.00"}},
            "related": [{"type": "doc", "resource_id": "d1"}, {"type": "doc", "resource_id": "invented"},
                        {"type": "form", "resource_id": "d1"}, {"type": "doc", "resource_id": "d1"}],
            "fields": ["should go"]
        }));
        let doc = raw.normalise(false, &library()).unwrap();
        assert_eq!(doc.title, "Receipt");
        assert_eq!(doc.tags, ["receipt", "food"]);
        assert_eq!(doc.kv.get("Total.Amount"), Some(&json!("9.00")));
        assert_eq!(doc.related, vec![ResourceRef { kind: LibraryKind::Doc, resource_id: "d1".into() }]);
        assert_eq!(doc.fields, None);
        assert!(serde_json::to_value(&doc).unwrap().get("fields").is_none());
    }

    #[test]
    fn what_cannot_be_repaired_is_a_typed_error() {
        let base = json!({"title": "T", "tags": ["a"], "description": "", "kv": {}, "related": []});
        let with = |patch: Value| {
            let mut v = base.clone();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            result(v)
        };
        assert_eq!(with(json!({"title": "  "})).normalise(false, &library()), Err(ResultError::EmptyTitle));
        assert_eq!(with(json!({"tags": []})).normalise(false, &library()), Err(ResultError::TagCount(0)));
        assert_eq!(
            with(json!({"tags": ["a", "b", "c", "d", "e"]})).normalise(false, &library()),
            Err(ResultError::TagCount(5))
        );
        assert_eq!(with(json!({})).normalise(true, &library()), Err(ResultError::NoFormType));
        let clash = with(json!({"kv": {"Form Type": "Visa", "Name": "Ann"}, "fields": ["Name"]}));
        assert_eq!(clash.normalise(true, &library()), Err(ResultError::FieldInKv("Name".into())));
        // The same label with a blank for its value is a field, not a clash.
        for blank in ["", "____", " . . . "] {
            let form = with(json!({"kv": {"Form Type": "Visa", "Name": blank, "Club": "Oars"}, "fields": ["Name"]}))
                .normalise(true, &library())
                .unwrap();
            assert_eq!((form.kv.get("Name"), form.fields), (None, Some(vec!["Name".to_string()])), "{blank:?}");
        }
        let form = with(json!({"kv": {"Form Type": "Visa"}, "fields": ["Name", "Name", " Date "]}))
            .normalise(true, &library());
        assert_eq!(form.unwrap().fields, Some(vec!["Name".to_string(), "Date".to_string()]));
    }

    #[test]
    fn fill_keeps_only_fields_of_the_form_with_real_sources() {
        let filled = json!({
            "Name": {"value": "Ann Lee", "source": {"type": "doc", "resource_id": "d1"}},
            "Date": {"value": "2026-01-02", "source": {"type": "doc", "resource_id": "nope"}},
            "Other": {"value": "x", "source": {"type": "form", "resource_id": "f1"}},
            "Empty": {"value": " ", "source": {"type": "form", "resource_id": "f1"}},
            "Broken": "not an object"
        });
        let fields: Vec<String> = ["Name", "Date", "Empty", "Broken"].map(String::from).to_vec();
        let out = normalise_fill(filled.as_object().unwrap().clone(), &fields, &library());
        assert_eq!(
            Value::Object(out),
            json!({"Name": {"value": "Ann Lee", "source": {"type": "doc", "resource_id": "d1"}}})
        );
    }
}
