//! What each model of a set expects: its file, how its input is normalised, and its input
//! shape. The spec belongs to the model set, so a new set (with another normalisation or
//! input height) is one more [`ModelSet`] arm here, not constants changed across stages.

/// The two model sets the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSet {
    /// PP-OCRv4, as CnOCR and `rapidocr_onnxruntime==1.4.4` run it.
    PpOcrV4,
    /// PP-OCRv6 small, as `rapidocr==3.10.0` ships it.
    PpOcrV6,
}

impl ModelSet {
    pub const ALL: [ModelSet; 2] = [ModelSet::PpOcrV4, ModelSet::PpOcrV6];

    pub fn name(self) -> &'static str {
        match self {
            ModelSet::PpOcrV4 => "ppocr-v4",
            ModelSet::PpOcrV6 => "ppocr-v6",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|set| set.name() == name)
    }

    /// Detection, recognition and direction model files, as the wheels name them.
    pub fn files(self) -> [&'static str; 3] {
        let spec = self.spec();
        [spec.detector.file, spec.recognizer.file, spec.classifier.file]
    }
}

/// How a model wants its pixels: `(value / 255 - mean) / std` per channel, channels in
/// BGR or RGB order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    /// Per channel, in R, G, B order.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The network's first input plane is blue (PaddlePaddle models were trained on
    /// OpenCV's BGR images).
    pub bgr: bool,
}

impl Normalisation {
    /// PaddleOCR's direction and recognition preprocessing (and the Python references'
    /// detection): to [-1, 1], BGR.
    pub const PADDLE: Normalisation = Normalisation { mean: [0.5; 3], std: [0.5; 3], bgr: true };

    /// PaddleOCR's detection preprocessing, the one its DB detectors are trained with
    /// (`tools/infer/predict_det.py`, and faster-paddle): ImageNet's mean and deviation,
    /// listed R, G, B there but applied to OpenCV's B, G, R planes in that order, so the
    /// blue plane gets red's values. The Python references normalise to [-1, 1] instead;
    /// with the training values a detector's map holds a line together where [-1, 1]
    /// breaks it (a margin's vertical document number came out one box per digit).
    pub const PADDLE_DETECTION: Normalisation =
        Normalisation { mean: [0.406, 0.456, 0.485], std: [0.225, 0.224, 0.229], bgr: true };

    /// Per output plane (in the network's channel order): which RGB channel it takes and the
    /// `scale` and `offset` with `value = pixel * scale + offset`.
    pub(crate) fn planes(&self) -> [(usize, f32, f32); 3] {
        let plane = |c: usize| (c, 1.0 / (255.0 * self.std[c]), -self.mean[c] / self.std[c]);
        if self.bgr {
            [plane(2), plane(1), plane(0)]
        } else {
            [plane(0), plane(1), plane(2)]
        }
    }
}

/// The text detector: a probability map the size of its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorSpec {
    pub file: &'static str,
    pub normalisation: Normalisation,
    /// Input sides must be multiples of this (the network's total stride).
    pub stride: usize,
}

/// The 0/180 degree direction classifier: fixed-size crops, two classes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassifierSpec {
    pub file: &'static str,
    pub normalisation: Normalisation,
    pub height: usize,
    pub width: usize,
    /// Crops per call (the reference's batch).
    pub batch: usize,
}

/// The recogniser: crops of a fixed height and any width, CTC over its character set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecognizerSpec {
    pub file: &'static str,
    pub normalisation: Normalisation,
    pub height: usize,
}

/// The three models of a set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelSpec {
    pub detector: DetectorSpec,
    pub classifier: ClassifierSpec,
    pub recognizer: RecognizerSpec,
}

/// The direction model both wheels ship.
const MOBILE_V2_CLASSIFIER: ClassifierSpec = ClassifierSpec {
    file: "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    normalisation: Normalisation::PADDLE,
    height: 48,
    width: 192,
    batch: 6,
};

impl ModelSet {
    pub fn spec(self) -> ModelSpec {
        let (det, rec) = match self {
            ModelSet::PpOcrV4 => ("ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_rec_infer.onnx"),
            ModelSet::PpOcrV6 => ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx"),
        };
        ModelSpec {
            detector: DetectorSpec { file: det, normalisation: Normalisation::PADDLE_DETECTION, stride: 32 },
            classifier: MOBILE_V2_CLASSIFIER,
            recognizer: RecognizerSpec { file: rec, normalisation: Normalisation::PADDLE, height: 48 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paddle_normalisation_maps_bytes_to_minus_one_to_one_in_bgr() {
        let planes = Normalisation::PADDLE.planes();
        assert_eq!(planes.map(|(c, _, _)| c), [2, 1, 0]);
        for (_, scale, offset) in planes {
            assert!((0.0 * scale + offset + 1.0).abs() < 1e-6);
            assert!((255.0 * scale + offset - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn detection_normalisation_gives_the_blue_plane_reds_imagenet_values() {
        // PaddleOCR: (pixel / 255 - mean[c]) / std[c] on plane c of a BGR image, with
        // mean = [0.485, 0.456, 0.406] and std = [0.229, 0.224, 0.225].
        let planes = Normalisation::PADDLE_DETECTION.planes();
        assert_eq!(planes.map(|(c, _, _)| c), [2, 1, 0]);
        let paddle = [(0.485f32, 0.229f32), (0.456, 0.224), (0.406, 0.225)];
        for ((_, scale, offset), (mean, std)) in planes.into_iter().zip(paddle) {
            for pixel in [0.0f32, 100.0, 255.0] {
                assert!((pixel * scale + offset - (pixel / 255.0 - mean) / std).abs() < 1e-5);
            }
        }
        for set in ModelSet::ALL {
            assert_eq!(set.spec().detector.normalisation, Normalisation::PADDLE_DETECTION);
        }
    }
}
