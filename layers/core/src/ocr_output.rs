//! What the OCR function hands to the extract function: every page's lines with their
//! text, score and box, and what else extraction needs from the envelope (the library, a
//! fill task's form), sealed under the client's key in the task's `ocr.bin`. Extraction
//! reads that one small object and never opens the envelope and its images. One type,
//! serialised by the writer and parsed by the reader, so a renamed field fails to compile
//! (or to parse, for an object an older version wrote) instead of reading as "no text".

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::Library;

/// A point on a page, in the page's pixels.
pub type Point = [f32; 2];

/// One line of text on a page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    pub text: String,
    /// Mean character probability from OCR, 0 to 1 (1 for text taken from the file).
    pub score: f32,
    /// Top-left, top-right, bottom-right, bottom-left, in page pixels.
    #[serde(rename = "box")]
    pub quad: [Point; 4],
}

impl TextLine {
    /// The box's height: the spread of its corners' y.
    pub fn height(&self) -> f32 {
        let ys = self.quad.map(|p| p[1]);
        let (low, high) = ys.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
        (high - low).max(0.0)
    }
}

/// Where a page's text came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextOrigin {
    /// Read from the page's pixels.
    #[default]
    Ocr,
    /// Taken from the document's own text layer (a born-digital PDF page).
    TextLayer,
}

/// One page, its lines in reading order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageText {
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub origin: TextOrigin,
    pub lines: Vec<TextLine>,
}

impl PageText {
    /// The page's text as the extractor takes it: lines joined by single spaces.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// A task's OCR output: its pages in order (none for a fill task), its library, and a
/// fill task's form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrOutput {
    pub pages: Vec<PageText>,
    #[serde(default)]
    pub library: Library,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Map<String, Value>>,
}

impl OcrOutput {
    /// The pages' text as PROTOCOL.md's "OCR text" gives it to the LLM:
    /// `"\n----page N----\n" + text` per page, N from 1.
    pub fn text(&self) -> String {
        self.pages.iter().enumerate().map(|(i, page)| format!("\n----page {}----\n{}", i + 1, page.text())).collect()
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and lists only: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, top: f32) -> TextLine {
        TextLine {
            text: text.into(),
            score: 0.9,
            quad: [[0.0, top], [10.0, top], [10.0, top + 12.0], [0.0, top + 12.0]],
        }
    }

    #[test]
    fn text_marks_pages_from_one() {
        let output = OcrOutput {
            pages: vec![
                PageText { width: 1, height: 1, origin: TextOrigin::Ocr, lines: vec![line("a", 0.0), line("b", 20.0)] },
                PageText { width: 1, height: 1, origin: TextOrigin::TextLayer, lines: vec![line("c", 0.0)] },
            ],
            ..OcrOutput::default()
        };
        assert_eq!(output.text(), "\n----page 1----\na b\n----page 2----\nc");
        assert_eq!(output.pages[0].lines[1].height(), 12.0);
    }

    #[test]
    fn the_wire_form_round_trips_and_names_its_fields() {
        let output = OcrOutput {
            pages: vec![PageText { width: 7, height: 9, origin: TextOrigin::TextLayer, lines: vec![line("x", 1.0)] }],
            form: Some(serde_json::from_str(r#"{"fields": ["Name"]}"#).unwrap()),
            ..OcrOutput::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&output.to_json()).unwrap();
        assert_eq!(json["pages"][0]["lines"][0]["box"][2], serde_json::json!([10.0, 13.0]));
        assert_eq!(json["pages"][0]["origin"], "text_layer");
        assert_eq!(OcrOutput::from_json(&output.to_json()).unwrap(), output);
        // An object without lines is not silently "no text".
        assert!(OcrOutput::from_json(br#"{"pages": [{"width": 1, "height": 1, "rows": []}]}"#).is_err());
    }
}
