//! The offline rules extractor: the protocol's result shapes from OCR lines alone,
//! deterministic, with no model. It is what runs when no LLM is configured, and the
//! fallback when the LLM fails.

use docusnap_core::protocol::{Library, LibraryItem};
use docusnap_core::results::{DocResult, LibraryKind, ResourceRef, FORM_TYPE_KEY, MAX_RELATED, MAX_TAGS};
use serde_json::{Map, Value};

use crate::header::letterhead;
use crate::mrz::find_mrz;
use crate::values::{find_dates, find_document_number, find_emails, find_phones, find_total};

/// One OCR line as the extractor reads it: its text and its height in pixels (the
/// tallest lines near the top are a page's title).
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub text: String,
    pub height: f32,
}

/// Labels are short: a "label: value" line whose label runs past this many words is a
/// sentence with a colon in it.
const MAX_LABEL_WORDS: usize = 5;
/// The title is sought among the first lines of the first page.
const TITLE_WINDOW: usize = 8;

/// A document's title, tags, description, key/values and related library items.
pub fn extract_doc(lines: &[Line], library: &Library) -> DocResult {
    doc_from(lines, &texts(lines), library)
}

/// The lines' trimmed, non-empty texts: what every rule reads.
fn texts(lines: &[Line]) -> Vec<&str> {
    lines.iter().map(|l| l.text.trim()).filter(|t| !t.is_empty()).collect()
}

fn doc_from(lines: &[Line], texts: &[&str], library: &Library) -> DocResult {
    let mut kv = label_values(texts);
    add_found_values(texts, &mut kv);
    let tags = tags(texts);
    let head = letterhead(texts);
    let issued = tags.iter().any(|t| t == "receipt" || t == "invoice");
    if let Some(name) = head.name.as_ref().filter(|_| head.is_company || issued) {
        kv.entry("Company").or_insert_with(|| Value::String(name.clone()));
    }
    if let Some(address) = head.address {
        kv.entry("Address").or_insert(Value::String(address));
    }
    // A company's letterhead names the document better than its tallest line.
    let title = match head.name {
        Some(name) if head.is_company => name,
        _ => title(lines).unwrap_or_else(|| "Untitled document".to_owned()),
    };
    let description = describe(&title, &tags, &kv);
    let related = related(&title, &kv, library);
    DocResult { title, tags, description, kv, related, fields: None }
}

/// A form: as a document, with the blanks to fill as `fields` and "Form Type" in kv.
pub fn extract_form(lines: &[Line], library: &Library) -> DocResult {
    let texts = texts(lines);
    let mut result = doc_from(lines, &texts, library);
    let fields = blanks(&texts);
    result.kv.retain(|key, _| !fields.contains(key));
    result.kv.insert(FORM_TYPE_KEY.to_owned(), Value::String(result.title.clone()));
    if !result.tags.iter().any(|t| t == "form") && result.tags.len() < MAX_TAGS {
        result.tags.insert(0, "form".to_owned());
    }
    result.fields = Some(fields);
    result
}

/// Values for a form's fields from the client's library: a field matches a library key
/// with the same normalised name or a synonym of it. Dates become YYYY-MM-DD.
pub fn fill(fields: &[String], library: &Library) -> Map<String, Value> {
    let mut out = Map::new();
    for field in fields {
        let wanted = canonical(field);
        let sources = library.doc.iter().map(|i| (LibraryKind::Doc, i)).chain(library.form.iter().map(|i| (LibraryKind::Form, i)));
        for (kind, item) in sources {
            let found = item.kv.iter().find(|(key, value)| canonical(key) == wanted && !value_text(value).is_empty());
            if let Some((_, value)) = found {
                let text = value_text(value);
                let value = find_dates(&text).first().map(|d| d.iso()).unwrap_or(text);
                let source = ResourceRef { kind, resource_id: item.id.clone() };
                out.insert(field.clone(), serde_json::json!({"value": value, "source": source}));
                break;
            }
        }
    }
    out
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Field names reduced to one spelling: case, punctuation and common synonyms folded.
fn canonical(name: &str) -> String {
    let words: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    const SYNONYMS: &[(&str, &[&str])] = &[
        ("name", &["full name", "name of applicant", "applicant name", "your name"]),
        ("date of birth", &["dob", "birth date", "birthday", "date of birth dd mm yyyy"]),
        ("phone", &["tel", "telephone", "mobile", "phone number", "contact number", "tel no"]),
        ("email", &["e mail", "email address", "e mail address"]),
        ("address", &["addr", "home address", "residential address"]),
        ("id number", &["id no", "identity number", "ic no", "nric", "passport no", "passport number", "document number", "document no"]),
        ("nationality", &["citizenship"]),
        ("sex", &["gender"]),
    ];
    for (canonical, others) in SYNONYMS {
        if words == *canonical || others.contains(&words.as_str()) {
            return (*canonical).to_owned();
        }
    }
    words
}

/// "Label: value" on one line, or "Label:" with its value on the next line.
fn label_values(lines: &[&str]) -> Map<String, Value> {
    let mut kv = Map::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((label, value)) = line.split_once(':') else { continue };
        let label = label.trim().trim_end_matches(['.', '-']).trim();
        let words = label.split_whitespace().count();
        if label.is_empty() || words > MAX_LABEL_WORDS || !label.chars().any(char::is_alphabetic) || !find_dates(label).is_empty() {
            continue;
        }
        let mut value = value.trim().to_owned();
        if value.is_empty() {
            match lines.get(i + 1) {
                Some(next) if can_be_value(next) => value = next.trim().to_owned(),
                _ => continue,
            }
        }
        if is_blank(&value) || kv.contains_key(label) {
            continue;
        }
        // A date's label takes only a date: "Date:" over a blank is followed by whatever
        // comes next on the page, often not its value.
        let value = match find_dates(&value).first() {
            Some(date) if label.to_lowercase().contains("date") => date.for_kv(),
            None if label.to_lowercase().contains("date") && !value.chars().any(|c| c.is_ascii_digit()) => continue,
            _ => value,
        };
        kv.insert(label.to_owned(), Value::String(value));
    }
    kv
}

/// Values found anywhere, under the keys the prompt asks the LLM for.
fn add_found_values(lines: &[&str], kv: &mut Map<String, Value>) {
    let has = |kv: &Map<String, Value>, word: &str| kv.keys().any(|k| k.to_lowercase().contains(word));
    if !has(kv, "date") {
        if let Some(date) = lines.iter().find_map(|l| find_dates(l).into_iter().next()) {
            kv.insert("Date".into(), Value::String(date.for_kv()));
        }
    }
    if let Some(total) = find_total(lines) {
        kv.insert("Total".into(), Value::String(total));
    }
    if !has(kv, "mail") {
        if let Some(email) = lines.iter().find_map(|l| find_emails(l).into_iter().next()) {
            kv.insert("Email".into(), Value::String(email));
        }
    }
    for (key, number) in lines.iter().filter_map(|l| find_document_number(l)) {
        // A "Label: value" pair for the same number already holds it under the printed label.
        if !kv.values().any(|v| v.as_str() == Some(number.as_str())) {
            kv.entry(key.to_owned()).or_insert(Value::String(number));
        }
    }
    if let Some(mrz) = find_mrz(lines) {
        kv.insert("MRZ".into(), Value::String(mrz.lines.join("\n")));
        let kv_has_value = |n: &String| kv.values().any(|v| v.as_str() == Some(n.as_str()));
        let document_number = mrz.document_number.clone().filter(|n| !kv_has_value(n));
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                kv.entry(key.to_owned()).or_insert(Value::String(value));
            }
        };
        put("Document Number", document_number);
        put("Surname", mrz.surname);
        put("Given Names", mrz.given_names);
        put("Nationality", mrz.nationality);
        put("Date of Birth", mrz.birth_date.map(|d| d.for_kv()));
        put("Date of Expiry", mrz.expiry_date.map(|d| d.for_kv()));
        put("Sex", mrz.sex.map(String::from));
    }
    if !has(kv, "phone") && !has(kv, "tel") {
        if let Some(phone) = lines.iter().find_map(|l| find_phones(l).into_iter().next()) {
            kv.insert("Phone".into(), Value::String(phone));
        }
    }
}

/// The most heading-like of the first lines: tall, early, words rather than numbers, and
/// not a label/value.
fn title(lines: &[Line]) -> Option<String> {
    let weight = |(i, line): &(usize, &Line)| {
        let digits = line.text.chars().filter(|c| c.is_ascii_digit()).count();
        let numeric = if digits > 0 { 0.7 } else { 1.0 };
        line.height * (1.0 - 0.05 * *i as f32) * numeric
    };
    lines
        .iter()
        .take(TITLE_WINDOW)
        .enumerate()
        .filter(|(_, l)| l.text.chars().filter(|c| c.is_alphabetic()).count() >= 3 && !l.text.contains(':'))
        .max_by(|a, b| weight(a).total_cmp(&weight(b)))
        .map(|(_, l)| l.text.trim().to_owned())
}

/// 1 to 4 tags from what the text is about.
fn tags(lines: &[&str]) -> Vec<String> {
    let text = lines.join(" ").to_lowercase();
    const KINDS: &[(&str, &[&str])] = &[
        ("receipt", &["receipt", "cash", "change", "total", "gst", "tax invoice"]),
        ("invoice", &["invoice", "bill to", "amount due"]),
        ("form", &["application", "form", "signature", "please fill"]),
        ("identity", &["passport", "identity card", "nationality", "date of birth"]),
        ("letter", &["dear ", "sincerely", "regards"]),
        ("contract", &["agreement", "party", "terms and conditions"]),
    ];
    let mut tags: Vec<String> = KINDS
        .iter()
        .filter(|(_, words)| words.iter().any(|w| text.contains(w)))
        .map(|(tag, _)| (*tag).to_owned())
        .take(MAX_TAGS)
        .collect();
    if tags.is_empty() {
        tags.push("document".to_owned());
    }
    tags
}

fn describe(title: &str, tags: &[String], kv: &Map<String, Value>) -> String {
    let mut description = format!("{} ({})", title, tags.join(", "));
    for key in ["Date", "Total"] {
        if let Some(value) = kv.get(key).and_then(Value::as_str) {
            description.push_str(&format!("; {} {}", key.to_lowercase(), value));
        }
    }
    description.push('.');
    description
}

/// Library items that share the title's words or a key/value with this document.
fn related(title: &str, kv: &Map<String, Value>, library: &Library) -> Vec<ResourceRef> {
    let words = |s: &str| -> Vec<String> {
        s.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).map(str::to_owned).collect()
    };
    let ours = words(title);
    let score = |item: &LibraryItem| {
        let theirs = words(&item.title);
        let shared_words = ours.iter().filter(|w| theirs.contains(w)).count();
        let shared_values = kv.iter().filter(|(k, v)| item.kv.get(*k) == Some(*v)).count();
        shared_words + 2 * shared_values
    };
    let mut scored: Vec<(usize, ResourceRef)> = library
        .doc
        .iter()
        .map(|i| (score(i), ResourceRef { kind: LibraryKind::Doc, resource_id: i.id.clone() }))
        .chain(library.form.iter().map(|i| (score(i), ResourceRef { kind: LibraryKind::Form, resource_id: i.id.clone() })))
        .filter(|(s, _)| *s > 0)
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    scored.into_iter().take(MAX_RELATED).map(|(_, r)| r).collect()
}

/// Whether the line after a bare "Label:" can be its value: not another label, and not
/// itself a blank or a box to tick.
fn can_be_value(line: &str) -> bool {
    !line.contains(':') && !line.contains("__") && !line.starts_with(['□', '☐']) && !line.starts_with('[')
}

/// Whether a value is only a blank to fill: underscores, dots, boxes.
fn is_blank(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| matches!(c, '_' | '.' | '□' | '☐' | '[' | ']' | ' ' | '…' | '-'))
}

/// Labels of the blanks to fill: "Label: ____", "Label ____", "□ Label", "[ ] Label", and
/// "Label:" with nothing after it on its line or the next.
fn blanks(lines: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut push = |label: &str| {
        let label = label.trim().trim_end_matches([':', '.', '_']).trim();
        if !label.is_empty() && label.chars().any(char::is_alphabetic) && label.split_whitespace().count() <= MAX_LABEL_WORDS && !fields.iter().any(|f| f == label) {
            fields.push(label.to_owned());
        }
    };
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix(['□', '☐']).or_else(|| line.strip_prefix("[ ]")).or_else(|| line.strip_prefix("[]")) {
            push(rest);
        } else if let Some(start) = line.find("__") {
            push(&line[..start]);
        } else if let Some(label) = line.strip_suffix(':') {
            if !lines.get(i + 1).is_some_and(|next| can_be_value(next)) {
                push(label);
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(texts: &[(&str, f32)]) -> Vec<Line> {
        texts.iter().map(|(t, h)| Line { text: (*t).into(), height: *h }).collect()
    }

    #[test]
    fn a_receipt_gives_its_title_date_total_and_labels() {
        let receipt = lines(&[
            ("BOOK TA.K (TAMAN DAYA) SDN BHD", 30.0),
            ("789417-W", 20.0),
            ("TEL:07-3525888", 20.0),
            ("Document No: TD01167104", 20.0),
            ("Date:", 20.0),
            ("25/12/2018 8:13:39 PM", 20.0),
            ("Cashier: MANIS", 20.0),
            ("Total:", 20.0),
            ("9.00", 20.0),
            ("Rounded Total (RM): 9.00", 20.0),
            ("CASH 10.00", 20.0),
        ]);
        let library = Library {
            doc: vec![
                docusnap_core::protocol::LibraryItem { id: "same-shop".into(), title: "Book Ta.K receipt".into(), ..Default::default() },
                docusnap_core::protocol::LibraryItem { id: "other".into(), title: "Passport".into(), ..Default::default() },
            ],
            form: vec![],
        };
        let doc = extract_doc(&receipt, &library);
        assert_eq!(doc.title, "BOOK TA.K (TAMAN DAYA) SDN BHD");
        assert_eq!(doc.kv.get("Date"), Some(&json!("Dec 25, 2018")));
        assert_eq!(doc.kv.get("Total"), Some(&json!("9.00")));
        assert_eq!(doc.kv.get("Document No"), Some(&json!("TD01167104")));
        assert_eq!(doc.kv.get("Cashier"), Some(&json!("MANIS")));
        assert_eq!(doc.kv.get("TEL"), Some(&json!("07-3525888")));
        assert_eq!(doc.tags, ["receipt"]);
        assert_eq!(doc.related, vec![ResourceRef { kind: LibraryKind::Doc, resource_id: "same-shop".into() }]);
        // What the rules produce passes the same checks an LLM's answer must.
        assert!(doc.normalise(false, &library).is_ok());
    }

    #[test]
    fn a_form_lists_its_blanks_apart_from_its_printed_values() {
        let form = lines(&[
            ("VISA APPLICATION FORM", 34.0),
            ("Embassy: Republic of Examples", 18.0),
            ("Full name: ________", 18.0),
            ("Date of birth ____", 18.0),
            ("Passport No:", 18.0),
            ("Address:", 18.0),
            ("□ Tourist visa", 18.0),
            ("[ ] Business visa", 18.0),
        ]);
        let result = extract_form(&form, &Library::default());
        assert_eq!(result.fields.clone().unwrap(), ["Full name", "Date of birth", "Passport No", "Address", "Tourist visa", "Business visa"]);
        assert_eq!(result.kv.get("Form Type"), Some(&json!("VISA APPLICATION FORM")));
        assert_eq!(result.kv.get("Embassy"), Some(&json!("Republic of Examples")));
        assert!(result.fields.as_ref().unwrap().iter().all(|f| !result.kv.contains_key(f)));
        assert!(result.tags.contains(&"form".to_string()));
        assert!(result.normalise(true, &Library::default()).is_ok());
    }

    #[test]
    fn a_date_label_takes_only_a_date_from_the_next_line() {
        let doc = extract_doc(&lines(&[("CLAIM", 30.0), ("Date:", 18.0), ("CORNER BAKERY", 18.0)]), &Library::default());
        assert_eq!(doc.kv.get("Date"), None);
        let doc = extract_doc(&lines(&[("CLAIM", 30.0), ("Date:", 18.0), ("03/01/2026", 18.0)]), &Library::default());
        assert_eq!(doc.kv.get("Date"), Some(&json!("Jan 03, 2026")));
    }

    #[test]
    fn fill_matches_fields_to_library_keys_by_name_and_synonym() {
        let library: Library = serde_json::from_value(json!({
            "doc": [{"id": "passport-1", "title": "Passport", "kv": {"Name": "Ann Lee", "DOB": "Mar 04, 1990", "Passport No.": "X1234567"}}],
            "form": [{"id": "form-7", "title": "Old form", "kv": {"E-mail": "ann@example.com", "Phone": ""}}]
        }))
        .unwrap();
        let fields: Vec<String> = ["Full name", "Date of birth", "Passport number", "Email address", "Phone", "Signature"].map(String::from).to_vec();
        let filled = fill(&fields, &library);
        assert_eq!(
            Value::Object(filled),
            json!({
                "Full name": {"value": "Ann Lee", "source": {"type": "doc", "resource_id": "passport-1"}},
                "Date of birth": {"value": "1990-03-04", "source": {"type": "doc", "resource_id": "passport-1"}},
                "Passport number": {"value": "X1234567", "source": {"type": "doc", "resource_id": "passport-1"}},
                "Email address": {"value": "ann@example.com", "source": {"type": "form", "resource_id": "form-7"}}
            })
        );
    }
}
