//! Operators asked for one thing of the logs: every line of a task's work names the task.
//! The whole chain runs under the JSON subscriber Lambda uses, and its lines are read back.

use std::io::Write;
use std::sync::{Arc, Mutex};

use docusnap_core::task::TaskId;
use docusnap_core::TaskType;
use docusnap_ocr::testing::{render_png, LATIN_FONT};
use docusnap_tests::{base64, lambda_deadline, Client, NoLlm, TestStack};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_line_of_a_tasks_work_names_the_task() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let _logs = tracing::subscriber::set_default(docusnap_core::telemetry::json_subscriber(move || writer.clone()));

    let t = TestStack::new().await;
    let client = Client::new("logged");
    let upload = client.upload("doc", &json!({"to_process": [base64(&render_png(&["TOTAL 1.00"], LATIN_FONT, 30.0))]}));
    t.process(&upload.body).await;
    docusnap_ocr_fn::handle(&t.ocr_function(), t.take_messages("OcrQueue").await).await;
    docusnap_extract_fn::handle(
        &t.extract_function::<NoLlm>(None),
        t.take_messages("ExtractQueue").await,
        lambda_deadline(),
    )
    .await;
    assert_eq!(t.process(&client.poll("doc", &upload.sha256)).await.0, 200);

    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone()).to_string();
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in ["task created", "pages read", "task completed"] {
        assert!(messages.contains(&expected), "{expected:?} not logged: {messages:?}");
    }
    for line in &lines {
        // S3's test event concerns no task; everything else does.
        if line["message"] == "S3 test event ignored" {
            continue;
        }
        assert_eq!(line["span"]["task"].as_str(), Some(id.as_str()), "{line}");
    }
}

/// No document text in any log line: a task whose page carries a marker, and an LLM that
/// first puts the marker as a label in both kv and fields (the answer is re-asked), then
/// fails with an error body that quotes it (the rules answer instead).
#[tokio::test(flavor = "current_thread")]
async fn no_log_line_carries_document_text() {
    use docusnap_extract::llm::{HttpChatModel, LlmSettings, Provider};
    use docusnap_tests::stub::{Reply, Server};
    const MARKER: &str = "QZXWV";

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let _logs = tracing::subscriber::set_default(docusnap_core::telemetry::json_subscriber(move || writer.clone()));

    let clash =
        json!({"title": "Visa", "tags": ["form"], "kv": {"Form Type": "Visa", MARKER: "x"}, "fields": [MARKER]})
            .to_string();
    let server = Server::scripted("/v1", vec![
        Reply::json(200, json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": clash}, "finish_reason": "stop"}]})),
        Reply::json(400, json!({"error": {"message": format!("Invalid prompt near '{MARKER} ____'"), "type": "invalid_request_error"}})),
    ])
    .await;
    let model = HttpChatModel::new(LlmSettings::new(Provider::OpenAi, server.base.clone(), "m", None)).unwrap();

    let t = TestStack::new().await;
    let client = Client::new("private");
    let page = render_png(&["VISA APPLICATION", &format!("{MARKER}: ____"), "Date: ____"], LATIN_FONT, 30.0);
    let upload = client.upload("form", &json!({"to_process": [base64(&page)]}));
    t.process(&upload.body).await;
    docusnap_ocr_fn::handle(&t.ocr_function(), t.take_messages("OcrQueue").await).await;
    docusnap_extract_fn::handle(
        &t.extract_function(Some(model)),
        t.take_messages("ExtractQueue").await,
        lambda_deadline(),
    )
    .await;
    assert_eq!(t.process(&client.poll("form", &upload.sha256)).await.0, 200);

    // The marker did reach the LLM (it was read off the page), and both failures happened.
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "asked, then asked once more");
    assert!(seen[0].body.to_string().contains(MARKER), "the page's text went to the LLM");
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("asking once more") && text.contains("the rules extractor answers instead"), "{text}");
    for line in text.lines() {
        assert!(!line.contains(MARKER), "document text in a log line: {line}");
    }
}
