//! Amazon Bedrock as the LLM: the real SDK client (SigV4, the Converse API's JSON) against a
//! local server that answers as Bedrock's Converse endpoint does: an answer, throttling, a
//! validation error, a slow answer.

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use docusnap_core::task::AnswerFormat;
use docusnap_extract::bedrock::BedrockChatModel;
use docusnap_extract::layout::Line;
use docusnap_extract::llm::{ChatModel, LlmError, LlmSettings, Message, Provider};
use docusnap_extract::schema::{doc, empty_object, Room};
use docusnap_extract::{Extractor, OcrText, Want, RULES_FALLBACK};
use docusnap_tests::stub::{Reply, Server};
use serde_json::json;

const MODEL: &str = "amazon.nova-lite-v1:0";

/// The role's credentials, as a Lambda function has them.
fn sdk() -> SdkConfig {
    let credentials =
        aws_sdk_s3::config::Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "role");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(credentials))
        .build()
}

fn model(server: &Server) -> BedrockChatModel {
    model_with(server, Provider::Bedrock.default_format())
}

fn model_with(server: &Server, format: AnswerFormat) -> BedrockChatModel {
    let mut settings = LlmSettings::new(Provider::Bedrock, server.base.clone(), MODEL, None);
    settings.format = format;
    settings.backoff_base = Duration::from_millis(20);
    settings.call_timeout = Duration::from_secs(2);
    BedrockChatModel::new(&sdk(), settings)
}

/// Converse's success body.
fn answer(text: &str) -> Reply {
    stopped(text, "end_turn")
}

fn stopped(text: &str, reason: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": reason,
            "usage": {"inputTokens": 812, "outputTokens": 96, "totalTokens": 908},
            "metrics": {"latencyMs": 1402}
        }),
    )
}

/// Bedrock's errors: the type in `x-amzn-ErrorType`, a message in the body.
fn error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(status, json!({"message": message}))
        .header("x-amzn-ErrorType", &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"))
}

fn later(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn converse_is_called_signed_with_the_system_prompt_apart() {
    let server = Server::scripted("", vec![answer(r#"{"ok": true}"#)]).await;
    let messages = [
        Message::system("You extract."),
        Message::user("TOTAL 9.50"),
        Message::assistant("{}"),
        Message::user("again"),
    ];
    let answer = model(&server).complete(&messages, &empty_object(), later(10)).await.unwrap();
    assert_eq!(answer.text, r#"{"ok": true}"#);
    // Converse's usage, counted for the task and the LLM tokens metric.
    let usage = docusnap_core::task::TokenUsage { input_tokens: 812, output_tokens: 96 };
    assert_eq!(answer.usage, usage);
    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/model/amazon.nova-lite-v1%3A0/converse");
    assert!(
        seen.authorization.as_deref().is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")),
        "{seen:?}"
    );
    assert_eq!(seen.body["system"], json!([{"text": "You extract."}]));
    let roles: Vec<&str> =
        seen.body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(seen.body["messages"][0]["content"], json!([{"text": "TOTAL 9.50"}]));
    assert_eq!(seen.body["inferenceConfig"]["maxTokens"], empty_object().max_tokens);
}

#[tokio::test]
async fn throttling_is_retried_and_a_validation_error_is_not() {
    let throttled = error(429, "ThrottlingException", "Too many requests, please wait before trying again.");
    let server = Server::scripted("", vec![throttled.clone(), throttled, answer("{}")]).await;
    assert_eq!(model(&server).complete(&[Message::user("x")], &empty_object(), later(10)).await.unwrap().text, "{}");
    assert_eq!(server.seen().len(), 3);

    let invalid = error(400, "ValidationException", "The provided model identifier is invalid.");
    let server = Server::scripted("", vec![invalid, answer("{}")]).await;
    let failed = model(&server).complete(&[Message::user("x")], &empty_object(), later(10)).await;
    assert!(matches!(failed, Err(LlmError::Status { status: 400, .. })), "{failed:?}");
    assert_eq!(server.seen().len(), 1, "a refused request is not sent again");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_retry_is_used() {
    let server =
        Server::scripted("", vec![answer("{}").after(Duration::from_secs(5)), answer(r#"{"second": 1}"#)]).await;
    let started = Instant::now();
    assert_eq!(
        model(&server).complete(&[Message::user("x")], &empty_object(), later(10)).await.unwrap().text,
        r#"{"second": 1}"#
    );
    assert!(started.elapsed() < Duration::from_secs(4), "the call timeout (2 s) cut the slow one");
}

#[tokio::test]
async fn a_failing_bedrock_falls_back_to_the_rules_and_a_good_one_is_used() {
    let texts = ["KEDAI MAJU", "Date: 12/03/2018", "TOTAL 9.50"];
    let ocr =
        OcrText { text: texts.join(" "), lines: Line::stacked(&texts.iter().map(|t| (*t, 20.0)).collect::<Vec<_>>()) };
    let server =
        Server::scripted("", vec![error(403, "AccessDeniedException", "not authorized to invoke this model")]).await;
    let extractor = Extractor { model: Some(model(&server)), fallback_to_rules: true };
    let done = extractor.document(&ocr, Want::Doc, &Default::default(), later(10)).await.unwrap();
    assert_eq!(done.extractor, RULES_FALLBACK);
    assert_eq!(done.result["kv"]["Total"], "9.50");

    let good = r#"{"title": "Kedai Maju receipt", "tags": ["receipt"], "description": "A receipt.", "kv": {"Total": "9.50", "Company": "KEDAI MAJU"}}"#;
    let server = Server::scripted("", vec![answer(good)]).await;
    let extractor = Extractor { model: Some(model(&server)), fallback_to_rules: true };
    let done = extractor.document(&ocr, Want::Doc, &Default::default(), later(10)).await.unwrap();
    assert_eq!(done.extractor.to_string(), format!("llm:{MODEL} (tool)"));
    let keys: Vec<&String> = done.result["kv"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Total", "Company"], "the model's order is kept");
}

/// Converse's answer when the model called the one tool it was given.
fn tool_answer(name: &str, input: serde_json::Value) -> Reply {
    Reply::json(
        200,
        json!({
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": name, "input": input}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 1210, "outputTokens": 88, "totalTokens": 1298},
            "metrics": {"latencyMs": 1733}
        }),
    )
}

#[tokio::test]
async fn the_default_asks_for_the_answer_as_a_forced_tools_input_and_reads_it_in_page_order() {
    let texts = ["KEDAI MAJU", "Date: 12/03/2018", "TOTAL 9.50"];
    let ocr =
        OcrText { text: texts.join(" "), lines: Line::stacked(&texts.iter().map(|t| (*t, 20.0)).collect::<Vec<_>>()) };
    // The input's keys in another order than the page's, as a hash map may give them.
    let input = json!({"kv": {"Total": "9.50", "Date": "12/03/2018", "Company": "KEDAI MAJU"},
        "title": "Kedai Maju receipt", "tags": ["receipt"], "description": "A receipt.", "related": []});
    let server = Server::scripted("", vec![tool_answer("document_result", input)]).await;
    let extractor = Extractor { model: Some(model(&server)), fallback_to_rules: false };
    let done = extractor.document(&ocr, Want::Doc, &Default::default(), later(10)).await.unwrap();
    assert_eq!(done.extractor.to_string(), format!("llm:{MODEL} (tool)"));
    let keys: Vec<&String> = done.result["kv"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Company", "Date", "Total"], "page order, from where each value is in the text");
    let body = &server.seen()[0].body;
    let tools = &body["toolConfig"];
    assert_eq!(tools["toolChoice"], json!({"tool": {"name": "document_result"}}));
    let spec = &tools["tools"][0]["toolSpec"];
    assert_eq!(spec["name"], "document_result");
    assert_eq!(spec["inputSchema"]["json"], doc(false, &Room::new(&ocr.lines, &Default::default())).schema);
    assert!(body.get("outputConfig").is_none());
}

#[tokio::test]
async fn json_schema_asks_through_output_config_and_off_asks_nothing() {
    let server = Server::scripted("", vec![answer("{}"), answer("{}")]).await;
    let schema = doc(true, &Room::new(&[], &Default::default()));
    model_with(&server, AnswerFormat::JsonSchema).complete(&[Message::user("x")], &schema, later(10)).await.unwrap();
    model_with(&server, AnswerFormat::Off).complete(&[Message::user("x")], &schema, later(10)).await.unwrap();
    let seen = server.seen();
    let format = &seen[0].body["outputConfig"]["textFormat"];
    assert_eq!(format["type"], "json_schema");
    let definition = &format["structure"]["jsonSchema"];
    assert_eq!(definition["name"], "form_result");
    // Converse takes the schema as a JSON string.
    let sent: serde_json::Value = serde_json::from_str(definition["schema"].as_str().unwrap()).unwrap();
    assert_eq!(sent, schema.schema);
    assert!(seen[0].body.get("toolConfig").is_none());
    assert!(seen[1].body.get("outputConfig").is_none() && seen[1].body.get("toolConfig").is_none());
}

/// An answer stopped at the request's `maxTokens` (a model running on) is a failed call,
/// tried again; the limit sent is the schema's.
#[tokio::test]
async fn an_answer_cut_at_max_tokens_is_tried_again() {
    let server =
        Server::scripted("", vec![stopped(r#"{"kv": {"a": "1", "a": "1", "#, "max_tokens"), answer("{}")]).await;
    let schema = empty_object();
    assert_eq!(model(&server).complete(&[Message::user("x")], &schema, later(10)).await.unwrap().text, "{}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body["inferenceConfig"]["maxTokens"], schema.max_tokens);
}
