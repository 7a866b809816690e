//! A page's orientation: the quarter turn that stands it upright, told from the
//! detector's boxes before anything is read, and the skew of its lines, measured from
//! their boxes. The lines are put in reading order in the upright, levelled frame, and
//! their boxes given back in the page's own.

use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::geometry::{self, ordered, Point, Quad};

/// Quarter turns clockwise that stand the page, as it came, upright.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(into = "u16")]
pub enum Rotation {
    #[default]
    None,
    Quarter,
    Half,
    ThreeQuarters,
}

impl Rotation {
    pub fn degrees(self) -> u16 {
        match self {
            Rotation::None => 0,
            Rotation::Quarter => 90,
            Rotation::Half => 180,
            Rotation::ThreeQuarters => 270,
        }
    }
}

/// A quarter turn the engine applies to read a page: a [`Rotation`] other than none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    Quarter,
    Half,
    ThreeQuarters,
}

impl Turn {
    /// `image` turned clockwise by this turn.
    pub(crate) fn apply(self, image: &RgbImage) -> RgbImage {
        match self {
            Turn::Quarter => image::imageops::rotate90(image),
            Turn::Half => image::imageops::rotate180(image),
            Turn::ThreeQuarters => image::imageops::rotate270(image),
        }
    }
}

impl From<Turn> for Rotation {
    fn from(turn: Turn) -> Rotation {
        match turn {
            Turn::Quarter => Rotation::Quarter,
            Turn::Half => Rotation::Half,
            Turn::ThreeQuarters => Rotation::ThreeQuarters,
        }
    }
}

impl From<Rotation> for u16 {
    fn from(rotation: Rotation) -> u16 {
        rotation.degrees()
    }
}

/// How the page was turned to be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Orientation {
    pub rotation: Rotation,
    /// Degrees the upright page's lines fall to the right (clockwise, y down); negative when
    /// they rise. 0 for a page within [`MIN_SKEW_DEGREES`] of level.
    pub skew: f32,
}

/// Whether the page's text runs up or down the image rather than across: most of its
/// text, by length, is in tall boxes (see [`geometry::LONG_ASPECT`]; square boxes, a digit
/// or a tick, say nothing). A sideways page's lines are all tall; an upright page's tall
/// boxes are a margin note or a stamp at most. A page of vertical CJK columns reads as
/// sideways too, and is read across its columns, as PP-OCR reads a tall crop.
pub(crate) fn is_sideways(quads: &[Quad]) -> bool {
    let (mut tall, mut wide) = (0.0, 0.0);
    for q in quads {
        let (width, height) = geometry::sides(q);
        if geometry::is_long(height, width) {
            tall += height;
        } else if geometry::is_long(width, height) {
            wide += width;
        }
    }
    tall > wide
}

/// Only lines this many times as long as they are tall give the page's skew: the angle
/// of a short word's box is mostly the detector's rounding.
const SKEW_LINE_ASPECT: f32 = 3.0;
/// A page skewed less than this is ordered as it is: its rows already fall together (a
/// 1° skew lifts a 1,000 px line by 17 px, under half a receipt line's height).
pub const MIN_SKEW_DEGREES: f32 = 1.0;
/// A line at more than this is a stamp or a diagonal note, not the page's skew: a page
/// turned further is a quarter turn's business.
const MAX_SKEW_DEGREES: f32 = 30.0;

/// The page's skew in degrees from its upright boxes (corners in [`ordered`] order): the
/// length-weighted median angle of its long lines, so a stamp or two cannot tilt it.
pub(crate) fn skew(upright: &[Quad]) -> f32 {
    let mut angles: Vec<(f32, f32)> = upright
        .iter()
        .filter_map(|q| {
            let (top, side) = (q[1].sub(q[0]), q[0].dist(q[3]));
            let length = top.x.hypot(top.y);
            let angle = top.y.atan2(top.x).to_degrees();
            (length >= SKEW_LINE_ASPECT * side && angle.abs() <= MAX_SKEW_DEGREES).then_some((angle, length))
        })
        .collect();
    angles.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half: f32 = angles.iter().map(|a| a.1).sum::<f32>() / 2.0;
    let mut seen = 0.0;
    let median = angles.iter().find(|(_, length)| {
        seen += length;
        seen >= half
    });
    match median {
        Some(&(angle, _)) if angle.abs() >= MIN_SKEW_DEGREES => angle,
        _ => 0.0,
    }
}

/// A page skewed by this much or more is levelled before its text is found: the detector
/// is trained on level lines, and on forms skewed 10° it ran lines of small print
/// together (CER 0.05-0.06 worse on FUNSD, where ordering alone was levelled). Under it,
/// a 1,500 px line drifts less than two lines of small print, and levelling the order is
/// enough; the scans of ../shared/data all measure under 1°, so they never pay for it.
pub const LEVEL_DEGREES: f32 = 2.0;

/// `image` turned `degrees` clockwise about its centre, on a canvas grown to hold all of
/// it, the corners filled white (bilinear); and the map from the turned canvas back to
/// `image`.
pub fn turned_by(image: &RgbImage, degrees: f32) -> (RgbImage, Levelling) {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (out_w, out_h) = ((w * cos.abs() + h * sin.abs()).ceil(), (w * sin.abs() + h * cos.abs()).ceil());
    let map = Levelling { cos, sin, from: Point::new(w / 2.0, h / 2.0), to: Point::new(out_w / 2.0, out_h / 2.0) };
    let mut out = RgbImage::from_pixel(out_w as u32, out_h as u32, Rgb([255, 255, 255]));
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let source = map.to_image(Point::new(x as f32 + 0.5, y as f32 + 0.5));
        let (sx, sy) = (source.x - 0.5, source.y - 0.5);
        if sx < 0.0 || sy < 0.0 || sx > w - 1.0 || sy > h - 1.0 {
            continue;
        }
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(image.width() - 1), (y0 + 1).min(image.height() - 1));
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        for c in 0..3 {
            let at = |x, y| f32::from(image.get_pixel(x, y).0[c]);
            let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
            let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
            pixel.0[c] = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
    }
    (out, map)
}

/// The map from an image turned by [`turned_by`] back to the image.
#[derive(Clone, Copy, Debug)]
pub struct Levelling {
    cos: f32,
    sin: f32,
    /// The image's centre, and the turned canvas's.
    from: Point,
    to: Point,
}

impl Levelling {
    /// A turn of `degrees` clockwise about `centre`, on a canvas the same size.
    fn about(centre: Point, degrees: f32) -> Self {
        let (sin, cos) = degrees.to_radians().sin_cos();
        Self { cos, sin, from: centre, to: centre }
    }

    pub(crate) fn to_image(self, p: Point) -> Point {
        let d = p.sub(self.to);
        self.from.add(Point::new(d.x * self.cos + d.y * self.sin, -d.x * self.sin + d.y * self.cos))
    }

    /// The inverse of [`Levelling::to_image`].
    fn to_turned(self, p: Point) -> Point {
        let d = p.sub(self.from);
        self.to.add(Point::new(d.x * self.cos - d.y * self.sin, d.x * self.sin + d.y * self.cos))
    }
}

/// The map between a page as it came (`width` x `height`) and its upright, levelled frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    width: f32,
    height: f32,
    rotation: Rotation,
    /// The page, once upright, is its levelled self turned by the skew about its centre.
    skewed: Levelling,
}

impl Frame {
    pub(crate) fn new(width: u32, height: u32, orientation: Orientation) -> Self {
        let (width, height) = (width as f32, height as f32);
        let (w, h) = match orientation.rotation {
            Rotation::None | Rotation::Half => (width, height),
            Rotation::Quarter | Rotation::ThreeQuarters => (height, width),
        };
        let skewed = Levelling::about(Point::new(w / 2.0, h / 2.0), orientation.skew);
        Self { width, height, rotation: orientation.rotation, skewed }
    }

    /// A point of the page as it came, in the upright, levelled frame.
    pub(crate) fn to_upright(self, p: Point) -> Point {
        let (w, h) = (self.width, self.height);
        let turned = match self.rotation {
            Rotation::None => p,
            Rotation::Quarter => Point::new(h - p.y, p.x),
            Rotation::Half => Point::new(w - p.x, h - p.y),
            Rotation::ThreeQuarters => Point::new(p.y, w - p.x),
        };
        self.skewed.to_image(turned)
    }

    /// The inverse of [`Frame::to_upright`].
    pub(crate) fn to_page(self, p: Point) -> Point {
        let t = self.skewed.to_turned(p);
        let (w, h) = (self.width, self.height);
        match self.rotation {
            Rotation::None => t,
            Rotation::Quarter => Point::new(t.y, h - t.x),
            Rotation::Half => Point::new(w - t.x, h - t.y),
            Rotation::ThreeQuarters => Point::new(w - t.y, t.x),
        }
    }

    /// A box in the upright frame, its corners in reading order.
    pub(crate) fn upright_quad(self, quad: &Quad) -> Quad {
        ordered(quad.map(|p| self.to_upright(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::rect;

    fn close(a: Point, b: Point) -> bool {
        (a.x - b.x).abs() < 1e-3 && (a.y - b.y).abs() < 1e-3
    }

    #[test]
    fn frames_map_there_and_back_and_stand_the_page_upright() {
        let p = Point::new(30.0, 10.0);
        for rotation in [Rotation::None, Rotation::Quarter, Rotation::Half, Rotation::ThreeQuarters] {
            for skew in [0.0, 7.5, -10.0] {
                let frame = Frame::new(200, 100, Orientation { rotation, skew });
                assert!(close(frame.to_page(frame.to_upright(p)), p), "{rotation:?} {skew}");
            }
        }
        // Turned a quarter clockwise, the page's top-left corner is the upright top-right.
        let quarter = Frame::new(200, 100, Orientation { rotation: Rotation::Quarter, skew: 0.0 });
        assert!(close(quarter.to_upright(Point::new(0.0, 0.0)), Point::new(100.0, 0.0)));
        let three = Frame::new(200, 100, Orientation { rotation: Rotation::ThreeQuarters, skew: 0.0 });
        assert!(close(three.to_upright(Point::new(0.0, 0.0)), Point::new(0.0, 200.0)));
        // Levelling turns a line falling at 10° flat.
        let skewed = Frame::new(200, 100, Orientation { rotation: Rotation::None, skew: 10.0 });
        let (a, b) =
            (Point::new(50.0, 50.0), Point::new(50.0 + 10f32.to_radians().cos(), 50.0 + 10f32.to_radians().sin()));
        assert!((skewed.to_upright(a).y - skewed.to_upright(b).y).abs() < 1e-4);
    }

    #[test]
    fn a_page_is_sideways_when_most_of_its_text_is_in_tall_boxes() {
        let upright = [rect(0.0, 0.0, 300.0, 20.0), rect(0.0, 30.0, 200.0, 50.0), rect(400.0, 0.0, 420.0, 100.0)];
        assert!(!is_sideways(&upright));
        let sideways = [rect(0.0, 0.0, 20.0, 300.0), rect(30.0, 0.0, 50.0, 200.0), rect(60.0, 0.0, 70.0, 10.0)];
        assert!(is_sideways(&sideways));
        // Square boxes alone say nothing; nothing is not sideways.
        assert!(!is_sideways(&[rect(0.0, 0.0, 10.0, 10.0)]));
        assert!(!is_sideways(&[]));
    }

    #[test]
    fn skew_is_the_long_lines_median_angle() {
        let turned = |quad: Quad, degrees: f32| {
            let frame = Frame::new(1000, 1000, Orientation { rotation: Rotation::None, skew: -degrees });
            ordered(quad.map(|p| frame.to_upright(p)))
        };
        let lines: Vec<Quad> =
            (0..5).map(|i| turned(rect(100.0, 100.0 * i as f32, 700.0, 100.0 * i as f32 + 30.0), 8.0)).collect();
        let mut with_stamp = lines.clone();
        with_stamp.push(turned(rect(300.0, 300.0, 900.0, 340.0), -25.0));
        assert!((skew(&with_stamp) - 8.0).abs() < 0.01, "{}", skew(&with_stamp));
        // Short words do not count, and a nearly level page is left as it is.
        assert_eq!(skew(&[turned(rect(0.0, 0.0, 40.0, 20.0), 8.0)]), 0.0);
        assert_eq!(skew(&[turned(rect(0.0, 0.0, 400.0, 20.0), 0.5)]), 0.0);
    }
}
