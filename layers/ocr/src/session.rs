//! One loader and one runner for every model: a failure names the model file (loading)
//! or the stage and input shape (running), as oar-ocr does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::Session;
use ort::value::Tensor;

use crate::error::OcrError;
use crate::runtime::ORT_LIBRARY;

/// The model at `path` as ONNX Runtime's "extended" optimisation level leaves it, written
/// beside it: `X.onnx` -> `X.ort-1.31.1-extended.onnx`. Extended is the last level whose
/// rewrites (fusions into ONNX Runtime's own CPU kernels) are the same on every x86 CPU;
/// the layout level (NCHWc blocks sized to the CPU's vector registers) still runs at load.
/// Loading a prepared model skips most of the graph work: measured with the pinned
/// runtime, 263 -> 99 ms for the PP-OCRv6 recogniser, 133 -> 93 ms for its detector, with
/// the same inference time.
pub fn prepared_path(path: &Path) -> PathBuf {
    let version = ORT_LIBRARY.trim_start_matches("libonnxruntime.so.");
    path.with_extension(format!("ort-{version}-extended.onnx"))
}

/// The file to load for the model at `path`: its prepared form when it is there and no
/// older than the model, else a prepared form written now (when the folder is writable:
/// the checkout's `models/opt`; the image's build runs `bootstrap --prepare-models`),
/// else the model itself. Preparing is an optimisation: any failure falls back to the model.
fn prepared(environment: &ort::environment::Environment, path: &Path) -> PathBuf {
    let target = prepared_path(path);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(prepared), Some(model)) = (modified(&target), modified(path)) {
        if prepared >= model {
            return target;
        }
    }
    match prepare(environment, path, &target) {
        Ok(()) => target,
        Err(e) => {
            tracing::debug!(model = %path.display(), error = %e, "model not prepared; loading it as it is");
            path.to_owned()
        }
    }
}

/// Writes the prepared form of the model at `path` to `target`, through a file of this
/// process's own renamed into place, so concurrent processes never read half a file.
pub(crate) fn prepare(environment: &ort::environment::Environment, path: &Path, target: &Path) -> Result<(), OcrError> {
    static PARTS: AtomicUsize = AtomicUsize::new(0);
    let part = target.with_extension(format!("{}-{}.part", std::process::id(), PARTS.fetch_add(1, Ordering::Relaxed)));
    let failed = |detail: String| OcrError::Prepare { path: path.to_owned(), detail };
    // A read-only folder (the image's /opt) fails here, before any optimisation work.
    std::fs::File::create(&part).map_err(|e| failed(e.to_string()))?;
    let written = Session::builder(environment)
        .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level2).map_err(ort::Error::from))
        .and_then(|b| b.with_optimized_model_path(&part).map_err(ort::Error::from))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| failed(e.to_string()))
        .and_then(|_| std::fs::rename(&part, target).map_err(|e| failed(e.to_string())));
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

/// How a stage's model is loaded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pool {
    /// Sessions that run calls side by side.
    pub sessions: usize,
    /// Intra-op threads of each.
    pub threads: usize,
}

/// What building more of a pool's sessions takes, beside the model's path and threads.
struct Grow {
    environment: &'static ort::environment::Environment,
    /// The file the first session was built from (the prepared form, or the model).
    file: PathBuf,
    prepacked: PrepackedWeights,
    /// Set when the model is dropped: the build stops after the session in progress.
    stop: Arc<AtomicBool>,
    /// The build's thread, once started (it starts once), joined when the model is
    /// dropped: a process that exits while it is inside ONNX Runtime would unload the
    /// library under it.
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A loaded model of one stage: one session, or a pool of sessions that run calls side
/// by side (each call takes a free one).
pub(crate) struct Model {
    /// The first is built by `load`; the rest in the background when first wanted
    /// ([`Model::grow`]), each usable once built.
    sessions: Arc<[OnceLock<Mutex<Session>>]>,
    grow: Grow,
    /// Intra-op threads of each session.
    threads: usize,
    /// Where a caller that finds every session busy waits, in turn.
    next: AtomicUsize,
    path: PathBuf,
    stage: &'static str,
}

impl Model {
    /// `sessions` sessions of `threads` intra-op threads each.
    pub(crate) fn load(
        environment: &'static ort::environment::Environment, path: &Path, plan: Pool, stage: &'static str,
    ) -> Result<Self, OcrError> {
        // The pool's sessions share one copy of the weights ONNX Runtime repacks for its
        // kernels, rather than one each.
        Self::pool(environment, prepared(environment, path), PrepackedWeights::new(), path, plan, stage)
    }

    /// Another pool of the same model (its first session built now), sharing this one's
    /// prepared file and repacked weights: the detector's one-thread sessions for pages
    /// read side by side, beside its session for a page read alone.
    pub(crate) fn sibling(&self, plan: Pool) -> Result<Self, OcrError> {
        let Grow { environment, file, prepacked, .. } = &self.grow;
        Self::pool(environment, file.clone(), prepacked.clone(), &self.path, plan, self.stage)
    }

    /// A pool of `plan`'s sessions of `file`, the first built now.
    fn pool(
        environment: &'static ort::environment::Environment, file: PathBuf, prepacked: PrepackedWeights, path: &Path,
        plan: Pool, stage: &'static str,
    ) -> Result<Self, OcrError> {
        let Pool { sessions, threads } = plan;
        let slots: Arc<[OnceLock<Mutex<Session>>]> = (0..sessions.max(1)).map(|_| OnceLock::new()).collect();
        let _ = slots[0].set(Mutex::new(Self::session(environment, &file, path, threads, &prepacked)?));
        let grow =
            Grow { environment, file, prepacked, stop: Arc::new(AtomicBool::new(false)), thread: Mutex::new(None) };
        Ok(Self { sessions: slots, grow, threads, next: AtomicUsize::new(0), path: path.to_owned(), stage })
    }

    /// One session of `file`, the prepared form of the model at `path` or the model itself.
    fn session(
        environment: &'static ort::environment::Environment, file: &Path, path: &Path, threads: usize,
        prepacked: &PrepackedWeights,
    ) -> Result<Session, OcrError> {
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
            .with_intra_threads(threads)
            .map_err(|e| model_error(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| model_error(e.into()))?
            .with_prepacked_weights(prepacked)
            .map_err(|e| model_error(e.into()))?
            .commit_from_file(file)
            .map_err(model_error)
    }

    /// Each session's intra-op threads: the CPUs one call may use.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Starts building the pool's other sessions, once, on a thread of their own; calls
    /// use each from when it is built. A session costs 70-150 ms of CPU to build, most of
    /// a cold start, so it is built only when a page has enough work to share (a page of
    /// a few words reads as fast on one session), and while the first session works.
    pub(crate) fn grow(&self) {
        let mut started = self.grow.thread.lock().unwrap_or_else(|e| e.into_inner());
        if self.sessions.len() < 2 || started.is_some() {
            return;
        }
        let slots = Arc::clone(&self.sessions);
        let Grow { environment, file, prepacked, stop, .. } = &self.grow;
        let (environment, file, path, threads, prepacked, stop) =
            (*environment, file.clone(), self.path.clone(), self.threads, prepacked.clone(), Arc::clone(stop));
        *started = Some(std::thread::spawn(move || {
            for slot in &slots[1..] {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match Self::session(environment, &file, &path, threads, &prepacked) {
                    Ok(session) => {
                        let _ = slot.set(Mutex::new(session));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a pooled session was not built; calls share the others");
                        return;
                    }
                }
            }
        }));
    }

    /// Stops the background build after the session in progress (70-150 ms at most) and
    /// waits for it, so that no thread is inside ONNX Runtime when the process exits.
    fn stop_growing(&self) {
        self.grow.stop.store(true, Ordering::Relaxed);
        let thread = self.grow.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Sessions built so far.
    pub(crate) fn built(&self) -> usize {
        self.sessions.iter().filter(|slot| slot.get().is_some()).count()
    }

    /// Sessions the pool holds once built: how many calls can run at once.
    pub(crate) fn capacity(&self) -> usize {
        self.sessions.len()
    }

    /// A free session, else (all busy) the next built one in turn, waited for.
    fn acquire(&self) -> MutexGuard<'_, Session> {
        // Called for every crop: no allocation here. The first session is always built.
        let built = || self.sessions.iter().filter_map(OnceLock::get);
        if let Some(guard) = built().find_map(|session| session.try_lock().ok()) {
            return guard;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.built();
        built()
            .nth(turn)
            .unwrap_or_else(|| unreachable!("sessions are only ever added, so turn < built"))
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A string of the model's metadata.
    pub(crate) fn metadata(&self, key: &str) -> Option<String> {
        let session = self.acquire();
        session.metadata().ok().and_then(|m| m.custom(key))
    }

    /// The size of the first output's last dimension, when the model declares it.
    pub(crate) fn output_classes(&self) -> Option<usize> {
        let session = self.acquire();
        let last = session.outputs().first().and_then(|o| o.dtype().tensor_shape().and_then(|s| s.last().copied()));
        last.filter(|&c| c > 0).map(|c| c as usize)
    }

    /// Runs the model on a [N, 3, H, W] input and hands its first output (shape, data) to
    /// `read`, which borrows it rather than copying it.
    pub(crate) fn run<T>(
        &self, shape: [usize; 4], input: Vec<f32>, read: impl FnOnce(&[i64], &[f32]) -> Result<T, OcrError>,
    ) -> Result<T, OcrError> {
        let failed = |source: ort::Error| OcrError::Inference { stage: self.stage, shape: shape.to_vec(), source };
        let tensor = Tensor::from_array((shape, input)).map_err(failed)?;
        let mut session = self.acquire();
        let outputs = session.run(ort::inputs![tensor]).map_err(failed)?;
        let (out_shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        read(out_shape, data)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        self.stop_growing();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineConfig, ModelSet};

    /// Dropping a model while its pool is being built waits for the build: the build's
    /// thread has let go of the pool when the drop returns. (Needs the models laid out by
    /// `models/fetch`, as the engine's other tests do.)
    #[test]
    fn dropping_a_growing_model_waits_for_its_build() {
        let config = EngineConfig::for_set(ModelSet::PpOcrV6).unwrap_or_else(|e| panic!("{e}"));
        let environment = crate::environment(&config.runtime).unwrap_or_else(|e| panic!("{e}"));
        let path = config.models.join(ModelSet::PpOcrV6.spec().recognizer.file);
        let model = Model::load(environment, &path, Pool { sessions: 8, threads: 1 }, "recognition").unwrap();
        let pool = Arc::clone(&model.sessions);
        model.grow();
        drop(model);
        // Seven sessions take 0.5-1 s to build: without the join the thread would still
        // hold the pool here.
        assert_eq!(Arc::strong_count(&pool), 1, "the build's thread outlived the model");
        assert!(pool.iter().filter(|slot| slot.get().is_some()).count() < 8, "the build ran to the end");
    }
}
