//! v2's result: v1's plus every page's lines (text, confidence, box), the extractor, and
//! for each kv entry and form field the lines it was read from.
//!
//! Provenance is found the same way whatever made the result (an LLM returns no
//! positions, and the rules' positions would cover only their own values), by one rule
//! applied in order, on text lowercased with punctuation and spacing folded:
//! 1. the lines that contain the whole value;
//! 2. else the lines (of 3 characters or more) that the value contains: a value read
//!    across lines, such as an address;
//! 3. else the lines holding every number of the value (at least one of two digits or
//!    more): a date or amount the extractor rewrote ("14/02/2026" as "Feb 14, 2026").
//!
//! A value no line accounts for has an empty list: the extractor inferred it.

use std::ops::Range;

use docusnap_core::ocr_output::OcrOutput;
use docusnap_core::results::flatten_kv;
use serde_json::{json, Map, Value};

use crate::layout::Line;
use crate::Extraction;

/// Most lines one value's provenance lists: a value matched by more is a common word,
/// and the first few say as much as all of them.
pub const MAX_SOURCES: usize = 8;

/// The v2 result of an extraction, from the task's OCR output: v1's result, the
/// extractor, every page's lines, the provenance of each kv entry and form field, the kv
/// entries no line supports (`unverified`), and each document of the upload with its
/// own result, provenance and unverified entries.
pub fn v2_result(extraction: &Extraction, ocr: &OcrOutput) -> Value {
    let result = &extraction.result;
    let mut out = result.as_object().cloned().unwrap_or_default();
    out.insert("extractor".into(), Value::String(extraction.extractor.to_string()));
    if ocr.form.is_some() {
        // A fill task's values come from the library, and each says which item (`source`).
        return Value::Object(out);
    }
    let all = LineIndex::new(ocr, 0..ocr.pages.len());
    let pages: Vec<Value> = ocr
        .pages
        .iter()
        .map(|page| {
            let lines: Vec<Value> =
                page.lines.iter().map(|l| json!({"text": l.text, "confidence": l.score, "box": l.quad})).collect();
            json!({
                "width": page.width,
                "height": page.height,
                "origin": page.origin,
                "rotation": page.orientation.rotation,
                "skew": page.orientation.skew,
                "lines": lines,
            })
        })
        .collect();
    let (provenance, unverified) = all.provenance(result);
    out.insert("pages".into(), Value::Array(pages));
    out.insert("provenance".into(), provenance);
    out.insert("unverified".into(), unverified);
    let corrections: Vec<&crate::Correction> = extraction.documents.iter().flat_map(|d| &d.corrections).collect();
    // With several documents, each lists its own, under its own (unqualified) keys.
    if !corrections.is_empty() && extraction.documents.len() == 1 {
        out.insert("corrections".into(), json!(corrections));
    }
    let documents: Vec<Value> = extraction
        .documents
        .iter()
        .map(|document| {
            let mut part = document.result.as_object().cloned().unwrap_or_default();
            let index = LineIndex::new(ocr, document.pages.clone());
            let (provenance, unverified) = index.provenance(&document.result);
            part.insert("pages".into(), json!(document.pages.clone().collect::<Vec<_>>()));
            part.insert("provenance".into(), provenance);
            part.insert("unverified".into(), unverified);
            if !document.corrections.is_empty() {
                part.insert("corrections".into(), json!(document.corrections));
            }
            Value::Object(part)
        })
        .collect();
    out.insert("documents".into(), Value::Array(documents));
    Value::Object(out)
}

/// The lines of an extraction, folded once, to check values against.
pub struct PageLines(Matcher);

impl PageLines {
    pub fn new(lines: &[Line]) -> Self {
        Self(Matcher::new(lines.iter().enumerate().map(|(i, l)| (l.page, i, l.text.as_str()))))
    }

    /// Whether some line supports `value`, by the rule this module describes.
    pub fn support(&self, value: &str) -> bool {
        !self.0.find(value).is_empty()
    }

    /// The kv keys (flattened) of `kv` whose values no line supports: what the extractor
    /// inferred or invented rather than read.
    pub fn unverified(&self, kv: &Map<String, Value>) -> Vec<String> {
        flatten_kv(kv).iter().filter(|(_, value)| !self.support(&leaf_text(value))).map(|(k, _)| k.clone()).collect()
    }
}

fn leaf_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lines folded once, and the rule that finds a value among them.
struct Matcher {
    /// (page, line, folded text, numbers)
    lines: Vec<(usize, usize, String, Vec<String>)>,
}

impl Matcher {
    fn new<'a>(lines: impl Iterator<Item = (usize, usize, &'a str)>) -> Self {
        Self { lines: lines.map(|(p, l, text)| (p, l, fold(text), numbers(text))).collect() }
    }

    /// The (page, line) of each line that supports `value`, in order.
    fn find(&self, value: &str) -> Vec<(usize, usize)> {
        let folded = fold(value);
        if folded.is_empty() {
            return Vec::new();
        }
        let at = |found: Vec<&(usize, usize, String, Vec<String>)>| found.iter().map(|(p, l, _, _)| (*p, *l)).collect();
        let whole: Vec<_> = self.lines.iter().filter(|(_, _, text, _)| text.contains(&folded)).collect();
        if !whole.is_empty() {
            return at(whole);
        }
        let parts: Vec<_> = self
            .lines
            .iter()
            .filter(|(_, _, text, _)| text.chars().count() >= 3 && folded.contains(text.as_str()))
            .collect();
        if !parts.is_empty() {
            return at(parts);
        }
        let wanted = numbers(value);
        if wanted.iter().any(|n| n.len() >= 2) {
            return at(self.lines.iter().filter(|(_, _, _, have)| wanted.iter().all(|n| have.contains(n))).collect());
        }
        Vec::new()
    }
}

/// The lines of some pages of the task, and how each source is shown.
struct LineIndex<'a> {
    ocr: &'a OcrOutput,
    matcher: Matcher,
}

impl<'a> LineIndex<'a> {
    fn new(ocr: &'a OcrOutput, pages: Range<usize>) -> Self {
        let lines = ocr
            .pages
            .iter()
            .enumerate()
            .filter(|(p, _)| pages.contains(p))
            .flat_map(|(p, page)| page.lines.iter().enumerate().map(move |(l, line)| (p, l, line.text.as_str())));
        Self { ocr, matcher: Matcher::new(lines) }
    }

    /// The provenance of a result's kv and fields, and its kv keys with none.
    fn provenance(&self, result: &Value) -> (Value, Value) {
        let mut provenance = Map::new();
        let mut unverified = Vec::new();
        if let Some(kv) = result.get("kv").and_then(Value::as_object) {
            let mut sources = Map::new();
            for (key, value) in flatten_kv(kv) {
                let found = self.sources(&leaf_text(&value));
                if found.as_array().is_some_and(Vec::is_empty) {
                    unverified.push(Value::String(key.clone()));
                }
                sources.insert(key, found);
            }
            provenance.insert("kv".into(), Value::Object(sources));
        }
        if let Some(fields) = result.get("fields").and_then(Value::as_array) {
            let sources: Map<String, Value> =
                fields.iter().filter_map(Value::as_str).map(|label| (label.to_owned(), self.sources(label))).collect();
            provenance.insert("fields".into(), Value::Object(sources));
        }
        (Value::Object(provenance), Value::Array(unverified))
    }

    fn sources(&self, value: &str) -> Value {
        Value::Array(
            self.matcher
                .find(value)
                .into_iter()
                .take(MAX_SOURCES)
                .map(|(page, line)| {
                    let l = &self.ocr.pages[page].lines[line];
                    json!({"page": page, "line": line, "text": l.text, "confidence": l.score, "box": l.quad})
                })
                .collect(),
        )
    }
}

/// Lowercase, letters and digits kept, every run of anything else one space.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

/// The runs of digits, leading zeros dropped ("02" and "2" are the same month).
fn numbers(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .map(|run| {
            let trimmed = run.trim_start_matches('0');
            if trimmed.is_empty() {
                "0".to_owned()
            } else {
                trimmed.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use docusnap_core::ocr_output::{PageText, TextLine, TextOrigin};
    use docusnap_core::task::ExtractorKind;

    fn extraction(result: Value, extractor: ExtractorKind, pages: Range<usize>) -> Extraction {
        let documents = vec![crate::DocumentResult { pages, result: result.clone(), corrections: Vec::new() }];
        Extraction { result, documents, extractor, usage: Default::default() }
    }

    fn page(lines: &[&str]) -> PageText {
        PageText {
            width: 600,
            height: 800,
            origin: TextOrigin::Ocr,
            orientation: Default::default(),
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, t)| TextLine {
                    text: (*t).into(),
                    score: 0.9,
                    quad: [
                        [10.0, 30.0 * i as f32],
                        [200.0, 30.0 * i as f32],
                        [200.0, 30.0 * i as f32 + 20.0],
                        [10.0, 30.0 * i as f32 + 20.0],
                    ],
                })
                .collect(),
        }
    }

    #[test]
    fn values_point_at_the_lines_they_were_read_from() {
        let ocr = OcrOutput {
            pages: vec![
                page(&["HARBOUR PRINTING SDN BHD", "12 Jalan Laut,", "Klang"]),
                page(&["Date: 14/02/2026", "TOTAL 80.00"]),
            ],
            ..OcrOutput::default()
        };
        let result = json!({"title": "Harbour Printing", "tags": ["invoice"], "description": "d", "related": [],
            "kv": {"Total": "80.00", "Date": "Feb 14, 2026", "Address": "12 Jalan Laut, Klang", "Mood": "cheerful", "Items": ["TOTAL"]}});
        let v2 = v2_result(&extraction(result, ExtractorKind::Rules, 0..2), &ocr);
        assert_eq!(v2["extractor"], "rules");
        assert_eq!(v2["title"], "Harbour Printing", "v1's fields stay");
        assert_eq!(v2["pages"][1]["lines"][1]["text"], "TOTAL 80.00");
        assert_eq!(v2["pages"][1]["lines"][1]["box"][2], json!([200.0, 50.0]));
        let kv = &v2["provenance"]["kv"];
        let at = |key: &str| {
            kv[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (s["page"].as_u64().unwrap(), s["line"].as_u64().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(at("Total"), [(1, 1)]);
        assert_eq!(at("Date"), [(1, 0)], "a rewritten date by its numbers");
        assert_eq!(at("Address"), [(0, 1), (0, 2)], "a value across lines");
        assert_eq!(at("Mood"), Vec::<(u64, u64)>::new(), "inferred: no line");
        assert_eq!(at("Items.1"), [(1, 1)], "list entries by their flattened key");
        assert!((kv["Total"][0]["confidence"].as_f64().unwrap() - 0.9).abs() < 1e-6);
        assert_eq!(v2["unverified"], json!(["Mood"]));
        assert_eq!(v2["documents"][0]["pages"], json!([0, 1]));
        assert_eq!(v2["documents"][0]["unverified"], json!(["Mood"]));
    }

    #[test]
    fn each_document_finds_its_sources_on_its_own_pages() {
        let ocr =
            OcrOutput { pages: vec![page(&["TOTAL 9.50"]), page(&["TOTAL 9.50", "TIP 1.00"])], ..OcrOutput::default() };
        let doc = |total: &str| json!({"title": "r", "tags": ["receipt"], "description": "", "related": [], "kv": {"Total": total}});
        let mut done = extraction(json!({}), ExtractorKind::Rules, 0..1);
        done.documents.push(crate::DocumentResult { pages: 1..2, result: doc("9.50"), corrections: Vec::new() });
        done.documents[0].result = doc("9.50");
        let v2 = v2_result(&done, &ocr);
        assert_eq!(v2["documents"][0]["provenance"]["kv"]["Total"][0]["page"], 0);
        let second = v2["documents"][1]["provenance"]["kv"]["Total"].as_array().unwrap();
        assert_eq!((second.len(), &second[0]["page"]), (1, &json!(1)), "not the first document's line");
        assert_eq!(v2["documents"][1]["pages"], json!([1]));
    }

    #[test]
    fn form_fields_point_at_their_labels_and_fill_results_only_gain_the_extractor() {
        let ocr = OcrOutput { pages: vec![page(&["Name: ______", "Signature"])], ..OcrOutput::default() };
        let form = json!({"title": "t", "tags": ["form"], "description": "d", "related": [], "kv": {"Form Type": "Visa"}, "fields": ["Name", "Signature"]});
        let v2 = v2_result(&extraction(form, ExtractorKind::Llm { model: "glm-4".into(), format: None }, 0..1), &ocr);
        assert_eq!(v2["provenance"]["fields"]["Signature"][0]["line"], 1);
        assert_eq!(v2["extractor"], "llm:glm-4");
        let fill = OcrOutput { form: Some(Map::new()), ..OcrOutput::default() };
        let filled = json!({"Name": {"value": "Ann", "source": {"type": "doc", "resource_id": "1"}}});
        let v2 = v2_result(&extraction(filled, ExtractorKind::Rules, 0..0), &fill);
        assert_eq!(v2["Name"]["value"], "Ann");
        assert!(v2.get("pages").is_none());
    }
}
