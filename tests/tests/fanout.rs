//! Fan-out of long tasks: a task of more pages than one invocation reads becomes one OCR
//! message per page group on the OCR queue; groups delivered out of order and twice still
//! join into one OCR output with every page in order, and make exactly one extraction.

use docusnap_core::config::DEFAULT_GROUP_PAGES;
use docusnap_core::intake::group_range;
use docusnap_core::metrics;
use docusnap_core::pipeline;
use docusnap_core::store::{BlobStore, TaskStore};
use docusnap_core::task::{GroupMessage, Stage, TaskId, TaskState};
use docusnap_core::TaskType;
use docusnap_ocr::testing::pdf::{document, Page, Text};
use docusnap_ocr::testing::{render, LATIN_FONT};
use docusnap_tests::{base64, lambda_deadline, Client, NoLlm, TestStack, START};
use serde_json::{json, Value};

const PAGES: usize = 10;

/// Pages 1-10, each saying its number; page 4 and page 9 are scans, the rest born-digital.
fn long_document() -> Vec<u8> {
    let pages: Vec<Page> = (1..=PAGES)
        .map(|n| {
            if n == 4 || n == 9 {
                Page::scan(&render(&[&format!("SCANNED PAGE {n}")], LATIN_FONT, 36.0), 150.0)
            } else {
                let text: &'static str = Box::leak(format!("Statement page {n} of {PAGES}").into_boxed_str());
                let mut lines = vec![Text { x: 72.0, y: 770.0, size: 12.0, text }];
                if n == PAGES {
                    lines.push(Text { x: 72.0, y: 740.0, size: 12.0, text: "TOTAL 1,024.00" });
                }
                Page::text(595.0, 842.0, lines)
            }
        })
        .collect();
    document(&pages)
}

#[test]
fn groups_are_consecutive_and_cover_every_page_once() {
    for total in 1..40 {
        for groups in 1..12u32 {
            let mut covered = Vec::new();
            for group in 0..groups {
                covered.extend(group_range(total, groups, group));
            }
            assert_eq!(covered, (0..total).collect::<Vec<_>>(), "{total} pages in {groups} groups");
        }
    }
    assert_eq!(group_range(10, 3, 0), 0..4);
    assert_eq!(group_range(10, 3, 2), 8..10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_reordered_groups_make_one_extraction() {
    let t = TestStack::new().await;
    let (ocr, extract) = (t.ocr_function(), t.extract_function::<NoLlm>(None));
    let client = Client::new("fan out");
    let upload = client.upload("doc", &json!({"to_process": [base64(&long_document())], "file_lib": {}}));
    assert_eq!(t.process(&upload.body).await.0, 202);
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());

    // The envelope's notification fans out: a message per group, nothing for extraction.
    let response = docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let groups = t.take_messages("OcrQueue").await;
    let expected_groups = PAGES.div_ceil(DEFAULT_GROUP_PAGES);
    assert_eq!(groups.records.len(), expected_groups);
    let mut parsed: Vec<GroupMessage> =
        groups.records.iter().map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap()).collect();
    parsed.sort_by_key(|m| m.group);
    assert_eq!(parsed.iter().map(|m| (m.group, m.groups)).collect::<Vec<_>>(), [(0, 3), (1, 3), (2, 3)]);
    assert!(t.take_messages("ExtractQueue").await.records.is_empty());
    let by_group = |g: u32| {
        groups.records.iter().find(|r| r.body.as_deref().unwrap().contains(&format!("\"group\":{g},"))).unwrap().clone()
    };
    let event = |records: Vec<_>| {
        let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
        event.records = records;
        event
    };

    // The last group first, then the first, then the last again: two of three read.
    for record in [by_group(2), by_group(0), by_group(2)] {
        let response = docusnap_ocr_fn::handle(&ocr, event(vec![record])).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let task = t.app.tasks.get(&id, START).await.unwrap().unwrap();
    assert_eq!(task.state.stage(), Some(Stage::Uploaded), "not read until every group is");
    assert!(t.take_messages("ExtractQueue").await.records.is_empty());

    // The middle group twice at once (two invocations): either or both see the set
    // complete and join the groups.
    let (first, second) = tokio::join!(
        docusnap_ocr_fn::handle(&ocr, event(vec![by_group(1)])),
        docusnap_ocr_fn::handle(&ocr, event(vec![by_group(1)]))
    );
    assert!(first.batch_item_failures.is_empty() && second.batch_item_failures.is_empty(), "{first:?} {second:?}");
    // A late duplicate after the task moved on changes nothing.
    docusnap_ocr_fn::handle(&ocr, event(vec![by_group(0)])).await;

    // One OCR output, every page in order, each page's origin as it was read.
    let sealed = t.app.blobs.get(&id.ocr_key()).await.unwrap().expect("ocr.bin");
    let (_, output) = pipeline::open_output(&docusnap_tests::server_key(), &id, &sealed).unwrap();
    assert_eq!(output.pages.len(), PAGES);
    for (i, page) in output.pages.iter().enumerate() {
        let text = page.text().to_uppercase().replace(' ', "");
        assert!(text.contains(&format!("PAGE{}", i + 1)), "page {} reads {:?}", i + 1, page.text());
    }

    // However many extract messages the joins sent, one extraction runs.
    let told = t.take_messages("ExtractQueue").await;
    assert!(!told.records.is_empty() && told.records.len() <= 2, "{}", told.records.len());
    let counted = metrics::capture();
    for record in told.records.clone() {
        docusnap_extract_fn::handle(&extract, event(vec![record]), lambda_deadline()).await;
    }
    docusnap_extract_fn::handle(&extract, told, lambda_deadline()).await;
    let extractions: Vec<Value> =
        counted.lines().into_iter().filter(|l| l.get(metrics::name::EXTRACTIONS).is_some()).collect();
    assert_eq!(extractions.len(), 1, "{extractions:?}");

    let (status, answer) = t.process(&client.poll("doc", &upload.sha256)).await;
    assert_eq!((status, &answer["status"]), (200, &json!("completed")), "{answer}");
    let result: Value =
        serde_json::from_slice(&upload.key.open_base64(answer["result"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(result["kv"]["Total"], "1,024.00", "the last page's total: {result}");
    let task = t.app.tasks.get(&id, START).await.unwrap().unwrap();
    assert!(matches!(task.state, TaskState::Completed { .. }));
    // The groups' objects went with the task's.
    assert!(t.object_keys().await.iter().all(|k| !k.starts_with(&id.object_prefix())), "{:?}", t.object_keys().await);
}

/// A group whose runs never finish (its last receive) ends the task with OCR_FAILURE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_group_ends_its_task() {
    let t = TestStack::new().await;
    let ocr = t.ocr_function();
    let client = Client::new("fan out poison");
    let upload = client.upload("doc", &json!({"to_process": [base64(&long_document())], "file_lib": {}}));
    t.process(&upload.body).await;
    docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    let mut groups = t.take_messages("OcrQueue").await;
    assert_eq!(groups.records.len(), 3);
    groups.records.truncate(1);
    groups.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), docusnap_core::config::DEFAULT_MAX_RECEIVES.to_string());
    let response = docusnap_ocr_fn::handle(&ocr, groups).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let (status, answer) = t.process(&client.poll("doc", &upload.sha256)).await;
    assert_eq!((status, &answer), (400, &json!({"status": "error", "error_detail": "OCR_FAILURE"})));
    let id = TaskId::new(docusnap_tests::client_id(&client.id), TaskType::Doc, upload.sha256.clone());
    assert!(t.object_keys().await.iter().all(|k| !k.starts_with(&id.object_prefix())), "{:?}", t.object_keys().await);
}
