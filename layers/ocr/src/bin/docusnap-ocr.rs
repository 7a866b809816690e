//! `docusnap-ocr FILE...`: one JSON line per page,
//! `{"file", "page", "lines": [{"text", "score", "box"}], "ms"}`. A file is an image, a
//! multi-page TIFF or a PDF (a page per frame or page, from 1; a PDF page with a usable
//! text layer is read from it, as the OCR function does); "ms" is the page's time,
//! splitting the file included in its first page's.
//!
//! `--models ppocr-v4|ppocr-v6` picks the model set; `--mode accurate|fast` how pages are
//! read (`--fast-squeeze X` the fast mode's crop squeeze); `--reference-settings` runs the
//! reference's detection size and recognition padding (for comparisons);
//! `--det-long-side`, `--det-short-side` and `--rec-min-width` set them one by one;
//! `--rec-batch N`, `--rec-budget PX`, `--rec-sessions N`, `--threads N`, `--no-direction`
//! and `--db-thresh`, `--db-box-thresh`, `--db-unclip`, `--db-dilate 1|0` the rest of the
//! engine's settings (docs/ocr.md, "Where this engine differs"). `--prepare-models` writes the
//! set's prepared models beside them and prints their paths.

use std::io::Write;
use std::time::Instant;

use docusnap_ocr::{input, EngineConfig, Mode, ModelSet, OcrEngine};

fn main() -> std::process::ExitCode {
    docusnap_ocr::runtime::disable_telemetry();
    let mut files = Vec::new();
    let mut set = None;
    let mut mode = None;
    let mut squeeze = None;
    let mut reference = false;
    let (mut det_long, mut det_short) = (None, None);
    let mut rec_min_width = None;
    let mut tuning: Vec<(String, usize)> = Vec::new();
    let mut db: Vec<(String, f32)> = Vec::new();
    let mut prepare = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--models" => match args.next().as_deref().and_then(ModelSet::parse) {
                Some(s) => set = Some(s),
                None => return usage("--models takes ppocr-v4 or ppocr-v6"),
            },
            "--mode" => match args.next().as_deref().and_then(Mode::parse) {
                Some(m) => mode = Some(m),
                None => return usage("--mode takes accurate or fast"),
            },
            "--fast-squeeze" => match args.next().and_then(|v| v.parse::<f32>().ok()).filter(|v| *v > 0.0 && *v <= 1.0)
            {
                Some(v) => squeeze = Some(v),
                None => return usage("--fast-squeeze takes a number above 0, at most 1"),
            },
            "--reference-settings" => reference = true,
            "--det-long-side" | "--det-short-side" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if arg == "--det-long-side" => det_long = Some(n),
                Some(n) => det_short = Some(n),
                None => return usage("--det-long-side and --det-short-side take a number of pixels"),
            },
            "--rec-min-width" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => rec_min_width = Some(n),
                None => return usage("--rec-min-width takes a number of pixels"),
            },
            "--rec-budget" | "--rec-batch" | "--rec-sessions" | "--threads" => {
                match args.next().and_then(|v| v.parse().ok()) {
                    Some(n) => tuning.push((arg, n)),
                    None => return usage("--rec-budget, --rec-batch, --rec-sessions and --threads take a number"),
                }
            }
            "--no-direction" => tuning.push((arg, 0)),
            "--db-thresh" | "--db-box-thresh" | "--db-unclip" | "--db-dilate" => {
                match args.next().and_then(|v| v.parse::<f32>().ok()) {
                    Some(v) => db.push((arg, v)),
                    None => return usage("--db-* take a number (--db-dilate: 1 or 0)"),
                }
            }
            "--prepare-models" => prepare = true,
            "-h" | "--help" => return usage(""),
            _ => files.push(arg),
        }
    }
    if prepare {
        let config = set.map_or_else(EngineConfig::from_env, EngineConfig::for_set);
        return match config.and_then(|c| OcrEngine::prepare_models(&c)) {
            Ok(paths) => {
                paths.iter().for_each(|p| println!("{}", p.display()));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    if files.is_empty() {
        return usage("no files given");
    }
    let mut config = match set.map_or_else(EngineConfig::from_env, EngineConfig::for_set) {
        Ok(config) if reference => config.reference(),
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if let Some(mode) = mode {
        config.mode = mode;
    }
    if let Some(squeeze) = squeeze {
        config.fast_squeeze = squeeze;
    }
    // The detection size of the mode the pages are read in.
    let size = if config.mode == Mode::Fast { &mut config.fast_det_size } else { &mut config.det_size };
    size.long_max = det_long.unwrap_or(size.long_max);
    size.short_min = det_short.unwrap_or(size.short_min);
    if let Some(width) = rec_min_width {
        config.batching.min_width = width;
    }
    for (arg, v) in db {
        match arg.as_str() {
            "--db-thresh" => config.db.thresh = v,
            "--db-box-thresh" => config.db.box_thresh = v,
            "--db-dilate" => config.db.dilate = v != 0.0,
            _ => config.db.unclip_ratio = v,
        }
    }
    for (arg, n) in tuning {
        match arg.as_str() {
            "--rec-budget" => config.batching.budget = n,
            "--rec-batch" => config.batching.batch = n,
            "--rec-sessions" => config.rec_sessions = n,
            "--threads" => config.threads = n,
            _ => config.use_direction = false,
        }
    }
    let engine = match OcrEngine::load(config) {
        Ok(engine) => engine,
        Err(e) => return fail(&e),
    };
    // Only once the engine is built: see `bound_heap_retention`.
    docusnap_ocr::runtime::bound_heap_retention();
    let mut status = std::process::ExitCode::SUCCESS;
    for file in files {
        let started = Instant::now();
        let pages = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| input::split(bytes).map_err(|e| e.to_string()));
        let pages = match pages {
            Ok(pages) => pages,
            Err(error) => {
                status = std::process::ExitCode::FAILURE;
                print(serde_json::json!({"file": file, "error": error, "ms": ms_since(started)}));
                continue;
            }
        };
        let mut started = started;
        for (i, page) in pages.iter().enumerate() {
            let line = match engine.read_input(page) {
                Ok(read) => {
                    serde_json::json!({
                        "file": file, "page": i + 1, "width": read.width, "height": read.height,
                        "orientation": read.orientation, "lines": read.lines, "ms": ms_since(started),
                    })
                }
                Err(error) => {
                    status = std::process::ExitCode::FAILURE;
                    serde_json::json!({"file": file, "page": i + 1, "error": error.to_string(), "ms": ms_since(started)})
                }
            };
            print(line);
            started = Instant::now();
        }
    }
    status
}

fn ms_since(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

fn print(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn usage(problem: &str) -> std::process::ExitCode {
    if !problem.is_empty() {
        eprintln!("docusnap-ocr: {problem}");
    }
    eprintln!(
        "usage: docusnap-ocr [--models ppocr-v4|ppocr-v6] [--reference-settings] \
         [--mode accurate|fast] [--fast-squeeze X] [--det-long-side PX] [--det-short-side PX] [--rec-min-width PX] [--rec-batch N] \
         [--rec-budget PX] [--rec-sessions N] [--threads N] [--no-direction] \
         [--db-thresh P] [--db-box-thresh P] [--db-unclip R] [--db-dilate 1|0] FILE...\n       \
         docusnap-ocr [--models ppocr-v4|ppocr-v6] --prepare-models"
    );
    std::process::ExitCode::from(2)
}

fn fail(error: &dyn std::fmt::Display) -> std::process::ExitCode {
    eprintln!("docusnap-ocr: {error}");
    std::process::ExitCode::FAILURE
}
