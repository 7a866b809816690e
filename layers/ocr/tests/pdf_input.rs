//! PDF and multi-page TIFF input on documents the tests write themselves
//! (`docusnap_ocr::testing::pdf` writes PDFs object by object). Needs PDFium, ONNX Runtime
//! and the models laid out by `models/fetch`, and the fonts `scripts/test` installs.

use docusnap_ocr::input::{self, InputError, PageInput};
use docusnap_ocr::pdf::{self, PdfError, PdfPage, MAX_PDF_PAGES, RENDER_LONG_SIDE};
use docusnap_ocr::testing::pdf::{document, document_with, jpeg, Content, Options, Page, Text};
use docusnap_ocr::testing::{multipage_tiff, render, LATIN_FONT};
use docusnap_ocr::{EngineConfig, ModelSet, OcrEngine};

/// The test's own engine, dropped when it ends (see end_to_end.rs's `engine`).
fn engine() -> OcrEngine {
    OcrEngine::load(EngineConfig::for_set(ModelSet::PpOcrV6).expect("models/fetch")).expect("the engine")
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase()
}

const A4: (f32, f32) = (595.0, 842.0);

fn invoice_lines() -> Vec<Text<'static>> {
    vec![
        Text { x: 72.0, y: 770.0, size: 18.0, text: "ACME SUPPLIES LTD" },
        Text { x: 72.0, y: 740.0, size: 11.0, text: "Invoice No: INV-2044" },
        Text { x: 72.0, y: 722.0, size: 11.0, text: "Date: 2026-11-30" },
        // Two columns of one row: they stay two lines, as in a photo.
        Text { x: 72.0, y: 690.0, size: 11.0, text: "Total due" },
        Text { x: 400.0, y: 690.0, size: 11.0, text: "1,250.00" },
    ]
}

fn scan_image(lines: &[&str]) -> image::RgbImage {
    render(lines, LATIN_FONT, 40.0)
}

fn pages(bytes: Vec<u8>) -> Vec<PdfPage> {
    input::split(bytes)
        .expect("the PDF splits")
        .into_iter()
        .map(|p| match p {
            PageInput::Pdf(page) => page,
            other => panic!("not a PDF page: {other:?}"),
        })
        .collect()
}

/// A born-digital page is read from its text layer: exact text, boxes where the text was
/// set (in the pixels the page would render at), and no OCR.
#[test]
fn a_born_digital_page_is_read_from_its_text_layer() {
    let pdf = document(&[Page::text(A4.0, A4.1, invoice_lines())]);
    let split = pages(pdf);
    let [PdfPage::Text(page)] = split.as_slice() else { panic!("expected one text page, got {split:?}") };
    let texts: Vec<&str> = page.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["ACME SUPPLIES LTD", "Invoice No: INV-2044", "Date: 2026-11-30", "Total due", "1,250.00"]);
    assert!(page.lines.iter().all(|l| l.score == 1.0));
    // The page's pixels: A4 with its long side at the render cap.
    assert_eq!((page.width, page.height), (1413, RENDER_LONG_SIDE));
    let scale = RENDER_LONG_SIDE as f32 / A4.1;
    for (line, set) in page.lines.iter().zip(invoice_lines()) {
        let (left, top, bottom) = (line.quad[0].x, line.quad[0].y, line.quad[3].y);
        let baseline = (A4.1 - set.y) * scale;
        // The box starts where the text was set and spans its baseline.
        assert!((left - set.x * scale).abs() < 2.0 * scale, "{}: left {left} vs {}", line.text, set.x * scale);
        assert!(
            top < baseline && baseline < bottom,
            "{}: {top}..{bottom} should span the baseline {baseline}",
            line.text
        );
        // About as tall as the type (Helvetica's ascent to descent is about 1.2 em).
        let height = bottom - top;
        assert!(height > 0.8 * set.size * scale && height < 1.6 * set.size * scale, "{}: height {height}", line.text);
    }
    // The engine hands the layer back as the page.
    let read = engine().read_input(&PageInput::Pdf(PdfPage::Text(page.clone()))).unwrap();
    assert_eq!(&read, page);
}

/// A scan (an image over the whole page) is rendered and OCRed.
#[test]
fn a_scanned_page_is_rendered_and_read() {
    let pdf = document(&[Page::scan(&scan_image(&["INVOICE 7731", "TOTAL 48.20"]), 150.0)]);
    let split = pages(pdf);
    assert!(matches!(split.as_slice(), [PdfPage::Scan { index: 0, .. }]), "{split:?}");
    let page = engine().read_input(&PageInput::Pdf(split[0].clone())).unwrap();
    let text = squash(&page.text());
    assert!(text.contains("INVOICE7731") && text.contains("TOTAL48.20"), "read {:?}", page.text());
    assert!(page.width.max(page.height) <= RENDER_LONG_SIDE);
}

/// A document of a born-digital page, a scan, and a scan with an invisible OCR layer: the
/// first is read from its text, the other two are OCRed (an OCR layer is of unknown
/// quality).
#[test]
fn a_mixed_document_reads_each_page_its_own_way() {
    let image = scan_image(&["RECEIPT 55"]);
    let (w, h) = image.dimensions();
    let layered = Page {
        width: w as f32 * 72.0 / 150.0,
        height: h as f32 * 72.0 / 150.0,
        content: Content::ScanWithLayer {
            jpeg: jpeg(&image),
            width: w,
            height: h,
            layer: vec![Text { x: 10.0, y: 20.0, size: 12.0, text: "RECEIPT 55 (OCR layer)" }],
        },
    };
    let pdf =
        document(&[Page::text(A4.0, A4.1, invoice_lines()), Page::scan(&scan_image(&["PAGE TWO"]), 150.0), layered]);
    let split = pages(pdf);
    assert!(
        matches!(split.as_slice(), [PdfPage::Text(_), PdfPage::Scan { index: 1, .. }, PdfPage::Scan { index: 2, .. }]),
        "{split:?}"
    );
    let third = engine().read_input(&PageInput::Pdf(split[2].clone())).unwrap();
    assert!(squash(&third.text()).contains("RECEIPT55"), "{:?}", third.text());
    assert!(!third.text().contains("OCR layer"), "the invisible layer is not what is read");
}

#[test]
fn an_encrypted_pdf_is_refused_as_encrypted() {
    let pdf =
        document_with(&[Page::text(A4.0, A4.1, invoice_lines())], &Options { encrypted: true, ..Options::default() });
    let e = input::split(pdf).unwrap_err();
    assert!(matches!(e, InputError::Pdf(PdfError::Encrypted)), "{e:?}");
    assert!(e.is_item_fault());
}

/// A PDF cut short, or one that is only a header, ends with a clear error (PDFium does
/// not repair a file whose cross-reference table is gone).
#[test]
fn a_truncated_pdf_fails_cleanly() {
    let whole = document(&[Page::text(A4.0, A4.1, invoice_lines()), Page::scan(&scan_image(&["SECOND"]), 100.0)]);
    assert!(matches!(input::split(Vec::from(b"%PDF-1.7\n")), Err(InputError::Pdf(PdfError::Broken(_)))));
    for cut in [whole.len() / 4, whole.len() / 2, whole.len() - 40] {
        let e = input::split(Vec::from(&whole[..cut])).unwrap_err();
        assert!(matches!(e, InputError::Pdf(PdfError::Broken(_))) && e.is_item_fault(), "cut at {cut}: {e:?}");
    }
    assert_eq!(input::split(whole).unwrap().len(), 2);
}

/// PDF bombs: a page of 200 by 200 inches renders at the render cap (not at 14,400 px
/// a side); a page tree that lists itself ends, with its real pages or an error; more
/// pages than the limit is refused before any is read.
#[test]
fn pdf_bombs_are_bounded() {
    let huge = document(&[Page::scan(&scan_image(&["HUGE PAGE"]), 0.5)]);
    let split = pages(huge);
    let image = pdf::render(
        match &split[0] {
            PdfPage::Scan { document, .. } => document,
            other => panic!("{other:?}"),
        },
        0,
    )
    .unwrap();
    assert_eq!(image.width().max(image.height()), RENDER_LONG_SIDE);

    let looped = document_with(
        &[Page::text(A4.0, A4.1, invoice_lines())],
        &Options { page_tree_loop: true, ..Options::default() },
    );
    // The tree counts two kids; the second is the tree itself, which is not a page.
    let e = input::split(looped).unwrap_err();
    assert!(matches!(e, InputError::Pdf(PdfError::Page { page: 2, .. })) && e.is_item_fault(), "{e:?}");

    let many: Vec<Page> = (0..=MAX_PDF_PAGES).map(|_| Page::text(100.0, 100.0, vec![])).collect();
    let e = input::split(document(&many)).unwrap_err();
    assert!(matches!(e, InputError::Pdf(PdfError::TooManyPages(n)) if n == MAX_PDF_PAGES + 1), "{e:?}");
}

/// A page with too little text, or text in a font without a Unicode map, is OCRed.
#[test]
fn a_thin_text_layer_is_not_trusted() {
    let pdf = document(&[Page::text(A4.0, A4.1, vec![Text { x: 72.0, y: 40.0, size: 10.0, text: "- 3 -" }])]);
    assert!(matches!(pages(pdf).as_slice(), [PdfPage::Scan { .. }]));
}

/// Each frame of a multi-page TIFF is a page, decoded only when read.
#[test]
fn a_multipage_tiff_is_a_page_per_frame() {
    let frames = [scan_image(&["FIRST SHEET"]), scan_image(&["SECOND SHEET"]), scan_image(&["THIRD SHEET"])];
    let tiff = multipage_tiff(&frames);
    let split = input::split(tiff).unwrap();
    assert_eq!(split.len(), 3);
    let engine = engine();
    for (i, (page, word)) in split.iter().zip(["FIRST", "SECOND", "THIRD"]).enumerate() {
        assert!(matches!(page, PageInput::TiffFrame { index, .. } if *index == i), "{page:?}");
        let read = engine.read_input(page).unwrap();
        assert!(squash(&read.text()).contains(&format!("{word}SHEET")), "frame {i}: {:?}", read.text());
        assert_eq!((read.width, read.height), frames[i].dimensions());
    }
}
