//! The local execution environments the event runner runs the queue-fed functions in
//! (infra/src/runtime.rs), with a real lambda_runtime function: they must behave as Lambda
//! does when a function answers, fails, crashes mid-invocation or outlives its timeout.

use std::time::{Duration, Instant};

use docusnap_infra::runtime::{Environments, FunctionSpec, InvokeError};
use serde_json::{json, Value};

fn environments(timeout: Duration, concurrency: usize) -> Environments {
    let spec = FunctionSpec {
        name: "test-function".into(),
        program: env!("CARGO_BIN_EXE_docusnap-test-function").into(),
        env: vec![],
        timeout,
        memory_mb: 128,
        log: None,
    };
    Environments::new(spec, concurrency)
}

async fn invoke(environments: &Environments, event: Value) -> Result<Value, InvokeError> {
    let answer = environments.invoke(serde_json::to_vec(&event).unwrap().into()).await?;
    Ok(serde_json::from_slice(&answer).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_comes_back_and_the_environment_is_reused_with_a_real_deadline() {
    let f = environments(Duration::from_secs(20), 1);
    let first = invoke(&f, json!({"n": 1})).await.unwrap();
    assert_eq!(first["echo"], json!({"n": 1}));
    // Lambda's deadline is an absolute time: about the timeout from now, not a literal.
    let left = first["left_ms"].as_u64().unwrap();
    assert!((15_000..=20_000).contains(&left), "{left} ms left");
    let second = invoke(&f, json!({"n": 2})).await.unwrap();
    assert_eq!(second["pid"], first["pid"], "a warm environment is reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_its_invocation_and_the_next_one_gets_a_fresh_process() {
    let f = environments(Duration::from_secs(20), 1);
    let before = invoke(&f, json!({})).await.unwrap();
    let crashed = invoke(&f, json!({"exit": true})).await.unwrap_err();
    assert!(matches!(crashed, InvokeError::Exited(_)), "{crashed}");
    assert!(crashed.to_string().starts_with("Runtime.ExitError"), "{crashed}");
    let after = invoke(&f, json!({})).await.unwrap();
    assert_ne!(after["pid"], before["pid"], "a cold start after the crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_past_its_timeout_is_killed_and_the_function_recovers() {
    let f = environments(Duration::from_secs(2), 1);
    let before = invoke(&f, json!({})).await.unwrap();
    let started = Instant::now();
    let timed_out = invoke(&f, json!({"sleep_ms": 60_000})).await.unwrap_err();
    assert!(matches!(timed_out, InvokeError::TimedOut(_)), "{timed_out}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let after = invoke(&f, json!({})).await.unwrap();
    assert_ne!(after["pid"], before["pid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_is_reported_and_keeps_its_environment() {
    let f = environments(Duration::from_secs(20), 1);
    let before = invoke(&f, json!({})).await.unwrap();
    let failed = invoke(&f, json!({"fail": true})).await.unwrap_err();
    assert!(matches!(&failed, InvokeError::Function(body) if body.contains("asked to fail")), "{failed}");
    assert_eq!(invoke(&f, json!({})).await.unwrap()["pid"], before["pid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_run_side_by_side_up_to_the_concurrency() {
    let f = environments(Duration::from_secs(20), 2);
    let started = Instant::now();
    // Warm both environments first, so start-up time does not blur the measure.
    let (a, b) = tokio::join!(invoke(&f, json!({"sleep_ms": 300})), invoke(&f, json!({"sleep_ms": 300})));
    assert_ne!(a.unwrap()["pid"], b.unwrap()["pid"], "two environments at once");
    let started_warm = Instant::now();
    let (a, b) = tokio::join!(invoke(&f, json!({"sleep_ms": 1_000})), invoke(&f, json!({"sleep_ms": 1_000})));
    assert!(a.is_ok() && b.is_ok());
    assert!(started_warm.elapsed() < Duration::from_millis(1_900), "{:?}, not side by side", started_warm.elapsed());
    assert!(started.elapsed() > Duration::from_secs(1));
}
