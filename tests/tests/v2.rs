//! API v2 against moto: a task created with its pages declared, the pages PUT straight to
//! the bucket with their presigned URLs, each arrival counted from the bucket's
//! notification, the chain run, and the result read with the task's token and opened with
//! AES-GCM; then every refusal the issue names, each with its code.

use docusnap_core::v2::V2TaskId;
use docusnap_core::TaskType;
use docusnap_ocr::testing::{render_png, LATIN_FONT};
use docusnap_tests::{lambda_deadline, put_page, TestStack, V2Client};
use serde_json::{json, Value};

fn receipt() -> Vec<u8> {
    render_png(&["HARBOUR PRINTING SDN BHD", "Date: 14/02/2026", "TOTAL 80.00"], LATIN_FONT, 36.0)
}

/// A one-page doc task of the receipt, created: its client, id, sealed page and answer.
async fn receipt_task(t: &TestStack, extra: Value) -> (V2Client, String, Vec<u8>, docusnap_tests::V2Task) {
    let client = V2Client::new();
    let id = client.task_id(TaskType::Doc);
    let page = client.seal_page(&id, 0, &receipt());
    let task = t.created_v2(&client.create_body("doc", std::slice::from_ref(&page), extra)).await;
    (client, id, page, task)
}

async fn status(t: &TestStack, id: &str, token: &str) -> Value {
    let (code, answer) = t.v2_call("GET", id, Some(token)).await;
    assert_eq!(code, 200, "{answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doc_task_uploads_its_pages_to_s3_and_gets_a_sealed_result_with_provenance() {
    let t = TestStack::new().await;
    let (client, id, page, task) = receipt_task(&t, json!({})).await;
    assert_eq!(task.id, id, "the server derives the id the client did");
    assert!(task.token.len() >= 43, "a token of 256 bits");
    let upload = &task.answer["uploads"][0];
    assert_eq!(upload["method"], "PUT");
    assert!(upload["headers"]["x-amz-checksum-sha256"].is_string(), "{upload}");
    assert_eq!(status(&t, &id, &task.token).await["stage"], "uploading");

    assert_eq!(put_page(&task.answer, 0, page).await, 200);
    t.run_chain().await;
    let answer = status(&t, &id, &task.token).await;
    assert_eq!((&answer["status"], &answer["stage"]), (&json!("completed"), &json!("done")), "{answer}");
    assert_eq!(answer["pages"], json!({"expected": 1, "arrived": 1, "read": 1}));
    let result = client.open_result(&id, answer["result"].as_str().unwrap());
    assert_eq!(result["kv"]["Total"], "80.00", "{result}");
    assert_eq!(result["extractor"], "rules");
    let lines = result["pages"][0]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{result}");
    assert!(lines[2]["confidence"].as_f64().unwrap() > 0.5 && lines[2]["box"].as_array().unwrap().len() == 4);
    let total = &result["provenance"]["kv"]["Total"][0];
    assert_eq!((&total["page"], &total["line"]), (&json!(0), &json!(2)), "{result}");
    let date = &result["provenance"]["kv"]["Date"][0];
    assert_eq!(date["text"], "Date: 14/02/2026", "{result}");

    // The objects are gone with the task's end; DELETE removes the item too.
    let keys = t.object_keys().await;
    assert!(keys.iter().filter(|k| k.starts_with("tasks/")).all(|k| !k.contains(&id[4..])), "{keys:?}");
    assert!(keys.contains(&format!("callbacks/{id}.json")), "the end is marked for a callback");
    assert_eq!(t.v2_call("DELETE", &id, Some(&task.token)).await.0, 200);
    assert_eq!(t.v2_call("GET", &id, Some(&task.token)).await.0, 404);
}

/// A receipt photographed sideways (no EXIF tag) reads as it would upright: the result
/// says the page was turned a quarter clockwise, and its boxes stay in the photo's pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sideways_photo_is_read_upright_and_its_boxes_stay_in_its_pixels() {
    use docusnap_ocr::testing::{imageops::rotate270, render, ImageFormat};
    let t = TestStack::new().await;
    let upright = render(
        &["HARBOUR PRINTING SDN BHD", "Date: 14/02/2026", "Paper A4             52.00", "TOTAL                80.00"],
        LATIN_FONT,
        36.0,
    );
    // Turned a quarter counter-clockwise: the text's top faces the photo's left edge.
    let sideways = rotate270(&upright);
    let mut png = std::io::Cursor::new(Vec::new());
    sideways.write_to(&mut png, ImageFormat::Png).unwrap();
    let client = V2Client::new();
    let id = client.task_id(TaskType::Doc);
    let page = client.seal_page(&id, 0, png.get_ref());
    let task = t.created_v2(&client.create_body("doc", std::slice::from_ref(&page), json!({}))).await;
    assert_eq!(put_page(&task.answer, 0, page).await, 200);
    t.run_chain().await;
    let answer = status(&t, &id, &task.token).await;
    let result = client.open_result(&id, answer["result"].as_str().unwrap());
    assert_eq!((&result["kv"]["Total"], &result["kv"]["Date"]), (&json!("80.00"), &json!("Feb 14, 2026")), "{result}");
    assert_eq!(result["kv"]["Company"], "HARBOUR PRINTING SDN BHD", "{result}");
    let page = &result["pages"][0];
    assert_eq!((&page["rotation"], &page["width"]), (&json!(90), &json!(sideways.width())), "{page}");
    // Down the upright page is rightwards in the photo: the total's box lies right of the
    // company's, each within the photo.
    let centre_x = |key: &str| {
        let corners = result["provenance"]["kv"][key][0]["box"].as_array().unwrap().clone();
        let xs: Vec<f64> = corners.iter().map(|p| p[0].as_f64().unwrap()).collect();
        assert!(xs.iter().all(|&x| (0.0..=f64::from(sideways.width())).contains(&x)), "{key}: {corners:?}");
        xs.iter().sum::<f64>() / 4.0
    };
    assert!(centre_x("Total") > centre_x("Company") + 100.0, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_page_task_fans_out_and_completes_in_page_order() {
    let t = TestStack::new().await;
    let client = V2Client::new();
    let id = client.task_id(TaskType::Doc);
    let pages: Vec<Vec<u8>> = (0..30)
        .map(|i| client.seal_page(&id, i, &render_png(&[&format!("Item {} 1{:02}.00", i + 1, i)], LATIN_FONT, 28.0)))
        .collect();
    let task = t.created_v2(&client.create_body("doc", &pages, json!({}))).await;
    // Out of order, and one twice: the count is a set.
    for i in (0..30).rev().chain([7]) {
        assert_eq!(put_page(&task.answer, i, pages[i].clone()).await, 200);
    }
    t.run_chain().await;
    let answer = status(&t, &id, &task.token).await;
    assert_eq!(answer["status"], "completed", "{answer}");
    let result = client.open_result(&id, answer["result"].as_str().unwrap());
    let firsts: Vec<String> = result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lines"][0]["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(firsts.len(), 30);
    for (i, text) in firsts.iter().enumerate() {
        assert!(text.starts_with(&format!("Item {}", i + 1)), "page {i}: {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_swapped_between_tasks_or_sealed_under_another_key_is_refused() {
    let t = TestStack::new().await;
    let (a, b, c) = (V2Client::new(), V2Client::new(), V2Client::new());
    let (id_a, id_b, id_c) = (a.task_id(TaskType::Doc), b.task_id(TaskType::Doc), c.task_id(TaskType::Doc));
    // Task B declares task A's sealed page (so even S3's checksum lets it in): its
    // associated data names task A.
    let page_a = a.seal_page(&id_a, 0, &receipt());
    let task_b = t.created_v2(&b.create_body("doc", std::slice::from_ref(&page_a), json!({}))).await;
    assert_eq!(put_page(&task_b.answer, 0, page_a).await, 200);
    // Task C's page is sealed for C and its position, but under another key.
    let stranger = V2Client::new();
    let page_c = stranger.seal_page(&id_c, 0, &receipt());
    let task_c = t.created_v2(&c.create_body("doc", std::slice::from_ref(&page_c), json!({}))).await;
    assert_eq!(put_page(&task_c.answer, 0, page_c).await, 200);
    t.run_chain().await;
    for (id, token) in [(&id_b, &task_b.token), (&id_c, &task_c.token)] {
        let answer = status(&t, id, token).await;
        assert_eq!(answer["status"], "error", "{answer}");
        assert_eq!(answer["error"]["code"], "PAGE_AUTHENTICATION_FAILED", "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("associated data"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_a_reused_key_and_a_private_callback_are_refused() {
    let t = TestStack::new().await;
    let client = V2Client::new();
    let id = client.task_id(TaskType::Doc);
    let page = client.seal_page(&id, 0, &receipt());
    let body = client.create_body("doc", &[page], json!({}));
    let task = t.created_v2(&body).await;
    let (code, answer) = t.v2_call("GET", &id, Some("not-the-token")).await;
    assert_eq!((code, &answer["error"]["code"]), (401, &json!("UNAUTHORIZED")), "{answer}");
    assert_eq!(t.v2_call("GET", &id, None).await.0, 401);
    assert_eq!(t.v2_call("DELETE", &id, Some("not-the-token")).await.0, 401);
    let other = V2TaskId::for_key(TaskType::Doc, "AAAA").unwrap().to_string();
    assert_eq!(t.v2_call("GET", &other, Some(&task.token)).await.0, 404);
    assert_eq!(t.v2_call("GET", "doc_nope", Some(&task.token)).await.0, 404);

    let (code, answer) = t.create_v2(&body).await;
    assert_eq!((code, &answer["error"]["code"]), (409, &json!("KEY_ALREADY_USED")), "{answer}");

    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/hook",
        "http://hooks.example.com/",
        "https://[::ffff:192.168.0.1]/",
    ] {
        let fresh = V2Client::new();
        let fresh_id = fresh.task_id(TaskType::Doc);
        let body = fresh.create_body("doc", &[fresh.seal_page(&fresh_id, 0, b"x")], json!({"callback_url": url}));
        let (code, answer) = t.create_v2(&body).await;
        assert_eq!((code, &answer["error"]["code"]), (400, &json!("CALLBACK_URL_REFUSED")), "{url}: {answer}");
    }
    let bad_key = json!({"type": "doc", "key": "AAAA", "pages": [{"size": 100, "sha256": "ab".repeat(32)}]});
    assert_eq!(t.create_v2(&bad_key).await.1["error"]["code"], "RSA_DECRYPTION_FAILED");
    let (code, _) = t
        .create_v2(
            &json!({"type": "doc", "key": "k", "pages": vec![json!({"size": 100, "sha256": "ab".repeat(32)}); 51]}),
        )
        .await;
    assert_eq!(code, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_come_late_or_not_at_all_end_the_task_with_upload_expired() {
    let t = TestStack::new().await;
    // A page that lands after the deadline (S3 would refuse its expired URL; moto does not).
    let (_, late_id, page, late_task) = receipt_task(&t, json!({})).await;
    // One of two pages never comes.
    let partial = V2Client::new();
    let partial_id = partial.task_id(TaskType::Doc);
    let pages = [partial.seal_page(&partial_id, 0, &receipt()), partial.seal_page(&partial_id, 1, &receipt())];
    let partial_task = t.created_v2(&partial.create_body("doc", &pages, json!({}))).await;
    assert_eq!(put_page(&partial_task.answer, 0, pages[0].clone()).await, 200);
    t.run_chain().await;
    assert_eq!(status(&t, &partial_id, &partial_task.token).await["pages"]["arrived"], 1);

    // Past the window and its grace (5 minutes on 15).
    t.clock.advance(15 * 60 + 5 * 60 + 1);
    assert_eq!(put_page(&late_task.answer, 0, page).await, 200);
    t.run_chain().await;
    let answer = status(&t, &late_id, &late_task.token).await;
    assert_eq!(answer["error"]["code"], "UPLOAD_EXPIRED", "{answer}");
    // The deadline's message (delayed 15 minutes by SQS, so sent again here) ends the other.
    let ocr = t.ocr_function();
    let message = json!({"v2_task": partial_id, "event": "upload_deadline"}).to_string();
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![docusnap_tests::sqs_message("deadline", &message)];
    assert!(docusnap_ocr_fn::handle(&ocr, event).await.batch_item_failures.is_empty());
    let answer = status(&t, &partial_id, &partial_task.token).await;
    assert_eq!(answer["error"]["code"], "UPLOAD_EXPIRED", "{answer}");
    let keys = t.object_keys().await;
    assert!(
        keys.iter().filter(|k| k.starts_with("tasks/")).all(|k| !k.contains(&partial_id[4..])),
        "the ended task's pages are removed: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_size_than_declared_is_refused() {
    let t = TestStack::new().await;
    let (_, id, page, task) = receipt_task(&t, json!({})).await;
    // S3 refuses a body its signed length and checksum do not match; moto takes it.
    let mut longer = page;
    longer.extend_from_slice(b"more");
    let _ = put_page(&task.answer, 0, longer).await;
    t.run_chain().await;
    assert_eq!(status(&t, &id, &task.token).await["error"]["code"], "PAGE_MISMATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_task_starts_at_once_and_fills_from_its_sealed_library() {
    let t = TestStack::new().await;
    let client = V2Client::new();
    let id = client.task_id(TaskType::Fill);
    let form = json!({"title": "Visa application", "tags": ["form"], "description": "d", "kv": {"Form Type": "Visa"}, "related": [], "fields": ["Name"]});
    let library = json!({"doc": [{"id": "pp-7", "title": "Passport", "tags": ["identity"], "kv": {"Full Name (English/Latin)": "Ann Lee"}}]});
    let body = client.create_body(
        "fill",
        &[],
        json!({"form": client.seal_part(&id, "form", &form), "library": client.seal_part(&id, "library", &library)}),
    );
    let task = t.created_v2(&body).await;
    assert_eq!(task.answer["uploads"], json!([]));
    t.run_chain().await;
    let answer = status(&t, &id, &task.token).await;
    assert_eq!(answer["status"], "completed", "{answer}");
    let result = client.open_result(&id, answer["result"].as_str().unwrap());
    assert_eq!(result["Name"]["value"], "Ann Lee", "{result}");

    // A form sealed under another task's id does not open: refused at creation.
    let other = V2Client::new();
    let body = other.create_body("fill", &[], json!({"form": other.seal_part(&id, "form", &form)}));
    assert_eq!(t.create_v2(&body).await.1["error"]["code"], "AES_DECRYPTION_FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_is_signed_posted_and_retried_after_a_500() {
    let t = TestStack::new().await;
    let receiver = docusnap_tests::stub::Server::scripted(
        "/hook",
        vec![docusnap_tests::stub::Reply::json(500, json!({})), docusnap_tests::stub::Reply::json(200, json!({}))],
    )
    .await;
    let (_, id, page, task) = receipt_task(&t, json!({"callback_url": receiver.base})).await;
    let secret = task.answer["callback_secret"].as_str().expect("a callback secret").to_owned();
    assert_eq!(put_page(&task.answer, 0, page).await, 200);
    t.run_chain().await;

    let callbacks = t.callback_function();
    assert_eq!(status(&t, &id, &task.token).await["status"], "completed");
    // The bucket's own s3:TestEvent may come too (the function passes over it).
    let mut first = t.take_messages("CallbackQueue").await;
    first.records.retain(|r| r.body.as_deref().unwrap_or_default().contains(&id));
    assert_eq!(first.records.len(), 1, "one end marker");
    let failed = docusnap_callback_fn::handle(&callbacks, first.clone()).await;
    assert_eq!(failed.batch_item_failures.len(), 1, "a 500 is retried");
    // SQS delivers it again (after the backoff); this time the receiver takes it.
    let delivered = docusnap_callback_fn::handle(&callbacks, first).await;
    assert!(delivered.batch_item_failures.is_empty(), "{delivered:?}");

    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    let last = &seen[1];
    assert_eq!(last.body, json!({"task_id": id, "status": "completed"}), "no content, only the id and status");
    let signature = last.signature.as_deref().expect("signed");
    let timestamp: i64 = signature.strip_prefix("t=").and_then(|r| r.split(',').next()).unwrap().parse().unwrap();
    assert_eq!(signature, docusnap_core::v2::sign_callback(&secret, timestamp, &last.raw_body));
    assert_ne!(signature, docusnap_core::v2::sign_callback("another secret", timestamp, &last.raw_body));
    assert!(t.object_keys().await.iter().all(|k| !k.starts_with("callbacks/")), "the marker is removed once delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forty_page_pdf_and_a_photo_fan_out_over_their_pages_not_their_uploads() {
    use docusnap_core::ocr_output::TextOrigin;
    use docusnap_ocr::testing::pdf::{document, Page, Text};
    use docusnap_ocr::testing::render;
    let t = TestStack::new().await;
    let client = V2Client::new();
    let id = client.task_id(TaskType::Doc);
    // 40 pages: born-digital, but every tenth a scan.
    let headings: Vec<String> = (1..=40).map(|n| format!("Statement page {n}")).collect();
    let pdf_pages: Vec<Page> = headings
        .iter()
        .enumerate()
        .map(|(i, heading)| {
            if i % 10 == 9 {
                Page::scan(&render(&[heading.as_str()], LATIN_FONT, 36.0), 150.0)
            } else {
                Page::text(595.0, 842.0, vec![Text { x: 72.0, y: 770.0, size: 14.0, text: heading.as_str() }])
            }
        })
        .collect();
    let sealed = [client.seal_page(&id, 0, &receipt()), client.seal_page(&id, 1, &document(&pdf_pages))];
    let task = t.created_v2(&client.create_body("doc", &sealed, json!({}))).await;
    for (i, page) in sealed.iter().enumerate() {
        assert_eq!(put_page(&task.answer, i, page.clone()).await, 200);
    }
    // The page groups: 41 pages in groups of 4, each group fetching only its uploads.
    let ocr = t.ocr_function();
    let mut group_messages = 0;
    loop {
        let event = t.take_messages("OcrQueue").await;
        if event.records.is_empty() {
            break;
        }
        group_messages += event
            .records
            .iter()
            .filter(|r| r.body.as_deref().unwrap_or_default().contains("\"layout\":[1,40]"))
            .count();
        assert!(docusnap_ocr_fn::handle(&ocr, event).await.batch_item_failures.is_empty());
    }
    assert_eq!(group_messages, 11, "41 pages in groups of 4");
    t.run_chain().await;
    let answer = status(&t, &id, &task.token).await;
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(answer["pages"], json!({"expected": 2, "arrived": 2, "read": 41}), "two uploads, 41 pages read");
    let result = client.open_result(&id, answer["result"].as_str().unwrap());
    let pages = result["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 41);
    assert_eq!(pages[0]["lines"][0]["text"], "HARBOUR PRINTING SDN BHD");
    for (i, heading) in headings.iter().enumerate() {
        assert_eq!(pages[i + 1]["lines"][0]["text"], heading.as_str(), "page {}", i + 1);
        let origin = if i % 10 == 9 { TextOrigin::Ocr } else { TextOrigin::TextLayer };
        assert_eq!(pages[i + 1]["origin"], json!(origin));
    }
}

/// The LLM's tokens, from its answers' usage, are kept on the task and shown in its GET;
/// the extraction's metric counts them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_s_token_usage_is_counted_and_shown_on_the_task() {
    use docusnap_extract::llm::{HttpChatModel, LlmSettings, Provider};
    use docusnap_tests::stub::{Reply, Server};
    let t = TestStack::new().await;
    let (_, id, page, task) = receipt_task(&t, json!({})).await;
    assert_eq!(put_page(&task.answer, 0, page).await, 200);
    let answer = r#"{"title": "Harbour Printing receipt", "tags": ["receipt"], "description": "A receipt.",
        "kv": {"Company": "HARBOUR PRINTING SDN BHD", "Date": "14/02/2026", "Total": "80.00"}}"#;
    let usage = json!({"prompt_tokens": 1234, "completion_tokens": 87, "total_tokens": 1321});
    let server = Server::scripted("/v1", vec![Reply::chat_completion(answer, Some(usage))]).await;
    let model = HttpChatModel::new(LlmSettings::new(Provider::OpenAi, server.base.clone(), "qwen", None)).unwrap();
    let ocr = t.ocr_function();
    docusnap_ocr_fn::handle(&ocr, t.take_messages("OcrQueue").await).await;
    let counted = docusnap_core::metrics::capture();
    let extract = t.extract_function(Some(model));
    docusnap_extract_fn::handle(&extract, t.take_messages("ExtractQueue").await, lambda_deadline()).await;
    let answer = status(&t, &id, &task.token).await;
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(answer["extractor"], "llm:qwen (json-schema)");
    assert_eq!(answer["usage"], json!({"input_tokens": 1234, "output_tokens": 87}));
    let tokens: Vec<Value> = counted
        .lines()
        .into_iter()
        .filter(|l| l.get(docusnap_core::metrics::name::LLM_INPUT_TOKENS).is_some())
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0][docusnap_core::metrics::name::LLM_OUTPUT_TOKENS], 87.0);
}
