//! Batch ingestion: images dropped under `batch/` go through the same pipeline, fed by the
//! local event runner, and their results land as JSON beside them and in the table.

use std::sync::Arc;

use docusnap_core::config::FastPrefixes;
use docusnap_core::ocr_output::TextOrigin;
use docusnap_core::pipeline::open_output;
use docusnap_core::task::TaskId;
use docusnap_core::TaskType;
use docusnap_ocr::testing::{render_png, LATIN_FONT};
use docusnap_tests::{event_runner, invoke_endpoint, mapping, server_key, TestStack};
use serde_json::Value;

async fn put(t: &TestStack, key: &str, body: Vec<u8>) {
    t.clients.s3.put_object().bucket(t.bucket()).key(key).body(body.into()).send().await.expect("put");
}

async fn read_json(t: &TestStack, key: &str) -> Option<Value> {
    let object = t.clients.s3.get_object().bucket(t.bucket()).key(key).send().await.ok()?;
    serde_json::from_slice(&object.body.collect().await.ok()?.into_bytes()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_dropped_under_batch_come_back_as_results_beside_them() {
    let t = Arc::new(TestStack::new().await);
    let server = invoke_endpoint(&t).await;
    let runner = event_runner(&t, &server);
    put(&t, "batch/receipt.png", render_png(&["KEDAI MAJU", "Date: 02/01/2026", "TOTAL 7.10"], LATIN_FONT, 32.0)).await;
    put(&t, "batch/trip/1.png", render_png(&["HOTEL BAYU", "Date: 03/01/2026"], LATIN_FONT, 32.0)).await;
    put(&t, "batch/trip/2.png", render_png(&["Room 2 nights", "TOTAL 240.00"], LATIN_FONT, 32.0)).await;
    put(&t, "batch/notes.txt", b"not an image".to_vec()).await;

    let (ocr, extract) = (mapping("OcrQueue"), mapping("ExtractQueue"));
    let (mut single, mut folder) = (None, None);
    for _ in 0..30 {
        let read = runner.poll(&t.stack, &ocr).await.unwrap().received;
        let extracted = runner.poll(&t.stack, &extract).await.unwrap().received;
        single = read_json(&t, "batch/receipt.result.json").await;
        folder = read_json(&t, "batch/trip/result.json").await;
        if single.is_some() && folder.is_some() && read + extracted == 0 {
            break;
        }
    }
    let single = single.expect("batch/receipt.result.json");
    assert_eq!(single["status"], "completed", "{single}");
    assert_eq!(single["result"]["kv"]["Total"], "7.10");
    assert_eq!(single["result"]["kv"]["Date"], "Jan 02, 2026");
    assert_eq!(single["extractor"], "rules");
    // A folder is one document: both pages in one result.
    let folder = folder.expect("batch/trip/result.json");
    assert_eq!(folder["result"]["kv"]["Date"], "Jan 03, 2026", "{folder}");
    assert_eq!(folder["result"]["kv"]["Total"], "240.00");

    // In the table too, under the batch namespace, unsealed (no client holds a key).
    let items = t.items().await;
    let clients: Vec<&str> = items.iter().filter_map(|i| i["client_id"].as_s().ok()).map(String::as_str).collect();
    assert!(clients.contains(&"batch:batch/receipt.png") && clients.contains(&"batch:batch/trip/"), "{clients:?}");
    assert_eq!(items.len(), 2, "one task per document, not one per page: {clients:?}");
    let stored = items.iter().find(|i| i["client_id"].as_s().unwrap() == "batch:batch/receipt.png").unwrap();
    let result: Value = serde_json::from_str(stored["result"].as_s().unwrap()).unwrap();
    assert_eq!(result["kv"]["Total"], "7.10");

    // A v1 client cannot read or clear batch tasks.
    let poll =
        serde_json::json!({"client_id": "batch:batch/receipt.png", "type": "doc", "SHA256": "x", "has_content": false});
    assert_eq!(t.process(&poll).await, (400, serde_json::json!({"status": "error", "error_detail": "INVALID_FIELD"})));
}

/// A batch document over a limit is refused from the bucket's listing, before a page is
/// loaded: its result file says which limit, and no task is made.
#[tokio::test]
async fn a_batch_document_over_a_limit_gets_an_error_result_and_no_task() {
    let t = TestStack::new().await;
    let mut ocr = t.ocr_function();
    ocr.limits.max_pages = 2;
    ocr.limits.max_image_bytes = 10_000;
    for i in 1..=3 {
        put(&t, &format!("batch/long/{i}.png"), render_png(&["page"], LATIN_FONT, 20.0)).await;
    }
    put(&t, "batch/big.png", vec![0u8; 10_001]).await;
    let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let long = read_json(&t, "batch/long/result.json").await.expect("a result for the folder");
    assert_eq!(long, serde_json::json!({"status": "error", "error_detail": "TOO_MANY_PAGES"}));
    let big = read_json(&t, "batch/big.result.json").await.expect("a result for the image");
    assert_eq!(big, serde_json::json!({"status": "error", "error_detail": "IMAGE_TOO_LARGE"}));
    assert!(t.items().await.is_empty(), "no task was made");
}

/// A document under one of `DOCUSNAP_BATCH_FAST_PREFIXES` is read in the fast mode, and
/// its OCR output's pages say so (`ocr_fast`); one beside it, outside the prefix, is read
/// accurately. Both read their text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_under_a_fast_prefix_are_read_in_the_fast_mode() {
    let t = TestStack::new().await;
    let mut ocr = t.ocr_function();
    ocr.fast_prefixes = FastPrefixes::parse("batch/archive/").unwrap();
    let receipt = ["KEDAI MAJU", "Date: 02/01/2026", "TOTAL 7.10"];
    put(&t, "batch/archive/2019/receipt.png", render_png(&receipt, LATIN_FONT, 32.0)).await;
    put(&t, "batch/receipt.png", render_png(&receipt, LATIN_FONT, 32.0)).await;
    // The pages' notifications make the tasks; the tasks' envelopes' notifications read them.
    for _ in 0..2 {
        let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let mut origins = std::collections::BTreeMap::new();
    for item in t.items().await {
        let client = docusnap_core::ClientId::stored(item["client_id"].as_s().unwrap()).unwrap();
        let sha256 = item["task_key"].as_s().unwrap().strip_prefix("doc#").unwrap().to_owned();
        let id = TaskId::new(client.clone(), TaskType::Doc, sha256);
        let object = t.clients.s3.get_object().bucket(t.bucket()).key(id.ocr_key()).send().await.expect("read");
        let sealed = object.body.collect().await.unwrap().into_bytes();
        let (_, output) = open_output(&server_key(), &id, &sealed).unwrap();
        let text: String = output.text().chars().filter(|c| !c.is_whitespace()).collect();
        assert!(text.contains("TOTAL7.10") && text.contains("KEDAIMAJU"), "{text}");
        origins.insert(client.as_str().to_owned(), output.pages.iter().map(|p| p.origin).collect::<Vec<_>>());
    }
    let expected = [
        ("batch:batch/archive/2019/".to_owned(), vec![TextOrigin::OcrFast]),
        ("batch:batch/receipt.png".to_owned(), vec![TextOrigin::Ocr]),
    ];
    assert_eq!(origins, expected.into_iter().collect());
}
