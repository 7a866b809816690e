//! DocuSnap's OCR engine: the PP-OCR pipeline that CnOCR runs, in Rust on ONNX Runtime.
//!
//! An uploaded item becomes pages ([`input`]); each page is decoded ([`decode`]), its text
//! regions found by the detector (`detect`), a sideways page told from its boxes and
//! turned a quarter (`orientation`), each region cropped and rectified (`geometry`), read
//! by the recogniser on its pool of sessions (`recognize`), turned and read again when the
//! page reads badly upright and the direction classifier (`direction`) finds it upside
//! down, and its lines put in reading order in the upright, levelled frame (`layout`). Each
//! stage owns its model and that model's spec ([`model`]: file, normalisation, input
//! shape), as ocrs does; [`OcrEngine`] is the facade.
//!
//! [`OcrEngine::load`] creates the sessions once (from the models' prepared forms,
//! [`prepared_path`]); an engine is then shared by every page and invocation of the
//! process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use image::RgbImage;

pub mod cores;
pub mod decode;
mod detect;
mod direction;
mod error;
mod geometry;
pub mod input;
mod layout;
pub mod mode;
pub mod model;
mod orientation;
mod page;
pub mod pdf;
mod recognize;
pub mod runtime;
mod session;
#[cfg(feature = "testing")]
pub mod testing;

pub use decode::DecodeError;
pub use detect::{DbParams, DetSize};
pub use error::OcrError;
pub use geometry::{Point, Quad};
pub use input::{InputError, PageInput};
pub use mode::Mode;
pub use model::{ModelSet, ModelSpec};
pub use orientation::{Orientation, Rotation, MIN_SKEW_DEGREES};
pub use page::{Page, TextLine};
pub use recognize::Batching;
pub use session::prepared_path;

use cores::{Claim, Cores};
use detect::Detector;
use direction::DirectionClassifier;
use geometry::CropMap;
use orientation::{Frame, Turn};
use recognize::{Reading, Recognizer};
use session::{Model, Pool};

/// How the pipeline runs; [`EngineConfig::for_set`] gives the measured defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub runtime: PathBuf,
    pub models: PathBuf,
    pub set: ModelSet,
    /// The CPU budget: the detector's intra-op threads, and the recognition pool's
    /// sessions times their threads.
    pub threads: usize,
    /// Recognition sessions run side by side, each with `threads / rec_sessions` threads.
    pub rec_sessions: usize,
    /// The folder through which every engine on the machine shares its cores (see
    /// [`cores`]): a page read alone takes `threads`, pages side by side share them.
    /// `None`: every page takes `threads`, however many are read at once.
    pub cores_dir: Option<PathBuf>,
    pub det_size: DetSize,
    pub db: DbParams,
    pub batching: Batching,
    /// Find the page's quarter turn (sideways and upside-down pages) and read it upright.
    pub use_direction: bool,
    /// Lines recognised with a lower mean probability are dropped (the reference's 0.5).
    pub min_score: f32,
    /// How [`OcrEngine::read`] reads a page; [`OcrEngine::read_as`] chooses per page.
    pub mode: Mode,
    /// The fast mode's detection size ([`mode::FAST_DET_SIZE`]) and how much narrower it
    /// reads each crop ([`mode::FAST_SQUEEZE`]).
    pub fast_det_size: DetSize,
    pub fast_squeeze: f32,
}

/// Below this the detection model misses receipt-sized print (SROIE CER 0.060 at 1024).
const MIN_DET_LONG_SIDE: u32 = 1024;
/// More ONNX Runtime threads than any Lambda (6 vCPUs at most) or workstation here has:
/// a larger number is a typo.
const MAX_THREADS: usize = 256;

impl EngineConfig {
    /// The configuration this process's environment asks for (see [`runtime::var`]).
    pub fn from_env() -> Result<Self, OcrError> {
        let setting = |var: &'static str| std::env::var(var).ok().filter(|v| !v.is_empty());
        let invalid = |var, value: String, why| OcrError::Setting { var, value, why };
        let set = match setting(runtime::var::MODEL_SET) {
            Some(name) => ModelSet::parse(&name)
                .ok_or_else(|| invalid(runtime::var::MODEL_SET, name, "not a model set this engine has"))?,
            None => DEFAULT_SET,
        };
        if let Some(value) = setting(runtime::var::THREADS) {
            if !value.parse::<usize>().is_ok_and(|n| (1..=MAX_THREADS).contains(&n)) {
                return Err(invalid(runtime::var::THREADS, value, "expected a whole number of threads from 1 to 256"));
            }
        }
        let mut config = Self::for_set(set)?;
        if let Some(value) = setting(runtime::var::MODE) {
            config.mode =
                Mode::parse(&value).ok_or_else(|| invalid(runtime::var::MODE, value, "expected accurate or fast"))?;
        }
        // The detection side trades accuracy for memory and time (docs/benchmarks.md),
        // within bounds that keep both in check.
        if let Some(value) = setting(runtime::var::DET_LONG_SIDE) {
            match value.parse::<u32>() {
                Ok(side) if (MIN_DET_LONG_SIDE..=DetSize::MAX_LONG_SIDE).contains(&side) => {
                    config.det_size.long_max = side
                }
                _ => {
                    return Err(invalid(
                        runtime::var::DET_LONG_SIDE,
                        value,
                        "expected pixels from 1024 to the detector's maximum",
                    ))
                }
            }
        }
        Ok(config)
    }

    pub fn for_set(set: ModelSet) -> Result<Self, OcrError> {
        let runtime = runtime::locate_runtime().map_err(|tried| OcrError::RuntimeNotFound { tried })?;
        let models =
            runtime::locate_models(set).map_err(|tried| OcrError::ModelsNotFound { set: set.name(), tried })?;
        Ok(Self {
            runtime,
            models,
            set,
            threads: runtime::threads(),
            rec_sessions: runtime::threads(),
            cores_dir: Some(runtime::cores_dir()),
            det_size: DetSize::DEFAULT,
            db: DbParams::default(),
            // One crop a batch: no padding, and the recognition sessions stay busy (see
            // `recognize`). Measured on 12 receipts against batches of 6: 12.8 s vs 14.3 s.
            batching: Batching { batch: 1, min_width: 48, ..Batching::default() },
            use_direction: true,
            min_score: 0.5,
            mode: Mode::Accurate,
            fast_det_size: mode::FAST_DET_SIZE,
            fast_squeeze: mode::FAST_SQUEEZE,
        })
    }

    /// The reference's own settings on the same models, for comparisons.
    pub fn reference(mut self) -> Self {
        self.det_size = DetSize::REFERENCE;
        self.db = DbParams::REFERENCE;
        self.batching = Batching::default();
        self
    }
}

/// The model set used when none is configured: PP-OCRv6 small reads best on every set of
/// ../shared/data (see docs/benchmarks.md).
pub const DEFAULT_SET: ModelSet = ModelSet::PpOcrV6;

/// The engine: one part per stage, each with its model.
pub struct OcrEngine {
    /// Each mode's detector (see [`Mode::index`]): the engine's own mode's loaded with it,
    /// the other's the first time a page asks for it.
    detectors: [OnceLock<Detector>; 2],
    /// Loaded the first time a page needs it.
    direction: OnceLock<DirectionClassifier>,
    recognizer: Recognizer,
    config: EngineConfig,
    /// What each page may use of the machine's cores.
    cores: Cores,
    environment: &'static ort::environment::Environment,
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
    let (variable, off) = runtime::DISABLE_TELEMETRY;
    if std::env::var(variable).as_deref() != Ok(off) {
        tracing::warn!(
            "{variable} is not {off}: ONNX Runtime's telemetry uploader starts (see runtime::disable_telemetry)"
        );
    }
    let environment = ort::init_from(runtime)
        .map_err(|e| load_error(runtime::with_loader_reason(e.to_string(), runtime)))?
        .with_name("docusnap-ocr")
        // Its events too, in case a build starts the uploader regardless.
        .with_telemetry(false)
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    Ok(ENVIRONMENT.get_or_init(|| environment))
}

impl OcrEngine {
    /// Loads ONNX Runtime and the set's three models. Call once per process.
    pub fn load(config: EngineConfig) -> Result<Self, OcrError> {
        let environment = environment(&config.runtime)?;
        let spec = config.set.spec();
        let cores = match &config.cores_dir {
            Some(dir) => Cores::new(dir, runtime::machine_cores(), config.threads),
            None => Cores::unshared(config.threads),
        };
        let threads = cores.budget();
        let rec_sessions = config.rec_sessions.clamp(1, threads);
        // The detector and the recogniser's sessions are built side by side: building is
        // mostly single-threaded graph work, and it is most of a cold start.
        let (detector, recognizer) = std::thread::scope(|scope| {
            let detector = scope.spawn(|| load_detector(environment, &config, config.mode, threads));
            let recognition = Pool { sessions: rec_sessions, threads: threads / rec_sessions };
            let recognizer =
                Model::load(environment, &config.models.join(spec.recognizer.file), recognition, "recognition");
            (detector.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), recognizer)
        });
        let recognizer = Recognizer::new(recognizer?, spec.recognizer, config.batching)?;
        let detectors = [OnceLock::new(), OnceLock::new()];
        let _ = detectors[config.mode.index()].set(detector?);
        Ok(Self { detectors, direction: OnceLock::new(), recognizer, config, cores, environment })
    }

    /// Writes the prepared form of each model of `config`'s set (see [`prepared_path`])
    /// and returns their paths. The image's build runs this, as
    /// its `/opt` is read-only at run time; a checkout's models are prepared on first load.
    pub fn prepare_models(config: &EngineConfig) -> Result<Vec<PathBuf>, OcrError> {
        let environment = environment(&config.runtime)?;
        config
            .set
            .files()
            .iter()
            .map(|file| {
                let path = config.models.join(file);
                let target = session::prepared_path(&path);
                session::prepare(environment, &path, &target).map(|()| target)
            })
            .collect()
    }

    /// The detector `mode` reads with, loaded on first use.
    fn detector(&self, mode: Mode) -> Result<&Detector, OcrError> {
        let slot = &self.detectors[mode.index()];
        if let Some(detector) = slot.get() {
            return Ok(detector);
        }
        let detector = load_detector(self.environment, &self.config, mode, self.threads())?;
        // Two pages may load it at once; one copy is kept.
        Ok(slot.get_or_init(|| detector))
    }

    /// The direction classifier, loaded on first use.
    fn direction(&self) -> Result<&DirectionClassifier, OcrError> {
        if let Some(direction) = self.direction.get() {
            return Ok(direction);
        }
        let spec = self.config.set.spec().classifier;
        let plan = Pool { sessions: 1, threads: self.threads() };
        let model = Model::load(self.environment, &self.config.models.join(spec.file), plan, "direction")?;
        // Two pages may load it at once; one copy is kept.
        Ok(self.direction.get_or_init(|| DirectionClassifier::new(model, spec)))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The most cores one page reads with: the configuration's threads, at most the
    /// machine's when they are shared.
    pub fn threads(&self) -> usize {
        self.cores.budget()
    }

    /// Reads one page of the input stage in the engine's mode.
    pub fn read_input(&self, page: &PageInput) -> Result<Page, OcrError> {
        self.read_input_as(page, self.config.mode)
    }

    /// Reads one page of the input stage in `mode` (a text layer is taken as it is).
    pub fn read_input_as(&self, page: &PageInput, mode: Mode) -> Result<Page, OcrError> {
        match page {
            PageInput::Image(bytes) => self.read_as(&decode::decode(bytes)?, mode),
            PageInput::TiffFrame { file, index } => self.read_as(&decode::decode_tiff_frame(file, *index)?, mode),
            PageInput::Pdf(pdf::PdfPage::Text(page)) => Ok(page.clone()),
            PageInput::Pdf(pdf::PdfPage::Scan { document, index }) => {
                let image = pdf::render(document, *index).map_err(InputError::from)?;
                self.read_as(&image, mode)
            }
        }
    }

    /// Decodes an image (within the limits in [`decode`]) and reads it.
    pub fn read_image(&self, bytes: &[u8]) -> Result<Page, OcrError> {
        self.read(&decode::decode(bytes)?)
    }

    /// Reads a page in whatever quarter turn it came, a little askew or not, in the
    /// engine's mode.
    pub fn read(&self, image: &RgbImage) -> Result<Page, OcrError> {
        self.read_as(image, self.config.mode)
    }

    /// Reads a page in `mode`.
    pub fn read_as(&self, image: &RgbImage, mode: Mode) -> Result<Page, OcrError> {
        let detector = self.detector(mode)?;
        let squeeze = if mode == Mode::Fast { self.config.fast_squeeze } else { 1.0 };
        // Held until the page is read: the cores free now, or the first to come free.
        let pass = Pass { detector, squeeze, claim: self.cores.claim() };
        let quads: Vec<Quad> = pass.detect(image)?;
        let (read, rotation) = match self.turn_before_reading(image, &quads)? {
            Some(turn) => (self.read_turned(image, turn, &pass)?, turn.into()),
            None => self.read_upright(image, quads, &pass)?,
        };
        drop(pass);
        let lines: Vec<TextLine> = read
            .quads
            .into_iter()
            .zip(read.recognised)
            .filter(|(_, read)| !read.text.is_empty() && read.score >= self.config.min_score)
            .flat_map(|(quad, read)| lines_of(quad, read))
            .collect();
        Ok(arrange(lines, image.width(), image.height(), rotation))
    }

    /// The quarter turn a sideways page needs, told before anything is read: its lines
    /// are tall (see `orientation::is_sideways`), and the direction model, on its tall
    /// boxes read as a quarter turn counter-clockwise would stand them, says whether that
    /// turn or the other (a quarter turn either way being as likely).
    fn turn_before_reading(&self, image: &RgbImage, quads: &[Quad]) -> Result<Option<Turn>, OcrError> {
        if !self.config.use_direction || !orientation::is_sideways(quads) {
            return Ok(None);
        }
        // A tall box's crop runs down the box, its top toward the box's right side: the
        // text as the page turned a quarter counter-clockwise shows it.
        let crops: Vec<CropMap> = quads.iter().filter(|q| geometry::is_tall(q)).map(CropMap::from_quad).collect();
        let upside_down = self.direction()?.upside_down(image, &crops, direction::SIDEWAYS_THRESHOLD)?;
        Ok(Some(if upside_down { Turn::Quarter } else { Turn::ThreeQuarters }))
    }

    /// Reads a page as it came. Nearly every page is upright; one that reads badly is
    /// shown to the direction model (see `direction::worth_checking`), and if it is upside
    /// down it is turned and read again, so upright pages pay nothing for the model.
    fn read_upright(&self, image: &RgbImage, quads: Vec<Quad>, pass: &Pass) -> Result<(Read, Rotation), OcrError> {
        let read = self.read_level(image, quads, pass)?;
        if !self.config.use_direction || !direction::worth_checking(&read.crops, &read.recognised) {
            return Ok((read, Rotation::None));
        }
        match self.direction()?.verdict(image, &read.crops, direction::DIRECTION_THRESHOLD)? {
            direction::Verdict::Upright => Ok((read, Rotation::None)),
            direction::Verdict::UpsideDown => Ok((self.read_turned(image, Turn::Half, pass)?, Rotation::Half)),
            direction::Verdict::Leaning => {
                let turned = self.read_turned(image, Turn::Half, pass)?;
                if turned.confidence() > read.confidence() {
                    Ok((turned, Rotation::Half))
                } else {
                    Ok((read, Rotation::None))
                }
            }
        }
    }

    /// Reads the page turned by `turn`: its text found again on the turned page (the
    /// detector, trained on level upright lines, finds others less well: turned receipts
    /// read at CER 0.027 worse with their first boxes) and read. The boxes come back in the
    /// page's own pixels.
    fn read_turned(&self, image: &RgbImage, turn: Turn, pass: &Pass) -> Result<Read, OcrError> {
        let turned = turn.apply(image);
        let quads = pass.detect(&turned)?;
        let read = self.read_level(&turned, quads, pass)?;
        let frame = Frame::new(image.width(), image.height(), Orientation { rotation: turn.into(), skew: 0.0 });
        Ok(Read { quads: read.quads.iter().map(|q| q.map(|p| frame.to_page(p))).collect(), ..read })
    }

    /// Reads an upright page whose text `quads` were found on it: as it is, or, skewed by
    /// [`orientation::LEVEL_DEGREES`] or more, with its text found again on the page
    /// levelled. The boxes are in `image`'s pixels.
    fn read_level(&self, image: &RgbImage, quads: Vec<Quad>, pass: &Pass) -> Result<Read, OcrError> {
        let skew = orientation::skew(&quads.iter().map(|q| geometry::ordered(*q)).collect::<Vec<_>>());
        let quads = if skew.abs() < orientation::LEVEL_DEGREES {
            quads
        } else {
            // Found on the levelled page, read from the page's own pixels along each box's
            // angle: resampled once, as a level page's crops are, not twice.
            let (level, map) = orientation::turned_by(image, -skew);
            pass.detect(&level)?.into_iter().map(|q| q.map(|p| map.to_image(p))).collect()
        };
        let crops: Vec<CropMap> = quads.iter().map(CropMap::from_quad).collect();
        let mut recognised = self.recognizer.recognise(image, &crops, pass.squeeze, &pass.claim)?;
        // A tall box's crop runs across the box (see `CropMap::from_quad`), so its runs
        // are not along the box's top edge: it stays one line.
        for (quad, read) in quads.iter().zip(&mut recognised) {
            if geometry::is_tall(quad) {
                read.runs.clear();
            }
        }
        Ok(Read { quads, crops, recognised })
    }
}

/// The detector `mode` reads with, its session on `threads` threads: the set's own, or
/// the fast mode's (see [`mode`]) from the set's sibling folder, as model sets are laid
/// out side by side (see `runtime::locate_models`).
fn load_detector(
    environment: &'static ort::environment::Environment, config: &EngineConfig, mode: Mode, threads: usize,
) -> Result<Detector, OcrError> {
    let (folder, spec, size) = match mode {
        Mode::Accurate => (config.models.clone(), config.set.spec().detector, config.det_size),
        Mode::Fast => (
            config.models.with_file_name(mode::FAST_DETECTOR_SET.name()),
            mode::FAST_DETECTOR_SET.spec().detector,
            config.fast_det_size,
        ),
    };
    let model = Model::load(environment, &folder.join(spec.file), Pool { sessions: 1, threads }, "detection")?;
    Ok(Detector::new(model, spec, size, config.db))
}

/// What one page is read with: its mode's detector and crop squeeze, and the cores it
/// holds until it is read.
struct Pass<'a> {
    detector: &'a Detector,
    squeeze: f32,
    claim: Claim,
}

impl Pass<'_> {
    /// The page's text boxes.
    fn detect(&self, image: &RgbImage) -> Result<Vec<Quad>, OcrError> {
        Ok(self.detector.detect(image, self.claim.cores())?.into_iter().map(|d| d.quad).collect())
    }
}

/// A page's text boxes, the crops read from them and what each reads. The crops are in
/// the image the text was read from (turned, for a turned page); only their sizes are
/// used beyond the reading.
struct Read {
    quads: Vec<Quad>,
    crops: Vec<CropMap>,
    recognised: Vec<Reading>,
}

/// A box's lines: one, or one for each run of text standing apart in it (see
/// [`recognize::RUN_GAP_HEIGHTS`]), each run's box the part of the box it spans along its
/// top edge (corners in the text's order, in whatever frame).
fn lines_of(quad: Quad, read: Reading) -> Vec<TextLine> {
    let Reading { text, score, runs } = read;
    if runs.is_empty() {
        return vec![TextLine { text, score, quad }];
    }
    let along = |a: geometry::Point, b: geometry::Point, share: f32| a.add(b.sub(a).scale(share));
    runs.into_iter()
        .filter_map(|(bytes, from, to)| {
            let part = text.get(bytes)?.trim();
            let quad = [
                along(quad[0], quad[1], from),
                along(quad[0], quad[1], to),
                along(quad[3], quad[2], to),
                along(quad[3], quad[2], from),
            ];
            (!part.is_empty()).then(|| TextLine { text: part.to_owned(), score, quad })
        })
        .collect()
}

impl Read {
    fn confidence(&self) -> f32 {
        direction::confidence(&self.crops, &self.recognised)
    }
}

/// The page's lines in reading order, found in its upright, levelled frame; their boxes
/// given back in the page's own pixels, corners in the text's order.
fn arrange(lines: Vec<TextLine>, width: u32, height: u32, rotation: Rotation) -> Page {
    let turned = Frame::new(width, height, Orientation { rotation, skew: 0.0 });
    let upright: Vec<Quad> = lines.iter().map(|l| turned.upright_quad(&l.quad)).collect();
    let orientation = Orientation { rotation, skew: orientation::skew(&upright) };
    let frame = Frame::new(width, height, orientation);
    let upright = lines.into_iter().map(|line| TextLine { quad: frame.upright_quad(&line.quad), ..line }).collect();
    let lines = layout::reading_order(upright)
        .into_iter()
        .map(|line| TextLine { quad: line.quad.map(|p| frame.to_page(p)), ..line })
        .collect();
    Page { width, height, orientation, lines }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::rect;

    #[test]
    fn a_box_holding_runs_apart_gives_a_line_for_each_with_its_part_of_the_box() {
        let text = "DATE: 12/10/96".to_owned();
        let read = Reading { text: text.clone(), score: 0.9, runs: vec![(0..6, 0.0, 0.3), (6..14, 0.6, 1.0)] };
        let lines = lines_of(rect(100.0, 10.0, 400.0, 30.0), read);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["DATE:", "12/10/96"]);
        assert_eq!(lines[0].quad, rect(100.0, 10.0, 190.0, 30.0));
        assert_eq!(lines[1].quad, rect(280.0, 10.0, 400.0, 30.0));
        // A box given back turned a quarter (a sideways page's): its parts along its top
        // edge, wherever that edge now runs.
        let turned =
            [Point::new(30.0, 100.0), Point::new(30.0, 400.0), Point::new(10.0, 400.0), Point::new(10.0, 100.0)];
        let read = Reading { text, score: 0.9, runs: vec![(0..6, 0.0, 0.3), (6..14, 0.6, 1.0)] };
        let lines = lines_of(turned, read);
        assert_eq!(lines[1].quad[0], Point::new(30.0, 280.0));
        assert_eq!(lines[1].quad[2], Point::new(10.0, 400.0));
    }
}
