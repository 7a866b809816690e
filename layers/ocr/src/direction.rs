//! The 0/180 degree direction stage: the classifier with its model, and the page-level
//! policy that decides from its per-line answers whether a page (or a sideways page
//! turned a quarter) is upside down.

use image::RgbImage;

use crate::error::OcrError;
use crate::geometry::CropMap;
use crate::model::ClassifierSpec;
use crate::recognize::Reading;
use crate::session::Model;

/// The reference's direction threshold: on a page that came upright, as nearly all do, a
/// line counts as upside down only when the classifier is this sure.
pub(crate) const DIRECTION_THRESHOLD: f32 = 0.9;
/// On a sideways page a quarter turn either way is as likely: a line counts for the way
/// the classifier leans.
pub(crate) const SIDEWAYS_THRESHOLD: f32 = 0.5;
/// A page is upside down when more than this share of its text (by line length) is.
const PAGE_FLIP_SHARE: f32 = 0.5;

/// A page whose text, read upright, has a mean character probability below this (weighted
/// by line width) is checked for being upside down. Text read upside down is garbage the
/// recogniser is unsure of: receipts and forms turned 180 degrees read at 0.57-0.70,
/// while every upright page of ../shared/data reads at 0.85 or more (most at 0.95-0.99).
/// A page checked needlessly costs only time: the direction model still decides.
const CHECK_BELOW: f32 = 0.8;

/// Whether a page read upright may be upside down: its text reads with little confidence.
pub(crate) fn worth_checking(crops: &[CropMap], recognised: &[Reading]) -> bool {
    !crops.is_empty() && confidence(crops, recognised) < CHECK_BELOW
}

/// A reading's mean character probability, weighted by line width.
pub(crate) fn confidence(crops: &[CropMap], recognised: &[Reading]) -> f32 {
    let total: f32 = crops.iter().map(|c| c.width).sum();
    let confident: f32 = crops.iter().zip(recognised).map(|(c, read)| c.width * read.score).sum();
    if total > 0.0 {
        confident / total
    } else {
        0.0
    }
}

/// The direction model's word on a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Upright,
    /// Most of the text leans upside down, but not surely: the page is read both ways and
    /// the more confident reading kept (a form turned 180° was missed at the sure threshold).
    Leaning,
    UpsideDown,
}

/// Tells upright text lines from upside-down ones.
pub(crate) struct DirectionClassifier {
    model: Model,
    spec: ClassifierSpec,
}

impl DirectionClassifier {
    pub(crate) fn new(model: Model, spec: ClassifierSpec) -> Self {
        Self { model, spec }
    }

    /// Whether the page whose lines these crops are is upside down.
    ///
    /// The direction model judges each line alone, and on upright pages it is confidently
    /// wrong about a few percent of lines (on ../shared/data: 175 of 5,457 lines above
    /// 0.9, 19 above 0.999), which then read as garbage. Photos are upside down as a
    /// whole, so the page decides: it is upside down when most of its text (by line
    /// length) is, each line counting when the model is `threshold` sure. The page is then
    /// turned and found again, not its lines turned one by one: the detector finds
    /// upside-down lines less well (turned receipts read at CER 0.028 worse that way).
    pub(crate) fn upside_down(&self, image: &RgbImage, crops: &[CropMap], threshold: f32) -> Result<bool, OcrError> {
        Ok(self.verdict(image, crops, threshold)? == Verdict::UpsideDown)
    }

    /// What the model says of the page: upside down when most of its text (by length) is
    /// so at `threshold`; leaning when most is at [`SIDEWAYS_THRESHOLD`] only.
    pub(crate) fn verdict(&self, image: &RgbImage, crops: &[CropMap], threshold: f32) -> Result<Verdict, OcrError> {
        let flipped = self.upside_down_probabilities(image, crops)?;
        let total: f32 = crops.iter().map(|c| c.width).sum();
        let share =
            |at: f32| -> f32 { crops.iter().zip(&flipped).filter(|(_, &p)| p > at).map(|(c, _)| c.width).sum::<f32>() };
        Ok(if share(threshold) > PAGE_FLIP_SHARE * total {
            Verdict::UpsideDown
        } else if share(SIDEWAYS_THRESHOLD) > PAGE_FLIP_SHARE * total {
            Verdict::Leaning
        } else {
            Verdict::Upright
        })
    }

    /// The model's probability that each crop is upside down.
    fn upside_down_probabilities(&self, image: &RgbImage, crops: &[CropMap]) -> Result<Vec<f32>, OcrError> {
        let (height, width) = (self.spec.height, self.spec.width);
        let plane = height * width;
        let mut flipped = Vec::with_capacity(crops.len());
        for batch in crops.chunks(self.spec.batch.max(1)) {
            let mut input = vec![0.0f32; batch.len() * 3 * plane];
            for (k, crop) in batch.iter().enumerate() {
                let w = ((height as f32 * crop.aspect()).ceil() as usize).clamp(1, width);
                crop.sample_into(
                    image,
                    w,
                    height,
                    width,
                    &self.spec.normalisation,
                    &mut input[k * 3 * plane..(k + 1) * 3 * plane],
                );
            }
            self.model.run([batch.len(), 3, height, width], input, |_, probs| {
                flipped.extend((0..batch.len()).map(|k| probs[2 * k + 1]));
                Ok(())
            })?;
        }
        Ok(flipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Point;

    fn crop(width: f32) -> CropMap {
        CropMap {
            origin: Point::new(0.0, 0.0),
            ex: Point::new(1.0, 0.0),
            ey: Point::new(0.0, 1.0),
            width,
            height: 20.0,
        }
    }

    #[test]
    fn only_pages_that_read_badly_are_checked_and_wide_lines_weigh_more() {
        let read = |scores: &[f32]| {
            scores.iter().map(|&score| Reading { text: "x".to_owned(), score, runs: Vec::new() }).collect::<Vec<_>>()
        };
        let crops = [crop(300.0), crop(20.0), crop(20.0)];
        // A confident page with two doubtful short words: not checked.
        assert!(!worth_checking(&crops, &read(&[0.97, 0.3, 0.2])));
        // The long line reads badly: checked, whatever the short words say.
        assert!(worth_checking(&crops, &read(&[0.6, 0.99, 0.99])));
        // A page without text has nothing to turn.
        assert!(!worth_checking(&[], &[]));
    }
}
