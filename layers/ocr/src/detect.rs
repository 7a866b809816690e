//! Text detection: the [`Detector`] with its model, the input-size policy, and DB
//! post-processing of the probability map (threshold, dilation, connected regions,
//! minimum-area boxes, scoring, unclip).

use std::sync::OnceLock;

use image::RgbImage;

use crate::error::OcrError;
use crate::geometry::{area_and_perimeter, in_quad, min_area_rect, Point, Quad};
use crate::model::{DetectorSpec, Normalisation};
use crate::session::{Model, Pool};

/// Finds text regions on a page.
pub(crate) struct Detector {
    /// A session with every thread of the engine's budget, for a page that has them all.
    whole: Model,
    /// One-thread sessions, one per core of the budget, for pages that share the cores;
    /// built the first time a page has fewer than all (a page read alone never needs them).
    shared: OnceLock<Model>,
    spec: DetectorSpec,
    size: DetSize,
    db: DbParams,
}

impl Detector {
    pub(crate) fn new(whole: Model, spec: DetectorSpec, size: DetSize, db: DbParams) -> Self {
        Self { whole, shared: OnceLock::new(), spec, size, db }
    }

    /// The page's text boxes, in page coordinates, found on `cores` threads.
    pub(crate) fn detect(&self, image: &RgbImage, cores: usize) -> Result<Vec<Detection>, OcrError> {
        let model = self.model(cores)?;
        let (w, h) = input_size(image.width(), image.height(), self.size, self.spec.stride);
        let mut input = vec![0.0f32; 3 * w * h];
        fill_input(image, w, h, &self.spec.normalisation, model.threads(), &mut input);
        model.run([1, 3, h, w], input, |out_shape, prob| {
            let (map_h, map_w) = (out_shape[out_shape.len() - 2] as usize, out_shape[out_shape.len() - 1] as usize);
            Ok(boxes_from_map(prob, map_w, map_h, image.width(), image.height(), &self.db))
        })
    }

    /// The sessions for a page with `cores` threads: all of the budget's, or one. (Between
    /// the two, on a machine of more than 2 cores, the page detects on one and recognises
    /// on all it has: recognition is most of a page's time.)
    fn model(&self, cores: usize) -> Result<&Model, OcrError> {
        if cores >= self.whole.threads() {
            return Ok(&self.whole);
        }
        if let Some(shared) = self.shared.get() {
            shared.grow();
            return Ok(shared);
        }
        let shared = self.whole.sibling(Pool { sessions: self.whole.threads(), threads: 1 })?;
        // Two pages may build it at once; one is kept.
        Ok(self.shared.get_or_init(|| shared))
    }
}

/// DB post-processing parameters: [`DbParams::REFERENCE`] are PP-OCR's (and CnOCR's),
/// [`DbParams::default`] the engine's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DbParams {
    /// Pixels with probability above this are text.
    pub thresh: f32,
    /// A region whose mean probability is below this is dropped.
    pub box_thresh: f32,
    /// How far a box is grown: area * ratio / perimeter.
    pub unclip_ratio: f32,
    /// Regions whose box is thinner than this (in map pixels) are dropped.
    pub min_size: f32,
    /// At most this many regions are considered, largest first.
    pub max_candidates: usize,
    /// Grow the thresholded map by a pixel before finding regions (the reference does).
    pub dilate: bool,
}

impl DbParams {
    pub const REFERENCE: DbParams =
        DbParams { thresh: 0.3, box_thresh: 0.5, unclip_ratio: 1.6, min_size: 3.0, max_candidates: 1000, dilate: true };
}

impl Default for DbParams {
    /// The values faster-paddle publishes for PaddleOCR's light pipeline: a lower pixel
    /// threshold keeps faint and thin print in its region, and growing each box by 1.4
    /// rather than 1.6 keeps the neighbouring lines' ascenders and descenders out of the
    /// crop the recogniser reads. On ../shared/data (all of each set) CER fell on receipts
    /// (0.0516 -> 0.0458) and forms (0.1253 -> 0.1126), unchanged on the CnOCR examples.
    /// The map is dilated, as the reference does. With the detector's own normalisation
    /// (`Normalisation::PADDLE_DETECTION`), against no dilation: receipts CER 0.0473 ->
    /// 0.0496, forms 0.1132 -> 0.1031 (line recall 0.8183 -> 0.8202), the CnOCR examples
    /// 0.0102 -> 0.0089; and the boxes are a pixel taller, so their crops, scaled to the
    /// recogniser's height, are narrower: 9% less recognition work in all.
    fn default() -> Self {
        Self { thresh: 0.2, box_thresh: 0.4, unclip_ratio: 1.4, ..Self::REFERENCE }
    }
}

/// How a page is scaled for detection: small pages are scaled up until their short side
/// reaches `short_min`, large ones down until their long side is at most `long_max`.
/// The reference scales up to a short side of 736 (after capping the long side at 2000);
/// on ../shared/data a short side of 512 reads as well with half the pixels on small
/// scans. Large pages are detected at 1600 px, as faster-paddle does: a line of print on
/// an A4 page is still about 15 px tall there, which the detector finds, and the
/// recogniser reads its crop from the full-resolution page. It costs 0.64 of the
/// detector's time and activation memory at 2000 px (docs/benchmarks.md, "Speed").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetSize {
    pub short_min: u32,
    pub long_max: u32,
}

impl DetSize {
    pub const REFERENCE: DetSize = DetSize { short_min: 736, long_max: 2000 };
    pub const DEFAULT: DetSize = DetSize { short_min: 512, long_max: 1600 };
    /// The most a deployment may raise `long_max` to (`DOCUSNAP_OCR_DET_LONG_SIDE`): the
    /// reference's cap, which bounds the detector's memory.
    pub const MAX_LONG_SIDE: u32 = 2000;
}

/// The detector's input size for a `width` x `height` page: scaled by the policy, then
/// rounded to multiples of the network's `stride`.
pub(crate) fn input_size(width: u32, height: u32, policy: DetSize, stride: usize) -> (usize, usize) {
    let (w, h) = (width as f32, height as f32);
    let mut ratio = (policy.short_min as f32 / w.min(h)).max(1.0);
    if w.max(h) * ratio > policy.long_max as f32 {
        ratio = policy.long_max as f32 / w.max(h);
    }
    let round = |v: f32| (((v * ratio) / stride as f32).round() as usize * stride).max(stride);
    (round(w), round(h))
}

/// Writes the page resized to `w` x `h` into a [3, h, w] tensor, normalised for the model:
/// bilinear, pixel centres aligned, edges replicated (the same values as
/// `CropMap::sample_into` gives for the whole page, which the tests check), with each
/// column's taps worked out once and the rows split between `threads` threads.
fn fill_input(image: &RgbImage, w: usize, h: usize, normalisation: &Normalisation, threads: usize, out: &mut [f32]) {
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    let taps = |i: usize, scale: f32, len: usize| {
        let x = (i as f32 + 0.5) * scale - 0.5;
        let x0 = x.floor();
        let clamp = |v: f32| (v as i64).clamp(0, len as i64 - 1) as usize;
        (clamp(x0), clamp(x0 + 1.0), x - x0)
    };
    let columns: Vec<(usize, usize, f32)> = (0..w).map(|x| taps(x, iw as f32 / w as f32, iw)).collect();
    let sy = ih as f32 / h as f32;
    let planes = normalisation.planes();
    let raw = image.as_raw();
    let fill_rows = |first_row: usize, outs: [&mut [f32]; 3]| {
        let rows = outs[0].len() / w;
        for r in 0..rows {
            let (y0, y1, fy) = taps(first_row + r, sy, ih);
            let (row0, row1) = (&raw[y0 * iw * 3..(y0 + 1) * iw * 3], &raw[y1 * iw * 3..(y1 + 1) * iw * 3]);
            for (x, &(x0, x1, fx)) in columns.iter().enumerate() {
                for (k, (channel, scale, offset)) in planes.iter().enumerate() {
                    let px = |row: &[u8], col: usize| f32::from(row[col * 3 + channel]);
                    let top = px(row0, x0) + (px(row0, x1) - px(row0, x0)) * fx;
                    let bottom = px(row1, x0) + (px(row1, x1) - px(row1, x0)) * fx;
                    outs[k][r * w + x] = (top + (bottom - top) * fy) * scale + offset;
                }
            }
        }
    };
    let rows_each = h.div_ceil(threads.clamp(1, h.max(1)));
    let (p0, rest) = out.split_at_mut(w * h);
    let (p1, p2) = rest.split_at_mut(w * h);
    std::thread::scope(|scope| {
        let chunks = p0.chunks_mut(rows_each * w).zip(p1.chunks_mut(rows_each * w)).zip(p2.chunks_mut(rows_each * w));
        for (i, ((c0, c1), c2)) in chunks.enumerate() {
            let fill_rows = &fill_rows;
            scope.spawn(move || fill_rows(i * rows_each, [c0, c1, c2]));
        }
    });
}

/// A detected text box in page coordinates, with the detector's mean probability in it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Detection {
    pub quad: Quad,
    pub score: f32,
}

/// DB post-processing of a `map_w` x `map_h` probability map into boxes on a
/// `page_w` x `page_h` page.
pub(crate) fn boxes_from_map(
    prob: &[f32], map_w: usize, map_h: usize, page_w: u32, page_h: u32, params: &DbParams,
) -> Vec<Detection> {
    let bitmap = threshold(prob, params.thresh);
    let bitmap = if params.dilate { dilate(&bitmap, map_w, map_h) } else { bitmap };
    let mut regions = connected_regions(&bitmap, map_w, map_h);
    regions.sort_by_key(|r| std::cmp::Reverse(r.pixels));
    regions.truncate(params.max_candidates);
    let (sx, sy) = (page_w as f32 / map_w as f32, page_h as f32 / map_h as f32);
    let mut out = Vec::new();
    for region in regions {
        let Some(rect) = min_area_rect(region.outline) else {
            continue;
        };
        if rect.short_side() < params.min_size {
            continue;
        }
        let quad = rect.corners();
        let score = mean_inside(prob, map_w, map_h, &quad);
        if score < params.box_thresh {
            continue;
        }
        let (area, perimeter) = area_and_perimeter(&quad);
        let grown = rect.grown(area * params.unclip_ratio / perimeter.max(1e-6));
        if grown.short_side() < params.min_size + 2.0 {
            continue;
        }
        let quad = grown.corners().map(|p| {
            Point::new((p.x * sx).round().clamp(0.0, page_w as f32), (p.y * sy).round().clamp(0.0, page_h as f32))
        });
        // Boxes squeezed to a sliver by the page edge carry no readable text.
        let width = ((quad[1].x - quad[0].x).powi(2) + (quad[1].y - quad[0].y).powi(2)).sqrt();
        let height = ((quad[3].x - quad[0].x).powi(2) + (quad[3].y - quad[0].y).powi(2)).sqrt();
        if width <= 3.0 || height <= 3.0 {
            continue;
        }
        out.push(Detection { quad, score });
    }
    out
}

fn threshold(prob: &[f32], thresh: f32) -> Vec<bool> {
    prob.iter().map(|&p| p > thresh).collect()
}

/// OpenCV's dilation with a 2x2 kernel anchored at its centre: a pixel is set when it or
/// its left, upper or upper-left neighbour is.
fn dilate(bitmap: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = bitmap.to_vec();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            out[i] = bitmap[i]
                || (x > 0 && bitmap[i - 1])
                || (y > 0 && bitmap[i - w])
                || (x > 0 && y > 0 && bitmap[i - w - 1]);
        }
    }
    out
}

struct Region {
    pixels: usize,
    /// Each row's leftmost and rightmost pixel centres: enough for the convex hull.
    outline: Vec<Point>,
}

/// 8-connected regions of the bitmap.
fn connected_regions(bitmap: &[bool], w: usize, h: usize) -> Vec<Region> {
    let mut label = vec![u32::MAX; bitmap.len()];
    let mut regions = Vec::new();
    let mut stack = Vec::new();
    for start in 0..bitmap.len() {
        if !bitmap[start] || label[start] != u32::MAX {
            continue;
        }
        let id = regions.len() as u32;
        let mut rows: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
        let mut pixels = 0;
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            pixels += 1;
            let (x, y) = (i % w, i / w);
            let row = rows.entry(y).or_insert((x, x));
            row.0 = row.0.min(x);
            row.1 = row.1.max(x);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if bitmap[j] && label[j] == u32::MAX {
                        label[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        let outline = rows
            .into_iter()
            .flat_map(|(y, (x0, x1))| [Point::new(x0 as f32, y as f32), Point::new(x1 as f32, y as f32)])
            .collect();
        regions.push(Region { pixels, outline });
    }
    regions
}

/// Mean probability over the map pixels whose centres lie in the box ("fast" score mode).
fn mean_inside(prob: &[f32], w: usize, h: usize, quad: &Quad) -> f32 {
    // The box's pixel span on one axis, clamped to the map.
    let span = |coord: fn(&Point) -> f32, size: usize| {
        let last = (size - 1) as f32;
        let low = quad.iter().map(coord).fold(f32::MAX, f32::min).floor().clamp(0.0, last);
        let high = quad.iter().map(coord).fold(f32::MIN, f32::max).ceil().clamp(0.0, last);
        (low as usize, high as usize)
    };
    let ((xmin, xmax), (ymin, ymax)) = (span(|p| p.x, w), span(|p| p.y, h));
    let (mut sum, mut count) = (0.0f64, 0usize);
    for y in ymin..=ymax {
        for x in xmin..=xmax {
            if in_quad(quad, Point::new(x as f32, y as f32)) {
                sum += f64::from(prob[y * w + x]);
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::CropMap;

    /// A synthetic probability map with two text bars and a faint smudge.
    fn synthetic_map(w: usize, h: usize) -> Vec<f32> {
        let mut map = vec![0.0f32; w * h];
        let mut fill = |x0: usize, x1: usize, y0: usize, y1: usize, p: f32| {
            for y in y0..y1 {
                for x in x0..x1 {
                    map[y * w + x] = p;
                }
            }
        };
        fill(10, 90, 10, 20, 0.9); // a line of text
        fill(20, 60, 40, 48, 0.8); // a shorter one below
        fill(70, 75, 60, 64, 0.35); // above thresh, below box_thresh: dropped
        fill(5, 7, 70, 72, 0.9); // too small: dropped
        map
    }

    #[test]
    fn db_post_processing_finds_the_bars_and_drops_noise() {
        let (w, h) = (100, 80);
        let map = synthetic_map(w, h);
        // The page is twice the map's size: boxes come back in page pixels.
        let boxes = boxes_from_map(&map, w, h, 200, 160, &DbParams::REFERENCE);
        assert_eq!(boxes.len(), 2, "{boxes:?}");
        let mut boxes = boxes;
        boxes.sort_by(|a, b| a.quad[0].y.total_cmp(&b.quad[0].y));
        let first = &boxes[0].quad;
        // The bar covers x 10..90, y 10..20 of the map, grown by the unclip distance.
        assert!(first[0].x < 20.0 && first[1].x > 178.0, "{first:?}");
        assert!(first[0].y < 20.0 && first[3].y > 38.0, "{first:?}");
        // The dilated border row and column (probability 0) count too, as in the reference.
        assert!(boxes[0].score > 0.75 && boxes[0].score < 0.9, "{}", boxes[0].score);
        // The second bar starts at map row 40 (page row 80), less its unclip margin.
        assert!((60.0..80.0).contains(&boxes[1].quad[0].y), "{:?}", boxes[1].quad);
    }

    #[test]
    fn lines_a_pixel_apart_stay_apart_without_dilation() {
        let (w, h) = (60, 20);
        let mut map = vec![0.0f32; w * h];
        for y in (4..8).chain(9..13) {
            for x in 5..55 {
                map[y * w + x] = 0.9;
            }
        }
        let apart = DbParams { dilate: false, ..DbParams::default() };
        assert_eq!(boxes_from_map(&map, w, h, 60, 20, &apart).len(), 2);
        // The default dilates, as the reference does: the two become one region.
        assert_eq!(boxes_from_map(&map, w, h, 60, 20, &DbParams::default()).len(), 1);
        assert_eq!(boxes_from_map(&map, w, h, 60, 20, &DbParams::REFERENCE).len(), 1);
    }

    #[test]
    fn dilation_joins_pixels_one_apart_diagonally_only_down_right() {
        let mut bitmap = vec![false; 9];
        bitmap[4] = true; // centre of 3x3
        let d = dilate(&bitmap, 3, 3);
        assert_eq!(d, vec![false, false, false, false, true, true, false, true, true]);
    }

    #[test]
    fn the_fast_page_fill_gives_the_general_sampler_s_values() {
        let image =
            RgbImage::from_fn(37, 23, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x * y) % 251) as u8]));
        let whole = CropMap {
            origin: Point::new(0.0, 0.0),
            ex: Point::new(1.0, 0.0),
            ey: Point::new(0.0, 1.0),
            width: 37.0,
            height: 23.0,
        };
        for (w, h, threads) in [(64, 32, 1), (64, 32, 3), (32, 96, 2), (16, 8, 5)] {
            let mut expected = vec![0.0f32; 3 * w * h];
            whole.sample_into(&image, w, h, w, &Normalisation::PADDLE, &mut expected);
            let mut fast = vec![0.0f32; 3 * w * h];
            fill_input(&image, w, h, &Normalisation::PADDLE, threads, &mut fast);
            let worst = expected.iter().zip(&fast).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{w}x{h} on {threads} threads: off by {worst}");
        }
    }

    #[test]
    fn input_size_policies() {
        assert_eq!(input_size(463, 1013, DetSize::REFERENCE, 32), (736, 1600));
        assert_eq!(input_size(463, 1013, DetSize::DEFAULT, 32), (512, 1120));
        // A 12-megapixel phone photo is scaled down by its long side.
        // (Rounding to 32 may pass the cap by up to 16 px, as in the reference.)
        assert_eq!(input_size(3024, 4032, DetSize::DEFAULT, 32), (1216, 1600));
        assert_eq!(input_size(3024, 4032, DetSize::REFERENCE, 32), (1504, 2016));
        // A long, narrow strip is not scaled past the long-side cap.
        assert_eq!(input_size(100, 3000, DetSize::DEFAULT, 32), (64, 1600));
        assert_eq!(input_size(10, 10, DetSize::DEFAULT, 32), (512, 512));
    }
}
