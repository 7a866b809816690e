//! Every row of PROTOCOL.md through the upload function's handler, against moto.

use docusnap_core::config::Limits;
use docusnap_core::store::{Outcome, TaskStore};
use docusnap_core::task::TaskId;
use docusnap_core::ErrorCode;
use docusnap_core::TaskType;
use docusnap_tests::{base64, doc_content, Client, TestStack, START};
use serde_json::{json, Value};

fn error(code: &str) -> Value {
    json!({"status": "error", "error_detail": code})
}

fn id(client: &Client, task_type: TaskType, sha256: &str) -> TaskId {
    TaskId::new(docusnap_tests::client_id(&client.id), task_type, sha256)
}

fn number(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, name: &str) -> i64 {
    item[name].as_n().expect("a number").parse().expect("an integer")
}

#[tokio::test]
async fn each_request_error_code_in_its_order() {
    let t = TestStack::new().await;
    let client = Client::new("order");
    let good = client.upload("doc", &doc_content(&[b"page"], json!({})));
    let with = |changes: Value| {
        let mut body = good.body.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases = [
        // 1. each required field missing, even when everything after it is wrong too
        (with(json!({"client_id": null, "type": "bogus"})), "MISSING_REQUIRED_FIELD"),
        (with(json!({"type": null})), "MISSING_REQUIRED_FIELD"),
        (with(json!({"SHA256": null})), "MISSING_REQUIRED_FIELD"),
        (with(json!({"has_content": null, "content": null})), "MISSING_REQUIRED_FIELD"),
        // 2. before the content check
        (with(json!({"type": "bogus", "content": null})), "INVALID_TYPE"),
        // 3.
        (with(json!({"content": null})), "MISSING_CONTENT"),
        // 5. no such task, nothing to create it from
        (with(json!({"has_content": false})), "TASK_NOT_FOUND"),
        // 6. before the key is looked at
        (with(json!({"SHA256": "0".repeat(64), "aes_key": "garbage"})), "SHA256_MISMATCH"),
        // 7.
        (with(json!({"aes_key": "bm90IGEga2V5"})), "RSA_DECRYPTION_FAILED"),
        (with(json!({"aes_key": "%%% not base64 %%%"})), "RSA_DECRYPTION_FAILED"),
        (with(json!({"aes_key": null})), "RSA_DECRYPTION_FAILED"),
        (with(json!({"aes_key": client.wrap_raw(&[1u8; 16])})), "RSA_DECRYPTION_FAILED"),
    ];
    for (body, code) in &cases {
        assert_eq!(t.process(body).await, (400, error(code)), "{body}");
    }
    // 8. a key that unwraps but is not the one the content was sealed with. CBC has no MAC:
    // about one wrong key in 256 still meets valid padding (and then fails as INVALID_JSON),
    // so the test picks a key whose padding fails, as most do.
    let content = good.body["content"].as_str().unwrap().to_owned();
    let other = std::iter::repeat_with(|| client.upload("doc", &doc_content(&[b"other"], json!({}))))
        .find(|other| other.key.open_base64(&content).is_err())
        .unwrap();
    let body = with(json!({"aes_key": other.body["aes_key"]}));
    assert_eq!(t.process(&body).await, (400, error("AES_DECRYPTION_FAILED")));
    // 8. content that is not base64 (its hash matches, so the check reaches the cipher),
    // under a fresh key as clients send one: a key seen before with other content is
    // refused before the cipher (see a_reused_key_is_refused_before_decryption_...).
    let mut body = good.body.clone();
    body["aes_key"] = client.upload("doc", &doc_content(&[b"fresh"], json!({}))).body["aes_key"].clone();
    body["content"] = json!("@@not-base64@@");
    body["SHA256"] = json!(docusnap_core::crypto::sha256_hex(b"@@not-base64@@"));
    assert_eq!(t.process(&body).await, (400, error("AES_DECRYPTION_FAILED")));
    // 9.
    let not_json = client.upload_bytes("doc", b"plain words, no JSON");
    assert_eq!(t.process(&not_json.body).await, (400, error("INVALID_JSON")));
    // Nothing above created a task or an object.
    assert!(t.items().await.is_empty());
    assert!(t.object_keys().await.is_empty());
    // 11.
    assert_eq!(t.process(&good.body).await, (202, json!({"status": "processing"})));
}

#[tokio::test]
async fn storing_failures_answer_database_error_and_leave_no_task() {
    // 10. the table is gone
    let t = TestStack::new().await;
    let client = Client::new("db");
    t.clients.dynamodb.delete_table().table_name(t.table()).send().await.unwrap();
    let upload = client.upload("doc", &doc_content(&[b"page"], json!({})));
    assert_eq!(t.process(&upload.body).await, (400, error("DATABASE_ERROR")));

    // the bucket is gone: the task item must not outlive its missing envelope
    let t = TestStack::new().await;
    t.clients.s3.delete_bucket().bucket(t.bucket()).send().await.unwrap();
    assert_eq!(t.process(&upload.body).await, (400, error("DATABASE_ERROR")));
    assert!(t.items().await.is_empty(), "a task without its envelope would never start");
}

#[tokio::test]
async fn requests_the_original_could_not_parse_get_codes_not_500s() {
    let t = TestStack::with_limits(Limits { max_pages: 2, max_image_bytes: 64, ..Limits::default() }).await;
    let client = Client::new("bad-input");
    let cases: Vec<(String, &str)> = vec![
        ("not json at all".into(), "INVALID_JSON"),
        ("".into(), "INVALID_JSON"),
        (r#"{"client_id":"c","type":"doc","SHA256":"s","has_content":"true"}"#.into(), "INVALID_FIELD"),
        (r#"{"client_id":["c"],"type":"doc","SHA256":"s","has_content":false}"#.into(), "INVALID_FIELD"),
        (r#"{"client_id":"c","type":"doc","SHA256":"s","has_content":true,"content":5}"#.into(), "INVALID_FIELD"),
        (
            format!(
                r#"{{"client_id":"c","type":"doc","SHA256":"s","has_content":true,"content":"{}"}}"#,
                "A".repeat(7 << 20)
            ),
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = t.call("POST", "/process", body.clone()).await;
        assert_eq!((status, answer), (400, error(code)), "{}", &body[..body.len().min(80)]);
    }
    let inner_cases = [
        (json!({"to_process": "one string"}), "INVALID_CONTENT"),
        (json!({"to_process": []}), "INVALID_CONTENT"),
        (json!({"to_process": [1, 2]}), "INVALID_CONTENT"),
        (json!({"to_process": ["a"], "file_lib": {"doc": "x"}}), "INVALID_CONTENT"),
        (json!({"to_process": ["a", "b", "c"]}), "TOO_MANY_PAGES"),
        (json!({"to_process": [base64(&[0u8; 100])]}), "IMAGE_TOO_LARGE"),
    ];
    for (inner, code) in inner_cases {
        let upload = client.upload("doc", &inner);
        assert_eq!(t.process(&upload.body).await, (400, error(code)), "{inner}");
    }
    let fill_with_pages = client.upload("fill", &doc_content(&[b"p"], json!({})));
    assert_eq!(t.process(&fill_with_pages.body).await, (400, error("INVALID_CONTENT")));
    assert!(t.items().await.is_empty());
}

#[tokio::test]
async fn the_three_task_states_as_answered() {
    let t = TestStack::new().await;
    let client = Client::new("states");
    let doc = client.upload("doc", &doc_content(&[b"one"], json!({})));
    let form = client.upload("form", &doc_content(&[b"two"], json!({})));
    for prepared in [&doc, &form] {
        assert_eq!(t.process(&prepared.body).await.0, 202);
    }
    assert_eq!(t.process(&client.poll("doc", &doc.sha256)).await, (202, json!({"status": "processing"})));

    // What the extract function will do when a result is ready: seal it under the client's key.
    let result = json!({"title": "Receipt", "tags": ["receipt"], "description": "d", "kv": {}, "related": []});
    let sealed = doc.key.seal_base64(result.to_string().as_bytes()).unwrap();
    let done = t
        .app
        .tasks
        .finish(
            &id(&client, TaskType::Doc, &doc.sha256),
            Outcome::Completed { result: sealed, extractor: docusnap_core::ExtractorKind::Rules },
        )
        .await;
    assert!(done.unwrap());
    let (status, answer) = t.process(&client.poll("doc", &doc.sha256)).await;
    assert_eq!((status, &answer["status"]), (200, &json!("completed")));
    let opened = doc.key.open_base64(answer["result"].as_str().unwrap()).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&opened).unwrap(), result);

    let failed =
        t.app.tasks.finish(&id(&client, TaskType::Form, &form.sha256), Outcome::Failed(ErrorCode::OcrFailure)).await;
    assert!(failed.unwrap());
    assert_eq!(t.process(&client.poll("form", &form.sha256)).await, (400, error("OCR_FAILURE")));

    // The table never holds the client's wrapped key, running or ended (it would outlive
    // the task in point-in-time backups).
    for item in t.items().await {
        assert!(!item.contains_key("wrapped_key"), "{item:?}");
    }
    // A task that ended cannot end again.
    let again =
        t.app.tasks.finish(&id(&client, TaskType::Doc, &doc.sha256), Outcome::Failed(ErrorCode::LlmFailure)).await;
    assert!(!again.unwrap());
}

#[tokio::test]
async fn a_repeated_upload_returns_the_cached_state_before_content_checks() {
    let t = TestStack::new().await;
    let client = Client::new("repeat");
    let upload = client.upload("form", &doc_content(&[b"page"], json!({})));
    assert_eq!(t.process(&upload.body).await.0, 202);
    t.app
        .tasks
        .finish(&id(&client, TaskType::Form, &upload.sha256), Outcome::Failed(ErrorCode::LlmFailure))
        .await
        .unwrap();
    // Same identity, content that would fail every check: the cached state wins.
    let mut broken = upload.body.clone();
    broken["content"] = json!("garbage");
    broken["aes_key"] = json!("garbage");
    assert_eq!(t.process(&broken).await, (400, error("LLM_FAILURE")));
    assert_eq!(t.process(&upload.body).await, (400, error("LLM_FAILURE")));
    assert_eq!(t.object_keys().await.len(), 1);
}

#[tokio::test]
async fn access_refreshes_the_ttl_and_a_day_without_access_forgets() {
    let t = TestStack::new().await;
    let client = Client::new("ttl");
    let upload = client.upload("doc", &doc_content(&[b"page"], json!({})));
    t.process(&upload.body).await;
    let task = id(&client, TaskType::Doc, &upload.sha256);
    t.app.tasks.finish(&task, Outcome::Failed(ErrorCode::OcrFailure)).await.unwrap();
    let item = t.items().await.remove(0);
    assert_eq!(number(&item, "expires_at"), START + 1440 * 60);

    t.clock.advance(1439 * 60);
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await.0, 400);
    let item = t.items().await.remove(0);
    assert_eq!(number(&item, "last_access"), START + 1439 * 60);
    assert_eq!(number(&item, "expires_at"), START + 2 * 1439 * 60 + 60);

    // 1440 minutes after that access the task is gone, whether or not TTL has run yet.
    t.clock.advance(1440 * 60);
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await, (400, error("TASK_NOT_FOUND")));
    // And the same upload creates it afresh.
    assert_eq!(t.process(&upload.body).await, (202, json!({"status": "processing"})));
}

#[tokio::test]
async fn processing_times_out_after_ten_minutes() {
    let t = TestStack::new().await;
    let client = Client::new("slow");
    let upload = client.upload("doc", &doc_content(&[b"page"], json!({})));
    t.process(&upload.body).await;
    t.clock.advance(599);
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await.0, 202);
    t.clock.advance(1);
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await, (400, error("PROCESSING_TIMEOUT")));
    // Recorded, not only computed: the key is gone and a late result cannot land.
    let item = t.items().await.remove(0);
    assert_eq!(item["error_code"].as_s().unwrap(), "PROCESSING_TIMEOUT");
    assert!(!item.contains_key("wrapped_key"));
    let task = id(&client, TaskType::Doc, &upload.sha256);
    let late = t
        .app
        .tasks
        .finish(&task, Outcome::Completed { result: "x".into(), extractor: docusnap_core::ExtractorKind::Rules })
        .await;
    assert!(!late.unwrap());
    assert_eq!(t.process(&upload.body).await, (400, error("PROCESSING_TIMEOUT")));
}

/// The padding oracle: with a victim's `aes_key` and `content` (say, read from the bucket),
/// an attacker posts variations of the content under that key. Before, an altered IV
/// answered INVALID_JSON and an altered last block AES_DECRYPTION_FAILED: about 128
/// requests a byte recover the plaintext. Now every variation gets the same answer, before
/// anything is decrypted.
#[tokio::test]
async fn a_reused_key_is_refused_before_decryption_whatever_the_padding() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let t = TestStack::new().await;
    let victim = Client::new("victim");
    let upload = victim.upload("doc", &doc_content(&[b"secret page"], json!({})));
    assert_eq!(t.process(&upload.body).await.0, 202);
    let sealed = b64.decode(upload.body["content"].as_str().unwrap()).unwrap();
    let variation = |flip_at: usize| {
        let mut altered = sealed.clone();
        altered[flip_at] ^= 0x01;
        let content = b64.encode(&altered);
        json!({
            "client_id": "mallory", "type": "doc", "SHA256": docusnap_core::crypto::sha256_hex(content.as_bytes()),
            "has_content": true, "aes_key": upload.body["aes_key"], "content": content,
        })
    };
    let in_the_iv = variation(0);
    let in_the_last_block = variation(sealed.len() - 1);
    for attempt in [&in_the_iv, &in_the_last_block] {
        assert_eq!(t.process(attempt).await, (400, error("KEY_ALREADY_USED")));
    }
    // The victim's own request, sent again, still answers as v1 does.
    assert_eq!(t.process(&upload.body).await.0, 202);
    // An honest client's fresh key goes through as before.
    let fresh = Client::new("mallory").upload("doc", &doc_content(&[b"own page"], json!({})));
    assert_eq!(t.process(&fresh.body).await.0, 202);
}

/// One client id cannot queue work without bound: past its limit of tasks in flight an
/// upload is refused until one ends (or times out); other clients are not affected.
#[tokio::test]
async fn a_client_with_too_many_tasks_in_flight_is_refused_until_one_ends() {
    let t = TestStack::with_limits(Limits { max_tasks_in_flight: 2, ..Limits::default() }).await;
    let busy = Client::new("busy");
    let uploads: Vec<_> =
        (0..4).map(|i| busy.upload("doc", &doc_content(&[format!("page {i}").as_bytes()], json!({})))).collect();
    assert_eq!(t.process(&uploads[0].body).await.0, 202);
    assert_eq!(t.process(&uploads[1].body).await.0, 202);
    assert_eq!(t.process(&uploads[2].body).await, (400, error("TOO_MANY_TASKS")));
    assert_eq!(t.process(&busy.poll("doc", &uploads[0].sha256)).await.0, 202, "polls still answer");
    let other = Client::new("other").upload("doc", &doc_content(&[b"page"], json!({})));
    assert_eq!(t.process(&other.body).await.0, 202, "another client is not affected");
    // One ends: room for one more.
    t.app
        .tasks
        .finish(&id(&busy, TaskType::Doc, &uploads[0].sha256), Outcome::Failed(ErrorCode::OcrFailure))
        .await
        .unwrap();
    assert_eq!(t.process(&uploads[2].body).await.0, 202);
    assert_eq!(t.process(&uploads[3].body).await, (400, error("TOO_MANY_TASKS")));
    // Tasks past the processing timeout no longer count, read or not.
    t.clock.advance(601);
    assert_eq!(t.process(&uploads[3].body).await.0, 202);
}

#[tokio::test]
async fn a_malformed_clear_field_never_widens_the_deletion() {
    let t = TestStack::new().await;
    let carol = Client::new("carol");
    let (c1, c2) = (
        carol.upload("doc", &doc_content(&[b"c1"], json!({}))),
        carol.upload("doc", &doc_content(&[b"c2"], json!({}))),
    );
    for prepared in [&c1, &c2] {
        assert_eq!(t.process(&prepared.body).await.0, 202);
    }
    for malformed in [
        json!({"client_id": "carol", "SHA256": 123, "type": "doc"}),
        json!({"client_id": "carol", "SHA256": c1.sha256, "type": 7}),
    ] {
        assert_eq!(
            t.call("POST", "/clear", malformed.to_string()).await,
            (400, json!({"error": "INVALID_FIELD"})),
            "{malformed}"
        );
    }
    for prepared in [&c1, &c2] {
        assert_eq!(t.process(&carol.poll("doc", &prepared.sha256)).await.0, 202, "both tasks are still there");
    }
    assert_eq!(t.object_keys().await.len(), 2);
}

#[tokio::test]
async fn client_ids_with_control_characters_are_refused() {
    let t = TestStack::new().await;
    let sneaky = Client::new("phone\u{1}1");
    let upload = sneaky.upload("doc", &doc_content(&[b"x"], json!({})));
    assert_eq!(t.process(&upload.body).await, (400, error("INVALID_FIELD")));
    assert!(t.items().await.is_empty() && t.object_keys().await.is_empty());
}

#[tokio::test]
async fn clear_forgets_one_task_or_all_of_a_clients() {
    let t = TestStack::new().await;
    let alice = Client::new("alice");
    let bob = Client::new("alice/bob");
    let a1 = alice.upload("doc", &doc_content(&[b"a1"], json!({})));
    let a2 = alice.upload("form", &doc_content(&[b"a2"], json!({})));
    let b1 = bob.upload("doc", &doc_content(&[b"b1"], json!({})));
    for prepared in [&a1, &a2, &b1] {
        assert_eq!(t.process(&prepared.body).await.0, 202);
    }
    assert_eq!(t.object_keys().await.len(), 3);

    let one = json!({"client_id": "alice", "SHA256": a1.sha256, "type": "doc"});
    assert_eq!(t.call("POST", "/clear", one.to_string()).await, (200, json!({"status": "ok"})));
    assert_eq!(t.process(&alice.poll("doc", &a1.sha256)).await, (400, error("TASK_NOT_FOUND")));
    assert_eq!(t.process(&alice.poll("form", &a2.sha256)).await.0, 202);
    assert_eq!(t.object_keys().await.len(), 2);

    let all = json!({"client_id": "alice"});
    assert_eq!(t.call("POST", "/clear", all.to_string()).await, (200, json!({"status": "ok"})));
    assert_eq!(t.process(&alice.poll("form", &a2.sha256)).await, (400, error("TASK_NOT_FOUND")));
    // A client whose id starts with another's keeps everything.
    assert_eq!(t.process(&bob.poll("doc", &b1.sha256)).await.0, 202);
    assert_eq!(
        t.object_keys().await,
        vec![docusnap_core::TaskId::new(docusnap_tests::client_id("alice/bob"), TaskType::Doc, b1.sha256.clone())
            .envelope_key()]
    );
    assert_eq!(t.items().await.len(), 1);

    assert_eq!(t.call("POST", "/clear", "{}").await, (400, json!({"error": "Missing client_id"})));
    t.clients.dynamodb.delete_table().table_name(t.table()).send().await.unwrap();
    assert_eq!(t.call("POST", "/clear", all.to_string()).await, (500, json!({"error": "CACHE_CLEAR_FAILED"})));
}

#[tokio::test]
async fn every_route_answers_at_the_root_and_under_api_v1() {
    let t = TestStack::new().await;
    let client = Client::new("prefixes");
    for prefix in ["", "/api/v1"] {
        let path = |p: &str| format!("{prefix}{p}");
        assert_eq!(t.call("GET", &path("/check_status"), "").await, (200, json!({"server_status": "ok"})));
        let (status, pem) = t.call_raw("GET", &path("/public_key"), "").await;
        assert_eq!(status, 200);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        let upload = client.upload("doc", &doc_content(&[prefix.as_bytes(), b"page"], json!({})));
        assert_eq!(t.call("POST", &path("/process"), upload.body.to_string()).await.0, 202);
        let clear = json!({"client_id": client.id, "SHA256": upload.sha256, "type": "doc"});
        assert_eq!(t.call("POST", &path("/clear"), clear.to_string()).await.0, 200);
        assert_eq!(t.call("GET", &path("/process"), "").await, (405, json!({"error": "METHOD_NOT_ALLOWED"})));
        assert_eq!(t.call("GET", &path("/nowhere"), "").await, (404, json!({"error": "NOT_FOUND"})));
    }
    // The published key is the one uploads are unwrapped with: a client using it succeeds.
    let (_, pem) = t.call_raw("GET", "/public_key", "").await;
    assert_eq!(pem, docusnap_tests::server_key().public_key_pem());
}

#[tokio::test]
async fn the_envelope_is_stored_as_received_under_a_key_naming_the_task() {
    let t = TestStack::new().await;
    let client = Client::new("envelope");
    let upload = client.upload("form", &doc_content(&[b"page"], json!({})));
    t.process(&upload.body).await;
    let key = id(&client, TaskType::Form, &upload.sha256).envelope_key();
    assert_eq!(t.object_keys().await, vec![key.clone()]);
    // The client by the digest of its id: keys stay short and of one shape for any id.
    let client_digest = docusnap_core::crypto::sha256_hex(b"envelope");
    assert_eq!(key, format!("tasks/{client_digest}/form/{}/envelope.json", upload.sha256));
    let object = t.clients.s3.get_object().bucket(t.bucket()).key(&key).send().await.unwrap();
    let stored: Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(stored["content"], upload.body["content"]);
    assert_eq!(stored["aes_key"], upload.body["aes_key"]);
    assert_eq!(stored["SHA256"], json!(upload.sha256));
}

/// A client id of 120 CJK characters escaped to a 1,169-byte object key, which S3 refuses
/// (over 1,024 bytes; moto takes it): on AWS that client only ever got DATABASE_ERROR.
#[tokio::test]
async fn a_long_multibyte_client_id_makes_a_short_key_and_a_task_that_runs() {
    let t = TestStack::new().await;
    let client = Client::new("文".repeat(120));
    let page = docusnap_ocr::testing::render_png(&["TOTAL 1.00"], docusnap_ocr::testing::LATIN_FONT, 30.0);
    let upload = client.upload("doc", &doc_content(&[&page], json!({})));
    assert_eq!(t.process(&upload.body).await.0, 202);
    let keys = t.object_keys().await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].len() <= 1024 && keys[0].len() < 200, "{} bytes: {}", keys[0].len(), keys[0]);
    // The OCR function finds the task from its envelope and hands it on.
    docusnap_ocr_fn::handle(&t.ocr_function(), t.take_messages("OcrQueue").await).await;
    let told = t.take_messages("ExtractQueue").await;
    assert_eq!(told.records.len(), 1);
    assert!(told.records[0].body.as_deref().unwrap().contains(&upload.sha256));
}

#[tokio::test]
async fn the_web_page_is_served_at_the_root_and_speaks_v2_itself() {
    let t = TestStack::new().await;
    for path in ["/", "/index.html"] {
        let (status, page) = t.call_raw("GET", path, lambda_http::Body::Empty).await;
        assert_eq!(status, 200, "{path}");
        assert!(page.starts_with("<!doctype html>"));
        // The page's own crypto and routes: v2's RSA-OAEP-SHA256 and AES-GCM with associated
        // data, under /api/v2, and uploads straight to storage.
        for needle in [
            "RSA-OAEP",
            "SHA-256",
            "AES-GCM",
            "additionalData",
            "api/v2/",
            "\"tasks\"",
            "public_key",
            "/page/${i}",
            "xhr.upload",
        ] {
            assert!(page.contains(needle), "{needle}");
        }
    }
    assert_eq!(t.call("POST", "/", lambda_http::Body::Empty).await.0, 404);
}

#[tokio::test]
async fn the_page_is_served_with_a_policy_that_admits_only_its_own_code() {
    let t = TestStack::new().await;
    let request = http::Request::builder().method("GET").uri("/").body(lambda_http::Body::Empty).unwrap();
    let response = docusnap_upload::handle(&t.app, request).await.unwrap();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("x-frame-options"), "DENY");
    let policy = header("content-security-policy");
    assert!(policy.starts_with("default-src 'none';") && policy.contains("frame-ancestors 'none'"), "{policy}");
    // Requests go to the page's own origin and to the bucket's, nowhere else.
    assert!(policy.contains(&format!("connect-src 'self' {};", docusnap_tests::endpoint())), "{policy}");
    // The hashes are those of the page's own inline blocks, and there is one per block.
    let page = String::from_utf8(response.body().to_vec()).unwrap();
    let script = page.split("<script>").nth(1).and_then(|r| r.split("</script>").next()).unwrap();
    let script_hash = format!("script-src 'sha256-{}';", docusnap_core::crypto::sha256_base64(script.as_bytes()));
    assert!(policy.contains(&script_hash), "{policy}");
    assert_eq!(policy.matches("'sha256-").count(), page.matches("<script>").count() + page.matches("<style>").count());
    assert!(
        !page.contains(" onclick=") && !page.contains(" style="),
        "inline handlers and style attributes would be blocked"
    );
}
