//! Logging: JSON lines on Lambda (CloudWatch parses them), readable text locally.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once. `RUST_LOG` filters (default `info`);
/// `DOCUSNAP_LOG_FORMAT=text|json` overrides the choice made from the environment.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("DOCUSNAP_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // Lambda adds its own timestamps and request ids; keep each line to our fields.
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).without_time().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}
