//! Recognition: the [`Recognizer`] with its model and the character set from the model's
//! metadata, batches grouped by width, and greedy CTC decoding.

use image::RgbImage;

use crate::geometry::CropMap;
use crate::model::RecognizerSpec;
use crate::session::Model;
use crate::error::OcrError;

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

    /// Each crop's text and mean character probability, in the crops' order.
    pub(crate) fn recognise(&self, image: &RgbImage, crops: &[CropMap]) -> Result<Vec<(String, f32)>, OcrError> {
        let height = self.spec.height;
        let aspects: Vec<f32> = crops.iter().map(|c| c.aspect()).collect();
        let mut results = vec![(String::new(), 0.0f32); crops.len()];
        for (members, width) in self.batching.plan(&aspects, height) {
            let plane = height * width;
            let mut input = vec![0.0f32; members.len() * 3 * plane];
            for (k, &i) in members.iter().enumerate() {
                let w = self.batching.crop_width(aspects[i], height).min(width);
                let slot = &mut input[k * 3 * plane..(k + 1) * 3 * plane];
                crops[i].sample_into(image, w, height, width, &self.spec.normalisation, slot);
            }
            self.model.run([members.len(), 3, height, width], input, |out_shape, probs| {
                let (steps, classes) = (out_shape[1] as usize, out_shape[2] as usize);
                if classes != self.charset.len() {
                    return Err(OcrError::ModelContents {
                        path: self.model.path().to_owned(),
                        what: format!("recognition gave {classes} classes, the charset has {}", self.charset.len()),
                    });
                }
                for (k, &i) in members.iter().enumerate() {
                    results[i] = self.charset.decode(&probs[k * steps * classes..(k + 1) * steps * classes], steps);
                }
                Ok(())
            })?;
        }
        Ok(results)
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
    pub fn decode(&self, probs: &[f32], steps: usize) -> (String, f32) {
        let n = self.classes.len();
        let mut text = String::new();
        let (mut sum, mut kept) = (0.0f32, 0usize);
        let mut previous = 0usize;
        for t in 0..steps {
            let row = &probs[t * n..(t + 1) * n];
            let (best, p) = row
                .iter()
                .copied()
                .enumerate()
                .fold((0usize, f32::MIN), |acc, (i, p)| if p > acc.1 { (i, p) } else { acc });
            if best != 0 && best != previous {
                text.push_str(&self.classes[best]);
                sum += p;
                kept += 1;
            }
            previous = best;
        }
        let score = if kept == 0 { 0.0 } else { sum / kept as f32 };
        (text.trim().to_owned(), score)
    }
}

/// Recognition batching: crops sorted by aspect ratio, `batch` at a time, each batch as
/// wide as its widest crop (rounded up to `align` pixels) but at least `min_width`.
/// The reference pads every batch to at least 320 px; a smaller floor spends less model
/// time on short words for the same text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    pub batch: usize,
    pub min_width: usize,
    pub max_width: usize,
    pub align: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self { batch: 6, min_width: 320, max_width: 3200, align: 8 }
    }
}

impl Batching {
    /// The crop's width when scaled to the model's `height`, within the limits.
    pub(crate) fn crop_width(&self, aspect: f32, height: usize) -> usize {
        ((height as f32 * aspect).ceil() as usize).clamp(1, self.max_width)
    }

    /// Groups crop indices into batches of similar width; returns each batch's members
    /// and its padded width.
    pub(crate) fn plan(&self, aspects: &[f32], height: usize) -> Vec<(Vec<usize>, usize)> {
        let mut order: Vec<usize> = (0..aspects.len()).collect();
        order.sort_by(|&a, &b| aspects[a].total_cmp(&aspects[b]));
        order
            .chunks(self.batch.max(1))
            .map(|members| {
                let widest = members.iter().map(|&i| self.crop_width(aspects[i], height)).max().unwrap_or(1);
                let width = widest.max(self.min_width).div_ceil(self.align) * self.align;
                (members.to_vec(), width.min(self.max_width.div_ceil(self.align) * self.align))
            })
            .collect()
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
        let (text, score) = charset.decode(&probs, seq.len());
        assert_eq!(text, "aab c");
        assert!((score - 0.9).abs() < 1e-6);
        let (empty, zero) = charset.decode(&[1.0, 0.0, 0.0, 0.0, 0.0], 1);
        assert_eq!((empty.as_str(), zero), ("", 0.0));
    }

    #[test]
    fn batches_group_similar_widths() {
        let batching = Batching { batch: 2, min_width: 64, ..Batching::default() };
        let plan = batching.plan(&[10.0, 1.0, 2.0, 9.0], 48);
        assert_eq!(plan, vec![(vec![1, 2], 96), (vec![3, 0], 480)]);
        let reference = Batching::default();
        assert_eq!(reference.plan(&[1.0], 48), vec![(vec![0], 320)]);
    }
}
