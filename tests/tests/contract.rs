//! v2's answers against their contract: every answer the task routes give (created,
//! each state of a task, deleted, each refusal) is validated against the schema that
//! `openapi.json` documents for its route and status, so the two cannot disagree.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use docusnap_core::clock::ManualClock;
use docusnap_core::config::Limits;
use docusnap_core::crypto::{generate_private_key_pem, sha256_hex, AesKey, ClientWrap, ServerKey};
use docusnap_core::env::Memory;
use docusnap_core::store::memory::{MemoryBlobStore, MemoryKeyBindings, MemoryQueue, MemoryTaskStore};
use docusnap_core::store::{Outcome, TaskStore};
use docusnap_core::task::ExtractorKind;
use docusnap_core::v2::{CallbackPolicy, Part, V2TaskId, UPLOAD_WINDOW_SECS};
use docusnap_core::{ErrorCode, TaskType};
use docusnap_upload::{Upload, V2Answer, V2Api, OPENAPI};
use serde_json::{json, Value};

fn app(pem: &str) -> Upload<Memory> {
    Upload {
        tasks: MemoryTaskStore::default(),
        blobs: MemoryBlobStore::default(),
        keys: MemoryKeyBindings::default(),
        clock: Arc::new(ManualClock::starting_at(1_793_491_200)),
        key: ServerKey::from_pem(pem).unwrap(),
        limits: Limits::default(),
        quotas: Default::default(),
        quota: docusnap_tests::TEST_QUOTA,
        v2: V2Api {
            ocr_queue: MemoryQueue::default(),
            callbacks: CallbackPolicy { allow_loopback: true },
            upload_window_secs: UPLOAD_WINDOW_SECS,
            storage_origin: "memory://".into(),
        },
    }
}

/// The schema `openapi.json` gives the answer of `method path` with `status`, as a JSON
/// pointer into the document (response references followed).
fn schema_pointer(doc: &Value, path: &str, method: &str, status: u16) -> String {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    let mut response = format!("/paths/{escaped}/{method}/responses/{status}");
    let object = doc.pointer(&response).unwrap_or_else(|| panic!("{method} {path} documents no {status}"));
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        response = reference.trim_start_matches('#').to_owned();
    }
    let schema = format!("{response}/content/application~1json/schema");
    assert!(doc.pointer(&schema).is_some(), "{method} {path} {status} has no JSON schema");
    schema
}

/// A JSON pointer as a URI fragment: the braces of `{task_id}` are not allowed bare.
fn reference(pointer: &str) -> String {
    format!("#{}", pointer.replace('{', "%7B").replace('}', "%7D"))
}

/// Validates the answer as the handler sends it (its status and serialized body).
fn check(path: &str, method: &str, answer: &V2Answer) -> Value {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let body = serde_json::to_value(answer).unwrap();
    let pointer = schema_pointer(&doc, path, method, answer.status());
    // The whole document is the root, so its `#/components/...` references resolve.
    let mut root = doc.clone();
    root["$ref"] = Value::String(reference(&pointer));
    let validator = jsonschema::draft202012::new(&root).expect("the contract's schemas compile");
    let errors: Vec<String> = validator.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {}: {body}\n{}", answer.status(), errors.join("\n"));
    body
}

fn wrapped_key(server: &ServerKey) -> (AesKey, String) {
    let key = AesKey::generate().unwrap();
    let wrapped = ClientWrap::from_public_pem(server.public_key_pem()).unwrap().wrap(key.as_bytes()).unwrap();
    (key, wrapped)
}

const TASKS: &str = "/api/v2/tasks";
const TASK: &str = "/api/v2/tasks/{task_id}";

#[tokio::test]
async fn every_answer_of_the_task_routes_is_what_the_contract_says() {
    let pem = generate_private_key_pem().unwrap();
    let (server, app) = (ServerKey::from_pem(&pem).unwrap(), app(&pem));

    // Created, with a callback: its secret comes back once.
    let (_, wrapped) = wrapped_key(&server);
    let page = vec![7u8; 100];
    let request = json!({"type": "doc", "key": wrapped, "pages": [{"size": page.len(), "sha256": sha256_hex(&page)}],
                         "callback_url": "http://127.0.0.1:9/done"});
    let created = check(TASKS, "post", &app.create_task(request.to_string().as_bytes(), &principal()).await);
    assert_eq!(created["uploads"].as_array().map(Vec::len), Some(1));
    assert!(created["callback_secret"].is_string());
    let (task_id, token) =
        (created["task_id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned());

    // The same key again, bad JSON, a missing field: refusals with their statuses.
    assert_eq!(
        check(TASKS, "post", &app.create_task(request.to_string().as_bytes(), &principal()).await)["error"]["code"],
        "KEY_ALREADY_USED"
    );
    assert_eq!(check(TASKS, "post", &app.create_task(b"{", &principal()).await)["error"]["code"], "INVALID_JSON");
    assert_eq!(
        check(TASKS, "post", &app.create_task(br#"{"type": "doc"}"#, &principal()).await)["error"]["code"],
        "MISSING_REQUIRED_FIELD"
    );

    // A fill task: no uploads, straight to reading.
    let (fill_key, fill_wrapped) = wrapped_key(&server);
    let fill_id = V2TaskId::for_key(TaskType::Fill, &fill_wrapped).unwrap();
    let form = fill_key.seal_gcm(br#"{"fields": ["Name"]}"#, &fill_id.part_aad(Part::Form)).unwrap();
    let fill = json!({"type": "fill", "key": fill_wrapped, "form": BASE64.encode(form)});
    let fill = check(TASKS, "post", &app.create_task(fill.to_string().as_bytes(), &principal()).await);
    assert_eq!((fill["stage"].as_str(), fill["uploads"].as_array().map(Vec::len)), (Some("reading"), Some(0)));

    // The task in each state.
    let get = || app.get_task(Some(&task_id), Some(&token));
    assert_eq!(check(TASK, "get", &get().await)["stage"], "uploading");
    let id = V2TaskId::parse(&task_id).unwrap().task_id();
    let completed = Outcome::Completed { result: "c2VhbGVk".into(), extractor: ExtractorKind::Rules };
    assert!(app.tasks.finish(&id, completed).await.unwrap());
    let done = check(TASK, "get", &get().await);
    assert_eq!((done["status"].as_str(), done["extractor"].as_str()), (Some("completed"), Some("rules")));
    assert!(done.get("usage").is_none(), "no LLM, no usage");
    let usage = docusnap_core::task::TokenUsage { input_tokens: 900, output_tokens: 80 };
    app.tasks.add_usage(&id, usage).await.unwrap();
    assert_eq!(check(TASK, "get", &get().await)["usage"], json!({"input_tokens": 900, "output_tokens": 80}));
    let fill_token = fill["token"].as_str().unwrap();
    assert!(app.tasks.finish(&fill_id.task_id(), Outcome::Failed(ErrorCode::LlmFailure)).await.unwrap());
    let failed = check(TASK, "get", &app.get_task(Some(&fill_id.to_string()), Some(fill_token)).await);
    assert_eq!(failed["error"]["code"], "LLM_FAILURE");

    // Refusals of the task routes, then the delete.
    assert_eq!(check(TASK, "get", &app.get_task(Some(&task_id), Some("wrong")).await)["error"]["code"], "UNAUTHORIZED");
    assert_eq!(check(TASK, "get", &app.get_task(Some("doc_0"), Some(&token)).await)["error"]["code"], "TASK_NOT_FOUND");
    assert_eq!(check(TASK, "delete", &app.delete_task(Some(&task_id), None).await)["error"]["code"], "UNAUTHORIZED");
    assert_eq!(check(TASK, "delete", &app.delete_task(Some(&task_id), Some(&token)).await)["deleted"], true);
    assert_eq!(check(TASK, "get", &get().await)["error"]["code"], "TASK_NOT_FOUND");
}

#[test]
fn a_body_that_breaks_the_contract_is_caught() {
    // The checker itself: a task answer without its required fields fails validation.
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut root = doc.clone();
    root["$ref"] = Value::String(reference(&schema_pointer(&doc, TASK, "get", 200)));
    let validator = jsonschema::draft202012::new(&root).unwrap();
    assert!(!validator.is_valid(&json!({"task_id": "doc_00", "status": "processing"})));
    assert!(!validator
        .is_valid(&json!({"task_id": "nope", "type": "doc", "status": "processing", "stage": "uploading",
        "pages": {"expected": 1, "arrived": 0, "read": 0}, "created_at": 1, "upload_deadline": 2})));
}

fn principal() -> docusnap_core::quota::Principal {
    docusnap_core::quota::Principal::subject("contract-test").unwrap()
}
