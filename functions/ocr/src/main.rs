use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

fn main() -> Result<(), Error> {
    // Before the runtime's threads exist: see `disable_telemetry`.
    docusnap_ocr::runtime::disable_telemetry();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    // The image's build writes the prepared models into its read-only-to-be /opt
    // (functions/Dockerfile), so no cold start pays for graph optimisation; and it binds
    // PDFium, so an image that lacks a library the engine loads fails to build.
    if std::env::args().nth(1).as_deref() == Some("--prepare-models") {
        for set in docusnap_ocr::ModelSet::ALL {
            for path in docusnap_ocr::OcrEngine::prepare_models(&docusnap_ocr::EngineConfig::for_set(set)?)? {
                println!("{}", path.display());
            }
        }
        docusnap_ocr::pdf::warm()?;
        println!("PDFium bound");
        return Ok(());
    }
    docusnap_core::telemetry::init();
    let app = docusnap_ocr_fn::from_env().await.inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    // Only once the engine is built: see `bound_heap_retention`.
    docusnap_ocr::runtime::bound_heap_retention();
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(docusnap_ocr_fn::handle(&app, event.payload).await)
    }))
    .await
}
