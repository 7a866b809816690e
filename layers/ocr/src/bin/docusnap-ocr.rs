//! `docusnap-ocr IMAGE...`: one JSON line per image,
//! `{"file", "lines": [{"text", "score", "box"}], "ms"}`.
//!
//! `--models ppocr-v4|ppocr-v6` picks the model set; `--reference-settings` runs the
//! reference's detection size and recognition padding (for comparisons);
//! `--det-long-side`, `--det-short-side` and `--rec-min-width` set them one by one.

use std::io::Write;
use std::time::Instant;

use docusnap_ocr::{DetSize, EngineConfig, ModelSet, OcrEngine};

fn main() -> std::process::ExitCode {
    let mut files = Vec::new();
    let mut set = None;
    let mut reference = false;
    let mut det_size = None;
    let mut rec_min_width = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--models" => match args.next().as_deref().and_then(ModelSet::parse) {
                Some(s) => set = Some(s),
                None => return usage("--models takes ppocr-v4 or ppocr-v6"),
            },
            "--reference-settings" => reference = true,
            "--det-long-side" | "--det-short-side" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => {
                    let size: &mut DetSize = det_size.get_or_insert(DetSize::DEFAULT);
                    if arg == "--det-long-side" { size.long_max = n } else { size.short_min = n }
                }
                None => return usage("--det-long-side and --det-short-side take a number of pixels"),
            },
            "--rec-min-width" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => rec_min_width = Some(n),
                None => return usage("--rec-min-width takes a number of pixels"),
            },
            "-h" | "--help" => return usage(""),
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        return usage("no images given");
    }
    let mut config = match set.map_or_else(EngineConfig::from_env, EngineConfig::for_set) {
        Ok(config) if reference => config.reference(),
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if let Some(size) = det_size {
        config.det_size = size;
    }
    if let Some(width) = rec_min_width {
        config.batching.min_width = width;
    }
    let engine = match OcrEngine::load(config) {
        Ok(engine) => engine,
        Err(e) => return fail(&e),
    };
    let mut status = std::process::ExitCode::SUCCESS;
    let stdout = std::io::stdout();
    for file in files {
        let started = Instant::now();
        let result = std::fs::read(&file).map_err(|e| e.to_string()).and_then(|bytes| engine.read_image(&bytes).map_err(|e| e.to_string()));
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let line = match result {
            Ok(page) => serde_json::json!({"file": file, "lines": page.lines, "ms": (ms * 10.0).round() / 10.0}),
            Err(error) => {
                status = std::process::ExitCode::FAILURE;
                serde_json::json!({"file": file, "error": error, "ms": (ms * 10.0).round() / 10.0})
            }
        };
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    status
}

fn usage(problem: &str) -> std::process::ExitCode {
    if !problem.is_empty() {
        eprintln!("docusnap-ocr: {problem}");
    }
    eprintln!(
        "usage: docusnap-ocr [--models ppocr-v4|ppocr-v6] [--reference-settings] \
         [--det-long-side PX | --det-short-side PX] [--rec-min-width PX] IMAGE..."
    );
    std::process::ExitCode::from(2)
}

fn fail(error: &dyn std::fmt::Display) -> std::process::ExitCode {
    eprintln!("docusnap-ocr: {error}");
    std::process::ExitCode::FAILURE
}
