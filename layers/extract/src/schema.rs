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
//! timeout. Its forms still ran past it (a list of 200 invented labels nested under kv on a
//! four-line form), as the fixed bounds multiply: so a document's schema, and the tokens
//! its answer may take, are also bounded by its page ([`Room`]). The token limit is what
//! ends an open object's keys, which llama-server's grammar does not count. The bounds are
//! above what a page holds, so no right answer meets them.

use docusnap_core::protocol::Library;
use docusnap_core::results::{FORM_TYPE_KEY, MAX_RELATED, MAX_TAGS};
use serde_json::{json, Map, Value};

use crate::layout::Line;

/// A schema and the name providers file it under (OpenAI's `json_schema.name`, Bedrock's
/// tool name): letters, digits, `_` and `-` only.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerSchema {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: Value,
    /// The most tokens a right answer needs, asked of the provider as the answer's limit.
    /// Open objects (kv) have no bound a grammar keeps: llama-server lets a looping model
    /// write keys past `maxProperties`, so only this ends such an answer early.
    pub max_tokens: u32,
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
/// No answer is longer: the prompt's text is cut at 24,000 characters, about 6,000 tokens
/// of English restated.
pub const MAX_ANSWER_TOKENS: u32 = 8_192;
/// Title, tags and description (about 1,400 characters at most) and the JSON around them.
const FIXED_ANSWER_TOKENS: u32 = 512;
/// Per fact: its quotes, colon and comma, and a key the model names itself ("Invoice
/// Number") rather than copies from the page.
const FACT_TOKENS: u32 = 8;

/// A value may be longer than all of a short page's text: a date the prompt asks to write
/// as "Jan 02, 2025" from "2/1/25", a name OCR split put back together. A line's room.
const MIN_VALUE_ROOM: usize = 100;

/// How much an answer about one page can hold. The answer restates the page: each fact's
/// value is at least one of the page's words, each label to fill too, a list's items each
/// sit on a line of their own, a value is no longer than the page's text, and a related
/// entry is one of the library's. A looping model is then cut at the page's tokens within
/// seconds, where the fixed bounds alone let it run for minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    facts: usize,
    items: usize,
    value_chars: usize,
    related: usize,
    tokens: u32,
}

impl Room {
    pub fn new(lines: &[Line], library: &Library) -> Self {
        let words: usize = lines.iter().map(|l| l.text.split_whitespace().count()).sum();
        let chars: usize = lines.iter().map(|l| l.text.chars().count() + 1).sum();
        // One more for the form's type, which names the form rather than quoting it.
        let facts = (words + 1).min(MAX_FACTS);
        // The page restated once (its labels as keys, its values), at most a token a
        // character: Chinese is about that, English about four characters a token.
        let tokens = FIXED_ANSWER_TOKENS + chars as u32 + FACT_TOKENS * facts as u32;
        Self {
            facts,
            tokens: tokens.min(MAX_ANSWER_TOKENS),
            items: lines.len().clamp(1, MAX_LIST_ITEMS),
            value_chars: chars.clamp(MIN_VALUE_ROOM, MAX_VALUE_CHARS),
            related: (library.doc.len() + library.form.len()).min(MAX_RELATED),
        }
    }
}

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
fn fact(room: &Room) -> Value {
    let value = room.value_chars;
    let fields = MAX_ITEM_FIELDS.min(room.facts);
    let item = json!({
        "type": ["string", "object"],
        "maxLength": value,
        "maxProperties": fields,
        "additionalProperties": text(value),
    });
    json!({
        "type": ["string", "array", "object"],
        "maxLength": value,
        "maxItems": room.items,
        "items": item,
        "maxProperties": fields,
        "additionalProperties": text(value),
    })
}

/// A document's (or with `is_form`, a form's) result, with room for what its page holds.
pub fn doc(is_form: bool, room: &Room) -> AnswerSchema {
    let mut properties = Map::new();
    properties.insert("title".into(), said(MAX_TITLE_CHARS));
    properties.insert(
        "tags".into(),
        // Non-empty strings: an empty tag is dropped, and a list of them is no tags.
        json!({"type": "array", "minItems": 1, "maxItems": MAX_TAGS, "items": said(MAX_TAG_CHARS)}),
    );
    properties.insert("description".into(), text(MAX_DESCRIPTION_CHARS));
    // A page's facts are open-ended: any label, with a value of `fact`'s shape.
    let mut kv = json!({"type": "object", "maxProperties": room.facts, "additionalProperties": fact(room)});
    if is_form {
        // What form it is, which every form result must say: a name, as a title is.
        kv["properties"] = json!({FORM_TYPE_KEY: said(MAX_TITLE_CHARS)});
        kv["required"] = json!([FORM_TYPE_KEY]);
    }
    properties.insert("kv".into(), kv);
    properties.insert("related".into(), json!({"type": "array", "maxItems": room.related, "items": library_entry()}));
    if is_form {
        let label = text(MAX_LABEL_CHARS.min(room.value_chars));
        properties.insert("fields".into(), json!({"type": "array", "maxItems": room.facts, "items": label}));
    }
    let required: Vec<&String> = properties.keys().collect();
    let schema =
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    let (name, description) = if is_form {
        ("form_result", "What a form says and the blanks it asks to fill.")
    } else {
        ("document_result", "What a document is and the facts it states.")
    };
    AnswerSchema { name, description, schema, max_tokens: room.tokens }
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
    // A field filled: its label, a value of a line or two, and a source naming a library
    // entry (an id of about 100 characters) in its JSON.
    const FILLED_FIELD_TOKENS: u32 = 160;
    AnswerSchema {
        name: "filled_form",
        description: "Values for a form's fields, each with the library entry it came from.",
        schema: json!({"type": "object", "properties": properties, "additionalProperties": false}),
        max_tokens: (FILLED_FIELD_TOKENS * fields.len() as u32 + FACT_TOKENS).min(MAX_ANSWER_TOKENS),
    }
}

/// The empty object: the start-up probe's answer ("answer with the JSON object {}"),
/// which a model held to the schema cannot run on from.
pub fn empty_object() -> AnswerSchema {
    AnswerSchema {
        name: "probe",
        description: "The empty JSON object.",
        schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        // "{}", and room for a model that writes it with spaces or a newline.
        max_tokens: 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(texts: &[&str]) -> Vec<Line> {
        texts.iter().enumerate().map(|(i, t)| Line::new(*t, 0, [0.0, i as f32, 1.0, i as f32 + 1.0])).collect()
    }

    fn any_room() -> Room {
        let long = "word ".repeat(1_000);
        Room::new(&page(&[long.as_str(); 300]), &Library::default())
    }

    #[test]
    fn a_document_schema_requires_every_part_title_first() {
        let doc = doc(false, &any_room());
        let keys: Vec<&String> = doc.schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["title", "tags", "description", "kv", "related"]);
        assert_eq!(doc.schema["required"], json!(keys));
        let form = super::doc(true, &any_room());
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
        let small = Room::new(&page(&["Name: ____"]), &Library::default());
        for room in [any_room(), small] {
            for schema in [doc(false, &room), doc(true, &room), fill(&["Name".into()]), empty_object()] {
                check(schema.name, &schema.schema, 0);
            }
        }
    }

    /// A four-line form leaves room for its nine words and four lines, not for the 150
    /// facts and 200 list items of a dense page, and none for related entries when the
    /// library is empty; a dense page is held to the fixed bounds.
    #[test]
    fn a_page_bounds_its_answer_by_its_words_lines_and_library() {
        let form = page(&["MEMBERSHIP APPLICATION", "Club: Riverside Rowing", "Name: ________", "Phone: ________"]);
        let schema = doc(true, &Room::new(&form, &Library::default())).schema;
        let kv = &schema["properties"]["kv"];
        assert_eq!(kv["maxProperties"], 10, "nine words and the form's type");
        assert_eq!(kv["additionalProperties"]["maxItems"], 4, "a list item to a line");
        assert_eq!(kv["additionalProperties"]["maxLength"], MIN_VALUE_ROOM);
        assert_eq!(kv["additionalProperties"]["maxProperties"], MAX_ITEM_FIELDS.min(10));
        assert_eq!(schema["properties"]["fields"]["maxItems"], 10);
        assert_eq!(schema["properties"]["related"]["maxItems"], 0);
        let library = Library { doc: vec![Default::default(); 2], form: vec![Default::default()] };
        assert_eq!(doc(false, &Room::new(&form, &library)).schema["properties"]["related"]["maxItems"], 3);
        // The fixed part, the 73 characters and four line ends, and each fact's own tokens.
        assert_eq!(doc(true, &Room::new(&form, &Library::default())).max_tokens, 512 + 73 + 4 + 8 * 10);
        let dense = doc(false, &any_room());
        assert_eq!(dense.max_tokens, MAX_ANSWER_TOKENS);
        let dense = dense.schema;
        assert_eq!(dense["properties"]["kv"]["maxProperties"], MAX_FACTS);
        assert_eq!(dense["properties"]["kv"]["additionalProperties"]["maxItems"], MAX_LIST_ITEMS);
        assert_eq!(dense["properties"]["kv"]["additionalProperties"]["maxLength"], MAX_VALUE_CHARS);
    }

    #[test]
    fn a_fill_schema_names_only_the_forms_fields() {
        let fill = fill(&["Name".into(), "Date of Birth".into()]);
        let keys: Vec<&String> = fill.schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Name", "Date of Birth"]);
        assert_eq!(fill.schema["additionalProperties"], json!(false));
    }
}
