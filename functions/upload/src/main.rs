use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    docusnap_core::telemetry::init();
    let app = docusnap_upload::from_env().await.inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    run(service_fn(|request| docusnap_upload::handle(&app, request))).await
}
