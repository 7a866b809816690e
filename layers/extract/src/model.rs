//! The model the extract function holds, whichever provider serves it.

use std::time::Instant;

use docusnap_core::task::ExtractorKind;

use crate::bedrock::BedrockChatModel;
use crate::llm::{ChatModel, Completion, HttpChatModel, LlmError, LlmSettings, Message};
use crate::schema::AnswerSchema;

/// The configured model, whichever provider serves it: what the extract function holds.
#[derive(Clone, Debug)]
pub enum AnyChatModel {
    Http(HttpChatModel),
    Bedrock(BedrockChatModel),
}

impl AnyChatModel {
    pub fn settings(&self) -> &LlmSettings {
        match self {
            AnyChatModel::Http(m) => m.settings(),
            AnyChatModel::Bedrock(m) => m.settings(),
        }
    }
}

impl From<HttpChatModel> for AnyChatModel {
    fn from(model: HttpChatModel) -> Self {
        AnyChatModel::Http(model)
    }
}

impl From<BedrockChatModel> for AnyChatModel {
    fn from(model: BedrockChatModel) -> Self {
        AnyChatModel::Bedrock(model)
    }
}

impl ChatModel for AnyChatModel {
    fn extractor(&self) -> ExtractorKind {
        self.settings().extractor()
    }

    async fn complete(
        &self, messages: &[Message], schema: &AnswerSchema, deadline: Instant,
    ) -> Result<Completion, LlmError> {
        match self {
            AnyChatModel::Http(m) => m.complete(messages, schema, deadline).await,
            AnyChatModel::Bedrock(m) => m.complete(messages, schema, deadline).await,
        }
    }
}
