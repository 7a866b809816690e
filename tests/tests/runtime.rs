//! The local execution environments the event runner runs the queue-fed functions in
//! (infra/src/runtime.rs), with a real lambda_runtime function: they must behave as Lambda
//! does when a function answers, fails, crashes mid-invocation or outlives its timeout.

use std::time::{Duration, Instant};

use docusnap_infra::runtime::{Environments, InvokeError};
use serde_json::{json, Value};

fn environments(timeout: Duration, concurrency: usize) -> Environments {
    let spec =
        docusnap_tests::test_function_spec("test-function", env!("CARGO_BIN_EXE_docusnap-test-function"), timeout);
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

/// The JSON the test function answers a request with.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The local HTTP API (infra/src/gateway.rs) in front of a real `lambda_http` function: the
/// payload 2.0 event it makes is what lambda_http parses, and the answer comes back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_turns_requests_into_payload_2_events_and_answers_back() {
    let spec = docusnap_tests::test_function_spec(
        "test-http",
        env!("CARGO_BIN_EXE_docusnap-test-http"),
        Duration::from_secs(20),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server =
        tokio::spawn(docusnap_infra::gateway::serve(listener, std::sync::Arc::new(Environments::new(spec, 1)), None));
    let http = reqwest::Client::new();

    let answer = json_of(
        http.post(format!("{base}/lambda-url/test-http/api/v2/tasks?a=1&a=two%20words"))
            .header("x-thing", "one")
            .header("cookie", "s=1; t=2")
            .header("content-type", "application/json")
            .body(r#"{"k":"v"}"#),
    )
    .await;
    assert_eq!(answer["method"], "POST");
    assert_eq!(answer["path"], "/api/v2/tasks", "the local prefix is not the function's");
    assert_eq!(answer["query"], json!(["1", "two words"]));
    assert_eq!(answer["thing"], json!(["one"]));
    assert_eq!(answer["cookie"], "s=1; t=2");
    assert_eq!(answer["body"], json!(br#"{"k":"v"}"#.to_vec()));

    // A body that is not text travels base64 and arrives as the same bytes.
    let bytes: Vec<u8> = (0..=255).collect();
    let answer =
        json_of(http.put(format!("{base}/raw")).header("content-type", "image/jpeg").body(bytes.clone())).await;
    assert_eq!(answer["body"], json!(bytes));

    let response = http.get(format!("{base}/binary")).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let cookies: Vec<_> =
        response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(response.bytes().await.unwrap().to_vec(), vec![0, 159, 146, 150]);

    // Larger than API Gateway takes: refused before the function runs.
    let response = http
        .post(format!("{base}/big"))
        .body(vec![b'x'; docusnap_infra::gateway::MAX_REQUEST_BODY + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    server.abort();
}
