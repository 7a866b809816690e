//! DocuSnap's OCR engine: the PP-OCR pipeline that CnOCR runs, in Rust on ONNX Runtime.
//!
//! decode ([`decode`]) → detect text regions ([`detect`]) → crop and rectify each region
//! ([`geometry`]) → classify 0/180° → recognise in width-grouped batches and CTC-decode
//! ([`recognize`]) → reading order ([`layout`]).
//!
//! [`OcrEngine::load`] creates the three sessions once; an engine is then shared by every
//! page and invocation of the process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use image::RgbImage;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde::Serialize;

pub mod decode;
pub mod detect;
pub mod geometry;
pub mod layout;
pub mod recognize;
pub mod runtime;
#[cfg(feature = "testing")]
pub mod testing;

pub use decode::DecodeError;
pub use detect::{DbParams, DetSize};
pub use geometry::{Point, Quad};
pub use recognize::{Batching, Charset};
pub use runtime::ModelSet;

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

/// One page's lines, in reading order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Page {
    pub width: u32,
    pub height: u32,
    pub lines: Vec<TextLine>,
}

impl Page {
    /// The page's text as the extractor takes it: lines joined by single spaces.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// Pages' text as the extractor takes it (PROTOCOL.md, "OCR text"):
/// `"\n----page N----\n" + text` per page, N from 1.
pub fn document_text(pages: &[Page]) -> String {
    pages.iter().enumerate().map(|(i, page)| format!("\n----page {}----\n{}", i + 1, page.text())).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("ONNX Runtime not found; tried {tried:?}. Run models/fetch, or set DOCUSNAP_ORT_LIB")]
    RuntimeNotFound { tried: Vec<PathBuf> },
    #[error("ONNX Runtime at {path} cannot be loaded: {detail}")]
    RuntimeLoad { path: PathBuf, detail: String },
    #[error("the {set} models are not found; tried {tried:?}. Run models/fetch, or set DOCUSNAP_MODELS_DIR")]
    ModelsNotFound { set: &'static str, tried: Vec<PathBuf> },
    #[error("model {path} cannot be loaded: {source}")]
    Model { path: PathBuf, source: ort::Error },
    #[error("model {path}: {what}")]
    ModelContents { path: PathBuf, what: String },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("a page reader thread panicked")]
    Panicked,
    #[error("{stage} failed on input {shape:?}: {source}")]
    Inference { stage: &'static str, shape: Vec<usize>, source: ort::Error },
}

/// How the pipeline runs; [`EngineConfig::for_set`] gives the measured defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub runtime: PathBuf,
    pub models: PathBuf,
    pub set: ModelSet,
    pub threads: usize,
    pub det_size: DetSize,
    pub db: DbParams,
    pub batching: Batching,
    /// Classify 0/180° and turn upside-down lines.
    pub use_direction: bool,
    /// Lines recognised with a lower mean probability are dropped (the reference's 0.5).
    pub min_score: f32,
}

/// The reference's direction threshold: a line counts as upside down when the classifier
/// is this sure.
const DIRECTION_THRESHOLD: f32 = 0.9;
/// A page is upside down when more than this share of its text (by line length) is.
const PAGE_FLIP_SHARE: f32 = 0.5;
const DIRECTION_WIDTH: usize = 192;
/// Below this the detection model misses receipt-sized print (SROIE CER 0.060 at 1024).
const MIN_DET_LONG_SIDE: u32 = 1024;
const DIRECTION_BATCH: usize = 6;

impl EngineConfig {
    /// The configuration this process's environment asks for (see [`runtime::var`]).
    pub fn from_env() -> Result<Self, OcrError> {
        let set = std::env::var(runtime::var::MODEL_SET).ok().and_then(|s| ModelSet::parse(&s)).unwrap_or(DEFAULT_SET);
        let mut config = Self::for_set(set)?;
        // Lowering the detection side trades accuracy for memory (README, "Speed"); it is
        // never raised past the default, whose bound keeps memory and time in check.
        if let Some(side) = std::env::var(runtime::var::DET_LONG_SIDE).ok().and_then(|v| v.parse::<u32>().ok()) {
            config.det_size.long_max = side.clamp(MIN_DET_LONG_SIDE, DetSize::DEFAULT.long_max);
        }
        Ok(config)
    }

    pub fn for_set(set: ModelSet) -> Result<Self, OcrError> {
        let runtime = runtime::locate_runtime().map_err(|tried| OcrError::RuntimeNotFound { tried })?;
        let models = runtime::locate_models(set).map_err(|tried| OcrError::ModelsNotFound { set: set.name(), tried })?;
        Ok(Self {
            runtime,
            models,
            set,
            threads: runtime::threads(),
            det_size: DetSize::DEFAULT,
            db: DbParams::default(),
            batching: Batching { min_width: 48, ..Batching::default() },
            use_direction: true,
            min_score: 0.5,
        })
    }

    /// The reference's own settings on the same models, for comparisons.
    pub fn reference(mut self) -> Self {
        self.det_size = DetSize::REFERENCE;
        self.batching = Batching::default();
        self
    }
}

/// The model set used when none is configured: PP-OCRv6 small reads best on every set of
/// ../shared/data (see the README).
pub const DEFAULT_SET: ModelSet = ModelSet::PpOcrV6;

pub struct OcrEngine {
    det: Mutex<Session>,
    cls: Mutex<Session>,
    rec: Mutex<Session>,
    charset: Charset,
    config: EngineConfig,
}

/// ONNX Runtime allows one environment per process: the first engine loads the library
/// and creates it, later engines (another model set, say) share it.
fn environment(runtime: &Path) -> Result<&'static ort::environment::Environment, OcrError> {
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    static INIT: Mutex<()> = Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(environment) = ENVIRONMENT.get() {
        return Ok(environment);
    }
    let load_error = |detail: String| OcrError::RuntimeLoad { path: runtime.to_owned(), detail };
    let environment = ort::init_from(runtime)
        .map_err(|e| load_error(e.to_string()))?
        .with_name("docusnap-ocr")
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    Ok(ENVIRONMENT.get_or_init(|| environment))
}

impl OcrEngine {
    /// Loads ONNX Runtime and the three models. Call once per process.
    pub fn load(config: EngineConfig) -> Result<Self, OcrError> {
        let environment = environment(&config.runtime)?;
        let [det, rec, cls] = config.set.files().map(|file| config.models.join(file));
        let session = |path: &Path| -> Result<Session, OcrError> {
            let model_error = |source: ort::Error| OcrError::Model { path: path.to_owned(), source };
            Session::builder(environment)
                .map_err(model_error)?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(|e| model_error(e.into()))?
                // Memory patterns plan allocations per input shape; every page and every
                // recognition batch has a shape of its own, so the plans only pile up.
                // Measured on 20 receipts: 17% lower peak memory and 5-8% faster without.
                .with_memory_pattern(false)
                .map_err(|e| model_error(e.into()))?
                .with_intra_threads(config.threads)
                .map_err(|e| model_error(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| model_error(e.into()))?
                .commit_from_file(path)
                .map_err(model_error)
        };
        let rec_session = session(&rec)?;
        let character = rec_session
            .metadata()
            .ok()
            .and_then(|m| m.custom("character"))
            .ok_or_else(|| OcrError::ModelContents { path: rec.clone(), what: "no `character` metadata".into() })?;
        let charset = Charset::from_metadata(&character);
        let classes = rec_session.outputs().first().and_then(|o| o.dtype().tensor_shape().and_then(|s| s.last().copied()));
        if let Some(classes) = classes.filter(|&c| c > 0) {
            if classes as usize != charset.len() {
                return Err(OcrError::ModelContents {
                    path: rec,
                    what: format!("{classes} output classes but {} in its character metadata (+ blank and space)", charset.len()),
                });
            }
        }
        Ok(Self {
            det: Mutex::new(session(&det)?),
            cls: Mutex::new(session(&cls)?),
            rec: Mutex::new(rec_session),
            charset,
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Decodes an image (within the limits in [`decode`]) and reads it.
    pub fn read_image(&self, bytes: &[u8]) -> Result<Page, OcrError> {
        self.read(&decode::decode(bytes)?)
    }

    /// Reads an upright page.
    pub fn read(&self, image: &RgbImage) -> Result<Page, OcrError> {
        let detections = self.detect(image)?;
        let mut crops: Vec<geometry::CropMap> = detections.iter().map(|d| geometry::CropMap::from_quad(&d.quad)).collect();
        let upside_down = self.config.use_direction && self.orient(image, &mut crops)?;
        let recognised = self.recognise(image, &crops)?;
        let lines: Vec<TextLine> = detections
            .into_iter()
            .zip(recognised)
            .filter(|(_, (text, score))| !text.is_empty() && *score >= self.config.min_score)
            .map(|(d, (text, score))| TextLine { text, score, quad: d.quad })
            .collect();
        let (w, h) = (image.width() as f32, image.height() as f32);
        // An upside-down page reads from the image's bottom right: order its lines in the
        // turned page's frame, then give the boxes back in the image's.
        let turn = |line: TextLine| TextLine { quad: line.quad.map(|p| Point::new(w - p.x, h - p.y)), ..line };
        let lines = if upside_down {
            layout::reading_order(lines.into_iter().map(turn).collect()).into_iter().map(turn).collect()
        } else {
            layout::reading_order(lines)
        };
        Ok(Page { width: image.width(), height: image.height(), lines })
    }

    /// Runs one model on a [N, 3, H, W] input and hands its first output (shape, data) to
    /// `read`, which borrows it rather than copying it.
    fn run<T>(
        session: &Mutex<Session>,
        stage: &'static str,
        shape: [usize; 4],
        input: Vec<f32>,
        read: impl FnOnce(&[i64], &[f32]) -> Result<T, OcrError>,
    ) -> Result<T, OcrError> {
        let failed = |source: ort::Error| OcrError::Inference { stage, shape: shape.to_vec(), source };
        let tensor = Tensor::from_array((shape, input)).map_err(failed)?;
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(ort::inputs![tensor]).map_err(failed)?;
        let (out_shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        read(out_shape, data)
    }

    fn detect(&self, image: &RgbImage) -> Result<Vec<detect::Detection>, OcrError> {
        let (w, h) = detect::input_size(image.width(), image.height(), self.config.det_size);
        let mut input = vec![0.0f32; 3 * w * h];
        detect::fill_input(image, w, h, &mut input);
        Self::run(&self.det, "detection", [1, 3, h, w], input, |out_shape, prob| {
            let (map_h, map_w) = (out_shape[out_shape.len() - 2] as usize, out_shape[out_shape.len() - 1] as usize);
            Ok(detect::boxes_from_map(prob, map_w, map_h, image.width(), image.height(), &self.config.db))
        })
    }

    /// Turns the lines of an upside-down page.
    ///
    /// The direction model judges each line alone, and on upright pages it is confidently
    /// wrong about a few percent of lines (on ../shared/data: 175 of 5,457 lines above
    /// 0.9, 19 above 0.999), which then read as garbage. Photos are upside down as a
    /// whole, so the page decides: when most of its text (by line length) reads as
    /// upside down, every line the model leans to call upside down is turned; otherwise
    /// none is.
    /// Returns whether the page was upside down.
    fn orient(&self, image: &RgbImage, crops: &mut [geometry::CropMap]) -> Result<bool, OcrError> {
        let flipped = self.direction_probabilities(image, crops)?;
        let total: f32 = crops.iter().map(|c| c.width).sum();
        let upside_down: f32 = crops.iter().zip(&flipped).filter(|(_, &p)| p > DIRECTION_THRESHOLD).map(|(c, _)| c.width).sum();
        let page_upside_down = upside_down > PAGE_FLIP_SHARE * total;
        if page_upside_down {
            for (crop, p) in crops.iter_mut().zip(flipped) {
                if p > 0.5 {
                    *crop = crop.rotated_180();
                }
            }
        }
        Ok(page_upside_down)
    }

    /// The direction model's probability that each crop is upside down.
    fn direction_probabilities(&self, image: &RgbImage, crops: &[geometry::CropMap]) -> Result<Vec<f32>, OcrError> {
        let height = self.config.batching.height;
        let plane = height * DIRECTION_WIDTH;
        let mut flipped = Vec::with_capacity(crops.len());
        for batch in crops.chunks(DIRECTION_BATCH) {
            let mut input = vec![0.0f32; batch.len() * 3 * plane];
            for (k, crop) in batch.iter().enumerate() {
                let w = ((height as f32 * crop.aspect()).ceil() as usize).clamp(1, DIRECTION_WIDTH);
                crop.sample_into(image, w, height, DIRECTION_WIDTH, &mut input[k * 3 * plane..(k + 1) * 3 * plane]);
            }
            Self::run(&self.cls, "direction", [batch.len(), 3, height, DIRECTION_WIDTH], input, |_, probs| {
                flipped.extend((0..batch.len()).map(|k| probs[2 * k + 1]));
                Ok(())
            })?;
        }
        Ok(flipped)
    }

    fn recognise(&self, image: &RgbImage, crops: &[geometry::CropMap]) -> Result<Vec<(String, f32)>, OcrError> {
        let batching = self.config.batching;
        let height = batching.height;
        let aspects: Vec<f32> = crops.iter().map(|c| c.aspect()).collect();
        let mut results = vec![(String::new(), 0.0f32); crops.len()];
        for (members, width) in batching.plan(&aspects) {
            let plane = height * width;
            let mut input = vec![0.0f32; members.len() * 3 * plane];
            for (k, &i) in members.iter().enumerate() {
                let w = batching.crop_width(aspects[i]).min(width);
                crops[i].sample_into(image, w, height, width, &mut input[k * 3 * plane..(k + 1) * 3 * plane]);
            }
            Self::run(&self.rec, "recognition", [members.len(), 3, height, width], input, |out_shape, probs| {
                let (steps, classes) = (out_shape[1] as usize, out_shape[2] as usize);
                if classes != self.charset.len() {
                    return Err(OcrError::ModelContents {
                        path: self.config.models.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_text_marks_pages_from_one() {
        let page = |texts: &[&str]| Page {
            width: 1,
            height: 1,
            lines: texts.iter().map(|t| TextLine { text: t.to_string(), score: 1.0, quad: layout::rect(0.0, 0.0, 1.0, 1.0) }).collect(),
        };
        let text = document_text(&[page(&["a", "b"]), page(&["c"])]);
        assert_eq!(text, "\n----page 1----\na b\n----page 2----\nc");
    }
}
