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

use docusnap_core::ocr_output::OcrOutput;
use docusnap_core::results::flatten_kv;
use docusnap_core::task::ExtractorKind;
use serde_json::{json, Map, Value};

/// Most lines one value's provenance lists: a value matched by more is a common word,
/// and the first few say as much as all of them.
pub const MAX_SOURCES: usize = 8;

/// The v2 result for a v1 `result`, from the task's OCR output and extractor.
pub fn v2_result(result: &Value, ocr: &OcrOutput, extractor: &ExtractorKind) -> Value {
    let mut out = result.as_object().cloned().unwrap_or_default();
    out.insert("extractor".into(), Value::String(extractor.to_string()));
    if ocr.form.is_some() {
        // A fill task's values come from the library, and each says which item (`source`).
        return Value::Object(out);
    }
    let index = LineIndex::new(ocr);
    let pages: Vec<Value> = ocr
        .pages
        .iter()
        .map(|page| {
            let lines: Vec<Value> =
                page.lines.iter().map(|l| json!({"text": l.text, "confidence": l.score, "box": l.quad})).collect();
            json!({"width": page.width, "height": page.height, "origin": page.origin, "lines": lines})
        })
        .collect();
    let mut provenance = Map::new();
    if let Some(kv) = result.get("kv").and_then(Value::as_object) {
        let sources: Map<String, Value> =
            flatten_kv(kv).iter().map(|(key, value)| (key.clone(), index.sources(&leaf_text(value)))).collect();
        provenance.insert("kv".into(), Value::Object(sources));
    }
    if let Some(fields) = result.get("fields").and_then(Value::as_array) {
        let sources: Map<String, Value> =
            fields.iter().filter_map(Value::as_str).map(|label| (label.to_owned(), index.sources(label))).collect();
        provenance.insert("fields".into(), Value::Object(sources));
    }
    out.insert("pages".into(), Value::Array(pages));
    out.insert("provenance".into(), Value::Object(provenance));
    Value::Object(out)
}

fn leaf_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every line of the task, folded once.
struct LineIndex<'a> {
    ocr: &'a OcrOutput,
    /// (page, line, folded text, numbers)
    lines: Vec<(usize, usize, String, Vec<String>)>,
}

impl<'a> LineIndex<'a> {
    fn new(ocr: &'a OcrOutput) -> Self {
        let lines = ocr
            .pages
            .iter()
            .enumerate()
            .flat_map(|(p, page)| {
                page.lines.iter().enumerate().map(move |(l, line)| (p, l, fold(&line.text), numbers(&line.text)))
            })
            .collect();
        Self { ocr, lines }
    }

    fn sources(&self, value: &str) -> Value {
        let folded = fold(value);
        if folded.is_empty() {
            return Value::Array(Vec::new());
        }
        let whole: Vec<_> = self.lines.iter().filter(|(_, _, text, _)| text.contains(&folded)).collect();
        let found = if !whole.is_empty() {
            whole
        } else {
            let parts: Vec<_> = self
                .lines
                .iter()
                .filter(|(_, _, text, _)| text.chars().count() >= 3 && folded.contains(text.as_str()))
                .collect();
            if !parts.is_empty() {
                parts
            } else {
                let wanted = numbers(value);
                if wanted.iter().any(|n| n.len() >= 2) {
                    self.lines.iter().filter(|(_, _, _, have)| wanted.iter().all(|n| have.contains(n))).collect()
                } else {
                    Vec::new()
                }
            }
        };
        Value::Array(
            found
                .into_iter()
                .take(MAX_SOURCES)
                .map(|&(page, line, _, _)| {
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

    fn page(lines: &[&str]) -> PageText {
        PageText {
            width: 600,
            height: 800,
            origin: TextOrigin::Ocr,
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
        let v2 = v2_result(&result, &ocr, &ExtractorKind::Rules);
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
    }

    #[test]
    fn form_fields_point_at_their_labels_and_fill_results_only_gain_the_extractor() {
        let ocr = OcrOutput { pages: vec![page(&["Name: ______", "Signature"])], ..OcrOutput::default() };
        let form = json!({"title": "t", "tags": ["form"], "description": "d", "related": [], "kv": {"Form Type": "Visa"}, "fields": ["Name", "Signature"]});
        let v2 = v2_result(&form, &ocr, &ExtractorKind::Llm { model: "glm-4".into() });
        assert_eq!(v2["provenance"]["fields"]["Signature"][0]["line"], 1);
        assert_eq!(v2["extractor"], "llm:glm-4");
        let fill = OcrOutput { form: Some(Map::new()), ..OcrOutput::default() };
        let filled = json!({"Name": {"value": "Ann", "source": {"type": "doc", "resource_id": "1"}}});
        let v2 = v2_result(&filled, &fill, &ExtractorKind::Rules);
        assert_eq!(v2["Name"]["value"], "Ann");
        assert!(v2.get("pages").is_none());
    }
}
