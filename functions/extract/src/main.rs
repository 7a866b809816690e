use aws_lambda_events::event::sqs::SqsEvent;
use docusnap_extract_fn::{invocation_deadline, DEFAULT_FUNCTION_TIMEOUT, FUNCTION_TIMEOUT_VAR};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    docusnap_core::telemetry::init();
    let app = docusnap_extract_fn::from_env().await.inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    let timeout = std::env::var(FUNCTION_TIMEOUT_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_FUNCTION_TIMEOUT, std::time::Duration::from_secs);
    let app = &app;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deadline = invocation_deadline(&event.context, timeout);
        async move { Ok::<_, Error>(docusnap_extract_fn::handle(app, event.payload, deadline).await) }
    }))
    .await
}
