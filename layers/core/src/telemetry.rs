//! Logging: JSON lines on Lambda (CloudWatch parses them), readable text locally. Each
//! line carries the fields of the spans it is logged in, so every line of a task's work
//! names the task (the functions open a `task` span per task).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once. `RUST_LOG` filters (default `info`);
/// `DOCUSNAP_LOG_FORMAT=text|json` overrides the choice made from the environment.
pub fn init() {
    let json = match std::env::var(crate::config::var::LOG_FORMAT).as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    };
    let _ = if json {
        tracing::subscriber::set_global_default(json_subscriber(std::io::stdout))
    } else {
        let builder = tracing_subscriber::fmt().with_env_filter(filter()).with_target(false);
        tracing::subscriber::set_global_default(builder.with_ansi(false).finish())
    };
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The JSON subscriber Lambda runs with, writing to `writer` (tests read what it writes).
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Lambda adds its own timestamps and request ids; keep each line to our fields.
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .without_time()
        .with_writer(writer)
        .finish()
}
