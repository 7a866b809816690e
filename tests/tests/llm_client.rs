//! The LLM client and the extractor against a local HTTP server that answers as Zhipu's
//! and OpenAI's chat-completions APIs do, failures included.

use std::time::{Duration, Instant};

use docusnap_core::protocol::{Library, LibraryItem};
use docusnap_extract::layout::Line;
use docusnap_extract::llm::{ChatModel, HttpChatModel, LlmError, LlmSettings, Message, Provider, MAX_ATTEMPTS};
use docusnap_extract::schema::{doc, empty_object, Room};
use docusnap_extract::{ExtractError, Extractor, OcrText, Want, RULES_FALLBACK};
use docusnap_tests::stub::{Reply, Server};
use serde_json::json;

/// Zhipu's success body, as recorded from `POST /api/paas/v4/chat/completions`.
fn zhipu_answer(content: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "choices": [{"finish_reason": "stop", "index": 0, "message": {"content": content, "role": "assistant"}}],
            "created": 1764374400, "id": "20261129132000a1b2c3d4e5f64a7b", "model": "glm-4-plus",
            "request_id": "20261129132000a1b2c3d4e5f64a7b",
            "usage": {"completion_tokens": 96, "prompt_tokens": 812, "total_tokens": 908}
        }),
    )
}

/// OpenAI's (and vLLM's, llama.cpp's, Ollama's) success body.
fn openai_answer(content: &str) -> Reply {
    openai_reply(content, "stop")
}

fn openai_reply(content: &str, finish_reason: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-9x2", "object": "chat.completion", "created": 1764374400, "model": "qwen2.5-7b-instruct",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": null, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908}
        }),
    )
}

fn zhipu_rate_limited() -> Reply {
    Reply::json(
        429,
        json!({"error": {"code": "1302", "message": "您当前使用该API的并发数过高，请降低并发，或联系客服增加限额。"}}),
    )
}

fn openai_server_error() -> Reply {
    Reply::json(
        500,
        json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}),
    )
}

fn settings(provider: Provider, server: &Server) -> LlmSettings {
    let mut settings = LlmSettings::new(provider, server.base.clone(), "glm-4-plus", Some("test-key".into()));
    settings.backoff_base = Duration::from_millis(20);
    settings.call_timeout = Duration::from_secs(5);
    settings
}

/// An extractor over the provider's client of `server`; `fallback_to_rules` as in the function.
fn with_llm(provider: Provider, server: &Server, fallback_to_rules: bool) -> Extractor<HttpChatModel> {
    Extractor { model: Some(HttpChatModel::new(settings(provider, server)).unwrap()), fallback_to_rules }
}

fn later(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn receipt() -> OcrText {
    let texts = ["KEDAI MAJU", "Date: 12/03/2018", "TOTAL 9.50"];
    OcrText {
        text: format!("\n----page 1----\n{}", texts.join(" ")),
        lines: Line::stacked(&texts.iter().map(|t| (*t, 20.0)).collect::<Vec<_>>()),
    }
}

fn library() -> Library {
    Library {
        doc: vec![LibraryItem { id: "r-41".into(), title: "Kedai Maju receipt".into(), ..Default::default() }],
        form: vec![],
    }
}

const GOOD: &str = r#"{"title": "Kedai Maju receipt", "tags": ["receipt"], "description": "A receipt.",
    "kv": {"Company": "KEDAI MAJU", "Date": "Mar 12, 2018", "Total": "9.50"},
    "related": [{"type": "doc", "resource_id": "r-41"}]}"#;

#[tokio::test]
async fn zhipu_rate_limit_is_retried_after_the_servers_retry_after() {
    let server =
        Server::scripted("/api/paas/v4", vec![zhipu_rate_limited().header("retry-after", "1"), zhipu_answer(GOOD)])
            .await;
    let model = HttpChatModel::new(settings(Provider::Zhipu, &server)).unwrap();
    let started = Instant::now();
    let answer = model.complete(&[Message::user("hi")], &empty_object(), later(30)).await.unwrap();
    assert_eq!(answer.text, GOOD);
    // Zhipu's usage (OpenAI's shape), counted for the task.
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (812, 96));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured: {:?}",
        started.elapsed()
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/api/paas/v4/chat/completions");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer test-key"));
    assert_eq!(seen[0].body["model"], "glm-4-plus");
    assert_eq!(seen[0].body["thinking"], json!({"type": "disabled"}));
    assert_eq!(seen[0].body["response_format"], json!({"type": "json_object"}));
}

#[tokio::test]
async fn openai_server_errors_are_retried_then_given_up_on() {
    let server = Server::scripted("/v1", vec![openai_server_error(), openai_answer("{}")]).await;
    let model = HttpChatModel::new(settings(Provider::OpenAi, &server)).unwrap();
    assert_eq!(model.complete(&[Message::user("hi")], &empty_object(), later(30)).await.unwrap().text, "{}");
    assert!(server.seen()[0].body.get("thinking").is_none());

    let server = Server::scripted("/v1", (0..10).map(|_| openai_server_error()).collect()).await;
    let model = HttpChatModel::new(settings(Provider::OpenAi, &server)).unwrap();
    let error = model.complete(&[Message::user("hi")], &empty_object(), later(30)).await.unwrap_err();
    assert!(matches!(error, LlmError::Status { status: 500, .. }), "{error}");
    assert_eq!(server.seen().len(), MAX_ATTEMPTS as usize);

    let server =
        Server::scripted("/v1", vec![Reply::json(401, json!({"error": {"message": "Incorrect API key provided"}}))])
            .await;
    let model = HttpChatModel::new(settings(Provider::OpenAi, &server)).unwrap();
    assert!(matches!(model.complete(&[], &empty_object(), later(30)).await, Err(LlmError::Status { status: 401, .. })));
    assert_eq!(server.seen().len(), 1, "a refused key is not retried");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_retry_is_used() {
    let server = Server::scripted(
        "/v1",
        vec![openai_answer("{\"slow\": 1}").after(Duration::from_secs(3)), openai_answer("{\"fast\": 1}")],
    )
    .await;
    let mut settings = settings(Provider::OpenAi, &server);
    settings.call_timeout = Duration::from_millis(400);
    let model = HttpChatModel::new(settings).unwrap();
    let started = Instant::now();
    assert_eq!(model.complete(&[], &empty_object(), later(30)).await.unwrap().text, "{\"fast\": 1}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// An answer cut at the request's `max_tokens` (a model repeating itself) is a failed
/// call, tried again, never read as a result, and more often than other failures; the
/// limit is the page's, not a fixed one.
#[tokio::test]
async fn an_answer_cut_at_the_pages_token_limit_is_tried_again() {
    let cut = openai_reply(&format!("{{\"title\": \"Receipt\", \"kv\": {{{}", "\"a\": \"1\", ".repeat(50)), "length");
    let cuts = MAX_ATTEMPTS as usize;
    let server = Server::scripted("/v1", [vec![cut; cuts], vec![openai_answer(GOOD)]].concat()).await;
    let extractor = with_llm(Provider::OpenAi, &server, false);
    let done = extractor.document(&receipt(), Want::Doc, &library(), later(30)).await.unwrap();
    assert_eq!(done.result["kv"]["Total"], "9.50");
    let seen = server.seen();
    assert_eq!(seen.len(), cuts + 1, "each cut answer was asked for again, not re-asked about");
    let limit = doc(false, &Room::new(&receipt().lines, &library())).max_tokens;
    assert!(limit < 1_000, "three short lines need no more than {limit} tokens");
    for request in &seen {
        assert_eq!(request.body["max_tokens"], limit);
        assert_eq!(request.body["messages"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn no_call_outlives_the_deadline() {
    let slow = || openai_answer("{}").after(Duration::from_secs(10));
    let server = Server::scripted("/v1", vec![slow(), slow(), slow(), slow()]).await;
    let model = HttpChatModel::new(settings(Provider::OpenAi, &server)).unwrap();
    let started = Instant::now();
    let error = model.complete(&[], &empty_object(), Instant::now() + Duration::from_millis(1200)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(2000), "{:?}", started.elapsed());
    assert!(matches!(error, LlmError::Timeout(_) | LlmError::OutOfTime { .. }), "{error}");
    // A Retry-After past the deadline ends the task's LLM work now, not after the wait.
    let server = Server::scripted("/v1", vec![zhipu_rate_limited().header("retry-after", "15")]).await;
    let model = HttpChatModel::new(settings(Provider::Zhipu, &server)).unwrap();
    let started = Instant::now();
    assert!(matches!(model.complete(&[], &empty_object(), later(5)).await, Err(LlmError::OutOfTime { .. })));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn fenced_and_thinking_answers_are_read_and_invented_related_ids_dropped() {
    let invented = GOOD.replace(
        r#"[{"type": "doc", "resource_id": "r-41"}]"#,
        r#"[{"type": "doc", "resource_id": "r-41"}, {"type": "doc", "resource_id": "r-9999"}]"#,
    );
    let answer = format!("<think>The user wants JSON. {{\"title\": \"draft\"}}</think>\n```json\n{invented}\n```");
    let server = Server::scripted("/api/paas/v4", vec![zhipu_answer(&answer)]).await;
    let extractor = with_llm(Provider::Zhipu, &server, true);
    let done = extractor.document(&receipt(), Want::Doc, &library(), later(30)).await.unwrap();
    assert_eq!(done.extractor.to_string(), "llm:glm-4-plus (json-object)");
    assert_eq!(done.result["title"], "Kedai Maju receipt");
    assert_eq!(done.result["kv"]["Total"], "9.50");
    assert_eq!(done.result["related"], json!([{"type": "doc", "resource_id": "r-41"}]));
    let prompt = server.seen()[0].body["messages"][1]["content"].as_str().unwrap().to_owned();
    assert!(prompt.contains("TOTAL 9.50") && prompt.contains("r-41"));
}

#[tokio::test]
async fn an_answer_that_does_not_fit_is_asked_for_again_with_the_reason() {
    let server =
        Server::scripted("/v1", vec![openai_answer("Sure! Here is the data: title=Receipt"), openai_answer(GOOD)])
            .await;
    let extractor = with_llm(Provider::OpenAi, &server, true);
    let done = extractor.document(&receipt(), Want::Doc, &library(), later(30)).await.unwrap();
    assert_eq!(done.result["kv"]["Date"], "Mar 12, 2018");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    // An OpenAI-compatible server is given the answer's schema, the re-ask too.
    for request in &seen {
        let format = &request.body["response_format"];
        assert_eq!(format["type"], "json_schema");
        assert_eq!(format["json_schema"]["name"], "document_result");
        // Held to what this page and library can hold.
        assert_eq!(format["json_schema"]["schema"], doc(false, &Room::new(&receipt().lines, &library())).schema);
    }
    assert_eq!(done.extractor.to_string(), "llm:glm-4-plus (json-schema)");
    let messages = seen[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2], json!({"role": "assistant", "content": "Sure! Here is the data: title=Receipt"}));
    assert!(messages[3]["content"].as_str().unwrap().contains("no JSON object"));

    // A form answer without "Form Type": the model is told exactly that.
    let form =
        r#"{"title": "Visa form", "tags": ["form"], "description": "", "kv": {"Country": "X"}, "fields": ["Name"]}"#;
    let fixed = r#"{"title": "Visa form", "tags": ["form"], "description": "", "kv": {"Form Type": "Visa", "Country": "X"}, "fields": ["Name"]}"#;
    let server = Server::scripted("/v1", vec![openai_answer(form), openai_answer(fixed)]).await;
    let extractor = with_llm(Provider::OpenAi, &server, true);
    let done = extractor.document(&receipt(), Want::Form, &library(), later(30)).await.unwrap();
    assert_eq!(done.result["fields"], json!(["Name"]));
    let retry = server.seen()[1].body["messages"][3]["content"].as_str().unwrap().to_owned();
    assert!(retry.contains("Form Type"), "{retry}");
}

#[tokio::test]
async fn a_failing_llm_falls_back_to_the_rules_or_fails_the_task() {
    let broken = || vec![openai_answer("nope"), openai_answer("still nope")];
    let server = Server::scripted("/v1", broken()).await;
    let extractor = with_llm(Provider::OpenAi, &server, true);
    let done = extractor.document(&receipt(), Want::Doc, &library(), later(30)).await.unwrap();
    assert_eq!(done.extractor, RULES_FALLBACK);
    assert_eq!(done.result["kv"]["Total"], "9.50", "the rules read the receipt");

    let server = Server::scripted("/v1", broken()).await;
    let extractor = with_llm(Provider::OpenAi, &server, false);
    let failed = extractor.document(&receipt(), Want::Doc, &library(), later(30)).await;
    assert!(matches!(failed, Err(ExtractError::Llm(_))), "{failed:?}");
}

#[tokio::test]
async fn fill_keeps_only_real_fields_with_real_sources() {
    let answer = json!({
        "Name": {"value": "Li Wei", "source": {"type": "doc", "resource_id": "p-1"}},
        "Passport Number": {"value": "E1234", "source": {"type": "doc", "resource_id": "invented"}},
        "Favourite Colour": {"value": "blue", "source": {"type": "doc", "resource_id": "p-1"}}
    });
    let server = Server::scripted("/api/paas/v4", vec![zhipu_answer(&answer.to_string())]).await;
    let extractor = with_llm(Provider::Zhipu, &server, true);
    let library = Library {
        doc: vec![LibraryItem {
            id: "p-1".into(),
            title: "Passport".into(),
            kv: json!({"Name": "Li Wei"}).as_object().unwrap().clone(),
            ..Default::default()
        }],
        form: vec![],
    };
    let form = json!({"title": "Visa", "kv": {"Form Type": "Visa"}, "fields": ["Name", "Passport Number"]});
    let done = extractor.fill(form.as_object().unwrap(), &library, later(30)).await.unwrap();
    assert_eq!(done.result, json!({"Name": {"value": "Li Wei", "source": {"type": "doc", "resource_id": "p-1"}}}));
}

#[tokio::test]
async fn pages_without_text_end_before_any_call() {
    let server = Server::scripted("/v1", vec![openai_answer(GOOD)]).await;
    let extractor = with_llm(Provider::OpenAi, &server, true);
    let blank = OcrText { text: "\n----page 1----\n".into(), lines: vec![] };
    let failed = extractor.document(&blank, Want::Doc, &library(), later(30)).await;
    assert!(matches!(failed, Err(ExtractError::Prompt(docusnap_extract::prompt::PromptError::NoText))), "{failed:?}");
    assert!(server.seen().is_empty(), "no LLM call for nothing");
}

#[tokio::test]
async fn llama_cpp_pythons_form_and_a_fills_schema_of_the_forms_fields() {
    let server = Server::scripted(
        "/v1",
        vec![openai_answer(r#"{"Name": {"value": "Li Wei", "source": {"type": "doc", "resource_id": "r-41"}}}"#)],
    )
    .await;
    let mut settings = settings(Provider::OpenAi, &server);
    settings.format = docusnap_core::task::AnswerFormat::JsonObjectSchema;
    let extractor = Extractor { model: Some(HttpChatModel::new(settings).unwrap()), fallback_to_rules: false };
    let form = json!({"title": "Visa application", "fields": ["Name", "Passport No"]});
    let done = extractor.fill(form.as_object().unwrap(), &library(), later(30)).await.unwrap();
    assert_eq!(done.result["Name"]["value"], "Li Wei");
    assert_eq!(done.extractor.to_string(), "llm:glm-4-plus (json-object-schema)");
    let format = &server.seen()[0].body["response_format"];
    assert_eq!(format["type"], "json_object");
    let fields: Vec<&String> = format["schema"]["properties"].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["Name", "Passport No"]);
}

/// A value the LLM gives that no line supports is counted; where the page's own date,
/// total or company is there to be read, it replaces the LLM's and the result says so.
#[tokio::test]
async fn an_llm_value_the_page_does_not_support_is_replaced_by_the_pages_and_counted() {
    let invented = GOOD.replace(r#""Total": "9.50""#, r#""Total": "95.00", "Cashier": "Bob""#);
    let server = Server::scripted("/v1", vec![openai_answer(&invented)]).await;
    let extractor = with_llm(Provider::OpenAi, &server, false);
    let counted = docusnap_core::metrics::capture();
    let done = extractor.document(&receipt(), Want::Doc, &library(), later(30)).await.unwrap();
    assert_eq!(done.result["kv"]["Total"], "9.50", "the page's total, read by the rules");
    assert_eq!(done.result["kv"]["Cashier"], "Bob", "nothing on the page to replace it with");
    let corrections = &done.documents[0].corrections;
    assert_eq!(corrections.len(), 1, "{corrections:?}");
    assert_eq!((corrections[0].key.as_str(), corrections[0].llm.as_str()), ("Total", "95.00"));
    let line = counted
        .lines()
        .into_iter()
        .find(|l| l.get(docusnap_core::metrics::name::UNVERIFIED_VALUES).is_some())
        .expect("the unverified values' metric");
    assert_eq!(line[docusnap_core::metrics::name::UNVERIFIED_VALUES], 1.0, "Cashier: {line}");
    assert_eq!(line[docusnap_core::metrics::name::CORRECTED_VALUES], 1.0);
}
