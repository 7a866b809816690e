//! The answer's JSON schema for each kind of call, given to providers that can hold a model
//! to it (docs/extraction.md, "Structured outputs"). A schema shapes the answer; it does
//! not replace the checks in [`crate::answer`], which still run on every answer: a provider
//! asked for JSON only, or one that ignores the schema, is caught there and asked once more.
//!
//! The schemas stay within what every enforcing provider takes: no `$ref`, no `pattern`,
//! properties listed in the order a model should write them (a grammar built from the
//! schema follows that order, and a title first keeps a small model on the page's subject).

use docusnap_core::results::{FORM_TYPE_KEY, MAX_RELATED, MAX_TAGS};
use serde_json::{json, Map, Value};

/// A schema and the name providers file it under (OpenAI's `json_schema.name`, Bedrock's
/// tool name): letters, digits, `_` and `-` only.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerSchema {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: Value,
}

fn related() -> Value {
    json!({
        "type": "array",
        "maxItems": MAX_RELATED,
        "items": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["doc", "form"]},
                "resource_id": {"type": "string"}
            },
            "required": ["type", "resource_id"]
        }
    })
}

/// A document's (or with `is_form`, a form's) result.
pub fn doc(is_form: bool) -> AnswerSchema {
    let mut properties = Map::new();
    properties.insert("title".into(), json!({"type": "string", "minLength": 1}));
    properties.insert(
        "tags".into(),
        // Non-empty strings: an empty tag is dropped, and a list of them is no tags.
        json!({"type": "array", "minItems": 1, "maxItems": MAX_TAGS, "items": {"type": "string", "minLength": 1}}),
    );
    properties.insert("description".into(), json!({"type": "string"}));
    // A page's facts are open-ended: any label, a string value, or the nested lists and
    // objects the prompt allows for repeated items (flattened afterwards).
    let mut kv = json!({"type": "object", "additionalProperties": {"type": ["string", "array", "object"]}});
    if is_form {
        // What form it is, which every form result must say.
        kv["properties"] = json!({FORM_TYPE_KEY: {"type": "string", "minLength": 1}});
        kv["required"] = json!([FORM_TYPE_KEY]);
    }
    properties.insert("kv".into(), kv);
    properties.insert("related".into(), related());
    if is_form {
        properties.insert("fields".into(), json!({"type": "array", "items": {"type": "string"}}));
    }
    let required: Vec<&String> = properties.keys().collect();
    let schema = json!({"type": "object", "properties": properties, "required": required});
    if is_form {
        AnswerSchema { name: "form_result", description: "What a form says and the blanks it asks to fill.", schema }
    } else {
        AnswerSchema { name: "document_result", description: "What a document is and the facts it states.", schema }
    }
}

/// A fill: each of the form's fields at most once, with its value and the library entry it
/// came from. Fields the library does not state are left out, so none is required.
pub fn fill(fields: &[String]) -> AnswerSchema {
    let entry = json!({
        "type": "object",
        "properties": {
            "value": {"type": "string"},
            "source": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["doc", "form"]},
                    "resource_id": {"type": "string"}
                },
                "required": ["type", "resource_id"]
            }
        },
        "required": ["value", "source"]
    });
    let properties: Map<String, Value> = fields.iter().map(|f| (f.clone(), entry.clone())).collect();
    AnswerSchema {
        name: "filled_form",
        description: "Values for a form's fields, each with the library entry it came from.",
        schema: json!({"type": "object", "properties": properties, "additionalProperties": false}),
    }
}

/// Any object: the start-up probe's answer.
pub fn any_object() -> AnswerSchema {
    AnswerSchema { name: "probe", description: "Any JSON object.", schema: json!({"type": "object"}) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_schema_requires_every_part_title_first() {
        let doc = doc(false);
        let keys: Vec<&String> = doc.schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["title", "tags", "description", "kv", "related"]);
        assert_eq!(doc.schema["required"], json!(keys));
        let form = super::doc(true);
        assert!(form.schema["required"].as_array().unwrap().contains(&json!("fields")));
        assert_eq!(form.schema["properties"]["kv"]["required"], json!([FORM_TYPE_KEY]));
        assert_eq!(doc.schema["properties"]["tags"]["items"]["minLength"], 1);
        assert_ne!(form.name, doc.name);
    }

    #[test]
    fn a_fill_schema_names_only_the_forms_fields() {
        let fill = fill(&["Name".into(), "Date of Birth".into()]);
        let keys: Vec<&String> = fill.schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Name", "Date of Birth"]);
        assert_eq!(fill.schema["additionalProperties"], json!(false));
    }
}
