//! Recognition: the [`Recognizer`] with its model and the character set from the model's
//! metadata, batches grouped by width, and greedy CTC decoding.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;

use crate::cores::Claim;
use crate::error::OcrError;
use crate::geometry::CropMap;
use crate::model::RecognizerSpec;
use crate::session::Model;

/// A crop's index and what it reads.
type Read = (usize, Reading);

/// A crop's text breaks into runs where the blank between two characters is wider than
/// this many of the crop's heights. The detector sometimes joins a table's neighbouring
/// cells, or a label and its value set apart, into one box; read as one line they make
/// one cell or label of two ("IND/LOR NO. OF" over two columns). A word space is a
/// quarter to half a height; a full height is wider than any in justified or
/// letter-spaced text. Measured with scripts/eval-ocr on receipts, forms and Chinese
/// pages: at 0.6 heights (the gap at which the layout keeps boxes apart) letter-spaced
/// headings fell apart into words and line recall dropped 0.008 to 0.012 on each set;
/// from 1.0 up it held.
pub(crate) const RUN_GAP_HEIGHTS: f32 = 1.0;

/// What one crop reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Reading {
    pub text: String,
    /// Mean character probability, 0 to 1.
    pub score: f32,
    /// The runs of text standing apart along the crop (see [`RUN_GAP_HEIGHTS`]), when
    /// there are two or more: each run's bytes of `text`, and its start and end as shares
    /// of the crop's width.
    pub runs: Vec<Run>,
}

/// A run of a crop's text: its bytes of the text, and its start and end along the crop.
pub(crate) type Run = (Range<usize>, f32, f32);

/// A page with at least this many batches is worth the recognition pool's other sessions
/// (see `Model::grow`); fewer are read on the first alone, as quickly.
const POOL_AFTER_BATCHES: usize = 8;

/// Reads the text of rectified line crops.
pub(crate) struct Recognizer {
    model: Model,
    spec: RecognizerSpec,
    charset: Charset,
    batching: Batching,
}

impl Recognizer {
    /// Takes the character set from the model's `character` metadata and checks it
    /// against the model's output classes.
    pub(crate) fn new(model: Model, spec: RecognizerSpec, batching: Batching) -> Result<Self, OcrError> {
        let contents = |what: String| OcrError::ModelContents { path: model.path().to_owned(), what };
        let character = model.metadata("character").ok_or_else(|| contents("no `character` metadata".into()))?;
        let charset = Charset::from_metadata(&character);
        if let Some(classes) = model.output_classes() {
            if classes != charset.len() {
                return Err(contents(format!(
                    "{classes} output classes but {} in its character metadata (+ blank and space)",
                    charset.len()
                )));
            }
        }
        Ok(Self { model, spec, charset, batching })
    }

    /// What each crop reads, in the crops' order, each read
    /// `squeeze` times as wide as it stands (1: as it stands; the fast mode reads them narrower). Batches run
    /// side by side on the model's session pool, widest first (the longest jobs start
    /// early, so the workers finish together), on as many sessions at once as the page
    /// has cores; a worker whose core another page is given back stops (see
    /// [`Claim::give_back`]).
    pub(crate) fn recognise(
        &self, image: &RgbImage, crops: &[CropMap], squeeze: f32, claim: &Claim,
    ) -> Result<Vec<Reading>, OcrError> {
        // The width each crop is read at, for its height: its own, `squeeze` times.
        let aspects: Vec<f32> = crops.iter().map(|c| c.aspect() * squeeze).collect();
        let mut plan = self.batching.plan(&aspects, self.spec.height);
        plan.sort_by_key(|(members, width)| std::cmp::Reverse(members.len() * width));
        let mut results = vec![Reading::default(); crops.len()];
        // A page with work to share starts every worker of the pool; those without a
        // session of their own yet share the built ones until theirs is ready.
        let workers = if plan.len() >= POOL_AFTER_BATCHES {
            self.model.grow();
            self.model.capacity()
        } else {
            self.model.built()
        }
        .min(plan.len())
        .min(claim.cores());
        // Each worker takes the next batch until none is left, or leaves when the page
        // has fewer cores than workers.
        let (next, active) = (AtomicUsize::new(0), AtomicUsize::new(workers));
        let work = || -> Result<Vec<Read>, OcrError> {
            let mut done = Vec::new();
            loop {
                if claim.give_back() && active.load(Ordering::Relaxed) > claim.cores() {
                    active.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                let Some((members, width)) = plan.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                done.extend(self.run_batch(image, crops, &aspects, members, *width)?);
            }
            Ok(done)
        };
        let read: Vec<Result<Vec<Read>, OcrError>> = if workers <= 1 {
            vec![work()]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
            })
        };
        for worker in read {
            for (i, text) in worker? {
                results[i] = text;
            }
        }
        Ok(results)
    }

    /// Reads one batch: `members` (crop indices) padded to `width`.
    fn run_batch(
        &self, image: &RgbImage, crops: &[CropMap], aspects: &[f32], members: &[usize], width: usize,
    ) -> Result<Vec<Read>, OcrError> {
        let height = self.spec.height;
        let plane = height * width;
        let mut input = vec![0.0f32; members.len() * 3 * plane];
        for (k, &i) in members.iter().enumerate() {
            let w = self.batching.crop_width(aspects[i], height).min(width);
            crops[i].sample_into(
                image,
                w,
                height,
                width,
                &self.spec.normalisation,
                &mut input[k * 3 * plane..(k + 1) * 3 * plane],
            );
        }
        self.model.run([members.len(), 3, height, width], input, |out_shape, probs| {
            let (steps, classes) = (out_shape[1] as usize, out_shape[2] as usize);
            if classes != self.charset.len() {
                return Err(OcrError::ModelContents {
                    path: self.model.path().to_owned(),
                    what: format!("recognition gave {classes} classes, the charset has {}", self.charset.len()),
                });
            }
            // A step's pixels of the padded width; the crop fills `w` of it.
            let step_px = width as f32 / steps.max(1) as f32;
            Ok(members
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let probs = &probs[k * steps * classes..(k + 1) * steps * classes];
                    let w = self.batching.crop_width(aspects[i], height).min(width) as f32;
                    // The crop's height in steps along it, however squeezed or capped.
                    let height_steps = w / crops[i].aspect().max(f32::EPSILON) / step_px;
                    let (text, score, runs) = self.charset.decode(probs, steps, RUN_GAP_HEIGHTS * height_steps);
                    let share = |step: f32| (step * step_px / w).clamp(0.0, 1.0);
                    let runs = runs.into_iter().map(|(bytes, from, to)| (bytes, share(from), share(to))).collect();
                    (i, Reading { text, score, runs })
                })
                .collect())
        })
    }
}

/// The recognition model's classes: the CTC blank, the characters its `character`
/// metadata lists one per line, then a space.
#[derive(Clone, Debug)]
pub(crate) struct Charset {
    classes: Vec<String>,
}

impl Charset {
    pub fn from_metadata(character: &str) -> Self {
        let mut classes = vec![String::new()];
        classes.extend(character.split('\n').filter(|c| !c.is_empty()).map(|c| c.trim_end_matches('\r').to_owned()));
        classes.push(" ".to_owned());
        Self { classes }
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Greedy CTC decoding of one sequence of `steps` x `classes` probabilities: the best
    /// class per step, repeats merged, blanks dropped. The score is the mean probability
    /// of the kept characters.
    ///
    /// Also the runs the text breaks into, when it does: where the blank between two
    /// characters is wider than `gap_steps`. Each character is placed at the step it was
    /// read at; the blank between two is their distance less the line's pitch (the median
    /// distance between neighbouring characters, spaces aside). A run spans half a pitch
    /// either side of its outer characters, in steps. A text of fewer than
    /// [`MIN_RUN_PITCHES`] characters is one run: its pitch says little.
    pub fn decode(&self, probs: &[f32], steps: usize, gap_steps: f32) -> (String, f32, Vec<Run>) {
        let n = self.classes.len();
        let mut text = String::new();
        // (byte offset, step) of each character kept, spaces aside.
        let mut placed: Vec<(usize, usize)> = Vec::new();
        // Whether a space was read just before each character placed.
        let mut spaced: Vec<bool> = Vec::new();
        let (mut sum, mut kept) = (0.0f32, 0usize);
        let mut previous = 0usize;
        for t in 0..steps {
            let row = &probs[t * n..(t + 1) * n];
            let (best, p) =
                row.iter()
                    .copied()
                    .enumerate()
                    .fold((0usize, f32::MIN), |acc, (i, p)| if p > acc.1 { (i, p) } else { acc });
            if best != 0 && best != previous {
                let class = &self.classes[best];
                if !class.trim().is_empty() {
                    spaced.push(text.ends_with(' '));
                    placed.push((text.len(), t));
                }
                text.push_str(class);
                sum += p;
                kept += 1;
            }
            previous = best;
        }
        let score = if kept == 0 { 0.0 } else { sum / kept as f32 };
        let lead = text.len() - text.trim_start().len();
        let text = text.trim().to_owned();
        let runs = runs(&placed, &spaced, gap_steps, text.len(), lead);
        (text, score, runs)
    }
}

/// A text's characters must be at least this many for its pitch to say where it breaks.
const MIN_RUN_PITCHES: usize = 4;

/// The runs of `placed` characters (byte offset in the untrimmed text, step), as
/// [`Charset::decode`] describes; none when the text is one run. A run ends only where a
/// space was read (`spaced`): a long blank inside a word is a faded glyph, not a gap.
/// Offsets are given in the text trimmed of `lead` bytes in front, `len` long.
fn runs(placed: &[(usize, usize)], spaced: &[bool], gap_steps: f32, len: usize, lead: usize) -> Vec<Run> {
    if placed.len() < MIN_RUN_PITCHES {
        return Vec::new();
    }
    let mut distances: Vec<usize> = placed.windows(2).map(|w| w[1].1 - w[0].1).collect();
    distances.sort_unstable();
    let pitch = distances[distances.len() / 2] as f32;
    let mut out = Vec::new();
    let mut first = 0;
    for k in 1..=placed.len() {
        let ends = k == placed.len() || (spaced[k] && (placed[k].1 - placed[k - 1].1) as f32 - pitch > gap_steps);
        if !ends {
            continue;
        }
        let start = placed[first].0.saturating_sub(lead);
        let end = if k == placed.len() { len } else { placed[k].0.saturating_sub(lead).min(len) };
        let (from, to) = (placed[first].1 as f32 + 0.5 - pitch / 2.0, placed[k - 1].1 as f32 + 0.5 + pitch / 2.0);
        out.push((start..end, from.max(0.0), to));
        first = k;
    }
    if out.len() < 2 {
        out.clear();
    }
    out
}

/// Recognition batching: crops sorted by aspect ratio, each batch as wide as its widest
/// crop (rounded up to `align` pixels, at least `min_width`), holding at most `batch`
/// crops and at most `budget` padded pixels of width in all (a batch has at least one
/// crop). A budget keeps narrow words together and wide lines nearly alone, so padding
/// and the cost of one slow batch stay small. The reference pads every batch of 6 to at
/// least 320 px; a smaller floor spends less model time on short words for the same text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    pub batch: usize,
    pub min_width: usize,
    pub max_width: usize,
    pub align: usize,
    pub budget: usize,
}

impl Default for Batching {
    /// The reference's: 6 crops a batch, whatever their width.
    fn default() -> Self {
        Self { batch: 6, min_width: 320, max_width: 3200, align: 8, budget: usize::MAX }
    }
}

impl Batching {
    /// The crop's width when scaled to the model's `height`, within the limits.
    pub(crate) fn crop_width(&self, aspect: f32, height: usize) -> usize {
        ((height as f32 * aspect).ceil() as usize).clamp(1, self.max_width)
    }

    /// A batch's padded width when its widest crop is `widest` pixels.
    fn padded(&self, widest: usize) -> usize {
        let align = self.align.max(1);
        widest.max(self.min_width).div_ceil(align).min(self.max_width.div_ceil(align)) * align
    }

    /// Groups crop indices into batches of similar width; returns each batch's members
    /// and its padded width.
    pub(crate) fn plan(&self, aspects: &[f32], height: usize) -> Vec<(Vec<usize>, usize)> {
        let mut order: Vec<usize> = (0..aspects.len()).collect();
        order.sort_by(|&a, &b| aspects[a].total_cmp(&aspects[b]));
        let mut plan: Vec<(Vec<usize>, usize)> = Vec::new();
        for i in order {
            // Sorted by width, so the newcomer is the batch's widest.
            let width = self.padded(self.crop_width(aspects[i], height));
            match plan.last_mut() {
                Some((members, padded))
                    if members.len() < self.batch.max(1)
                        && (members.len() + 1).saturating_mul(width) <= self.budget =>
                {
                    members.push(i);
                    *padded = width;
                }
                _ => plan.push((vec![i], width)),
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let charset = Charset::from_metadata("a\nb\nc\n");
        assert_eq!(charset.len(), 5); // blank, a, b, c, space
                                      // steps: a a blank a b space c  -> "aab c"
        let seq = [1, 1, 0, 1, 2, 4, 3];
        let mut probs = vec![0.0f32; seq.len() * 5];
        for (t, &c) in seq.iter().enumerate() {
            probs[t * 5 + c] = 0.9;
            probs[t * 5 + (c + 1) % 5] = 0.1;
        }
        let (text, score, runs) = charset.decode(&probs, seq.len(), 2.0);
        assert_eq!(text, "aab c");
        assert!((score - 0.9).abs() < 1e-6);
        assert!(runs.is_empty());
        let (empty, zero, _) = charset.decode(&[1.0, 0.0, 0.0, 0.0, 0.0], 1, 2.0);
        assert_eq!((empty.as_str(), zero), ("", 0.0));
    }

    #[test]
    fn text_breaks_into_runs_at_a_blank_wider_than_the_gap_and_not_at_a_space() {
        let charset = Charset::from_metadata("A\nB\n1\n");
        // Classes: blank 0, A 1, B 2, 1 3, space 4. One class per step, blanks elsewhere.
        let read = |at: &[(usize, usize)], steps: usize| {
            let mut probs = vec![0.0f32; steps * 5];
            for t in 0..steps {
                probs[t * 5] = 1.0;
            }
            for &(t, c) in at {
                probs[t * 5] = 0.0;
                probs[t * 5 + c] = 1.0;
            }
            charset.decode(&probs, steps, 5.0)
        };
        // "AB BA" at a pitch of 2 steps, the space 2 steps wider: one run.
        let (text, _, runs) = read(&[(0, 1), (2, 2), (4, 4), (6, 2), (8, 1)], 12);
        assert_eq!((text.as_str(), runs.len()), ("AB BA", 0));
        // "ABAB" then 20 steps of blank, then "11": two runs, the space between them in
        // neither once trimmed.
        let (text, _, runs) = read(&[(0, 1), (2, 2), (4, 1), (6, 2), (7, 4), (28, 3), (30, 3)], 32);
        assert_eq!(text, "ABAB 11");
        let parts: Vec<&str> = runs.iter().map(|(bytes, _, _)| text[bytes.clone()].trim()).collect();
        assert_eq!(parts, ["ABAB", "11"]);
        // Each run spans half a pitch either side of its outer characters' steps.
        assert_eq!((runs[0].1, runs[0].2), (0.0, 7.5));
        assert_eq!((runs[1].1, runs[1].2), (27.5, 31.5));
        // The same blank with no space read in it is a faded glyph: one run.
        assert!(read(&[(0, 1), (2, 2), (4, 1), (6, 2), (28, 3), (30, 3)], 32).2.is_empty());
        // Too few characters to know the pitch: one run, however far apart.
        assert!(read(&[(0, 1), (2, 4), (20, 2), (22, 3)], 24).2.is_empty());
    }

    #[test]
    fn batches_group_similar_widths() {
        let batching = Batching { batch: 2, min_width: 64, ..Batching::default() };
        let plan = batching.plan(&[10.0, 1.0, 2.0, 9.0], 48);
        assert_eq!(plan, vec![(vec![1, 2], 96), (vec![3, 0], 480)]);
        let reference = Batching::default();
        assert_eq!(reference.plan(&[1.0], 48), vec![(vec![0], 320)]);
    }

    #[test]
    fn a_pixel_budget_keeps_narrow_crops_together_and_wide_ones_alone() {
        // Budget 800: four 96 px words fit (384), a fifth joins (480), then a 480 px
        // line would make 2 x 480 = 960 and starts its own batch, as does a 1000 px one.
        let batching = Batching { batch: 16, min_width: 96, budget: 800, ..Batching::default() };
        let plan = batching.plan(&[1.0, 1.0, 10.0, 1.0, 1.0, 1.0, 20.8], 48);
        assert_eq!(plan, vec![(vec![0, 1, 3, 4, 5], 96), (vec![2], 480), (vec![6], 1000)]);
        for (members, width) in &plan {
            assert!(members.len() == 1 || members.len() * width <= 800);
        }
    }
}
