//! `docusnap-extract [--form]`: reads `docusnap-ocr` JSON lines on standard input and
//! prints, for each, `{"file", "result"}` with the rules extractor's doc (or form) result.
//!
//!     target/release/docusnap-ocr receipt.jpg | target/release/docusnap-extract

use std::io::{BufRead, Write};

use docusnap_core::protocol::Library;
use docusnap_extract::rules::{extract_doc, extract_form, Line};
use serde_json::{json, Value};

fn main() -> std::process::ExitCode {
    let form = std::env::args().skip(1).any(|a| a == "--form");
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return std::process::ExitCode::FAILURE };
        let Ok(page) = serde_json::from_str::<Value>(&line) else {
            eprintln!("docusnap-extract: not a docusnap-ocr JSON line: {line:.80}");
            return std::process::ExitCode::FAILURE;
        };
        let lines: Vec<Line> = page["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let ys: Vec<f64> = l["box"].as_array().into_iter().flatten().filter_map(|p| p[1].as_f64()).collect();
                let height = ys.iter().cloned().fold(f64::MIN, f64::max) - ys.iter().cloned().fold(f64::MAX, f64::min);
                Line { text: l["text"].as_str().unwrap_or_default().to_owned(), height: height.max(0.0) as f32 }
            })
            .collect();
        let library = Library::default();
        let result = if form { extract_form(&lines, &library) } else { extract_doc(&lines, &library) };
        let _ = writeln!(stdout.lock(), "{}", json!({"file": page["file"], "result": result}));
    }
    std::process::ExitCode::SUCCESS
}
