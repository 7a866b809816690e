//! Per-principal quotas against moto (layers/core/src/quota.rs): the task past the
//! tasks-in-flight quota and the page past the day's are refused with their codes before
//! anything is stored, and 50 creates at once cannot pass a quota.

use std::sync::Arc;

use docusnap_tests::{doc_content, Client, TestStack, V2Client};
use serde_json::{json, Value};

/// A create request for `pages` one-page sealed documents, from a fresh client key.
fn create(pages: usize) -> String {
    let client = V2Client::new();
    let id = client.task_id(docusnap_core::TaskType::Doc);
    let sealed: Vec<Vec<u8>> = (0..pages).map(|i| client.seal_page(&id, i, format!("page {i}").as_bytes())).collect();
    client.create_body("doc", &sealed, json!({})).to_string()
}

async fn v2_tasks(t: &TestStack) -> usize {
    t.items().await.iter().filter(|item| item["client_id"].as_s().is_ok_and(|c| c.starts_with("v2:"))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_creates_at_once_make_ten_tasks_in_flight_and_refuse_forty() {
    let t = Arc::new(TestStack::new().await);
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (t, body) = (t.clone(), create(1));
            tokio::spawn(async move { t.call_as("crowd", "POST", "/api/v2/tasks", body).await })
        })
        .collect();
    let mut created = 0;
    for request in requests {
        let (status, answer) = request.await.unwrap();
        match status {
            201 => created += 1,
            429 => assert_eq!(answer["error"]["code"], "QUOTA_EXCEEDED", "{answer}"),
            _ => panic!("{status} {answer}"),
        }
    }
    assert_eq!(created, 10, "the quota of 10 tasks in flight held under 50 creates at once");
    assert_eq!(v2_tasks(&t).await, 10, "nothing is stored for a refused create");
    // Another principal has its own quota.
    assert_eq!(t.call_as("someone-else", "POST", "/api/v2/tasks", create(1)).await.0, 201);
}

#[tokio::test]
async fn the_page_past_the_day_s_quota_is_refused_and_nothing_is_stored() {
    let t = TestStack::new().await;
    // An operator's own limits for this principal: 5 pages a day.
    t.set_own_limits("sub:small-customer", 10, 5).await;
    assert_eq!(t.call_as("small-customer", "POST", "/api/v2/tasks", create(3)).await.0, 201);
    let objects = t.object_keys().await.len();
    let (status, answer) = t.call_as("small-customer", "POST", "/api/v2/tasks", create(3)).await;
    assert_eq!((status, answer["error"]["code"].clone()), (429, Value::from("QUOTA_EXCEEDED")), "{answer}");
    assert_eq!(v2_tasks(&t).await, 1);
    assert_eq!(t.object_keys().await.len(), objects, "no manifest for a refused task");
    // The refusal took nothing: two more pages fill the day exactly.
    assert_eq!(t.call_as("small-customer", "POST", "/api/v2/tasks", create(2)).await.0, 201);
    assert_eq!(t.call_as("small-customer", "POST", "/api/v2/tasks", create(1)).await.0, 429);
}

#[tokio::test]
async fn v1_counts_the_token_s_subject_and_answers_in_its_own_words() {
    let t = TestStack::new().await;
    t.set_own_limits("sub:v1-user", 2, 1000).await;
    // Two clients of one subject share its quota of 2 tasks in flight.
    let uploads: Vec<Value> = ["phone", "tablet", "laptop"]
        .iter()
        .map(|name| Client::new(*name).upload("doc", &doc_content(&[name.as_bytes()], json!({}))).body)
        .collect();
    assert_eq!(t.call_as("v1-user", "POST", "/process", uploads[0].to_string()).await.0, 202);
    assert_eq!(t.call_as("v1-user", "POST", "/process", uploads[1].to_string()).await.0, 202);
    let refused = t.call_as("v1-user", "POST", "/process", uploads[2].to_string()).await;
    assert_eq!(refused, (400, json!({"status": "error", "error_detail": "TOO_MANY_TASKS"})));
    // Pages per day: v1's error shape, the new code.
    t.set_own_limits("sub:v1-reader", 10, 1).await;
    let two_pages = Client::new("reader").upload("doc", &doc_content(&[b"one", b"two"], json!({})));
    let refused = t.call_as("v1-reader", "POST", "/process", two_pages.body.to_string()).await;
    assert_eq!(refused, (400, json!({"status": "error", "error_detail": "QUOTA_EXCEEDED"})));
    assert_eq!(t.items().await.len(), 2, "only the two admitted tasks are stored");
}

#[tokio::test]
async fn behind_the_jwt_authorizer_a_task_s_token_travels_in_x_task_token() {
    let t = TestStack::new().await;
    let (status, created) = t.call_as("alice", "POST", "/api/v2/tasks", create(1)).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v2/tasks/{}", created["task_id"].as_str().unwrap());
    let token = created["token"].as_str().unwrap();
    // Authorization holds the caller's JWT there, never the task token.
    let bearer = format!("Bearer {token}");
    let (status, answer) = t.call_as_with("alice", "GET", &path, &[("authorization", &bearer)], String::new()).await;
    assert_eq!((status, answer["error"]["code"].clone()), (401, Value::from("UNAUTHORIZED")));
    let (status, answer) = t.call_as_with("alice", "GET", &path, &[("x-task-token", token)], String::new()).await;
    assert_eq!((status, answer["task_id"].clone()), (200, created["task_id"].clone()), "{answer}");
    // Without an authorizer, Bearer still carries the task token (v2 as it was).
    let open = http::Request::builder()
        .method("GET")
        .uri(&path)
        .header("authorization", &bearer)
        .body(lambda_http::Body::Empty)
        .unwrap();
    assert_eq!(docusnap_upload::handle(&t.app, open).await.unwrap().status(), 200);
}
