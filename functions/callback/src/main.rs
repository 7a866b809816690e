// The startup future (SDK config, then the stores) nests deep enough that computing its
// layout passes rustc's default query depth of 128 when the package is built alone, as
// functions/Dockerfile builds it.
#![recursion_limit = "256"]

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    docusnap_core::telemetry::init();
    let app = docusnap_callback_fn::from_env().await.inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    let app = &app;
    run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(docusnap_callback_fn::handle(app, event.payload).await)
    }))
    .await
}
