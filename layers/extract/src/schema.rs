//! The answer's JSON schema for each kind of call, given to providers that can hold a model
//! to it (docs/extraction.md, "Structured outputs"). A schema shapes the answer; it does
//! not replace the checks in [`crate::answer`], which still run on every answer: a provider
//! asked for JSON only, or one that ignores the schema, is caught there and asked once more.
//!
//! The schemas stay within what every enforcing provider takes: no `$ref`, no `pattern`,
//! properties listed in the order a model should write them (a grammar built from the
//! schema follows that order, and a title first keeps a small model on the page's subject).
//!
//! Every part is bounded, so that an answer held to the schema ends. A grammar lets a
//! model write nothing else, so a small one that falls into repeating itself (gemma-3-270m
//! under llama-server: a tag repeating the prompt's words, or kv keys nesting a copy of
//! the whole answer) otherwise writes until its context is full: 5,000 tokens and minutes
//! for one receipt. Bounded, the same model's receipts mostly end within the call's
//! timeout; its forms still run past it, as the bounds multiply (scripts/llm-check,
//! docs/extraction.md). The bounds are above what a page holds, so no right answer meets
//! them.

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

/// A title names the document in a line ("Starbucks receipt").
const MAX_TITLE_CHARS: usize = 200;
/// A label: a field to fill is named by its printed label, a phrase (the shared forms'
/// longest question is 89 characters, their median 10), not a value.
const MAX_LABEL_CHARS: usize = 200;
/// A tag is a word or two.
const MAX_TAG_CHARS: usize = 40;
/// "One or two sentences", with room.
const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// One value: a form's longest answers are paragraphs, a third of a page at most.
const MAX_VALUE_CHARS: usize = 2_000;
/// Facts on one page: a dense full-page form (a tax return's page) has about a hundred
/// lines; the shared forms have at most 32 questions, and the rules read at most 55 facts
/// from one page of them. Every extra fact is time a looping model spends before the
/// call's timeout.
const MAX_FACTS: usize = 150;
/// Repeated items in one list: a long receipt's lines.
const MAX_LIST_ITEMS: usize = 200;
/// Labels in one grouped item (a line item's name, quantity, price...).
const MAX_ITEM_FIELDS: usize = 20;
/// An identifier from the library: a task id is about 100 characters.
const MAX_ID_CHARS: usize = 200;

fn text(max: usize) -> Value {
    json!({"type": "string", "maxLength": max})
}

/// A string that must say something: an empty one would be dropped, or fail the checks.
fn said(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max})
}

/// An entry of the library a result cites: a related one, or a filled value's source.
fn library_entry() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["doc", "form"]},
            "resource_id": text(MAX_ID_CHARS)
        },
        "required": ["type", "resource_id"],
        "additionalProperties": false
    })
}

/// A fact's value: a string, or the lists and objects of strings the prompt allows for
/// repeated items (flattened afterwards), one level deep. Written as one schema with a
/// list of types, each bound applying to its own type, as the unbounded schema before it
/// was (`anyOf` is not in every provider's subset).
fn fact() -> Value {
    let item = json!({
        "type": ["string", "object"],
        "maxLength": MAX_VALUE_CHARS,
        "maxProperties": MAX_ITEM_FIELDS,
        "additionalProperties": text(MAX_VALUE_CHARS),
    });
    json!({
        "type": ["string", "array", "object"],
        "maxLength": MAX_VALUE_CHARS,
        "maxItems": MAX_LIST_ITEMS,
        "items": item,
        "maxProperties": MAX_ITEM_FIELDS,
        "additionalProperties": text(MAX_VALUE_CHARS),
    })
}

/// A document's (or with `is_form`, a form's) result.
pub fn doc(is_form: bool) -> AnswerSchema {
    let mut properties = Map::new();
    properties.insert("title".into(), said(MAX_TITLE_CHARS));
    properties.insert(
        "tags".into(),
        // Non-empty strings: an empty tag is dropped, and a list of them is no tags.
        json!({"type": "array", "minItems": 1, "maxItems": MAX_TAGS, "items": said(MAX_TAG_CHARS)}),
    );
    properties.insert("description".into(), text(MAX_DESCRIPTION_CHARS));
    // A page's facts are open-ended: any label, with a value of `fact`'s shape.
    let mut kv = json!({"type": "object", "maxProperties": MAX_FACTS, "additionalProperties": fact()});
    if is_form {
        // What form it is, which every form result must say.
        kv["properties"] = json!({FORM_TYPE_KEY: said(MAX_VALUE_CHARS)});
        kv["required"] = json!([FORM_TYPE_KEY]);
    }
    properties.insert("kv".into(), kv);
    properties.insert("related".into(), json!({"type": "array", "maxItems": MAX_RELATED, "items": library_entry()}));
    if is_form {
        properties
            .insert("fields".into(), json!({"type": "array", "maxItems": MAX_FACTS, "items": text(MAX_LABEL_CHARS)}));
    }
    let required: Vec<&String> = properties.keys().collect();
    let schema =
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
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
            "value": text(MAX_VALUE_CHARS),
            "source": library_entry()
        },
        "required": ["value", "source"],
        "additionalProperties": false
    });
    let properties: Map<String, Value> = fields.iter().map(|f| (f.clone(), entry.clone())).collect();
    AnswerSchema {
        name: "filled_form",
        description: "Values for a form's fields, each with the library entry it came from.",
        schema: json!({"type": "object", "properties": properties, "additionalProperties": false}),
    }
}

/// The empty object: the start-up probe's answer ("answer with the JSON object {}"),
/// which a model held to the schema cannot run on from.
pub fn empty_object() -> AnswerSchema {
    AnswerSchema {
        name: "probe",
        description: "The empty JSON object.",
        schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
    }
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

    /// Every string, list and open object of every schema has an upper bound, and objects
    /// nest at most three deep (answer, kv, a grouped item): a grammar made from it ends.
    #[test]
    fn every_schema_is_bounded() {
        fn check(path: &str, schema: &Value, depth: usize) {
            if let Some(kinds) = schema["type"].as_array() {
                // Each type with the bounds that apply to it.
                for kind in kinds {
                    let mut one = schema.clone();
                    one["type"] = kind.clone();
                    check(path, &one, depth);
                }
                return;
            }
            let kind = schema["type"].as_str().unwrap_or_else(|| panic!("{path}: a type, got {schema}"));
            match kind {
                "string" => assert!(schema["maxLength"].is_u64() || schema["enum"].is_array(), "{path}: unbounded"),
                "array" => {
                    assert!(schema["maxItems"].is_u64(), "{path}: unbounded");
                    check(&format!("{path}[]"), &schema["items"], depth);
                }
                "object" => {
                    assert!(depth < 3, "{path}: nested too deep");
                    for (key, property) in schema["properties"].as_object().into_iter().flatten() {
                        check(&format!("{path}.{key}"), property, depth + 1);
                    }
                    match &schema["additionalProperties"] {
                        Value::Bool(false) => {}
                        open => {
                            assert!(schema["maxProperties"].is_u64(), "{path}: open and unbounded");
                            check(&format!("{path}.*"), open, depth + 1);
                        }
                    }
                }
                other => panic!("{path}: unexpected type {other}"),
            }
        }
        for schema in [doc(false), doc(true), fill(&["Name".into()]), empty_object()] {
            check(schema.name, &schema.schema, 0);
        }
    }

    #[test]
    fn a_fill_schema_names_only_the_forms_fields() {
        let fill = fill(&["Name".into(), "Date of Birth".into()]);
        let keys: Vec<&String> = fill.schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Name", "Date of Birth"]);
        assert_eq!(fill.schema["additionalProperties"], json!(false));
    }
}
