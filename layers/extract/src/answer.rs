//! Reading a model's answer: the JSON object inside whatever the model wrapped it in
//! (`<think>` blocks, code fences, a sentence before or after), then the protocol's result
//! shape with its checks. What does not fit is an [`AnswerError`] whose text is what the
//! model is told when it is asked once more.

use docusnap_core::protocol::Library;
use docusnap_core::results::{normalise_fill, DocResult, ResultError};
use serde_json::{Map, Value};

use crate::provenance::PageLines;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer holds no JSON object")]
    NoObject,
    #[error("\"{field}\" {problem}")]
    Shape { field: &'static str, problem: &'static str },
    #[error(transparent)]
    Result(#[from] ResultError),
}

impl AnswerError {
    /// What the model is told when asked once more. Unlike the message, it may quote
    /// document text (a label the model chose), so it goes to the model, not to logs.
    pub fn for_model(&self) -> String {
        match self {
            AnswerError::Result(e) => e.for_model(),
            other => other.to_string(),
        }
    }
}

/// The first complete JSON object in `answer` that parses, after any `<think>` block.
/// Each `{` is tried as the start of a JSON value with serde_json's streaming reader,
/// which stops at the value's end and ignores what follows it.
pub fn json_object(answer: &str) -> Result<Map<String, Value>, AnswerError> {
    let text = strip_thinking(answer);
    for (start, _) in text.match_indices('{') {
        let mut values = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        if let Some(Ok(Value::Object(object))) = values.next() {
            return Ok(object);
        }
    }
    Err(AnswerError::NoObject)
}

/// Drops reasoning: everything up to the last `</think>`, or an unclosed `<think>` to the
/// end (a model cut off while thinking has no answer).
fn strip_thinking(answer: &str) -> &str {
    if let Some(end) = answer.rfind("</think>") {
        return &answer[end + "</think>".len()..];
    }
    match answer.find("<think>") {
        Some(start) => &answer[..start],
        None => answer,
    }
}

/// A doc or form result from the model's object, read against its page: lenient where
/// the meaning is plain (tags as one comma-separated string, missing kv or related),
/// strict where it is not, then repaired and checked as every result is.
///
/// A form answer that lists a label to fill and also gives it a kv value no line of the
/// page holds has guessed the blank ("Name": "John Smith" beside "Name: ____"): the prompt
/// asks kv for what the form prints, so the guess is dropped and the label stays a field,
/// as the answer also says. A value the page does print stays, and is the contradiction
/// [`DocResult::normalise`] refuses and the model is asked about once more. Drops are
/// logged as a count; labels are document text and stay out of logs.
pub fn doc_result(
    object: Map<String, Value>, is_form: bool, library: &Library, page: &PageLines,
) -> Result<DocResult, AnswerError> {
    let mut result = read_doc(&object, is_form)?;
    let dropped = drop_guessed_values_of_fields(&mut result, page);
    if dropped > 0 {
        tracing::info!(dropped, "a form answer's guesses at its blanks dropped");
    }
    Ok(result.normalise(is_form, library)?)
}

/// The object's fields as a [`DocResult`], before any repair.
fn read_doc(object: &Map<String, Value>, is_form: bool) -> Result<DocResult, AnswerError> {
    let text = |field: &'static str, required: bool| -> Result<String, AnswerError> {
        match object.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) if !required => Ok(String::new()),
            None | Some(Value::Null) => Err(AnswerError::Shape { field, problem: "is missing" }),
            Some(_) => Err(AnswerError::Shape { field, problem: "must be a string" }),
        }
    };
    let strings = |field: &'static str| -> Result<Vec<String>, AnswerError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s.split([',', ';']).map(|t| t.trim().to_owned()).collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(AnswerError::Shape { field, problem: "must be a list of strings" }),
            Some(_) => Err(AnswerError::Shape { field, problem: "must be a list of strings" }),
        }
    };
    let kv = match object.get("kv") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(kv)) => kv.clone(),
        Some(_) => return Err(AnswerError::Shape { field: "kv", problem: "must be an object" }),
    };
    let related = match object.get("related") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().filter_map(|item| serde_json::from_value(item.clone()).ok()).collect()
        }
        Some(_) => return Err(AnswerError::Shape { field: "related", problem: "must be a list" }),
    };
    Ok(DocResult {
        title: text("title", true)?,
        tags: strings("tags")?,
        description: text("description", false)?,
        kv,
        related,
        fields: if is_form { Some(strings("fields")?) } else { None },
    })
}

/// Drops from a form result's kv each value of a label it also lists to fill when no line
/// of the page holds that value ([`doc_result`] says why), and says how many.
fn drop_guessed_values_of_fields(result: &mut DocResult, page: &PageLines) -> usize {
    let Some(fields) = &result.fields else { return 0 };
    let before = result.kv.len();
    result.kv.retain(|key, value| {
        !(fields.iter().any(|f| f.trim() == key) && value.as_str().is_some_and(|v| !page.support(v)))
    });
    before - result.kv.len()
}

/// A fill result from the model's object: only the form's fields, with values and
/// sources that exist in the library. The model may wrap it in `{"filled": ...}`, and may
/// spell a label differently from the form ("Date of birth:" for "Date of Birth"): such a
/// key is matched back to the form's field by its words, not dropped.
pub fn fill_result(mut object: Map<String, Value>, form_fields: &[String], library: &Library) -> Map<String, Value> {
    if let Some(Value::Object(inner)) = object.shift_remove("filled") {
        object = inner;
    }
    let object = object
        .into_iter()
        .filter_map(|(key, value)| {
            if form_fields.contains(&key) {
                return Some((key, value));
            }
            let spelled = crate::fill::words(&key);
            form_fields.iter().find(|f| crate::fill::words(f) == spelled).map(|f| (f.clone(), value))
        })
        .collect();
    normalise_fill(object, form_fields, library)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Line;
    use docusnap_core::protocol::LibraryItem;
    use serde_json::json;

    #[test]
    fn the_object_is_found_inside_fences_thinking_and_prose() {
        let cases = [
            r#"{"a": 1}"#,
            "```json\n{\"a\": 1}\n```",
            "<think>maybe {\"a\": 2} or not</think>\nHere it is: {\"a\": 1} Hope this helps.",
            "Sure! {not json} then {\"a\": 1}",
            "{\"a\": 1, \"s\": \"} { \\\" \"}",
        ];
        for case in cases {
            assert_eq!(json_object(case).unwrap()["a"], json!(1), "{case}");
        }
        assert_eq!(json_object("<think>{\"a\": 1}"), Err(AnswerError::NoObject));
        assert_eq!(json_object("no json here"), Err(AnswerError::NoObject));
        assert_eq!(json_object("[1, 2]"), Err(AnswerError::NoObject));
        assert_eq!(json_object("{\"a\": "), Err(AnswerError::NoObject));
    }

    #[test]
    fn a_document_answer_is_read_leniently_and_checked_strictly() {
        let library = Library { doc: vec![LibraryItem { id: "7".into(), ..Default::default() }], form: vec![] };
        let answer = json!({
            "title": "Receipt", "tags": "receipt, food", "description": null,
            "kv": {"Total": "9.00", "Items": [{"Name": "Tea"}]},
            "related": [{"type": "doc", "resource_id": "7"}, {"type": "doc", "resource_id": "99"}, "junk"]
        });
        let page = PageLines::new(&[]);
        let doc = doc_result(answer.as_object().unwrap().clone(), false, &library, &page).unwrap();
        assert_eq!(doc.tags, ["receipt", "food"]);
        assert_eq!(doc.kv["Items.1.Name"], json!("Tea"));
        assert_eq!(doc.related.len(), 1, "the invented id 99 is dropped");
        let no_title = json!({"tags": ["a"]});
        assert_eq!(
            doc_result(no_title.as_object().unwrap().clone(), false, &library, &page).unwrap_err().to_string(),
            "\"title\" is missing"
        );
        let form = json!({"title": "Visa", "tags": ["form"], "kv": {"Name": "x"}, "fields": ["Name"]});
        assert!(matches!(
            doc_result(form.as_object().unwrap().clone(), true, &library, &page),
            Err(AnswerError::Result(ResultError::NoFormType))
        ));
    }

    #[test]
    fn a_guessed_value_beside_a_label_to_fill_is_dropped_a_printed_one_is_not() {
        let lines: Vec<Line> = ["MEMBERSHIP APPLICATION", "Club: Riverside Rowing", "Name: ____", "Phone:"]
            .iter()
            .enumerate()
            .map(|(i, text)| Line::new(*text, 0, [10.0, 30.0 * i as f32, 300.0, 30.0 * i as f32 + 20.0]))
            .collect();
        let page = PageLines::new(&lines);
        let answer = |kv: Value| {
            json!({"title": "Membership application", "tags": ["form"], "kv": kv, "fields": ["Name", " Phone", "Club"]})
                .as_object()
                .unwrap()
                .clone()
        };
        let dropped = |object: Map<String, Value>| {
            let mut result = read_doc(&object, true).unwrap();
            drop_guessed_values_of_fields(&mut result, &page)
        };
        // Values the page does not print, beside labels the answer lists to fill.
        let guessed = answer(json!({"Form Type": "Membership", "Name": "John Smith", "Phone": "555 0100"}));
        assert_eq!(dropped(guessed.clone()), 2);
        let form = doc_result(guessed, true, &Library::default(), &page).unwrap();
        assert_eq!(form.fields.unwrap(), ["Name", "Phone", "Club"]);
        assert!(!form.kv.contains_key("Name") && !form.kv.contains_key("Phone"));
        // A printed value is kept, and listing its label to fill is still the contradiction.
        let printed = answer(json!({"Form Type": "Membership", "Club": "Riverside Rowing"}));
        assert_eq!(dropped(printed.clone()), 0);
        assert_eq!(
            doc_result(printed, true, &Library::default(), &page),
            Err(AnswerError::Result(ResultError::FieldInKv("Club".into())))
        );
        // A label that is not listed to fill keeps its value, printed or not.
        assert_eq!(dropped(answer(json!({"Form Type": "Membership", "Member since": "2019"}))), 0);
    }

    #[test]
    fn a_fill_label_spelled_differently_is_matched_back_to_the_forms_field() {
        let library = Library { doc: vec![LibraryItem { id: "p".into(), ..Default::default() }], form: vec![] };
        let fields = vec!["Date of Birth".to_string(), "E-mail".to_string()];
        let answer = json!({"filled": {
            "date of birth:": {"value": "1990-01-02", "source": {"type": "doc", "resource_id": "p"}},
            "E mail": {"value": "a@b.c", "source": {"type": "doc", "resource_id": "p"}},
            "Favourite colour": {"value": "blue", "source": {"type": "doc", "resource_id": "p"}}
        }});
        let filled = fill_result(answer.as_object().unwrap().clone(), &fields, &library);
        let keys: Vec<&String> = filled.keys().collect();
        assert_eq!(keys, ["Date of Birth", "E-mail"], "matched back by words; a field the form lacks is dropped");
    }
}
