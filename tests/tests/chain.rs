//! The whole chain on moto: an upload through the upload function's handler, the OCR and
//! extract handlers fed from the real queues, and the client's poll and decryption.

use docusnap_core::store::TaskStore;
use docusnap_core::task::{extract_claim_secs, Progress, TaskId, TaskState};

/// The claim of an extract function with template.yaml's 300-second timeout.
const EXTRACT_CLAIM_SECS: i64 = extract_claim_secs(300);
use docusnap_core::TaskType;
use docusnap_extract::RULES;
use docusnap_ocr::testing::{render_png, LATIN_FONT};
use docusnap_tests::{base64, lambda_deadline, Client, NoLlm, TestStack, START};
use serde_json::{json, Value};

const RECEIPT: [&str; 6] =
    ["CORNER BAKERY", "12 Main Street", "Date: 25/03/2026", "Coffee 3.50", "Bagel 19.90", "TOTAL 23.40"];

/// Polls as a client does and decrypts a completed result.
async fn result_of(t: &TestStack, client: &Client, task_type: &str, upload: &docusnap_tests::Prepared) -> Value {
    let (status, answer) = t.process(&client.poll(task_type, &upload.sha256)).await;
    assert_eq!((status, &answer["status"]), (200, &json!("completed")), "{answer}");
    let plain = upload.key.open_base64(answer["result"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_goes_from_upload_to_a_result_with_its_date_and_total() {
    let t = TestStack::new().await;
    let (ocr, extract) = (t.ocr_function(), t.extract_function::<NoLlm>(None));
    let client = Client::new("chain one");
    let library = json!({"doc": [{"id": "old-1", "title": "Corner Bakery receipt", "tags": ["receipt"], "kv": {"Company": "CORNER BAKERY"}}]});
    let upload = client
        .upload("doc", &json!({"to_process": [base64(&render_png(&RECEIPT, LATIN_FONT, 32.0))], "file_lib": library}));
    assert_eq!(t.process(&upload.body).await.0, 202);

    let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await.0, 202, "still processing between the stages");
    let told = t.take_messages("ExtractQueue").await;
    assert_eq!(told.records.len(), 1);
    // Extraction reads the sealed OCR output alone (library included): it never opens the
    // envelope and its images, so the envelope may as well be gone.
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());
    t.clients.s3.delete_object().bucket(t.bucket()).key(id.envelope_key()).send().await.unwrap();
    let response = docusnap_extract_fn::handle(&extract, told.clone(), lambda_deadline()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let result = result_of(&t, &client, "doc", &upload).await;
    assert_eq!(result["kv"]["Date"], "Mar 25, 2026", "{result}");
    assert_eq!(result["kv"]["Total"], "23.40", "{result}");
    assert_eq!(result["title"], "CORNER BAKERY");
    assert_eq!(result["related"], json!([{"type": "doc", "resource_id": "old-1"}]));
    assert!(result.get("fields").is_none());

    let task = t.app.tasks.get(&id, START).await.unwrap().unwrap();
    assert!(
        matches!(task.state, TaskState::Completed { ref extractor, .. } if *extractor == RULES),
        "{:?}",
        task.state
    );
    // Nothing of the document stays in the bucket once the task has ended: the result in
    // the table is all a client can still fetch.
    assert!(t.object_keys().await.iter().all(|k| !k.starts_with(&id.object_prefix())), "{:?}", t.object_keys().await);

    // A redelivered message finds the task completed and changes nothing, but finishes
    // what the first delivery may not have: here its delete of the task's objects never
    // happened (as when the answer to its completing write was lost and it failed).
    t.clients.s3.put_object().bucket(t.bucket()).key(id.ocr_key()).body(b"left".to_vec().into()).send().await.unwrap();
    let response = docusnap_extract_fn::handle(&extract, told, lambda_deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(result_of(&t, &client, "doc", &upload).await, result);
    assert!(t.object_keys().await.iter().all(|k| !k.starts_with(&id.object_prefix())), "{:?}", t.object_keys().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_and_then_its_fill_from_the_library() {
    let t = TestStack::new().await;
    let (ocr, extract) = (t.ocr_function(), t.extract_function::<NoLlm>(None));
    let client = Client::new("chain forms");
    let page = render_png(
        &["VISA APPLICATION", "Name: ____________", "Date of birth: ________", "Embassy: Berlin"],
        LATIN_FONT,
        30.0,
    );
    let form = client.upload("form", &json!({"to_process": [base64(&page)], "file_lib": {}}));
    t.process(&form.body).await;
    docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    docusnap_extract_fn::handle(&extract, t.take_messages("ExtractQueue").await, lambda_deadline()).await;
    let form_result = result_of(&t, &client, "form", &form).await;
    assert_eq!(form_result["fields"], json!(["Name", "Date of birth"]), "{form_result}");
    assert_eq!(form_result["kv"]["Embassy"], "Berlin");
    assert!(form_result["kv"]["Form Type"].is_string());

    // A library as the original service built it: its prompts' key names, not the form's.
    let library = json!({"doc": [
        {"id": "pp-7", "title": "Passport", "tags": ["identity"], "kv": {"Full Name (English/Latin)": "Ann Lee", "Date of Birth (Full)": "Jan 02, 1990"}},
        {"id": "r-2", "title": "Pharmacy receipt", "tags": ["receipt"], "kv": {"Full Name (English/Latin)": "A. LEE"}}
    ]});
    let fill = client.upload("fill", &json!({"to_process": form_result, "file_lib": library}));
    t.process(&fill.body).await;
    docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    docusnap_extract_fn::handle(&extract, t.take_messages("ExtractQueue").await, lambda_deadline()).await;
    assert_eq!(
        result_of(&t, &client, "fill", &fill).await,
        json!({
            "Name": {"value": "Ann Lee", "source": {"type": "doc", "resource_id": "pp-7"}},
            "Date of birth": {"value": "1990-01-02", "source": {"type": "doc", "resource_id": "pp-7"}}
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_claim_per_task_and_early_messages_wait_for_the_pages() {
    let t = TestStack::new().await;
    let (ocr, extract) = (t.ocr_function(), t.extract_function::<NoLlm>(None));
    let client = Client::new("claims");
    let upload = client.upload("doc", &json!({"to_process": [base64(&render_png(&RECEIPT, LATIN_FONT, 32.0))]}));
    t.process(&upload.body).await;
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());

    // The extract message can arrive before the task is marked read: it is retried.
    let early = json!({"client_id": client.id, "type": "doc", "SHA256": upload.sha256}).to_string();
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![docusnap_tests::sqs_message("early", &early), docusnap_tests::sqs_message("junk", "{}")];
    let response = docusnap_extract_fn::handle(&extract, event, lambda_deadline()).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["early", "junk"]);

    docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    // Two deliveries at once: exactly one claim wins; a claim past its time is taken over.
    let tasks = &t.app.tasks;
    let (a, b) = tokio::join!(
        tasks.claim(&id, START, START - EXTRACT_CLAIM_SECS),
        tasks.claim(&id, START, START - EXTRACT_CLAIM_SECS)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(), 1);
    let later = START + 60;
    assert!(!tasks.claim(&id, later, later - EXTRACT_CLAIM_SECS).await.unwrap(), "a fresh claim holds");
    let much_later = START + EXTRACT_CLAIM_SECS + 1;
    assert!(
        tasks.claim(&id, much_later, much_later - EXTRACT_CLAIM_SECS).await.unwrap(),
        "a lapsed claim is taken over"
    );
    let task = tasks.get(&id, much_later).await.unwrap().unwrap();
    assert!(
        matches!(task.state, TaskState::Processing { progress: Progress::Extracting { claimed_at }, .. } if claimed_at == much_later)
    );

    // While the claim holds, the extract message fails its record: SQS brings it back after
    // the visibility timeout, when a dead holder's claim has lapsed. Deleting it would lose
    // the task if the holder never finished.
    let response =
        docusnap_extract_fn::handle(&extract, t.take_messages("ExtractQueue").await, lambda_deadline()).await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await.0, 202);
    // The holder died: the redelivery, once its claim (taken at much_later) has lapsed,
    // finishes the task.
    t.clock.advance(much_later - START + EXTRACT_CLAIM_SECS + 1);
    let redelivered = json!({"client_id": client.id, "type": "doc", "SHA256": upload.sha256}).to_string();
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![docusnap_tests::sqs_message("again", &redelivered)];
    let response = docusnap_extract_fn::handle(&extract, event, lambda_deadline()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await.0, 200);
    // A late duplicate of a finished task is deleted: nothing is left to do.
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![docusnap_tests::sqs_message("late", &redelivered)];
    assert!(docusnap_extract_fn::handle(&extract, event, lambda_deadline()).await.batch_item_failures.is_empty());
}

/// `cargo lambda watch` sends a deadline in 1970: read as time left, no LLM was ever asked
/// locally. The configured timeout stands in for it, and the LLM answers.
#[tokio::test]
async fn with_cargo_lambdas_deadline_the_llm_is_still_asked() {
    use docusnap_extract::llm::{HttpChatModel, LlmSettings, Provider};
    use docusnap_tests::stub::{Reply, Server};
    let t = TestStack::new().await;
    // Keys in the model's order, which is not alphabetical: v1 clients show kv as received.
    let answer = r#"{"title": "Corner Bakery receipt", "tags": ["receipt"], "description": "A receipt.",
        "kv": {"Company": "CORNER BAKERY", "Address": "12 Main Street", "Date": "Mar 25, 2026", "Bagel": "19.90", "Total": "23.40"}}"#;
    let server = Server::scripted("/v1", vec![Reply::chat_completion(answer, None)]).await;
    let model = HttpChatModel::new(LlmSettings::new(Provider::OpenAi, server.base.clone(), "qwen", None)).unwrap();
    let (ocr, extract) = (t.ocr_function(), t.extract_function(Some(model)));
    let client = Client::new("local-deadline");
    let upload = client.upload("doc", &json!({"to_process": [base64(&render_png(&RECEIPT, LATIN_FONT, 32.0))]}));
    t.process(&upload.body).await;
    docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;

    let mut context = lambda_runtime::Context::default();
    context.deadline = 600_000;
    let deadline = docusnap_extract_fn::invocation_deadline(&context, docusnap_core::config::DEFAULT_FUNCTION_TIMEOUT);
    let response = docusnap_extract_fn::handle(&extract, t.take_messages("ExtractQueue").await, deadline).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(server.seen().len(), 1, "the LLM was asked once");
    let result = result_of(&t, &client, "doc", &upload).await;
    assert_eq!(result["title"], "Corner Bakery receipt", "{result}");
    // Read back from the client's decrypted bytes: the order is the wire's, not a map's.
    let keys: Vec<&String> = result["kv"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Company", "Address", "Date", "Bagel", "Total"]);
}

/// The rules answering because the LLM failed is recorded on the task and counted in the
/// metric the fallback alarm watches; the rules' own kv comes in page order.
#[tokio::test]
async fn a_fallback_is_recorded_and_counted() {
    use docusnap_core::metrics;
    use docusnap_extract::llm::{HttpChatModel, LlmSettings, Provider};
    use docusnap_tests::stub::{Reply, Server};
    let t = TestStack::new().await;
    let down = Reply::json(503, json!({"error": {"message": "overloaded"}}));
    let server = Server::scripted("/v1", vec![down.clone(), down.clone(), down.clone(), down]).await;
    let mut settings = LlmSettings::new(Provider::OpenAi, server.base.clone(), "qwen", None);
    settings.backoff_base = std::time::Duration::from_millis(10);
    let model = HttpChatModel::new(settings).unwrap();
    let (ocr, extract) = (t.ocr_function(), t.extract_function(Some(model)));
    let client = Client::new("fallback");
    let upload = client.upload("doc", &json!({"to_process": [base64(&render_png(&RECEIPT, LATIN_FONT, 32.0))]}));
    t.process(&upload.body).await;
    docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;

    let counted = metrics::capture();
    let response =
        docusnap_extract_fn::handle(&extract, t.take_messages("ExtractQueue").await, lambda_deadline()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(server.seen().len(), 4, "asked with every retry before falling back");
    let extractions: Vec<Value> =
        counted.lines().into_iter().filter(|l| l.get(metrics::name::EXTRACTIONS).is_some()).collect();
    assert_eq!(extractions.len(), 1, "{extractions:?}");
    assert_eq!(extractions[0]["Extractor"], "rules-fallback");
    assert_eq!(extractions[0][metrics::name::EXTRACTIONS], 1.0);

    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());
    let task = t.app.tasks.get(&id, START).await.unwrap().unwrap();
    assert!(
        matches!(task.state, TaskState::Completed { ref extractor, .. } if *extractor == docusnap_extract::RULES_FALLBACK),
        "{:?}",
        task.state
    );
    let result = result_of(&t, &client, "doc", &upload).await;
    let keys: Vec<&String> = result["kv"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Company", "Address", "Date", "Total"], "the rules' kv in page order: {result}");
}
