//! Extraction: turning OCR text into what the client asked for.
//!
//! [`Extractor`] runs one task: the LLM ([`llm`], with [`prompt`] and [`answer`]) when one
//! is configured, else or after it fails the offline [`rules`] extractor (its value finders
//! are in [`values`]). Every result passes the checks in `docusnap_core::results`.

pub mod answer;
pub mod bedrock;
pub mod documents;
pub mod fill;
mod header;
pub mod layout;
pub mod llm;
pub mod model;
pub mod mrz;
pub mod prompt;
pub mod provenance;
pub mod rules;
pub mod schema;
pub mod settings;
mod table;
pub mod values;

use std::ops::Range;
use std::time::Instant;

use docusnap_core::ocr_output::{OcrOutput, PageText};
use docusnap_core::protocol::Library;
use docusnap_core::results::{DocResult, ResultError};
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

    /// The lines of each page, pages `0..` the last page with a line.
    pub fn pages(&self) -> Vec<Vec<Line>> {
        let mut pages = vec![Vec::new(); self.page_count()];
        for line in &self.lines {
            pages[line.page].push(line.clone());
        }
        pages
    }

    /// How many pages the lines are on: up to the last page with a line.
    pub fn page_count(&self) -> usize {
        self.lines.iter().map(|l| l.page + 1).max().unwrap_or(0)
    }

    /// The pages `range` alone, joined as [`OcrOutput::text`] joins pages, with the
    /// upload's own page numbers in the markers.
    pub fn part(&self, range: &Range<usize>) -> OcrText {
        let lines: Vec<Line> = self.lines.iter().filter(|l| range.contains(&l.page)).cloned().collect();
        let text = range
            .clone()
            .map(|p| {
                let words: Vec<&str> = lines.iter().filter(|l| l.page == p).map(|l| l.text.as_str()).collect();
                format!("\n----page {}----\n{}", p + 1, words.join(" "))
            })
            .collect();
        OcrText { text, lines }
    }
}

/// The lines of one page (`index` from 0), each with its box as the page reads upright.
pub fn page_lines(page: &PageText, index: usize) -> Vec<Line> {
    page.lines.iter().map(|line| Line::from_text_line(line, page, index)).collect()
}

/// A finished extraction: the result JSON the client will get, and what made it.
#[derive(Clone, Debug, PartialEq)]
pub struct Extraction {
    /// v1's one result: the documents merged ([`documents::merge`]).
    pub result: Value,
    /// Each document of the upload, in page order; one for a single document or a form,
    /// none for a fill.
    pub documents: Vec<DocumentResult>,
    pub extractor: ExtractorKind,
    /// The LLM's tokens, every call counted (a fallback's too: they were spent).
    pub usage: TokenUsage,
}

/// One document of an upload: its pages (indices from 0) and its own result.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentResult {
    pub pages: Range<usize>,
    pub result: Value,
    /// The LLM's values the page's own replaced ([`check_against_page`]).
    pub corrections: Vec<Correction>,
}

/// A value of the LLM's that no line supports, replaced by what the rules read there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Correction {
    pub key: String,
    pub llm: String,
    pub page: String,
}

/// The facts a wrong value of costs most, and which the rules read reliably from the page
/// itself (a letterhead, a date pattern, the strongest total label).
pub const CHECKED_KEYS: [&str; 3] = ["Date", "Total", "Company"];

/// Checks an LLM's document result against its page: each of [`CHECKED_KEYS`] whose value
/// no line supports ([`provenance::PageLines::support`]) takes the rules' reading, when the rules
/// read one that a line does support. Returns what was replaced. Counts the result's
/// unverified values and corrections as metrics.
pub fn check_against_page(
    result: &mut DocResult, lines: &[Line], page: &provenance::PageLines, library: &Library,
) -> Vec<Correction> {
    let mut corrections = Vec::new();
    let wanted: Vec<(&str, String)> = CHECKED_KEYS
        .into_iter()
        .filter_map(|key| {
            let value = result.kv.get(key).and_then(Value::as_str)?;
            (!page.support(value)).then(|| (key, value.to_owned()))
        })
        .collect();
    if !wanted.is_empty() {
        let rules = rules::extract_doc(lines, library);
        for (key, llm) in wanted {
            let Some(Value::String(read)) = rules.kv.get(key) else { continue };
            if page.support(read) {
                result.kv.insert(key.to_owned(), Value::String(read.clone()));
                corrections.push(Correction { key: key.to_owned(), llm, page: read.clone() });
            }
        }
    }
    let unverified = page.unverified(&result.kv).len();
    docusnap_core::metrics::unverified(unverified, corrections.len());
    corrections
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
        let result = provenance::v2_result(extraction, ocr);
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
    /// A document's or a form's result from its OCR text. An upload holding several
    /// documents ([`documents::split`]; forms are one) is extracted document by document,
    /// and merged for v1.
    pub async fn document(
        &self, ocr: &OcrText, want: Want, library: &Library, deadline: Instant,
    ) -> Result<Extraction, ExtractError> {
        // The page markers alone are no text: pages where OCR found nothing.
        if ocr.lines.iter().all(|l| l.text.trim().is_empty()) {
            return Err(PromptError::NoText.into());
        }
        let ranges = match want {
            Want::Doc => documents::split(&ocr.pages()),
            Want::Form => Vec::new(),
        };
        let mut usage = TokenUsage::default();
        let mut llm_failed = None;
        if ranges.len() <= 1 {
            let (result, corrections) = self.one(ocr, want, library, deadline, &mut usage, &mut llm_failed).await?;
            let extractor = self.extractor_after(llm_failed)?;
            let result = to_value(&result);
            let pages = 0..ocr.page_count();
            let documents = vec![DocumentResult { pages, result: result.clone(), corrections }];
            return Ok(Extraction { result, documents, extractor, usage });
        }
        info!(documents = ranges.len(), "the upload holds several documents");
        let mut parts = Vec::new();
        for range in ranges {
            let part = ocr.part(&range);
            let (result, corrections) = self.one(&part, want, library, deadline, &mut usage, &mut llm_failed).await?;
            parts.push((range, result, corrections));
        }
        let extractor = self.extractor_after(llm_failed)?;
        let results: Vec<(Range<usize>, DocResult)> = parts.iter().map(|(r, d, _)| (r.clone(), d.clone())).collect();
        let merged = documents::merge(&results).ok_or(PromptError::NoText)?.normalise(false, library)?;
        let documents = parts
            .into_iter()
            .map(|(pages, result, corrections)| DocumentResult { pages, result: to_value(&result), corrections })
            .collect();
        Ok(Extraction { result: to_value(&merged), documents, extractor, usage })
    }

    /// One document's result: the LLM's while it answers, else the rules'. Once the LLM
    /// has failed (`llm_failed`), the upload's later documents go straight to the rules:
    /// its retries and budget are spent.
    async fn one(
        &self, ocr: &OcrText, want: Want, library: &Library, deadline: Instant, usage: &mut TokenUsage,
        llm_failed: &mut Option<LlmFailure>,
    ) -> Result<(DocResult, Vec<Correction>), ExtractError> {
        let is_form = want == Want::Form;
        let messages = prompt::doc_messages(&ocr.text, library, is_form)?;
        if let (Some(model), None) = (&self.model, &*llm_failed) {
            let page = provenance::PageLines::new(&ocr.lines);
            let parse = |answer: &str| answer::doc_result(answer::json_object(answer)?, is_form, library, &page);
            let schema = schema::doc(is_form, &schema::Room::new(&ocr.lines, library));
            match ask(model, messages, &schema, deadline, parse, usage).await {
                Ok(mut result) => {
                    // A form's kv is its printed facts; its date and total are not the point.
                    let corrections =
                        if is_form { Vec::new() } else { check_against_page(&mut result, &ocr.lines, &page, library) };
                    return Ok((result, corrections));
                }
                Err(e) if self.fallback_to_rules => *llm_failed = Some(e),
                Err(e) => return Err(ExtractError::Llm(e)),
            }
        }
        let result = match want {
            Want::Doc => rules::extract_doc(&ocr.lines, library),
            Want::Form => rules::extract_form(&ocr.lines, library),
        };
        Ok((result.normalise(is_form, library)?, Vec::new()))
    }

    /// What made the upload's result: the LLM, unless it failed for any document.
    fn extractor_after(&self, llm_failed: Option<LlmFailure>) -> Result<ExtractorKind, ExtractError> {
        match (&self.model, llm_failed) {
            (Some(model), None) => Ok(model.extractor()),
            (_, failed) => self.rules_after(failed),
        }
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
                match ask(model, messages, &schema::fill(&fields), deadline, parse, &mut usage).await {
                    Ok(filled) => {
                        return Ok(Extraction {
                            result: Value::Object(filled),
                            documents: Vec::new(),
                            extractor: model.extractor(),
                            usage,
                        })
                    }
                    Err(e) => Some(e),
                }
            }
            None => None,
        };
        let extractor = self.rules_after(llm_failure)?;
        Ok(Extraction { result: Value::Object(fill::fill(&fields, library)), documents: Vec::new(), extractor, usage })
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
    model: &M, mut messages: Vec<Message>, schema: &schema::AnswerSchema, deadline: Instant,
    parse: impl Fn(&str) -> Result<T, AnswerError>, usage: &mut TokenUsage,
) -> Result<T, LlmFailure> {
    let Completion { text: answer, usage: spent } = model.complete(&messages, schema, deadline).await?;
    usage.add(spent);
    let problem = match parse(&answer) {
        Ok(result) => return Ok(result),
        Err(problem) => problem,
    };
    info!(problem = %problem, "the LLM's answer did not fit; asking once more");
    messages.push(Message::assistant(answer));
    messages.push(prompt::retry_message(&problem.for_model()));
    let Completion { text: answer, usage: spent } = model.complete(&messages, schema, deadline).await?;
    usage.add(spent);
    parse(&answer).map_err(LlmFailure::Unfit)
}

fn to_value<T: serde::Serialize>(result: &T) -> Value {
    // Our result types serialise without fail: string keys, no non-finite floats.
    serde_json::to_value(result).unwrap_or(Value::Null)
}
