//! Plane geometry for text boxes: convex hulls, minimum-area rectangles, and the affine
//! map from a rectified text crop back into the page.

use crate::model::Normalisation;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    pub(crate) fn sub(self, o: Point) -> Point {
        Point::new(self.x - o.x, self.y - o.y)
    }

    pub(crate) fn add(self, o: Point) -> Point {
        Point::new(self.x + o.x, self.y + o.y)
    }

    pub(crate) fn scale(self, k: f32) -> Point {
        Point::new(self.x * k, self.y * k)
    }

    pub(crate) fn dist(self, o: Point) -> f32 {
        (self.x - o.x).hypot(self.y - o.y)
    }
}

/// A text box: top-left, top-right, bottom-right, bottom-left, in page pixels.
pub type Quad = [Point; 4];

/// A box from its left, top, right and bottom edges.
#[cfg(test)]
pub(crate) fn rect(l: f32, t: f32, r: f32, b: f32) -> Quad {
    [Point::new(l, t), Point::new(r, t), Point::new(r, b), Point::new(l, b)]
}

fn cross(o: Point, a: Point, b: Point) -> f32 {
    (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
}

/// Convex hull (Andrew's monotone chain), counter-clockwise in image coordinates.
pub fn convex_hull(mut points: Vec<Point>) -> Vec<Point> {
    points.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let mut hull: Vec<Point> = Vec::with_capacity(points.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &Point>> =
            if pass == 0 { Box::new(points.iter()) } else { Box::new(points.iter().rev()) };
        for &p in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// A rotated rectangle: centre, unit axis `u` along its width, width and height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotatedRect {
    pub center: Point,
    pub axis: Point,
    pub width: f32,
    pub height: f32,
}

impl RotatedRect {
    pub fn short_side(&self) -> f32 {
        self.width.min(self.height)
    }

    /// The rectangle grown by `d` on every side: the minimum-area rectangle of a
    /// rectangle offset outward by `d` (rounded corners included) is exactly this.
    pub fn grown(&self, d: f32) -> Self {
        Self { width: self.width + 2.0 * d, height: self.height + 2.0 * d, ..*self }
    }

    /// Corners ordered as the PP-OCR post-processing orders them: of the two leftmost
    /// corners the upper is first and the lower last; of the two rightmost the upper is
    /// second and the lower third.
    pub fn corners(&self) -> Quad {
        let u = self.axis.scale(self.width / 2.0);
        let v = Point::new(-self.axis.y, self.axis.x).scale(self.height / 2.0);
        ordered([
            self.center.sub(u).sub(v),
            self.center.add(u).sub(v),
            self.center.add(u).add(v),
            self.center.sub(u).add(v),
        ])
    }
}

/// A box is long one way when that side is this many times the other: PP-OCR's own
/// threshold for reading a crop as vertical text. It also tells a sideways page's lines
/// (`orientation::is_sideways`).
pub(crate) const LONG_ASPECT: f32 = 1.5;

/// Whether a side of length `long` is clearly the long one against `short`.
pub(crate) fn is_long(long: f32, short: f32) -> bool {
    long >= LONG_ASPECT * short
}

/// Whether a box is clearly taller than wide (its crop is read turned, as vertical text).
pub(crate) fn is_tall(quad: &Quad) -> bool {
    let (width, height) = sides(quad);
    is_long(height, width)
}

/// A box's width and height: the longer of each pair of opposite sides.
pub(crate) fn sides(q: &Quad) -> (f32, f32) {
    (q[0].dist(q[1]).max(q[3].dist(q[2])), q[0].dist(q[3]).max(q[1].dist(q[2])))
}

/// A box's corners in PP-OCR's order (see [`RotatedRect::corners`]), whatever order they
/// came in: what a box needs after it is turned into another frame.
pub fn ordered(mut pts: Quad) -> Quad {
    pts.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (l0, l1) = if pts[0].y <= pts[1].y { (pts[0], pts[1]) } else { (pts[1], pts[0]) };
    let (r0, r1) = if pts[2].y <= pts[3].y { (pts[2], pts[3]) } else { (pts[3], pts[2]) };
    [l0, r0, r1, l1]
}

/// The minimum-area enclosing rectangle of a point set (rotating calipers on its hull).
pub fn min_area_rect(points: Vec<Point>) -> Option<RotatedRect> {
    let hull = convex_hull(points);
    match hull.len() {
        0 => return None,
        1 => return Some(RotatedRect { center: hull[0], axis: Point::new(1.0, 0.0), width: 0.0, height: 0.0 }),
        _ => {}
    }
    let mut best: Option<(f32, RotatedRect)> = None;
    for i in 0..hull.len() {
        let edge = hull[(i + 1) % hull.len()].sub(hull[i]);
        let len = edge.x.hypot(edge.y);
        if len == 0.0 {
            continue;
        }
        let u = edge.scale(1.0 / len);
        let v = Point::new(-u.y, u.x);
        let (mut umin, mut umax, mut vmin, mut vmax) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in &hull {
            let (pu, pv) = (p.x * u.x + p.y * u.y, p.x * v.x + p.y * v.y);
            umin = umin.min(pu);
            umax = umax.max(pu);
            vmin = vmin.min(pv);
            vmax = vmax.max(pv);
        }
        let area = (umax - umin) * (vmax - vmin);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (cu, cv) = ((umin + umax) / 2.0, (vmin + vmax) / 2.0);
            let center = u.scale(cu).add(v.scale(cv));
            // Keep the width axis the more horizontal one, so "width" reads along text.
            let (axis, width, height) = if u.x.abs() >= u.y.abs() {
                (if u.x < 0.0 { u.scale(-1.0) } else { u }, umax - umin, vmax - vmin)
            } else {
                (if v.x < 0.0 { v.scale(-1.0) } else { v }, vmax - vmin, umax - umin)
            };
            best = Some((area, RotatedRect { center, axis, width, height }));
        }
    }
    best.map(|(_, rect)| rect)
}

/// Area and perimeter of a polygon.
pub fn area_and_perimeter(poly: &[Point]) -> (f32, f32) {
    let mut area = 0.0;
    let mut perimeter = 0.0;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        area += a.x * b.y - b.x * a.y;
        perimeter += a.dist(b);
    }
    (area.abs() / 2.0, perimeter)
}

/// Whether `p` lies inside a convex quadrilateral (either winding).
pub fn in_quad(q: &Quad, p: Point) -> bool {
    let mut sign = 0.0f32;
    for i in 0..4 {
        let c = cross(q[i], q[(i + 1) % 4], p);
        if c != 0.0 {
            if sign == 0.0 {
                sign = c.signum();
            } else if c.signum() != sign {
                return false;
            }
        }
    }
    true
}

/// Maps a rectified text crop (u right along the text, v down) into the page:
/// `page = origin + u * ex + v * ey`, with `width` x `height` the crop's size in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropMap {
    pub origin: Point,
    pub ex: Point,
    pub ey: Point,
    pub width: f32,
    pub height: f32,
}

impl CropMap {
    /// The crop of a box as PP-OCR takes it: width and height the longer of each pair of
    /// opposite sides; a tall crop (see [`LONG_ASPECT`]) is turned 90° counter-clockwise,
    /// as vertical text is.
    pub fn from_quad(q: &Quad) -> Self {
        let (width, height) = sides(q);
        let (width, height) = (width.max(1.0), height.max(1.0));
        let ex = q[1].sub(q[0]).scale(1.0 / q[0].dist(q[1]).max(1e-6));
        let ey = q[3].sub(q[0]).scale(1.0 / q[0].dist(q[3]).max(1e-6));
        let map = Self { origin: q[0], ex, ey, width, height };
        if is_long(height, width) {
            map.rotated_ccw()
        } else {
            map
        }
    }

    fn rotated_ccw(&self) -> Self {
        Self {
            origin: self.origin.add(self.ex.scale(self.width)),
            ex: self.ey,
            ey: self.ex.scale(-1.0),
            width: self.height,
            height: self.width,
        }
    }

    pub fn aspect(&self) -> f32 {
        self.width / self.height
    }

    /// Samples the crop resized to `out_w` x `out_h` into a CHW tensor slice of row
    /// length `stride` (the batch's padded width), normalised as the model wants it.
    /// Columns past `out_w` are left as they are.
    pub(crate) fn sample_into(
        &self, image: &image::RgbImage, out_w: usize, out_h: usize, stride: usize, normalisation: &Normalisation,
        out: &mut [f32],
    ) {
        let plane = out_h * stride;
        let planes = normalisation.planes();
        let (sx, sy) = (self.width / out_w as f32, self.height / out_h as f32);
        for ty in 0..out_h {
            let v = (ty as f32 + 0.5) * sy;
            let row = self.origin.add(self.ey.scale(v));
            for tx in 0..out_w {
                let u = (tx as f32 + 0.5) * sx;
                let p = row.add(self.ex.scale(u));
                let rgb = bilinear(image, p.x - 0.5, p.y - 0.5);
                let i = ty * stride + tx;
                for (k, (channel, scale, offset)) in planes.iter().enumerate() {
                    out[k * plane + i] = rgb[*channel] * scale + offset;
                }
            }
        }
    }
}

/// Bilinear sample with edge pixels replicated past the border.
fn bilinear(image: &image::RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let px = |xx: i64, yy: i64| {
        let p = image.get_pixel(xx.clamp(0, w - 1) as u32, yy.clamp(0, h - 1) as u32).0;
        [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
    };
    let (a, b, c, d) = (px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1));
    let mut out = [0.0; 3];
    for k in 0..3 {
        let top = a[k] + (b[k] - a[k]) * fx;
        let bottom = c[k] + (d[k] - c[k]) * fx;
        out[k] = top + (bottom - top) * fy;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_area_rect_of_a_rotated_rectangle_is_itself() {
        // A 40x10 rectangle rotated by 30 degrees, sampled densely.
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let mut points = Vec::new();
        for i in 0..=40 {
            for j in 0..=10 {
                let (x, y) = (i as f32 - 20.0, j as f32 - 5.0);
                points.push(Point::new(100.0 + x * c - y * s, 50.0 + x * s + y * c));
            }
        }
        let rect = min_area_rect(points).unwrap();
        assert!((rect.width - 40.0).abs() < 0.01 && (rect.height - 10.0).abs() < 0.01, "{rect:?}");
        assert!((rect.center.x - 100.0).abs() < 0.01 && (rect.center.y - 50.0).abs() < 0.01);
        assert!((rect.axis.y / rect.axis.x - 30f32.to_radians().tan()).abs() < 1e-3);
    }

    #[test]
    fn corners_are_ordered_top_left_clockwise() {
        let rect = RotatedRect { center: Point::new(10.0, 5.0), axis: Point::new(1.0, 0.0), width: 20.0, height: 10.0 };
        assert_eq!(
            rect.corners(),
            [Point::new(0.0, 0.0), Point::new(20.0, 0.0), Point::new(20.0, 10.0), Point::new(0.0, 10.0)]
        );
        let grown = rect.grown(2.0).corners();
        assert_eq!(grown[0], Point::new(-2.0, -2.0));
        assert_eq!(grown[2], Point::new(22.0, 12.0));
    }

    #[test]
    fn hull_area_and_containment() {
        let square = vec![
            Point::new(0.0, 0.0),
            Point::new(4.0, 0.0),
            Point::new(4.0, 4.0),
            Point::new(0.0, 4.0),
            Point::new(2.0, 2.0),
        ];
        let hull = convex_hull(square);
        assert_eq!(hull.len(), 4);
        assert_eq!(area_and_perimeter(&hull), (16.0, 16.0));
        let q: Quad = [hull[0], hull[1], hull[2], hull[3]];
        assert!(in_quad(&q, Point::new(1.0, 3.0)));
        assert!(!in_quad(&q, Point::new(5.0, 1.0)));
    }

    #[test]
    fn tall_crops_turn_counter_clockwise_and_180_reverses() {
        let q: Quad = [Point::new(0.0, 0.0), Point::new(10.0, 0.0), Point::new(10.0, 40.0), Point::new(0.0, 40.0)];
        let map = CropMap::from_quad(&q);
        assert_eq!((map.width, map.height), (40.0, 10.0));
        // The crop's top-left is the box's top-right corner.
        assert_eq!(map.origin, Point::new(10.0, 0.0));
    }
}
