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
    /// Read from the page's pixels in the OCR engine's fast mode (bulk ingestion).
    OcrFast,
    /// Taken from the document's own text layer (a born-digital PDF page).
    TextLayer,
}

/// Quarter turns clockwise that stood a page, as it came, upright to be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum Rotation {
    #[default]
    None,
    Quarter,
    Half,
    ThreeQuarters,
}

impl Rotation {
    pub fn from_degrees(degrees: u16) -> Option<Self> {
        Some(match degrees {
            0 => Rotation::None,
            90 => Rotation::Quarter,
            180 => Rotation::Half,
            270 => Rotation::ThreeQuarters,
            _ => return None,
        })
    }
}

impl TryFrom<u16> for Rotation {
    type Error = String;
    fn try_from(degrees: u16) -> Result<Self, String> {
        Rotation::from_degrees(degrees)
            .ok_or_else(|| format!("a page turns by 0, 90, 180 or 270 degrees, not {degrees}"))
    }
}

impl From<Rotation> for u16 {
    fn from(rotation: Rotation) -> u16 {
        match rotation {
            Rotation::None => 0,
            Rotation::Quarter => 90,
            Rotation::Half => 180,
            Rotation::ThreeQuarters => 270,
        }
    }
}

/// How OCR turned and levelled a page to read it. Its boxes stay in the page's pixels as
/// it came; the rules, which read rows and columns, see them through [`PageText::upright`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Orientation {
    pub rotation: Rotation,
    /// Degrees the upright page's lines fall to the right (negative: rise).
    #[serde(default)]
    pub skew: f32,
}

impl Orientation {
    pub fn is_upright(&self) -> bool {
        *self == Orientation::default()
    }
}

/// One page, its lines in reading order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageText {
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub origin: TextOrigin,
    /// Absent for an upright page, and in what an older version wrote.
    #[serde(default, skip_serializing_if = "Orientation::is_upright")]
    pub orientation: Orientation,
    pub lines: Vec<TextLine>,
}

impl PageText {
    /// The page's text as the extractor takes it: lines joined by single spaces.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// A box of this page in its upright, levelled frame (the page turned by its
    /// rotation, then its skew turned back about the upright page's centre), the frame
    /// OCR ordered its lines in.
    pub fn upright(&self, quad: &[Point; 4]) -> [Point; 4] {
        let (w, h) = (self.width as f32, self.height as f32);
        let (uw, uh) = match self.orientation.rotation {
            Rotation::None | Rotation::Half => (w, h),
            Rotation::Quarter | Rotation::ThreeQuarters => (h, w),
        };
        let (sin, cos) = self.orientation.skew.to_radians().sin_cos();
        quad.map(|[x, y]| {
            let [x, y] = match self.orientation.rotation {
                Rotation::None => [x, y],
                Rotation::Quarter => [h - y, x],
                Rotation::Half => [w - x, h - y],
                Rotation::ThreeQuarters => [y, w - x],
            };
            let (dx, dy) = (x - uw / 2.0, y - uh / 2.0);
            [uw / 2.0 + dx * cos + dy * sin, uh / 2.0 - dx * sin + dy * cos]
        })
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
                PageText {
                    width: 1,
                    height: 1,
                    origin: TextOrigin::Ocr,
                    orientation: Orientation::default(),
                    lines: vec![line("a", 0.0), line("b", 20.0)],
                },
                PageText {
                    width: 1,
                    height: 1,
                    origin: TextOrigin::TextLayer,
                    orientation: Orientation::default(),
                    lines: vec![line("c", 0.0)],
                },
            ],
            ..OcrOutput::default()
        };
        assert_eq!(output.text(), "\n----page 1----\na b\n----page 2----\nc");
        assert_eq!(output.pages[0].lines[1].height(), 12.0);
    }

    #[test]
    fn the_wire_form_round_trips_and_names_its_fields() {
        let output = OcrOutput {
            pages: vec![PageText {
                width: 7,
                height: 9,
                origin: TextOrigin::TextLayer,
                orientation: Orientation::default(),
                lines: vec![line("x", 1.0)],
            }],
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

    #[test]
    fn a_turned_page_records_its_turn_and_its_boxes_read_upright() {
        // A 200x100 page that came turned a quarter counter-clockwise: its lines run up
        // the image, the first along the left edge.
        let page = PageText {
            width: 200,
            height: 100,
            orientation: Orientation { rotation: Rotation::Quarter, skew: 0.0 },
            ..PageText::default()
        };
        let first = page.upright(&[[10.0, 90.0], [10.0, 10.0], [30.0, 10.0], [30.0, 90.0]]);
        assert_eq!(first, [[10.0, 10.0], [90.0, 10.0], [90.0, 30.0], [10.0, 30.0]]);
        let json = serde_json::to_value(&page).unwrap();
        assert_eq!(json["orientation"], serde_json::json!({"rotation": 90, "skew": 0.0}));
        assert_eq!(serde_json::from_value::<PageText>(json).unwrap(), page);
        // An upright page writes nothing of it; a turn that is not a quarter is refused.
        let upright = serde_json::to_value(PageText::default()).unwrap();
        assert!(upright.get("orientation").is_none());
        let bad = r#"{"width": 1, "height": 1, "orientation": {"rotation": 45}, "lines": []}"#;
        assert!(serde_json::from_str::<PageText>(bad).is_err());
    }
}
