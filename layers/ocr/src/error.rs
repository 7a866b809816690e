//! What can go wrong in the engine: loading (naming the file and what to do) and running
//! (naming the stage and the input's shape).

use std::path::PathBuf;

use crate::decode::DecodeError;
use crate::input::InputError;

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
    #[error("model {path} cannot be prepared: {detail}")]
    Prepare { path: PathBuf, detail: String },
    #[error("model {path}: {what}")]
    ModelContents { path: PathBuf, what: String },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("a page reader thread panicked")]
    Panicked,
    /// A setting of the environment that does not parse: the engine does not start.
    #[error("{var}={value:?} is not valid: {why}")]
    Setting { var: &'static str, value: String, why: &'static str },
    #[error("{stage} failed on input {shape:?}: {source}")]
    Inference { stage: &'static str, shape: Vec<usize>, source: ort::Error },
}

impl OcrError {
    /// Whether the page itself is at fault (not an image, over a limit, corrupt): reading
    /// it again gives the same answer. Every other error is the engine's.
    pub fn is_page_fault(&self) -> bool {
        match self {
            OcrError::Input(e) => e.is_item_fault(),
            OcrError::Decode(_) => true,
            _ => false,
        }
    }
}
