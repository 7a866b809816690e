//! `docusnap-extract [--form | --rows | --documents]`: reads `docusnap-ocr` JSON lines on
//! standard input and prints, for each, `{"file", "result"}` with the rules extractor's doc
//! (or form) result, or with `--rows` the page's rows as the rules read them
//! (`{"file", "rows"}`). With `--documents`, the pages of each file are one upload, read
//! as the extract function reads a task without an LLM: split into documents, each
//! extracted, merged (`{"file", "result", "documents": [{"pages", "result"}]}`).
//!
//!     target/release/docusnap-ocr receipt.jpg | target/release/docusnap-extract

use std::io::{BufRead, Write};

use docusnap_core::ocr_output::{Orientation, PageText, TextLine};
use docusnap_core::protocol::Library;
use docusnap_extract::rules::{extract_doc, extract_form};
use serde::Deserialize;
use serde_json::{json, Value};

/// One line of `docusnap-ocr`'s output.
#[derive(Deserialize)]
struct OcrLine {
    file: Value,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
    #[serde(default)]
    orientation: Orientation,
    lines: Vec<TextLine>,
}

impl OcrLine {
    fn page(self) -> PageText {
        PageText {
            width: self.width,
            height: self.height,
            orientation: self.orientation,
            lines: self.lines,
            ..PageText::default()
        }
    }
}

fn main() -> std::process::ExitCode {
    if std::env::args().skip(1).any(|a| a == "--documents") {
        return documents();
    }
    let form = std::env::args().skip(1).any(|a| a == "--form");
    let show_rows = std::env::args().skip(1).any(|a| a == "--rows");
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            return std::process::ExitCode::FAILURE;
        };
        let Ok(page) = serde_json::from_str::<OcrLine>(&line) else {
            eprintln!("docusnap-extract: not a docusnap-ocr JSON line: {line:.80}");
            return std::process::ExitCode::FAILURE;
        };
        let file = page.file.clone();
        let lines = docusnap_extract::page_lines(&page.page(), 0);
        if show_rows {
            let rows: Vec<String> = docusnap_extract::layout::rows(&lines)
                .iter()
                .map(|row| row.iter().map(|&i| lines[i].text.as_str()).collect::<Vec<_>>().join(" | "))
                .collect();
            let _ = writeln!(stdout.lock(), "{}", json!({"file": file, "rows": rows}));
            continue;
        }
        let library = Library::default();
        let result = if form { extract_form(&lines, &library) } else { extract_doc(&lines, &library) };
        // As the service answers: flattened and checked (a list's items numbered as keys).
        let result = match result.normalise(form, &library) {
            Ok(result) => serde_json::to_value(result).unwrap_or(Value::Null),
            Err(e) => json!({"error": e.to_string()}),
        };
        let _ = writeln!(stdout.lock(), "{}", json!({"file": file, "result": result}));
    }
    std::process::ExitCode::SUCCESS
}

/// `--documents`: consecutive lines of one file are its pages.
fn documents() -> std::process::ExitCode {
    use docusnap_extract::model::AnyChatModel;
    use docusnap_extract::{Extractor, OcrText, Want};
    let mut uploads: Vec<(Value, Vec<PageText>)> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(page) = line.map_err(|_| ()).and_then(|l| serde_json::from_str::<OcrLine>(&l).map_err(|_| ())) else {
            eprintln!("docusnap-extract: not a docusnap-ocr JSON line");
            return std::process::ExitCode::FAILURE;
        };
        let file = page.file.clone();
        match uploads.last_mut() {
            Some((last, pages)) if *last == file => pages.push(page.page()),
            _ => uploads.push((file, vec![page.page()])),
        }
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return std::process::ExitCode::FAILURE;
    };
    let extractor = Extractor::<AnyChatModel> { model: None, fallback_to_rules: true };
    let library = Library::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let stdout = std::io::stdout();
    for (file, pages) in uploads {
        let ocr = docusnap_core::ocr_output::OcrOutput { pages, ..Default::default() };
        let extraction =
            runtime.block_on(extractor.document(&OcrText::from_output(&ocr), Want::Doc, &library, deadline));
        let answer = match extraction {
            Ok(done) => {
                let documents: Vec<Value> = done
                    .documents
                    .iter()
                    .map(|d| json!({"pages": d.pages.clone().collect::<Vec<_>>(), "result": d.result}))
                    .collect();
                json!({"file": file, "result": done.result, "documents": documents})
            }
            Err(e) => json!({"file": file, "error": e.to_string(), "documents": []}),
        };
        let _ = writeln!(stdout.lock(), "{answer}");
    }
    std::process::ExitCode::SUCCESS
}
