//! Several documents in one upload, through the chain against moto: an invoice and two
//! receipts in one PDF through v1, and as three photos through v2. The boundaries come
//! from the pages; each document keeps its own date and total; v1's one kv keeps every
//! page's total; a fill draws on every document of the result it is given.

use docusnap_ocr::testing::pdf::{document, Page, Text};
use docusnap_ocr::testing::{render, render_png, LATIN_FONT};
use docusnap_tests::{base64, put_page, Client, TestStack, V2Client};
use serde_json::{json, Value};

const INVOICE: [&str; 5] =
    ["HARBOUR PRINTING SDN BHD", "Invoice No: HP-8812", "Date: 14/02/2026", "Binding 2 x 40.00", "TOTAL 80.00"];
const RECEIPT_B: [&str; 4] = ["KEDAI MAJU ENTERPRISE", "Date: 03/03/2026", "Teh tarik 2.50", "TOTAL 18.90"];
const RECEIPT_C: [&str; 4] = ["CORNER BAKERY SDN BHD", "Tel: 03-7781 2345", "Date: 05/03/2026", "Total 4.80"];

/// What each document must read as: its pages, date and total.
const EXPECTED: [(usize, &str, &str); 3] =
    [(0, "Feb 14, 2026", "80.00"), (1, "Mar 03, 2026", "18.90"), (2, "Mar 05, 2026", "4.80")];

/// The invoice born-digital, the receipts scanned: one PDF, three documents.
fn expense_report() -> Vec<u8> {
    let invoice = Page::text(
        595.0,
        842.0,
        INVOICE
            .iter()
            .enumerate()
            .map(|(i, text)| Text { x: 72.0, y: 770.0 - 20.0 * i as f32, size: 12.0, text })
            .collect(),
    );
    let scan = |lines: &[&str]| Page::scan(&render(lines, LATIN_FONT, 36.0), 150.0);
    document(&[invoice, scan(&RECEIPT_B), scan(&RECEIPT_C)])
}

/// A v1 task's opened result.
async fn v1_result(t: &TestStack, client: &Client, kind: &str, upload: &docusnap_tests::Prepared) -> Value {
    let (status, answer) = t.process(&client.poll(kind, &upload.sha256)).await;
    assert_eq!((status, &answer["status"]), (200, &json!("completed")), "{answer}");
    serde_json::from_slice(&upload.key.open_base64(answer["result"].as_str().unwrap()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_keeps_every_documents_total_and_a_fill_draws_on_all_of_them() {
    let t = TestStack::new().await;
    let client = Client::new("expenses");
    let upload = client.upload("doc", &json!({"to_process": [base64(&expense_report())], "file_lib": {}}));
    assert_eq!(t.process(&upload.body).await.0, 202);
    t.run_chain().await;
    let result = v1_result(&t, &client, "doc", &upload).await;
    let kv = &result["kv"];
    assert_eq!((&kv["Total"], &kv["Date"]), (&json!("80.00"), &json!("Feb 14, 2026")), "{result}");
    assert_eq!((&kv["Total (Page 2)"], &kv["Date (Page 2)"]), (&json!("18.90"), &json!("Mar 03, 2026")), "{result}");
    assert_eq!((&kv["Total (Page 3)"], &kv["Date (Page 3)"]), (&json!("4.80"), &json!("Mar 05, 2026")), "{result}");
    assert_eq!(kv["Invoice No"], "HP-8812", "{result}");
    assert_eq!(result["title"], "HARBOUR PRINTING SDN BHD and 2 more documents", "{result}");
    // No receipt's closing rows became a table's items.
    assert!(kv.as_object().unwrap().keys().all(|k| !k.contains(".1")), "{result}");

    // The result as a library entry: the form's fields come from the first and the last document.
    let library = json!({"doc": [{"id": "expenses-1", "title": result["title"], "kv": result["kv"]}], "form": []});
    let form = json!({"title": "Claim form", "tags": ["form"], "description": "", "related": [],
        "kv": {"Form Type": "Expense claim"}, "fields": ["Invoice No", "Tel"]});
    let fill = client.upload("fill", &json!({"to_process": form, "file_lib": library}));
    assert_eq!(t.process(&fill.body).await.0, 202);
    t.run_chain().await;
    let filled = v1_result(&t, &client, "fill", &fill).await;
    assert_eq!(filled["Invoice No"]["value"], "HP-8812", "{filled}");
    assert_eq!(filled["Tel"]["value"], "03-7781 2345", "{filled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_lists_each_photo_as_its_own_document_with_its_date_and_total() {
    let t = TestStack::new().await;
    let client = V2Client::new();
    let id = client.task_id(docusnap_core::TaskType::Doc);
    let photos = [&INVOICE[..], &RECEIPT_B[..], &RECEIPT_C[..]].map(|lines| render_png(lines, LATIN_FONT, 36.0));
    let sealed: Vec<Vec<u8>> = photos.iter().enumerate().map(|(i, p)| client.seal_page(&id, i, p)).collect();
    let task = t.created_v2(&client.create_body("doc", &sealed, json!({}))).await;
    for (i, page) in sealed.iter().enumerate() {
        assert_eq!(put_page(&task.answer, i, page.clone()).await, 200);
    }
    t.run_chain().await;
    let (code, answer) = t.v2_call("GET", &id, Some(&task.token)).await;
    assert_eq!((code, &answer["status"]), (200, &json!("completed")), "{answer}");
    let result = client.open_result(&id, answer["result"].as_str().unwrap());
    let documents = result["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 3, "{result}");
    for (document, (page, date, total)) in documents.iter().zip(EXPECTED) {
        assert_eq!(document["pages"], json!([page]), "{document}");
        assert_eq!((&document["kv"]["Date"], &document["kv"]["Total"]), (&json!(date), &json!(total)), "{document}");
        let source = &document["provenance"]["kv"]["Total"][0];
        assert_eq!(source["page"], page, "a document's sources are on its own pages: {document}");
        assert_eq!(document["unverified"], json!([]), "the rules read every value from the page");
    }
    assert_eq!(documents[2]["title"], "CORNER BAKERY SDN BHD");
    assert_eq!(result["kv"]["Total (Page 3)"], "4.80", "the merged result, as v1 has it");
}
