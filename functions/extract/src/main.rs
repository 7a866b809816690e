use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    docusnap_core::telemetry::init();
    let app = docusnap_extract_fn::from_env().await.inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    let app = &app;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deadline = lambda_deadline(event.context.deadline);
        async move { Ok::<_, Error>(docusnap_extract_fn::handle(app, event.payload, deadline).await) }
    }))
    .await
}

/// The invocation's deadline (milliseconds since the epoch) as an `Instant`.
fn lambda_deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
