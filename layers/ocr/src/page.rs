//! What the engine reads off a page.

use serde::Serialize;

use crate::geometry::Quad;
use crate::orientation::Orientation;

/// One recognised line of text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TextLine {
    pub text: String,
    /// Mean character probability, 0 to 1.
    pub score: f32,
    /// Top-left, top-right, bottom-right, bottom-left, in page pixels.
    #[serde(rename = "box", serialize_with = "serialize_quad")]
    pub quad: Quad,
}

fn serialize_quad<S: serde::Serializer>(quad: &Quad, s: S) -> Result<S::Ok, S::Error> {
    let points: Vec<[f32; 2]> = quad.iter().map(|p| [p.x, p.y]).collect();
    points.serialize(s)
}

/// One page's lines, in reading order, their boxes in the page's pixels as it came (an
/// image's after its EXIF orientation), each box's corners in the text's own order: the
/// first is the top-left of the text as it reads, wherever the page's turn put it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Page {
    pub width: u32,
    pub height: u32,
    /// How the page was turned and levelled to be read.
    pub orientation: Orientation,
    pub lines: Vec<TextLine>,
}

impl Page {
    /// The page's text: lines joined by single spaces.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}
