//! PDFs through the chain: a v1 client's PDF and one dropped under `batch/` each come back
//! as one result built from all their pages (a born-digital page read from its text
//! layer, a scanned page OCRed); a PDF that cannot be read, and a HEIC photo, end with
//! OCR_FAILURE, never a hung task.

use std::sync::Arc;

use docusnap_core::ocr_output::TextOrigin;
use docusnap_core::pipeline;
use docusnap_core::store::BlobStore;
use docusnap_core::task::TaskId;
use docusnap_core::TaskType;
use docusnap_ocr::testing::pdf::{document, document_with, Options, Page, Text};
use docusnap_ocr::testing::{render, LATIN_FONT};
use docusnap_tests::{base64, event_runner, invoke_endpoint, lambda_deadline, mapping, Client, NoLlm, TestStack};
use serde_json::{json, Value};

/// Page 1 born-digital (letterhead and date), page 2 a scan (the total).
fn two_page_invoice() -> Vec<u8> {
    let letter = Page::text(
        595.0,
        842.0,
        vec![
            Text { x: 72.0, y: 770.0, size: 16.0, text: "HARBOUR PRINTING SDN BHD" },
            Text { x: 72.0, y: 745.0, size: 11.0, text: "Invoice No: HP-8812" },
            Text { x: 72.0, y: 728.0, size: 11.0, text: "Date: 14/02/2026" },
        ],
    );
    let scan = Page::scan(&render(&["Binding 2 x 40.00", "TOTAL 80.00"], LATIN_FONT, 36.0), 150.0);
    document(&[letter, scan])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_pdf_gives_one_result_from_all_its_pages() {
    let t = TestStack::new().await;
    let (ocr, extract) = (t.ocr_function(), t.extract_function::<NoLlm>(None));
    let client = Client::new("pdf client");
    let upload = client.upload("doc", &json!({"to_process": [base64(&two_page_invoice())], "file_lib": {}}));
    assert_eq!(t.process(&upload.body).await.0, 202);
    let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    // The OCR output: two pages, the first from the text layer, the second OCRed.
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());
    let sealed = t.app.blobs.get(&id.ocr_key()).await.unwrap().expect("ocr.bin");
    let (_, output) = pipeline::open_output(&docusnap_tests::server_key(), &id, &sealed).unwrap();
    let origins: Vec<TextOrigin> = output.pages.iter().map(|p| p.origin).collect();
    assert_eq!(origins, [TextOrigin::TextLayer, TextOrigin::Ocr]);
    assert_eq!(output.pages[0].lines[0].text, "HARBOUR PRINTING SDN BHD");

    docusnap_extract_fn::handle(&extract, t.take_messages("ExtractQueue").await, lambda_deadline()).await;
    let (status, answer) = t.process(&client.poll("doc", &upload.sha256)).await;
    assert_eq!((status, &answer["status"]), (200, &json!("completed")), "{answer}");
    let result: Value =
        serde_json::from_slice(&upload.key.open_base64(answer["result"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(result["kv"]["Date"], "Feb 14, 2026", "{result}");
    assert_eq!(result["kv"]["Total"], "80.00", "{result}");
    assert_eq!(result["title"], "HARBOUR PRINTING SDN BHD", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_pdf_or_a_heic_photo_ends_with_ocr_failure() {
    let t = TestStack::new().await;
    let ocr = t.ocr_function();
    let encrypted = document_with(
        &[Page::text(595.0, 842.0, vec![Text { x: 72.0, y: 770.0, size: 12.0, text: "SECRET CONTENTS HERE" }])],
        &Options { encrypted: true, ..Options::default() },
    );
    let truncated = two_page_invoice()[..2000].to_vec();
    let mut heic = vec![0, 0, 0, 24];
    heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    heic.extend_from_slice(&[0; 64]);
    let mut uploads = Vec::new();
    for (name, item) in [("encrypted", encrypted), ("truncated", truncated), ("heic", heic)] {
        let client = Client::new(format!("pdf {name}"));
        let upload = client.upload("doc", &json!({"to_process": [base64(&item)], "file_lib": {}}));
        assert_eq!(t.process(&upload.body).await.0, 202, "{name}");
        uploads.push((name, client, upload));
    }
    let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    assert!(response.batch_item_failures.is_empty(), "a bad item is the task's end, not a retry: {response:?}");
    for (name, client, upload) in uploads {
        let (status, answer) = t.process(&client.poll("doc", &upload.sha256)).await;
        assert_eq!((status, &answer), (400, &json!({"status": "error", "error_detail": "OCR_FAILURE"})), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_dropped_under_batch_comes_back_as_one_result() {
    let t = Arc::new(TestStack::new().await);
    let server = invoke_endpoint(&t).await;
    let runner = event_runner(&t, &server);
    let put = |key: &'static str, body: Vec<u8>| {
        let t = t.clone();
        async move { t.clients.s3.put_object().bucket(t.bucket()).key(key).body(body.into()).send().await.expect("put") }
    };
    put("batch/invoice.pdf", two_page_invoice()).await;
    let (ocr, extract) = (mapping("OcrQueue"), mapping("ExtractQueue"));
    let mut result = None;
    for _ in 0..30 {
        let moved = runner.poll(&t.stack, &ocr).await.unwrap().received
            + runner.poll(&t.stack, &extract).await.unwrap().received;
        result = match t.clients.s3.get_object().bucket(t.bucket()).key("batch/invoice.result.json").send().await {
            Ok(object) => serde_json::from_slice::<Value>(&object.body.collect().await.unwrap().into_bytes()).ok(),
            Err(_) => None,
        };
        if result.is_some() && moved == 0 {
            break;
        }
    }
    let result = result.expect("batch/invoice.result.json");
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result"]["kv"]["Date"], "Feb 14, 2026", "{result}");
    assert_eq!(result["result"]["kv"]["Total"], "80.00", "{result}");
}
