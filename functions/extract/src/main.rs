use aws_lambda_events::event::sqs::SqsEvent;
use docusnap_extract_fn::invocation_deadline;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    docusnap_core::telemetry::init();
    let app = docusnap_extract_fn::from_env().await.inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    let app = &app;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deadline = invocation_deadline(&event.context, app.timeout);
        async move { Ok::<_, Error>(docusnap_extract_fn::handle(app, event.payload, deadline).await) }
    }))
    .await
}
