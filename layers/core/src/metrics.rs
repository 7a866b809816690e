//! Metrics as CloudWatch embedded metric format (EMF) log lines: one JSON object per
//! line on standard output, which CloudWatch Logs turns into metrics with no API call and
//! no agent. Namespace `DocuSnap`; every metric carries the function's name as a
//! dimension, plus the few dimensions given.
//!
//! What is measured (docs/operations.md, "Observability"): requests by route and status, task time
//! per stage, OCR and LLM latency, and failures by code.

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::codes::ErrorCode;
use crate::task::ExtractorKind;

pub const NAMESPACE: &str = "DocuSnap";

/// The metric names, one place for each.
pub mod name {
    pub const REQUESTS: &str = "Requests";
    pub const TASK_STAGE_SECONDS: &str = "TaskStageSeconds";
    pub const OCR_PAGE_MS: &str = "OcrPageMs";
    pub const LLM_CALL_MS: &str = "LlmCallMs";
    pub const EXTRACT_MS: &str = "ExtractMs";
    pub const EXTRACTIONS: &str = "Extractions";
    pub const TASK_FAILURES: &str = "TaskFailures";
    pub const DEAD_LETTERS: &str = "DeadLetters";
    pub const REFUSALS: &str = "Refusals";
    pub const LLM_INPUT_TOKENS: &str = "LlmInputTokens";
    pub const LLM_OUTPUT_TOKENS: &str = "LlmOutputTokens";
    pub const UNVERIFIED_VALUES: &str = "UnverifiedValues";
    pub const CORRECTED_VALUES: &str = "CorrectedValues";
    /// Every metric above: the dashboard and the alarms may name these only (a test
    /// reads template.yaml against this list).
    pub const ALL: &[&str] = &[
        REQUESTS,
        TASK_STAGE_SECONDS,
        OCR_PAGE_MS,
        LLM_CALL_MS,
        EXTRACT_MS,
        EXTRACTIONS,
        TASK_FAILURES,
        DEAD_LETTERS,
        REFUSALS,
        LLM_INPUT_TOKENS,
        LLM_OUTPUT_TOKENS,
        UNVERIFIED_VALUES,
        CORRECTED_VALUES,
    ];
}

/// The function stages whose time since the task's creation is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipelineStage {
    Ocr,
    Extract,
}

impl PipelineStage {
    fn as_str(self) -> &'static str {
        match self {
            PipelineStage::Ocr => "ocr",
            PipelineStage::Extract => "extract",
        }
    }
}

/// One API request, by route label and HTTP status.
pub fn request(route: &str, status: u16) {
    count(name::REQUESTS, &[("Route", route), ("Status", &status.to_string())]);
}

/// A task ended with `code`.
pub fn task_failed(code: ErrorCode) {
    count(name::TASK_FAILURES, &[("Code", code.as_str())]);
}

/// A request refused before any work for the caller's quota (or another refusal worth a
/// graph), by code.
pub fn refused(code: ErrorCode) {
    count(name::REFUSALS, &[("Code", code.as_str())]);
}

/// The tokens one LLM call used (prompt and completion, as the provider counted them in
/// its answer's usage): the largest cost per document once an LLM is configured. No
/// dimension but the function's, so one alarm sums a day of them.
pub fn llm_tokens(input: u64, output: u64) {
    emit(
        &[],
        &[(name::LLM_INPUT_TOKENS, input as f64, Unit::Count), (name::LLM_OUTPUT_TOKENS, output as f64, Unit::Count)],
    );
}

/// An LLM result's values that no line of the page supports, and those of them replaced
/// by what the rules read on the page: how often the model invents.
pub fn unverified(unverified: usize, corrected: usize) {
    emit(
        &[],
        &[
            (name::UNVERIFIED_VALUES, unverified as f64, Unit::Count),
            (name::CORRECTED_VALUES, corrected as f64, Unit::Count),
        ],
    );
}

/// A message taken from a dead-letter queue (its task, if it has one, is ended with a code):
/// what the dead-letter alarms watch, since a consumed queue never shows a backlog.
pub fn dead_letter() {
    count(name::DEAD_LETTERS, &[]);
}

/// Seconds from a task's creation to the end of `stage`'s work on it.
pub fn stage_seconds(stage: PipelineStage, seconds: i64) {
    emit(&[("Stage", stage.as_str())], &[(name::TASK_STAGE_SECONDS, seconds.max(0) as f64, Unit::Seconds)]);
}

/// One page read by OCR.
pub fn ocr_page(elapsed: std::time::Duration) {
    millis(name::OCR_PAGE_MS, elapsed, &[]);
}

/// One LLM call, by outcome (an HTTP status, `timeout` or `transport`).
pub fn llm_call(elapsed: std::time::Duration, outcome: &str) {
    millis(name::LLM_CALL_MS, elapsed, &[("Outcome", outcome)]);
}

/// One extraction that made a result, by the kind of extractor: its time, and a count
/// that the fallback alarm divides (rules-fallback over llm plus rules-fallback).
pub fn extracted(extractor: &ExtractorKind, elapsed: std::time::Duration) {
    let metrics =
        [(name::EXTRACT_MS, elapsed.as_secs_f64() * 1000.0, Unit::Milliseconds), (name::EXTRACTIONS, 1.0, Unit::Count)];
    emit(&[("Extractor", extractor.label())], &metrics);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// The function's name as Lambda sets it, or `local`.
fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into())
}

/// One EMF line: `metrics` under `dimensions` (plus `Function`), at `timestamp_ms`.
pub fn line(function: &str, dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)], timestamp_ms: u128) -> String {
    let mut names: Vec<&str> = vec!["Function"];
    names.extend(dimensions.iter().map(|(name, _)| *name));
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()})).collect();
    let mut object = Map::new();
    object.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms as u64,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [names], "Metrics": definitions}],
        }),
    );
    object.insert("Function".into(), Value::String(function.to_owned()));
    for (name, value) in dimensions {
        object.insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    for (name, value, _) in metrics {
        object.insert((*name).to_owned(), json!(value));
    }
    Value::Object(object).to_string()
}

/// Lines kept instead of written while a [`Capture`] lives (tests read what was counted).
static CAPTURED: std::sync::Mutex<Option<Vec<String>>> = std::sync::Mutex::new(None);

/// Keeps this process's metric lines from the moment it is made; for tests.
pub struct Capture(());

/// Starts keeping metric lines (see [`Capture::lines`]) instead of writing them.
pub fn capture() -> Capture {
    if let Ok(mut kept) = CAPTURED.lock() {
        *kept = Some(Vec::new());
    }
    Capture(())
}

impl Capture {
    /// The lines kept so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let kept = CAPTURED.lock().map(|k| k.clone().unwrap_or_default()).unwrap_or_default();
        kept.iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(mut kept) = CAPTURED.lock() {
            *kept = None;
        }
    }
}

/// Writes one EMF line to standard output.
pub fn emit(dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)]) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let text = line(&function_name(), dimensions, metrics, now);
    if let Ok(mut kept) = CAPTURED.lock() {
        if let Some(kept) = kept.as_mut() {
            kept.push(text);
            return;
        }
    }
    // A metric that cannot be written is not worth failing a task for.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Counts one event.
fn count(name: &str, dimensions: &[(&str, &str)]) {
    emit(dimensions, &[(name, 1.0, Unit::Count)]);
}

/// Records how long something took.
fn millis(name: &str, elapsed: std::time::Duration, dimensions: &[(&str, &str)]) {
    emit(dimensions, &[(name, elapsed.as_secs_f64() * 1000.0, Unit::Milliseconds)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_embedded_metric_format() {
        let text = line(
            "docusnap-ocr",
            &[("Stage", "ocr")],
            &[("TaskSeconds", 2.5, Unit::Seconds), ("Pages", 3.0, Unit::Count)],
            1_700_000_000_000,
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(value["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], "DocuSnap");
        assert_eq!(directive["Dimensions"], json!([["Function", "Stage"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "TaskSeconds", "Unit": "Seconds"}, {"Name": "Pages", "Unit": "Count"}])
        );
        // Every dimension and metric named in the directive is a top-level member.
        assert_eq!((value["Function"].as_str(), value["Stage"].as_str()), (Some("docusnap-ocr"), Some("ocr")));
        assert_eq!((value["TaskSeconds"].as_f64(), value["Pages"].as_f64()), (Some(2.5), Some(3.0)));
        assert!(!text.contains('\n'));
    }
}
