//! Hostile input, generated: everything that parses what outsiders send (the v1 request
//! and v2 parsers, the envelope and OCR-output openers, the image decoder, the batch key parser,
//! the LLM answer parser) must answer any input with a value or a typed error: no panic,
//! and memory bounded. Property-based (proptest, stable Rust): random inputs, and valid
//! inputs mutated byte by byte, truncated, or given absurd image dimensions.
//!
//! The test command runs `DOCUSNAP_FUZZ_CASES` cases per target (default 2,000); the long
//! run is `scripts/fuzz` (100,000 by default). Each target prints how many cases it ran.

use std::sync::OnceLock;

use docusnap_core::config::Limits;
use docusnap_core::crypto::{AesKey, ClientWrap, ServerKey};
use docusnap_core::protocol::{ClearRequest, Envelope, Library, LibraryItem, ProcessRequest, TaskContent};
use docusnap_core::{ClientId, TaskId, TaskType};
use docusnap_ocr::testing::{png_with_size, render_as, ImageFormat, LATIN_FONT};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// Cases per target: a short run in the test command, a long one from scripts/fuzz.
fn cases() -> u32 {
    std::env::var("DOCUSNAP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

/// Runs `check` on `cases()` inputs of `strategy`; a panic inside it is a failure that
/// proptest shrinks to a small input and reports.
fn fuzz<S: Strategy>(target: &str, strategy: S, check: impl Fn(S::Value)) {
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    runner
        .run(&strategy, |input| {
            check(input);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    println!("fuzz {target}: {} cases, 0 panics", cases());
}

/// `seed` with a few bytes changed, and maybe cut short.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len().max(1);
    (prop::collection::vec((0..len, any::<u8>()), 0..8), 0..=len, any::<bool>()).prop_map(
        move |(edits, cut, truncate)| {
            let mut bytes = seed.clone();
            for (at, value) in edits {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte = value;
                }
            }
            if truncate {
                bytes.truncate(cut);
            }
            bytes
        },
    )
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_0-9]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object over the protocol's own field names, with values of any type.
/// A JSON object with v2's field names and values of any kind.
fn v2_object() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec!["type", "key", "pages", "size", "sha256", "library", "form", "callback_url"]);
    prop::collection::btree_map(names, json_value(), 0..8).prop_map(|m| serde_json::to_vec(&m).unwrap())
}

fn protocol_object() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "client_id",
        "type",
        "SHA256",
        "has_content",
        "content",
        "aes_key",
        "to_process",
        "file_lib",
        "doc",
        "form",
        "id",
        "kv",
    ]);
    prop::collection::btree_map(names, json_value(), 0..8).prop_map(|m| serde_json::to_vec(&m).unwrap())
}

fn server() -> &'static ServerKey {
    static KEY: OnceLock<ServerKey> = OnceLock::new();
    KEY.get_or_init(docusnap_tests::server_key)
}

#[test]
fn the_v1_request_parsers_answer_every_input() {
    let valid = json!({"client_id": "c", "type": "doc", "SHA256": "ab", "has_content": true, "content": "Zm9v", "aes_key": "a2V5"});
    let inputs = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        mutated(serde_json::to_vec(&valid).unwrap()),
        protocol_object(),
    ];
    let limits = Limits { max_pages: 3, max_image_bytes: 1024, ..Limits::default() };
    fuzz("v1 request parsers", inputs, |body| {
        let _ = ProcessRequest::parse(&body);
        let _ = ClearRequest::parse(&body);
        for task_type in TaskType::ALL {
            let _ = TaskContent::parse(task_type, &body, &limits);
        }
    });
}

/// v2's outside inputs: a create request, a task id from a path, a bearer token, a page
/// key from a notification, a sealed page or part, an S3 event time, a callback URL.
#[test]
fn the_v2_parsers_answer_every_input() {
    use docusnap_core::v2::{self, CallbackPolicy, CreateRequest, Part, V2TaskId};
    let key = AesKey::generate().unwrap();
    let id = V2TaskId::for_key(TaskType::Fill, "a2V5").unwrap();
    let form = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        key.seal_gcm(b"{\"a\": 1}", &id.part_aad(Part::Form)).unwrap(),
    );
    let valid =
        json!({"type": "fill", "key": "a2V5", "form": form, "pages": [], "callback_url": "https://example.com/h"});
    let inputs = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        mutated(serde_json::to_vec(&valid).unwrap()),
        v2_object(),
    ];
    let stored = v2::token_digest("token");
    fuzz("v2 parsers", inputs, |bytes| {
        let _ = CreateRequest::parse(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = V2TaskId::parse(&text);
        let _ = V2TaskId::of_page_key(&text);
        let _ = V2TaskId::of_callback_key(&text);
        let _ = V2TaskId::for_key(TaskType::Doc, &text);
        let _ = v2::token_matches(&stored, &text);
        let _ = CallbackPolicy::default().check_url(&text);
        let _ = docusnap_core::s3_event::parse_event_time(&text);
        let _ = key.open_gcm(bytes.clone(), &id.page_aad(0));
        let _ = v2::open_object(&key, &id, Part::Form, &text);
    });
}

#[test]
fn the_envelope_and_output_openers_answer_every_input() {
    let key = AesKey::generate().unwrap();
    let content = key
        .seal_base64(json!({"to_process": ["aGk="], "file_lib": {"doc": [{"id": 1}]}}).to_string().as_bytes())
        .unwrap();
    let wrapped = ClientWrap::from_public_pem(server().public_key_pem()).unwrap().wrap(key.as_bytes()).unwrap();
    let id = TaskId::new(
        ClientId::parse("c").unwrap(),
        TaskType::Doc,
        docusnap_core::crypto::sha256_hex(content.as_bytes()),
    );
    let envelope = Envelope::new(&id, wrapped, content).to_json();
    let open_stored = |bytes: &[u8]| {
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(|_| ())?;
        docusnap_core::pipeline::open_envelope(server(), &envelope, &Limits::default()).map_err(|_| ())
    };
    assert!(open_stored(&envelope).is_ok(), "the seed opens");
    let inputs = prop_oneof![prop::collection::vec(any::<u8>(), 0..1024), mutated(envelope), protocol_object()];
    fuzz("envelope and OCR-output openers", inputs, |bytes| {
        let _ = open_stored(&bytes);
        let _ = docusnap_core::pipeline::open_output(server(), &id, &bytes);
        let _ = docusnap_core::ocr_output::OcrOutput::from_json(&bytes);
    });
}

/// The process's peak resident memory, from Linux's own count.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn the_image_decoder_answers_every_input_within_bounded_memory() {
    let seeds: Vec<Vec<u8>> =
        [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Tiff, ImageFormat::WebP, ImageFormat::Bmp]
            .into_iter()
            .map(|format| render_as(&["TOTAL 12.50"], LATIN_FONT, 24.0, format))
            .collect();
    let png = seeds[0].clone();
    let inputs = prop_oneof![
        prop::sample::select(seeds).prop_flat_map(mutated),
        // Huge and odd dimensions over a tiny body: refused from the header, or a short
        // read of the body; never the pixels' allocation above the limits.
        (prop_oneof![0u32..2048, any::<u32>()], prop_oneof![0u32..2048, any::<u32>()])
            .prop_map(move |(w, h)| png_with_size(&png, w, h)),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    fuzz("image decoder and input stage", inputs, |bytes| {
        if let Ok(pages) = docusnap_ocr::input::split(bytes) {
            for page in pages {
                if let docusnap_ocr::PageInput::Image(bytes) = page {
                    let _ = docusnap_ocr::decode::decode(&bytes);
                }
            }
        }
    });
    // The decoder's own allocation cap (512 MiB) plus the test's images and runtime.
    let peak = peak_rss_bytes();
    println!("fuzz image decoder: peak RSS {} MiB", peak / (1 << 20));
    assert!(peak < 1 << 30, "peak RSS {peak} bytes");
}

/// PDFs and multi-page TIFFs, mutated: split, then every page rendered or decoded as the
/// engine would before reading it. PDFium runs in this process, so a crash in it fails the
/// test as a panic would. A quarter of the cases: each one loads PDFium's parser.
#[test]
fn the_pdf_and_tiff_input_answers_every_input_within_bounded_memory() {
    use docusnap_ocr::pdf::PdfPage;
    use docusnap_ocr::testing::pdf::{document, Page, Text};
    let scan = docusnap_ocr::testing::render(&["TOTAL 9.90"], LATIN_FONT, 20.0);
    let pdf = document(&[
        Page::text(200.0, 120.0, vec![Text { x: 10.0, y: 90.0, size: 10.0, text: "Invoice INV-1 Date 2026-01-02" }]),
        Page::scan(&scan, 200.0),
    ]);
    let tiff = docusnap_ocr::testing::multipage_tiff(&[scan.clone(), scan]);
    let inputs = prop_oneof![mutated(pdf), mutated(tiff)];
    let config = Config { cases: (cases() / 4).max(1), failure_persistence: None, ..Config::default() };
    TestRunner::new(config)
        .run(&inputs, |bytes| {
            if let Ok(pages) = docusnap_ocr::input::split(bytes) {
                for page in pages {
                    match page {
                        docusnap_ocr::PageInput::Image(bytes) => drop(docusnap_ocr::decode::decode(&bytes)),
                        docusnap_ocr::PageInput::TiffFrame { file, index } => {
                            drop(docusnap_ocr::decode::decode_tiff_frame(&file, index))
                        }
                        docusnap_ocr::PageInput::Pdf(PdfPage::Scan { document, index }) => {
                            drop(docusnap_ocr::pdf::render(&document, index))
                        }
                        docusnap_ocr::PageInput::Pdf(PdfPage::Text(_)) => {}
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("PDF and TIFF input: {e}"));
    println!("fuzz PDF and TIFF input: {} cases, 0 panics", (cases() / 4).max(1));
    let peak = peak_rss_bytes();
    println!("fuzz PDF and TIFF input: peak RSS {} MiB", peak / (1 << 20));
    assert!(peak < 1 << 30, "peak RSS {peak} bytes");
}

#[test]
fn the_batch_key_parser_answers_every_key() {
    let keys = prop_oneof![".{0,60}", "batch/[a-zA-Z0-9 ./_-]{0,40}", "tasks/[a-f0-9/]{0,80}(envelope\\.json)?"];
    fuzz("batch and envelope key parsers", keys, |key: String| {
        if let Some(document) = docusnap_core::batch::BatchDocument::of_object(&key) {
            assert!(document.has_page(&key) || key.ends_with('/'), "{key}: its own page");
            let id = TaskId::new(document.client_id(), TaskType::Doc, "ab");
            let result = docusnap_core::batch::result_key(&id).expect("a batch task has a result key");
            assert!(
                docusnap_core::batch::BatchDocument::of_object(&result).is_none(),
                "{result} would start a document"
            );
        }
        let _ = TaskId::is_envelope_key(&key);
    });
}

#[test]
fn the_llm_answer_parser_answers_every_answer() {
    let good = r#"<think>{"draft": 1}</think>```json
{"title": "Receipt", "tags": ["receipt"], "description": "d", "kv": {"Total": "9.50", "Form Type": "x"}, "fields": ["Name"], "related": [{"type": "doc", "resource_id": "r-1"}], "Name": {"value": "A", "source": {"type": "doc", "resource_id": "r-1"}}}
```"#;
    let library = Library { doc: vec![LibraryItem { id: "r-1".into(), ..Default::default() }], form: vec![] };
    // The page holds one of the answer's values, so a form answer's values are both kept
    // and dropped as guesses.
    let lines = [docusnap_extract::layout::Line::new("TOTAL 9.50", 0, [0.0, 0.0, 200.0, 20.0])];
    let page = docusnap_extract::provenance::PageLines::new(&lines);
    let answers = prop_oneof![
        ".{0,200}",
        mutated(good.as_bytes().to_vec()).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        json_value().prop_map(|v| format!("Sure: {v}")),
    ];
    fuzz("LLM answer parser", answers, |answer: String| {
        if let Ok(object) = docusnap_extract::answer::json_object(&answer) {
            let _ = docusnap_extract::answer::doc_result(object.clone(), false, &library, &page);
            let _ = docusnap_extract::answer::doc_result(object.clone(), true, &library, &page);
            let _ = docusnap_extract::answer::fill_result(object, &["Name".to_owned()], &library);
        }
    });
}
