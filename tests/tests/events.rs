//! The local event-source runner (infra/src/events.rs) over moto's queues, invoking the
//! real OCR and extract handlers behind an HTTP endpoint shaped like cargo-lambda's: the
//! chain runs as `scripts/dev` runs it, and a poison message ends in the dead-letter queue
//! without holding up the messages behind it.

use std::sync::Arc;

use docusnap_ocr::testing::{render_png, LATIN_FONT};
use docusnap_tests::{base64, event_runner, invoke_endpoint, mapping, Client, TestStack};
use serde_json::json;

#[test]
fn the_template_maps_each_queue_to_the_binary_its_image_runs() {
    let (ocr, extract) = (mapping("OcrQueue"), mapping("ExtractQueue"));
    assert_eq!((ocr.function.as_str(), ocr.binary.as_str(), ocr.batch_size), ("OcrFunction", "ocr", 1));
    assert_eq!((extract.function.as_str(), extract.binary.as_str()), ("ExtractFunction", "extract"));
    assert!(ocr.report_batch_item_failures && extract.report_batch_item_failures);
    assert_eq!(extract.timeout.as_secs(), 300);
    // The runner runs as many at once as Lambda would: the parameters' defaults behind
    // each mapping's MaximumConcurrency, and the dead-letter mappings' literal 2.
    let template = docusnap_infra::Template::from_file(&docusnap_tests::repo_root().join("template.yaml")).unwrap();
    let default = |name: &str| template.parameter_default(name).unwrap().parse::<usize>().unwrap();
    assert_eq!((ocr.max_concurrency, ocr.concurrency), (default("OcrMaxConcurrency"), default("OcrMaxConcurrency")));
    assert_eq!(extract.max_concurrency, default("ExtractMaxConcurrency"));
    assert_eq!(mapping("OcrDeadLetterQueue").max_concurrency, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_carries_an_upload_through_both_functions() {
    let t = Arc::new(TestStack::new().await);
    let server = invoke_endpoint(&t).await;
    let runner = event_runner(&t, &server);
    let client = Client::new("runner");
    let page = render_png(&["TOKO SINAR", "Date: 14/02/2026", "TOTAL 8.20"], LATIN_FONT, 32.0);
    let upload = client.upload("doc", &json!({"to_process": [base64(&page)]}));
    assert_eq!(t.process(&upload.body).await.0, 202);
    let (ocr, extract) = (mapping("OcrQueue"), mapping("ExtractQueue"));
    // moto may queue S3's test event first; each poll takes one message (BatchSize 1).
    for _ in 0..3 {
        runner.poll(&t.stack, &ocr).await.unwrap();
    }
    assert_eq!(runner.poll(&t.stack, &extract).await.unwrap().deleted, 1);
    let (status, answer) = t.process(&client.poll("doc", &upload.sha256)).await;
    assert_eq!(status, 200, "{answer}");
    let result: serde_json::Value =
        serde_json::from_slice(&upload.key.open_base64(answer["result"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(result["kv"]["Total"], "8.20");
    assert!(server.seen().iter().all(|s| s.body["Records"][0]["eventSource"] == "aws:sqs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_ends_in_the_dead_letter_queue_and_blocks_nothing() {
    let t = Arc::new(TestStack::new().await);
    let server = invoke_endpoint(&t).await;
    let runner = event_runner(&t, &server);
    let ocr = mapping("OcrQueue");
    // An object that is not a task's envelope, where envelopes go: its notification is poison.
    t.clients
        .s3
        .put_object()
        .bucket(t.bucket())
        .key("tasks/stray/envelope.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    // A task whose stored envelope was replaced by something that is not one: it ends in error.
    let client = Client::new("poisoned");
    let broken = client.upload("doc", &json!({"to_process": [base64(b"x")]}));
    t.process(&broken.body).await;
    let id = docusnap_core::task::TaskId::new(
        docusnap_tests::client_id(&client.id),
        docusnap_core::TaskType::Doc,
        broken.sha256.clone(),
    );
    t.clients
        .s3
        .put_object()
        .bucket(t.bucket())
        .key(id.envelope_key())
        .body(b"garbage".to_vec().into())
        .send()
        .await
        .unwrap();
    // And a good upload behind them.
    let good = client.upload("form", &json!({"to_process": [base64(&render_png(&["Name: ____"], LATIN_FONT, 30.0))]}));
    t.process(&good.body).await;

    let mut failed = 0;
    for _ in 0..16 {
        failed += runner.poll(&t.stack, &ocr).await.unwrap().failed;
    }
    let redrive_after = 3; // template.yaml: OcrQueue's maxReceiveCount
                           // Three poison messages: the stray object's, and both of the broken task's key (the
                           // upload wrote the envelope, then it was overwritten).
    assert_eq!(failed, 3 * redrive_after, "each poison message failed once per receive");
    let dlq = t.stack.queue_url("OcrDeadLetterQueue").unwrap();
    let dead = t.clients.sqs.receive_message().queue_url(dlq).max_number_of_messages(10).send().await.unwrap();
    let mut bodies: Vec<&str> = dead.messages().iter().filter_map(|m| m.body()).collect();
    bodies.sort_by_key(|b| !b.contains("tasks%2Fstray%2Fenvelope.json"));
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(bodies[0].contains("tasks%2Fstray%2Fenvelope.json"), "{}", bodies[0]);
    // Object keys name the client by digest, so a task whose envelope is not an envelope
    // cannot be found from its key: its message is poison too, and the task, left
    // processing, answers PROCESSING_TIMEOUT once its ten minutes are up.
    let broken_key = id.envelope_key().replace('/', "%2F");
    assert!(bodies[1..].iter().all(|b| b.contains(&broken_key)), "{bodies:?} vs {broken_key}");
    assert_eq!(t.process(&client.poll("doc", &broken.sha256)).await.0, 202);
    t.clock.advance(601);
    assert_eq!(
        t.process(&client.poll("doc", &broken.sha256)).await,
        (400, json!({"status": "error", "error_detail": "PROCESSING_TIMEOUT"}))
    );
    // The good upload went on to extraction.
    let told = t.take_messages("ExtractQueue").await;
    assert!(told.records.iter().any(|r| r.body.as_deref().unwrap_or_default().contains(&good.sha256)));
}

/// Moves every message now on `queue` to `dead_letter_queue`, as SQS's redrive does after
/// the last failed receive.
async fn dead_letter_all(t: &TestStack, queue: &str, dead_letter_queue: &str) -> usize {
    let messages = t.take_messages(queue).await;
    let url = t.stack.queue_url(dead_letter_queue).unwrap();
    for record in &messages.records {
        t.clients.sqs.send_message().queue_url(url).message_body(record.body.clone().unwrap()).send().await.unwrap();
    }
    messages.records.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_upload_ends_with_ocr_failure_instead_of_processing_for_good() {
    let t = Arc::new(TestStack::new().await);
    let server = invoke_endpoint(&t).await;
    let runner = event_runner(&t, &server);
    let client = Client::new("dead letters");
    let upload = client.upload("doc", &json!({"to_process": [base64(&render_png(&["TOTAL 1.00"], LATIN_FONT, 30.0))]}));
    assert_eq!(t.process(&upload.body).await.0, 202);
    // Every run of its OCR message died (a process killed each time, say): SQS moved it on.
    assert!(dead_letter_all(&t, "OcrQueue", "OcrDeadLetterQueue").await >= 1);
    // And a dead letter that names no task at all.
    let dlq = t.stack.queue_url("OcrDeadLetterQueue").unwrap();
    t.clients.sqs.send_message().queue_url(dlq).message_body("not a notification").send().await.unwrap();
    let dead = mapping("OcrDeadLetterQueue");
    assert_eq!(dead.function, "OcrFunction");
    let mut handled = docusnap_infra::events::Poll::default();
    for _ in 0..4 {
        let poll = runner.poll(&t.stack, &dead).await.unwrap();
        handled.received += poll.received;
        handled.failed += poll.failed;
    }
    assert_eq!(handled.failed, 0, "a dead letter is handled once, not sent round again");
    assert_eq!(
        t.process(&client.poll("doc", &upload.sha256)).await,
        (400, json!({"status": "error", "error_detail": "OCR_FAILURE"}))
    );
    let id = docusnap_core::task::TaskId::new(
        docusnap_tests::client_id(&client.id),
        docusnap_core::TaskType::Doc,
        upload.sha256.clone(),
    );
    assert!(
        t.object_keys().await.iter().all(|k| !k.starts_with(&id.object_prefix())),
        "the ended task's objects are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_extraction_ends_with_a_code_unless_a_fresh_claim_holds_it() {
    let t = Arc::new(TestStack::new().await);
    let server = invoke_endpoint(&t).await;
    let runner = event_runner(&t, &server);
    let client = Client::new("dead extraction");
    let page = base64(&render_png(&["TOTAL 2.00"], LATIN_FONT, 30.0));
    let (held, lapsed) = (
        client.upload("doc", &json!({"to_process": [page.clone()]})),
        client.upload("form", &json!({"to_process": [page]})),
    );
    for upload in [&held, &lapsed] {
        assert_eq!(t.process(&upload.body).await.0, 202);
    }
    docusnap_ocr_fn::handle(&t.ocr_function(), t.take_messages("OcrQueue").await).await;
    let task = |kind, upload: &docusnap_tests::Prepared| {
        docusnap_core::task::TaskId::new(docusnap_tests::client_id(&client.id), kind, upload.sha256.clone())
    };
    let (held_id, lapsed_id) =
        (task(docusnap_core::TaskType::Doc, &held), task(docusnap_core::TaskType::Form, &lapsed));
    // One task is being extracted right now; the other's holder died long ago.
    use docusnap_core::store::TaskStore;
    let now = docusnap_tests::START;
    assert!(t.app.tasks.claim(&held_id, now, now - 360).await.unwrap());
    assert!(t.app.tasks.claim(&lapsed_id, now - 1_000, now - 1_360).await.unwrap());
    assert_eq!(dead_letter_all(&t, "ExtractQueue", "ExtractDeadLetterQueue").await, 2);
    let dead = mapping("ExtractDeadLetterQueue");
    // The held task's dead letter fails, and comes back after a while (here 30 s).
    let runner = docusnap_infra::events::Runner { retry_after: Some(30), ..runner };
    let mut failed = 0;
    for _ in 0..3 {
        failed += runner.poll(&t.stack, &dead).await.unwrap().failed;
    }
    assert_eq!(failed, 1, "the held task's dead letter comes back later");
    assert_eq!(t.process(&client.poll("doc", &held.sha256)).await.0, 202, "a live holder keeps its task");
    assert_eq!(
        t.process(&client.poll("form", &lapsed.sha256)).await,
        (400, json!({"status": "error", "error_detail": "PROCESSING_ERROR"}))
    );
}
