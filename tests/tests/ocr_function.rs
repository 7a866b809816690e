//! The OCR function against moto: a real upload made by the upload function's code, the S3
//! notification moto delivers for it, the pages read by the real engine.

use docusnap_core::ocr_output::OcrOutput;
use docusnap_core::store::{Outcome, TaskStore};
use docusnap_core::task::{Stage, TaskId, TaskMessage};
use docusnap_core::{ErrorCode, TaskType};
use docusnap_ocr::testing::{render_png, LATIN_FONT};
use docusnap_tests::{base64, sqs_message, Client, TestStack};
use serde_json::{json, Value};

const RECEIPT: [&str; 3] = ["CORNER BAKERY", "Date: 12/03/2026", "TOTAL 23.40"];

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_read_and_handed_to_extraction_once() {
    let t = TestStack::new().await;
    let ocr = t.ocr_function();
    let client = Client::new("reader one");
    let pages = [render_png(&RECEIPT, LATIN_FONT, 30.0), render_png(&["Page two"], LATIN_FONT, 30.0)];
    let inner = json!({"to_process": [base64(&pages[0]), base64(&pages[1])], "file_lib": {}});
    let upload = client.upload("doc", &inner);
    assert_eq!(t.process(&upload.body).await.0, 202);
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());

    // S3's test event (if any) and the envelope's notification, exactly as moto queued them.
    let event = t.take_messages("OcrQueue").await;
    assert!(!event.records.is_empty());
    let again = event.clone();
    let response = docusnap_ocr_fn::handle(&ocr, event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    // The extract queue names the task, and only the task.
    let told = t.take_messages("ExtractQueue").await;
    assert_eq!(told.records.len(), 1);
    let message: TaskMessage = serde_json::from_str(told.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(TaskId::from(message), id);

    // The OCR output is sealed under the client's key (beside the key, wrapped as the
    // client sent it) and holds the pages' text in order.
    let sealed = t.clients.s3.get_object().bucket(t.bucket()).key(id.ocr_key()).send().await.unwrap();
    let sealed = sealed.body.collect().await.unwrap().into_bytes();
    let stored: Value = serde_json::from_slice(&sealed).unwrap();
    assert_eq!(stored["aes_key"], upload.body["aes_key"]);
    let raw = String::from_utf8_lossy(&sealed);
    assert!(
        !raw.contains("pages") && !raw.to_uppercase().contains("TOTAL"),
        "the OCR output must not be stored in the clear"
    );
    let output = OcrOutput::from_json(&upload.key.open_base64(stored["content"].as_str().unwrap()).unwrap()).unwrap();
    let text = &output.text();
    assert!(text.starts_with("\n----page 1----\n") && text.contains("\n----page 2----\n"), "{text}");
    for expected in RECEIPT.iter().chain(&["Page two"]) {
        assert!(squash(text).contains(&squash(expected)), "{expected:?} not in {text:?}");
    }
    assert_eq!(output.pages.len(), 2);
    let task = t.app.tasks.get(&id, docusnap_tests::START).await.unwrap().unwrap();
    assert_eq!(task.state.stage(), Some(Stage::Read));

    // A redelivered notification does no work twice.
    let response = docusnap_ocr_fn::handle(&ocr, again).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(t.take_messages("ExtractQueue").await.records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_page_ends_the_task_with_ocr_failure() {
    let t = TestStack::new().await;
    let ocr = t.ocr_function();
    let client = Client::new("bad pages");
    let upload = client.upload("form", &json!({"to_process": [base64(b"these bytes are no image")]}));
    t.process(&upload.body).await;
    let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        t.process(&client.poll("form", &upload.sha256)).await,
        (400, json!({"status": "error", "error_detail": "OCR_FAILURE"}))
    );
    assert!(t.take_messages("ExtractQueue").await.records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_tasks_go_straight_on_and_ended_tasks_are_skipped() {
    let t = TestStack::new().await;
    let ocr = t.ocr_function();
    let client = Client::new("filler");
    let fill = client.upload("fill", &json!({"to_process": {"title": "Visa", "fields": ["Name"]}, "file_lib": {}}));
    let doc = client.upload("doc", &json!({"to_process": [base64(&render_png(&["x"], LATIN_FONT, 30.0))]}));
    t.process(&fill.body).await;
    t.process(&doc.body).await;
    let doc_id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, doc.sha256.clone());
    t.app.tasks.finish(&doc_id, Outcome::Failed(ErrorCode::ProcessingTimeout)).await.unwrap();
    let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    assert!(response.batch_item_failures.is_empty());
    let told = t.take_messages("ExtractQueue").await;
    let names: Vec<TaskMessage> =
        told.records.iter().map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap()).collect();
    assert_eq!(
        names,
        vec![TaskMessage {
            client_id: docusnap_tests::client_id(&client.id),
            task_type: TaskType::Fill,
            sha256: fill.sha256.clone()
        }]
    );
    // The ended task was not read; the fill task was handed on without OCR, its form and
    // library sealed for extraction (which never opens the envelope).
    let keys = t.object_keys().await;
    assert!(!keys.contains(&doc_id.ocr_key()), "{keys:?}");
    let fill_id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Fill, fill.sha256.clone());
    let object = t.clients.s3.get_object().bucket(t.bucket()).key(fill_id.ocr_key()).send().await.unwrap();
    let (_, output) = docusnap_core::pipeline::open_output(
        &docusnap_tests::server_key(),
        &fill_id,
        &object.body.collect().await.unwrap().into_bytes(),
    )
    .unwrap();
    assert!(output.pages.is_empty());
    assert_eq!(output.form.unwrap()["fields"], json!(["Name"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_transient_failures_fail_only_their_record() {
    let t = TestStack::new().await;
    let ocr = t.ocr_function();
    let client = Client::new("mixed");
    let upload = client.upload("doc", &json!({"to_process": [base64(&render_png(&["ok"], LATIN_FONT, 30.0))]}));
    t.process(&upload.body).await;
    let mut event = t.take_messages("OcrQueue").await;
    let good = event.records.len();
    event.records.push(sqs_message("poison", "not a notification"));
    let stranger = json!({"Records": [{"s3": {"object": {"key": "elsewhere/x.json"}}}]}).to_string();
    event.records.push(sqs_message("stranger", &stranger));
    let response = docusnap_ocr_fn::handle(&ocr, event.clone()).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["poison", "stranger"]);
    assert_eq!(t.take_messages("ExtractQueue").await.records.len(), 1);

    // The table is unreachable: every task record fails, to be delivered again. (The same
    // stack: the envelope is where its notification says, only the table is gone.)
    t.clients.dynamodb.delete_table().table_name(t.table()).send().await.unwrap();
    let mut retry = event;
    retry.records.truncate(good);
    let envelopes: Vec<String> = retry
        .records
        .iter()
        .filter(|r| r.body.as_deref().unwrap_or_default().contains("envelope.json"))
        .filter_map(|r| r.message_id.clone())
        .collect();
    assert_eq!(envelopes.len(), 1);
    let response = docusnap_ocr_fn::handle(&ocr, retry).await;
    let failed: Vec<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    assert_eq!(failed, envelopes);
}

/// A message on its last receive (the earlier runs did not finish: a page that ran the
/// function out of memory, say) ends its task with OCR_FAILURE instead of a third run.
#[tokio::test]
async fn the_last_receive_ends_the_task_instead_of_reading_it_again() {
    let t = TestStack::new().await;
    let ocr = t.ocr_function();
    let client = Client::new("crashy");
    let upload = client.upload("doc", &json!({"to_process": [base64(&render_png(&["TOTAL 3.00"], LATIN_FONT, 30.0))]}));
    assert_eq!(t.process(&upload.body).await.0, 202);
    let mut event = t.take_messages("OcrQueue").await;
    for record in &mut event.records {
        record.attributes.insert("ApproximateReceiveCount".into(), ocr.max_receives.to_string());
    }
    let response = docusnap_ocr_fn::handle(&ocr, event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        t.process(&client.poll("doc", &upload.sha256)).await,
        (400, json!({"status": "error", "error_detail": "OCR_FAILURE"}))
    );
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());
    assert!(!t.object_keys().await.contains(&id.ocr_key()), "the pages were not read again");
    assert!(t.take_messages("ExtractQueue").await.records.is_empty());
}
