//! The whole pipeline on pages the test renders itself, with known text: English and
//! Chinese, upright and upside down, for both model sets. Needs the models laid out by
//! `models/fetch` and the fonts of Debian's fonts-dejavu-core and fonts-wqy-microhei
//! (`scripts/test` sees to both).

use docusnap_ocr::cores::Cores;
use docusnap_ocr::testing::{render, CJK_FONT, LATIN_FONT};
use docusnap_ocr::{EngineConfig, Mode, ModelSet, OcrEngine, Page, Rotation};

/// An engine of the test's own, dropped when the test ends, as the product's binaries drop
/// theirs. One held in a static lives on past `main` into ONNX Runtime's teardown, with
/// its sessions' thread pools; a test that had passed once ended in SIGSEGV at exit so
/// (not reproduced since). nextest runs each test in a process of its own, so a static
/// shared nothing.
fn engine(set: ModelSet) -> OcrEngine {
    let config = EngineConfig::for_set(set).unwrap_or_else(|e| panic!("{e}"));
    OcrEngine::load(config).unwrap_or_else(|e| panic!("{e}"))
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            current.push((previous[j + 1] + 1).min(current[j] + 1).min(previous[j] + usize::from(ca != cb)));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Each expected line is read, in order, with at most one error in ten characters
/// (spaces aside: the models often drop them between Latin words).
fn assert_reads(page: &Page, expected: &[&str]) {
    let got: Vec<String> = page.lines.iter().map(|l| squash(&l.text)).collect();
    assert_eq!(got.len(), expected.len(), "lines {got:?}, expected {expected:?}");
    for (got, want) in got.iter().zip(expected) {
        let want = squash(want);
        let errors = edit_distance(got, &want);
        assert!(errors * 10 <= want.chars().count(), "read {got:?}, expected {want:?}");
    }
    for line in &page.lines {
        assert!(line.score > 0.5 && line.score <= 1.0, "{line:?}");
        assert!(line
            .quad
            .iter()
            .all(|p| p.x >= 0.0 && p.y >= 0.0 && p.x <= page.width as f32 && p.y <= page.height as f32));
    }
}

const ENGLISH: [&str; 3] = ["INVOICE No. 2026-0042", "Total due: 128.50 EUR", "Thank you for your order"];
const CHINESE: [&str; 2] = ["文档识别测试", "欢迎使用中文识别"];

fn english_and_chinese(set: ModelSet) {
    let engine = engine(set);
    let page = engine.read(&render(&ENGLISH, LATIN_FONT, 32.0)).unwrap();
    assert_reads(&page, &ENGLISH);
    let page = engine.read(&render(&CHINESE, CJK_FONT, 36.0)).unwrap();
    assert_reads(&page, &CHINESE);
    // Boxes lie where the text was drawn: lines top to bottom, 57.6 px apart.
    let tops: Vec<f32> = page.lines.iter().map(|l| l.quad[0].y).collect();
    assert!(tops.windows(2).all(|w| (w[1] - w[0] - 64.8).abs() < 12.0), "{tops:?}");
}

fn upside_down(set: ModelSet) {
    let engine = engine(set);
    let upright = render(&ENGLISH, LATIN_FONT, 32.0);
    let page = engine.read(&image::imageops::rotate180(&upright)).unwrap();
    assert_reads(&page, &ENGLISH);
    let upright = render(&CHINESE, CJK_FONT, 36.0);
    let page = engine.read(&image::imageops::rotate180(&upright)).unwrap();
    assert_reads(&page, &CHINESE);
}

/// A page that came sideways is stood upright before it is read, either way round,
/// whether its pixels are turned or its EXIF tag turns it; its boxes stay in the page's
/// pixels as it came, and the page says how it was turned.
fn sideways(set: ModelSet) {
    use docusnap_ocr::testing::with_exif_orientation;
    use image::imageops::{rotate270, rotate90};
    let engine = engine(set);
    let upright = render(&ENGLISH, LATIN_FONT, 32.0);
    for (name, image, rotation) in [
        ("turned clockwise", rotate90(&upright), Rotation::ThreeQuarters),
        ("turned counter-clockwise", rotate270(&upright), Rotation::Quarter),
    ] {
        let page = engine.read(&image).unwrap();
        assert_reads(&page, &ENGLISH);
        assert_eq!(page.orientation.rotation, rotation, "{name}");
        assert_eq!((page.width, page.height), image.dimensions());
        // The first line lies along the side its text's top faces, and runs along the
        // page's height from its first corner.
        let centre_x = |l: &docusnap_ocr::TextLine| l.quad.iter().map(|p| p.x).sum::<f32>() / 4.0;
        let (first, last) = (&page.lines[0], &page.lines[2]);
        let runs = first.quad[1].y - first.quad[0].y;
        if rotation == Rotation::ThreeQuarters {
            assert!(centre_x(first) > centre_x(last) && runs > 100.0, "{name}: {first:?}");
        } else {
            assert!(centre_x(first) < centre_x(last) && runs < -100.0, "{name}: {first:?}");
        }
    }
    let upright = render(&CHINESE, CJK_FONT, 36.0);
    let page = engine.read(&rotate90(&upright)).unwrap();
    assert_reads(&page, &CHINESE);

    // A phone's JPEG: pixels turned and a tag that stands them up, or upright pixels and
    // a tag that turns them (an app that turned the pixels and kept the tag).
    let jpeg = |image: &image::RgbImage| {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    let upright = render(&ENGLISH, LATIN_FONT, 32.0);
    // Orientation 6: the stored image is turned a quarter clockwise to be viewed.
    let page = engine.read_image(&with_exif_orientation(&jpeg(&rotate270(&upright)), 6)).unwrap();
    assert_reads(&page, &ENGLISH);
    assert_eq!(page.orientation.rotation, Rotation::None);
    let page = engine.read_image(&with_exif_orientation(&jpeg(&upright), 6)).unwrap();
    assert_reads(&page, &ENGLISH);
    assert_eq!(page.orientation.rotation, Rotation::ThreeQuarters);
}

/// A page fed or photographed askew by up to 10° reads as it would level, and says by
/// how much it was levelled.
fn skewed(set: ModelSet) {
    let engine = engine(set);
    let lines = ["CORNER BAKERY LTD", "Coffee and cake 3.20", "Tea 2.10", "TOTAL 5.30", "Thank you"];
    let upright = render(&lines, LATIN_FONT, 32.0);
    for degrees in [10.0, -10.0, 4.0] {
        let page = engine.read(&docusnap_ocr::testing::skewed(&upright, degrees)).unwrap();
        assert_reads(&page, &lines);
        assert_eq!(page.orientation.rotation, Rotation::None);
        assert!((page.orientation.skew - degrees).abs() < 1.5, "{degrees}: {:?}", page.orientation);
    }
    let page = engine.read(&upright).unwrap();
    assert_eq!(page.orientation.skew, 0.0, "a level page is left as it is");
}

#[test]
fn ppocr_v6_reads_sideways_pages() {
    sideways(ModelSet::PpOcrV6);
}

#[test]
fn ppocr_v4_reads_sideways_pages() {
    sideways(ModelSet::PpOcrV4);
}

#[test]
fn ppocr_v6_reads_skewed_pages() {
    skewed(ModelSet::PpOcrV6);
}

#[test]
fn ppocr_v4_reads_english_and_chinese() {
    english_and_chinese(ModelSet::PpOcrV4);
}

#[test]
fn ppocr_v4_reads_upside_down_pages() {
    upside_down(ModelSet::PpOcrV4);
}

#[test]
fn ppocr_v6_reads_english_and_chinese() {
    english_and_chinese(ModelSet::PpOcrV6);
}

#[test]
fn ppocr_v6_reads_upside_down_pages() {
    upside_down(ModelSet::PpOcrV6);
}

/// A page read with every core, and the same page read while other pages hold all but
/// one, give the same lines in the same places: the detector's one-thread sessions and
/// its session for a page alone are one model, and recognition only shares its crops out
/// over fewer sessions.
#[test]
fn a_page_reads_the_same_alone_and_on_the_one_core_left_to_it() {
    let dir = std::env::temp_dir().join(format!("docusnap-cores-e2e-{}", std::process::id()));
    let mut config = EngineConfig::for_set(ModelSet::PpOcrV6).unwrap_or_else(|e| panic!("{e}"));
    config.cores_dir = Some(dir.clone());
    let engine = OcrEngine::load(config).unwrap_or_else(|e| panic!("{e}"));
    let lines = [ENGLISH.as_slice(), &["Paid by card 4242", "Change 0.00"]].concat();
    let image = render(&lines, LATIN_FONT, 32.0);
    let alone = engine.read(&image).unwrap();
    assert_reads(&alone, &lines);
    let machine = docusnap_ocr::runtime::machine_cores();
    // Other pages, in this process or another, hold every core but one.
    let others = (machine > 1).then(|| Cores::new(&dir, machine, machine - 1).claim());
    assert_eq!(others.as_ref().map_or(0, |c| c.cores()), machine - 1);
    let shared = engine.read(&image).unwrap();
    drop(others);
    let text = |page: &Page| page.lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>();
    assert_eq!(text(&alone), text(&shared));
    for (a, b) in alone.lines.iter().zip(&shared.lines) {
        assert!(a.quad.iter().zip(&b.quad).all(|(p, q)| (p.x - q.x).abs() <= 1.0 && (p.y - q.y).abs() <= 1.0));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn encoded_images_and_page_text() {
    // The default set: PP-OCRv4 reads this rendering's "INVOICE" as "INVO1CE" since its
    // detector gets PaddleOCR's own normalisation (its boxes move by a pixel).
    let engine = engine(ModelSet::PpOcrV6);
    let mut png = std::io::Cursor::new(Vec::new());
    render(&ENGLISH[..2], LATIN_FONT, 32.0).write_to(&mut png, image::ImageFormat::Png).unwrap();
    let page = engine.read_image(png.get_ref()).unwrap();
    let text = page.text();
    assert_eq!(text.matches("INVOICE").count(), 1, "{text}");
    assert!(squash(&text).to_uppercase().contains("TOTALDUE"), "{text}");
    assert!(matches!(engine.read_image(b"not an image"), Err(docusnap_ocr::OcrError::Decode(_))));
}

/// ONNX Runtime's telemetry stays off (`runtime::DISABLE_TELEMETRY`): the binary reads a
/// page in an environment that does not turn it off (no `ORT_DISABLE_TELEMETRY`, no
/// `CI`), and its uploader's store never appears in the home folder it was given. (With
/// the binary's own switch removed, the store is there after one page.)
#[test]
fn reading_a_page_starts_no_telemetry() {
    let home = std::env::temp_dir().join(format!("docusnap-telemetry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let page = home.join("page.png");
    render(&ENGLISH[..1], LATIN_FONT, 32.0).save(&page).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_docusnap-ocr"))
        .arg(&page)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("ORT_DISABLE_TELEMETRY")
        .env_remove("CI")
        .env_remove("ORT_RUNNING_UNIT_TESTS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("INVOICE"), "{}", String::from_utf8_lossy(&out.stdout));
    let written: Vec<_> = std::fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name()).collect();
    let _ = std::fs::remove_dir_all(&home);
    assert_eq!(written, [std::ffi::OsString::from("page.png")], "the engine wrote into its home folder");
}

#[test]
fn models_are_prepared_beside_themselves_once_and_again_when_the_model_changes() {
    let mut config = EngineConfig::for_set(ModelSet::PpOcrV6).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("docusnap-prepared-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ModelSet::PpOcrV6.files() {
        std::fs::copy(config.models.join(file), dir.join(file)).unwrap();
    }
    config.models = dir.clone();
    let recogniser = dir.join(ModelSet::PpOcrV6.spec().recognizer.file);
    let prepared = docusnap_ocr::prepared_path(&recogniser);
    assert!(!prepared.exists());

    // The first load writes the prepared form (no part file left), and reads with it.
    let engine = OcrEngine::load(config.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert!(prepared.is_file(), "{prepared:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_reads(&engine.read(&render(&ENGLISH, LATIN_FONT, 32.0)).unwrap(), &ENGLISH);
    let first = std::fs::metadata(&prepared).unwrap().modified().unwrap();

    // A later load uses it as it is...
    drop(OcrEngine::load(config.clone()).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(std::fs::metadata(&prepared).unwrap().modified().unwrap(), first);
    // ...until the model is newer than it (models/fetch replaced the model).
    let replaced = first + std::time::Duration::from_millis(1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::File::options().write(true).open(&recogniser).unwrap().set_modified(replaced).unwrap();
    drop(OcrEngine::load(config).unwrap_or_else(|e| panic!("{e}")));
    let again = std::fs::metadata(&prepared).unwrap().modified().unwrap();
    assert!(again > replaced, "prepared {again:?}, model {replaced:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A process that ends while its engine is still building pooled sessions in the
/// background exits cleanly: dropping the engine stops the build after the session in
/// progress and waits for it, rather than unloading ONNX Runtime under it. Each run reads a
/// page with enough lines to start the pool (eight recognition batches or more) and exits
/// at once, with a pool of eight one-thread sessions whose build (0.5-1 s) is still going
/// then. (`session`'s own test shows the drop waiting for the build.)
#[test]
fn exiting_during_a_background_session_build_does_not_crash() {
    let dir = std::env::temp_dir().join(format!("docusnap-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.png");
    let lines: Vec<String> = (0..24).map(|i| format!("Line {i}: 4 x Widget {i} at 12.{i:02} EUR")).collect();
    render(&lines.iter().map(String::as_str).collect::<Vec<_>>(), LATIN_FONT, 24.0).save(&page).unwrap();
    for run in 0..EXIT_RUNS {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_docusnap-ocr"))
            .args(["--threads", "8", "--rec-sessions", "8", "--rec-batch", "2"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(out.status.success(), "run {run}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Widget"), "run {run}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs of the exit test: each takes about a second.
const EXIT_RUNS: usize = 10;

/// The fast mode reads a page's text as the accurate mode does, on English, Chinese and a
/// page upside down (its own detector; the same recogniser and turns), and a page asks
/// for it whatever the engine's own mode.
#[test]
fn the_fast_mode_reads_english_chinese_and_turned_pages() {
    let engine = engine(ModelSet::PpOcrV6);
    assert_eq!(engine.config().mode, Mode::Accurate);
    let page = engine.read_as(&render(&ENGLISH, LATIN_FONT, 32.0), Mode::Fast).unwrap();
    assert_reads(&page, &ENGLISH);
    let page = engine.read_as(&render(&CHINESE, CJK_FONT, 36.0), Mode::Fast).unwrap();
    assert_reads(&page, &CHINESE);
    let turned = image::imageops::rotate180(&render(&ENGLISH, LATIN_FONT, 32.0));
    let page = engine.read_as(&turned, Mode::Fast).unwrap();
    assert_eq!(page.orientation.rotation, Rotation::Half);
    assert_reads(&page, &ENGLISH);
}

/// What makes the fast mode fast applies to its pages alone: with a squeeze far past any
/// that reads (a tenth of the text's width), a fast page loses its text and an accurate
/// page of the same engine does not; and its detector is PP-OCRv4's, from the set's
/// sibling folder, so an engine whose folder has no such sibling reads accurately and
/// fails a fast page naming the file it looked for.
#[test]
fn the_fast_modes_detector_and_squeeze_are_its_own() {
    let image = render(&ENGLISH, LATIN_FONT, 32.0);
    let mut config = EngineConfig::for_set(ModelSet::PpOcrV6).unwrap_or_else(|e| panic!("{e}"));
    config.fast_squeeze = 0.1;
    let engine = OcrEngine::load(config.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_reads(&engine.read_as(&image, Mode::Accurate).unwrap(), &ENGLISH);
    let squeezed = engine.read_as(&image, Mode::Fast).unwrap();
    let read = squash(&squeezed.text());
    assert!(!read.contains("128.50") && !read.contains("Thank"), "{read:?}");

    // The set's models alone, in a folder of its own.
    let root = std::env::temp_dir().join(format!("docusnap-fast-e2e-{}", std::process::id()));
    let alone = root.join(ModelSet::PpOcrV6.name());
    std::fs::create_dir_all(&alone).unwrap();
    for file in ModelSet::PpOcrV6.files() {
        std::fs::copy(config.models.join(file), alone.join(file)).unwrap();
        // Their prepared forms too, when there, so that the engine does not prepare them again.
        let prepared = docusnap_ocr::prepared_path(&config.models.join(file));
        if let Some(name) = prepared.file_name().filter(|_| prepared.is_file()) {
            std::fs::copy(&prepared, alone.join(name)).unwrap();
        }
    }
    let config = EngineConfig { models: alone, fast_squeeze: docusnap_ocr::mode::FAST_SQUEEZE, ..config };
    let engine = OcrEngine::load(config).unwrap_or_else(|e| panic!("{e}"));
    assert_reads(&engine.read(&image).unwrap(), &ENGLISH);
    let error = engine.read_as(&image, Mode::Fast).unwrap_err().to_string();
    let wanted = ModelSet::PpOcrV4.spec().detector.file;
    assert!(error.contains(wanted) && error.contains(ModelSet::PpOcrV4.name()), "{error}");
    let _ = std::fs::remove_dir_all(root);
}
