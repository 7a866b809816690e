//! Amazon Bedrock as the LLM, through the Converse API: no key to keep, the function's IAM
//! role is allowed the one model. The SDK's own retries are off so that [`bounded`] retries
//! Bedrock as it does every other provider (throttling included), within the same budget.
//!
//! The answer's shape is asked for as the settings' format says: `tool` (the default: one
//! tool whose input schema is the answer's, and `toolChoice` naming it, which Claude 3 and
//! later and Nova honour), `json-schema` (`outputConfig.textFormat`, on models that have
//! it) or `off`.

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, JsonSchemaDefinition, OutputConfig, OutputFormat,
    OutputFormatStructure, OutputFormatType, SpecificToolChoice, StopReason, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_smithy_types::{Document, Number};
use docusnap_core::task::{AnswerFormat, ExtractorKind, TokenUsage};
use serde_json::Value;

use crate::llm::{bounded, ChatModel, Completion, LlmError, LlmSettings, Message, Role};
use crate::schema::AnswerSchema;

/// As for the HTTP providers: extraction wants the same answer for the same page.
const TEMPERATURE: f32 = 0.1;

#[derive(Clone, Debug)]
pub struct BedrockChatModel {
    client: aws_sdk_bedrockruntime::Client,
    settings: LlmSettings,
}

impl BedrockChatModel {
    /// A client from the function's AWS configuration; `settings.base_url`, when not empty,
    /// overrides the endpoint (a local server in tests).
    pub fn new(sdk: &aws_config::SdkConfig, settings: LlmSettings) -> Self {
        let mut config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
            .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled());
        if !settings.base_url.is_empty() {
            config = config.endpoint_url(settings.base_url.clone());
        }
        Self { client: aws_sdk_bedrockruntime::Client::from_conf(config.build()), settings }
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    async fn call(
        &self, messages: &[Message], schema: &AnswerSchema, timeout: Duration,
    ) -> Result<Completion, (LlmError, Option<Duration>)> {
        let malformed = |e: aws_sdk_bedrockruntime::error::BuildError| (LlmError::Malformed(e.to_string()), None);
        let mut request = self.client.converse().model_id(&self.settings.model).inference_config(
            InferenceConfiguration::builder()
                .max_tokens(i32::try_from(schema.max_tokens).unwrap_or(i32::MAX))
                .temperature(TEMPERATURE)
                .build(),
        );
        match self.settings.format {
            AnswerFormat::Tool => {
                let spec = ToolSpecification::builder()
                    .name(schema.name)
                    .description(schema.description)
                    .input_schema(ToolInputSchema::Json(document(&schema.schema)))
                    .build()
                    .map_err(malformed)?;
                let choice = SpecificToolChoice::builder().name(schema.name).build().map_err(malformed)?;
                let tools = ToolConfiguration::builder()
                    .tools(Tool::ToolSpec(spec))
                    .tool_choice(ToolChoice::Tool(choice))
                    .build()
                    .map_err(malformed)?;
                request = request.tool_config(tools);
            }
            AnswerFormat::JsonSchema => {
                let definition = JsonSchemaDefinition::builder()
                    .schema(schema.schema.to_string())
                    .name(schema.name)
                    .description(schema.description)
                    .build()
                    .map_err(malformed)?;
                let format = OutputFormat::builder()
                    .r#type(OutputFormatType::JsonSchema)
                    .structure(OutputFormatStructure::JsonSchema(definition))
                    .build()
                    .map_err(malformed)?;
                request = request.output_config(OutputConfig::builder().text_format(format).build());
            }
            // Settings pair Bedrock with none of the others.
            AnswerFormat::JsonObjectSchema | AnswerFormat::JsonObject | AnswerFormat::Off => {}
        }
        for message in messages {
            let role = match message.role {
                Role::System => {
                    request = request.system(SystemContentBlock::Text(message.content.clone()));
                    continue;
                }
                Role::User => ConversationRole::User,
                Role::Assistant => ConversationRole::Assistant,
            };
            let turn = aws_sdk_bedrockruntime::types::Message::builder()
                .role(role)
                .content(ContentBlock::Text(message.content.clone()))
                .build()
                .map_err(|e| (LlmError::Malformed(e.to_string()), None))?;
            request = request.messages(turn);
        }
        let output = match tokio::time::timeout(timeout, request.send()).await {
            Err(_) => return Err((LlmError::Timeout(timeout), None)),
            Ok(Err(e)) => return Err((converse_error(e, timeout), None)),
            Ok(Ok(output)) => output,
        };
        if output.stop_reason() == &StopReason::MaxTokens {
            return Err((LlmError::Cut(schema.max_tokens), None));
        }
        let content = output.output().and_then(|o| o.as_message().ok()).map(|m| m.content()).unwrap_or_default();
        // A forced tool's answer is its input; the text blocks beside it, if any, are talk.
        let tool_input = content.iter().find_map(|c| c.as_tool_use().ok()).map(|used| json(used.input()));
        let text: String = match tool_input {
            Some(input) => in_page_order(input, messages).to_string(),
            None => content.iter().filter_map(|c| c.as_text().ok().map(String::as_str)).collect(),
        };
        if text.is_empty() {
            return Err((LlmError::Malformed("no text or tool use in output.message.content".into()), None));
        }
        let usage = output.usage().map_or(TokenUsage::default(), |usage| TokenUsage {
            input_tokens: usage.input_tokens().max(0) as u64,
            output_tokens: usage.output_tokens().max(0) as u64,
        });
        Ok(Completion { text, usage })
    }
}

/// The SDK's error as the retry loop reads it: a service's answer by its HTTP status (429
/// for throttling, 400 for a validation error, 5xx for Bedrock's own trouble), a lost
/// connection as transport, no answer in time as a timeout.
fn converse_error(e: SdkError<ConverseError, HttpResponse>, timeout: Duration) -> LlmError {
    match e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            LlmError::Status { status, body_bytes: service.raw().body().bytes().map_or(0, <[u8]>::len) }
        }
        SdkError::TimeoutError(_) => LlmError::Timeout(timeout),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => LlmError::Timeout(timeout),
        // Not the response itself: it may quote the prompt, and errors go to logs.
        SdkError::ResponseError(_) => LlmError::Malformed("an unreadable Converse response".into()),
        other => LlmError::Transport(DisplayErrorContext(&other).to_string()),
    }
}

impl ChatModel for BedrockChatModel {
    fn extractor(&self) -> ExtractorKind {
        self.settings.extractor()
    }

    async fn complete(
        &self, messages: &[Message], schema: &AnswerSchema, deadline: Instant,
    ) -> Result<Completion, LlmError> {
        bounded(&self.settings, deadline, |timeout| self.call(messages, schema, timeout)).await
    }
}

/// A JSON value as the SDK's document.
fn document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(document).collect()),
        Value::Object(map) => Document::Object(map.iter().map(|(k, v)| (k.clone(), document(v))).collect()),
    }
}

/// The SDK's document as JSON; a number JSON cannot hold (NaN) becomes null.
fn json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(json).collect()),
        Document::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
    }
}

/// A tool's input comes through the SDK as a hash map, which forgets the order the model
/// wrote. A result's kv is in page order, so its entries are put back in the order their
/// values (else their keys) first appear in the user's text; what it does not hold keeps
/// the map's order, after them.
fn in_page_order(mut answer: Value, messages: &[Message]) -> Value {
    let text: String = messages
        .iter()
        .filter(|m| m.role == Role::User)
        .map(|m| m.content.to_lowercase())
        .collect::<Vec<_>>()
        .join("\n");
    let Some(kv) = answer.get_mut("kv").and_then(Value::as_object_mut) else { return answer };
    let position = |key: &str, value: &Value| {
        let value = match value {
            Value::String(s) => s.to_lowercase(),
            other => other.to_string().to_lowercase(),
        };
        [value, key.to_lowercase()].iter().filter(|s| !s.is_empty()).find_map(|s| text.find(s.as_str()))
    };
    let mut entries: Vec<(String, Value)> = std::mem::take(kv).into_iter().collect();
    entries.sort_by_key(|(key, value)| position(key, value).unwrap_or(usize::MAX));
    kv.extend(entries);
    answer
}
