//! Extraction: turning OCR text into what the client asked for.
//!
//! [`Extractor`] runs one task: the LLM ([`llm`], with [`prompt`] and [`answer`]) when one
//! is configured, else or after it fails the offline [`rules`] extractor (its value finders
//! are in [`values`]). Every result passes the checks in `docusnap_core::results`.

pub mod answer;
pub mod bedrock;
pub mod fill;
mod header;
pub mod layout;
pub mod llm;
pub mod model;
pub mod mrz;
pub mod prompt;
pub mod provenance;
pub mod rules;
pub mod settings;
mod table;
pub mod values;

use std::time::Instant;

use docusnap_core::ocr_output::{OcrOutput, PageText};
use docusnap_core::protocol::Library;
use docusnap_core::results::ResultError;
use docusnap_core::task::{ExtractorKind, TokenUsage};
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::answer::AnswerError;
use crate::layout::Line;
use crate::llm::{ChatModel, Completion, LlmError, Message};
use crate::prompt::PromptError;

/// What the task item records when the rules made the result.
pub const RULES: ExtractorKind = ExtractorKind::Rules;
/// ... and when they made it because the LLM failed.
pub const RULES_FALLBACK: ExtractorKind = ExtractorKind::RulesFallback;

/// A task's OCR output as the extractors read it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OcrText {
    /// Pages joined as PROTOCOL.md's "OCR text" says: what the LLM reads.
    pub text: String,
    /// Every line of every page, in reading order: what the rules read.
    pub lines: Vec<Line>,
}

impl OcrText {
    pub fn from_output(output: &OcrOutput) -> Self {
        let lines = output.pages.iter().enumerate().flat_map(|(i, page)| page_lines(page, i)).collect();
        Self { text: output.text(), lines }
    }
}

/// The lines of one page (`index` from 0), each with its box.
pub fn page_lines(page: &PageText, index: usize) -> Vec<Line> {
    page.lines.iter().map(|line| Line::from_text_line(line, index)).collect()
}

/// A finished extraction: the result JSON the client will get, and what made it.
#[derive(Clone, Debug, PartialEq)]
pub struct Extraction {
    pub result: Value,
    pub extractor: ExtractorKind,
    /// The LLM's tokens, every call counted (a fallback's too: they were spent).
    pub usage: TokenUsage,
}

/// The result as its task's client reads it. A batch task's has no client to hold its
/// key: it is kept as it is. A v2 task's carries its pages and provenance, sealed with
/// AES-GCM for this task; a v1 task's is sealed as the original service sealed it.
pub fn seal_result(
    id: &docusnap_core::TaskId, key: &docusnap_core::crypto::AesKey, extraction: &Extraction, ocr: &OcrOutput,
) -> Result<String, docusnap_core::crypto::CryptoError> {
    use base64::Engine;
    if docusnap_core::batch::is_batch(id) {
        Ok(extraction.result.to_string())
    } else if let Some(task) = docusnap_core::v2::V2TaskId::of(id) {
        let result = provenance::v2_result(&extraction.result, ocr, &extraction.extractor);
        let sealed = key.seal_gcm(result.to_string().as_bytes(), &task.part_aad(docusnap_core::v2::Part::Result))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    } else {
        key.seal_base64(extraction.result.to_string().as_bytes())
    }
}

/// What the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Doc,
    Form,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Nothing to build a prompt from (no text, no fields): the same for both extractors.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The LLM failed and the rules fallback is switched off.
    #[error("the LLM failed: {0}")]
    Llm(#[source] LlmFailure),
    /// The rules made a result that does not pass the checks: a bug of ours.
    #[error("the rules' result is invalid: {0}")]
    Invalid(#[from] ResultError),
}

/// Why the LLM gave no usable answer: the call failed (a 401 and a timeout stay apart,
/// see [`LlmError::is_retryable`]), or it answered twice with something that did not fit.
#[derive(Debug, thiserror::Error)]
pub enum LlmFailure {
    #[error(transparent)]
    Call(#[from] LlmError),
    #[error("the answer did not fit twice: {0}")]
    Unfit(#[source] AnswerError),
}

/// Runs extractions with an optional LLM.
pub struct Extractor<M> {
    pub model: Option<M>,
    /// When the LLM fails after its retries, answer with the rules instead of `LLM_FAILURE`.
    pub fallback_to_rules: bool,
}

impl<M: ChatModel> Extractor<M> {
    /// A document's or a form's result from its OCR text.
    pub async fn document(
        &self, ocr: &OcrText, want: Want, library: &Library, deadline: Instant,
    ) -> Result<Extraction, ExtractError> {
        let is_form = want == Want::Form;
        // The page markers alone are no text: pages where OCR found nothing.
        if ocr.lines.iter().all(|l| l.text.trim().is_empty()) {
            return Err(PromptError::NoText.into());
        }
        let messages = prompt::doc_messages(&ocr.text, library, is_form)?;
        let mut usage = TokenUsage::default();
        let llm_failure = match &self.model {
            Some(model) => {
                let parse = |answer: &str| answer::doc_result(answer::json_object(answer)?, is_form, library);
                match ask(model, messages, deadline, parse, &mut usage).await {
                    Ok(result) => {
                        return Ok(Extraction { result: to_value(&result), extractor: model.extractor(), usage })
                    }
                    Err(e) => Some(e),
                }
            }
            None => None,
        };
        let extractor = self.rules_after(llm_failure)?;
        let result = match want {
            Want::Doc => rules::extract_doc(&ocr.lines, library),
            Want::Form => rules::extract_form(&ocr.lines, library),
        };
        Ok(Extraction { result: to_value(&result.normalise(is_form, library)?), extractor, usage })
    }

    /// Values for a form result's fields from the library.
    pub async fn fill(
        &self, form: &Map<String, Value>, library: &Library, deadline: Instant,
    ) -> Result<Extraction, ExtractError> {
        let fields = prompt::form_fields(form);
        let messages = prompt::fill_messages(form, &fields, library)?;
        let mut usage = TokenUsage::default();
        let llm_failure = match &self.model {
            Some(model) => {
                let parse = |answer: &str| Ok(answer::fill_result(answer::json_object(answer)?, &fields, library));
                match ask(model, messages, deadline, parse, &mut usage).await {
                    Ok(filled) => {
                        return Ok(Extraction { result: Value::Object(filled), extractor: model.extractor(), usage })
                    }
                    Err(e) => Some(e),
                }
            }
            None => None,
        };
        let extractor = self.rules_after(llm_failure)?;
        Ok(Extraction { result: Value::Object(fill::fill(&fields, library)), extractor, usage })
    }

    /// Which name the rules' result goes under, or the LLM's failure when there is no fallback.
    fn rules_after(&self, llm_failure: Option<LlmFailure>) -> Result<ExtractorKind, ExtractError> {
        match llm_failure {
            None => Ok(RULES),
            Some(why) if self.fallback_to_rules => {
                warn!(why = %why, "the LLM failed; the rules extractor answers instead");
                Ok(RULES_FALLBACK)
            }
            Some(why) => Err(ExtractError::Llm(why)),
        }
    }
}

/// Asks the model; an answer that does not fit is shown back to it once with the reason.
/// Each answer's tokens are added to `usage`, whatever becomes of it.
async fn ask<M: ChatModel, T>(
    model: &M, mut messages: Vec<Message>, deadline: Instant, parse: impl Fn(&str) -> Result<T, AnswerError>,
    usage: &mut TokenUsage,
) -> Result<T, LlmFailure> {
    let Completion { text: answer, usage: spent } = model.complete(&messages, deadline).await?;
    usage.add(spent);
    let problem = match parse(&answer) {
        Ok(result) => return Ok(result),
        Err(problem) => problem,
    };
    info!(problem = %problem, "the LLM's answer did not fit; asking once more");
    messages.push(Message::assistant(answer));
    messages.push(prompt::retry_message(&problem.for_model()));
    let Completion { text: answer, usage: spent } = model.complete(&messages, deadline).await?;
    usage.add(spent);
    parse(&answer).map_err(LlmFailure::Unfit)
}

fn to_value<T: serde::Serialize>(result: &T) -> Value {
    // Our result types serialise without fail: string keys, no non-finite floats.
    serde_json::to_value(result).unwrap_or(Value::Null)
}
