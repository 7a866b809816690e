//! Nothing a client sends is ever written in the clear: a marker in a page and in the
//! library is absent from every S3 object, SQS message and DynamoDB item of a run.

use docusnap_core::store::{Outcome, TaskStore};
use docusnap_core::task::TaskId;
use docusnap_core::TaskType;
use docusnap_tests::{base64, doc_content, Client, TestStack};
use serde_json::json;

const MARKER: &str = "PLAINTEXT-MARKER-7f3a9c";

#[tokio::test]
async fn no_plaintext_reaches_s3_sqs_or_dynamodb() {
    let t = TestStack::new().await;
    let client = Client::new("secretive");
    let page = format!("an image whose bytes say {MARKER}");
    let library = json!({"doc": [{"id": "1", "title": MARKER, "kv": {"note": MARKER}}]});
    let doc = client.upload("doc", &doc_content(&[page.as_bytes()], library.clone()));
    let fill =
        client.upload("fill", &json!({"to_process": {"title": MARKER, "fields": [MARKER]}, "file_lib": library}));
    for prepared in [&doc, &fill] {
        assert_eq!(t.process(&prepared.body).await.0, 202);
        t.process(&client.poll(prepared.body["type"].as_str().unwrap(), &prepared.sha256)).await;
    }
    let sealed = doc.key.seal_base64(json!({"title": MARKER}).to_string().as_bytes()).unwrap();
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, doc.sha256.clone());
    t.app
        .tasks
        .finish(&id, Outcome::Completed { result: sealed, extractor: docusnap_core::ExtractorKind::Rules })
        .await
        .unwrap();

    let needles = [MARKER.to_owned(), base64(page.as_bytes())];
    let mut written = Vec::new();
    for key in t.object_keys().await {
        let object = t.clients.s3.get_object().bucket(t.bucket()).key(&key).send().await.unwrap();
        written.push(String::from_utf8_lossy(&object.body.collect().await.unwrap().into_bytes()).into_owned());
        written.push(key);
    }
    for item in t.items().await {
        written.push(format!("{item:?}"));
    }
    let mut messages = 0;
    for resource in t.stack.resources.values() {
        let Some(url) = &resource.url else { continue };
        loop {
            let received =
                t.clients.sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
            if received.messages().is_empty() {
                break;
            }
            for message in received.messages() {
                messages += 1;
                written.push(message.body().unwrap_or_default().to_owned());
                let receipt = message.receipt_handle().unwrap();
                t.clients.sqs.delete_message().queue_url(url).receipt_handle(receipt).send().await.unwrap();
            }
        }
    }
    // The scan saw real data: two envelopes, two task items, and the OCR notifications.
    assert!(written.len() >= 6, "{written:?}");
    assert!(messages >= 2, "the S3 notifications should be on the OCR queue");
    for text in &written {
        for needle in &needles {
            assert!(!text.contains(needle.as_str()), "plaintext {needle:?} found in {text:.200}");
        }
    }
}
