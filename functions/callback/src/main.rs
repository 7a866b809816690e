use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    docusnap_core::telemetry::init();
    let app = docusnap_callback_fn::from_env().await.inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    let app = &app;
    run(service_fn(|event: LambdaEvent<SqsEvent>| async move { Ok::<_, Error>(docusnap_callback_fn::handle(app, event.payload).await) })).await
}
