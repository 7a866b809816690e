//! Building the function's state from the environment, once per process: what every
//! function starts with (core's start-up), the extract queue and the OCR sessions.

use std::sync::Arc;

use docusnap_core::config::{env_lookup, ConfigError, OcrSettings};
use docusnap_core::env::Aws;
use docusnap_core::startup::Common;
use docusnap_core::store::SqsQueue;
use docusnap_ocr::{EngineConfig, OcrEngine, OcrError};

use crate::OcrFunction;

pub type AwsOcr = OcrFunction<Aws>;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Common(#[from] docusnap_core::startup::StartupError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ocr(#[from] OcrError),
    #[error("loading the OCR engine stopped: {0}")]
    Loader(#[source] tokio::task::JoinError),
}

pub async fn from_env() -> Result<AwsOcr, StartupError> {
    // The engine's sessions, most of a cold start, are built while the AWS configuration
    // and the key load (a call to Secrets Manager on AWS).
    let settings = OcrSettings::from_lookup(env_lookup)?;
    let engine_config = EngineConfig::from_env()?;
    let engine = tokio::task::spawn_blocking(move || OcrEngine::load(engine_config));
    let Common { config, sdk, key, tasks, blobs } = Common::from_env().await?;
    // Fan-out needs the function's own queue; without it every task is read in one go.
    let fan_out = settings.ocr_queue_url.map(|url| crate::FanOut {
        ocr_queue: SqsQueue::new(docusnap_core::aws::sqs(&sdk), url),
        group_pages: settings.group_pages,
    });
    // PDFium is bound off the start-up path (most tasks are photos), before the first PDF
    // is likely to need it; a PDF that comes sooner waits for the same binding.
    std::thread::spawn(|| {
        if let Err(e) = docusnap_ocr::pdf::warm() {
            tracing::warn!(error = %e, "PDFium is not available: PDF pages will be retried until it is");
        }
    });
    let engine = engine.await.map_err(StartupError::Loader)??;
    Ok(OcrFunction {
        tasks,
        blobs,
        extract_queue: SqsQueue::new(docusnap_core::aws::sqs(&sdk), settings.extract_queue_url),
        clock: docusnap_core::SystemClock,
        key,
        parallel_pages: engine.threads(),
        engine: Arc::new(engine),
        limits: config.limits,
        max_receives: settings.max_receives,
        dead_letter_arn: settings.dead_letter_arn,
        fan_out,
        fast_prefixes: settings.fast_prefixes,
    })
}
