//! Amazon Bedrock as the LLM, through the Converse API: no key to keep, the function's IAM
//! role is allowed the one model. The SDK's own retries are off so that [`bounded`] retries
//! Bedrock as it does every other provider (throttling included), within the same budget.

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, InferenceConfiguration, SystemContentBlock};
use docusnap_core::task::{ExtractorKind, TokenUsage};

use crate::llm::{bounded, ChatModel, Completion, LlmError, LlmSettings, Message, Role};

/// Most tokens of one answer: a page's result is well under 2k tokens; more is a model
/// running on.
const MAX_ANSWER_TOKENS: i32 = 4096;
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

    async fn call(&self, messages: &[Message], timeout: Duration) -> Result<Completion, (LlmError, Option<Duration>)> {
        let mut request = self.client.converse().model_id(&self.settings.model).inference_config(
            InferenceConfiguration::builder().max_tokens(MAX_ANSWER_TOKENS).temperature(TEMPERATURE).build(),
        );
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
        let message = output.output().and_then(|o| o.as_message().ok());
        let text: String = message
            .map(|m| m.content().iter().filter_map(|c| c.as_text().ok().map(String::as_str)).collect())
            .unwrap_or_default();
        if text.is_empty() {
            return Err((LlmError::Malformed("no text in output.message.content".into()), None));
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
        ExtractorKind::Llm { model: self.settings.model.clone() }
    }

    async fn complete(&self, messages: &[Message], deadline: Instant) -> Result<Completion, LlmError> {
        bounded(&self.settings, deadline, |timeout| self.call(messages, timeout)).await
    }
}
