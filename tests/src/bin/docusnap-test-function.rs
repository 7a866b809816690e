//! A Lambda function for testing the local execution environments (infra/src/runtime.rs):
//! it answers `{"echo": ...}`, or as its event asks, sleeps, fails, or exits mid-invocation.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let ask = &event.payload;
        if let Some(ms) = ask["sleep_ms"].as_u64() {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if ask["exit"].as_bool() == Some(true) {
            std::process::exit(3);
        }
        if ask["fail"].as_bool() == Some(true) {
            return Err(Error::from("asked to fail"));
        }
        let left_ms = event.context.deadline.saturating_sub(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        );
        Ok::<_, Error>(json!({"echo": ask, "pid": std::process::id(), "left_ms": left_ms}))
    }))
    .await
}
