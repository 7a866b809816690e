//! PDF input through PDFium (the pypdfium2 wheel's build, bound at run time as ONNX
//! Runtime is; `runtime::locate_pdfium`). A page with a usable text layer is read from
//! that layer, with each line's box and no OCR; any other page is rendered when it is read
//! and goes through the engine.
//!
//! PDFium is not thread-safe: every use holds [`PDFIUM`]'s lock, from opening a document
//! to dropping it. Rendering is quick beside OCR, so pages read in parallel wait little.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use image::RgbImage;
use pdfium_render::prelude::*;

use crate::geometry::{Point, Quad};
use crate::page::{Page, TextLine};

/// Most pages one PDF may have: a long contract or statement. Checked from the page tree
/// before any page is loaded. docs/ocr.md gives the time such a document takes.
pub const MAX_PDF_PAGES: usize = 200;
/// A rendered page's longest side: the most the detector is ever set to
/// (`DetSize::MAX_LONG_SIDE`). The detector scales the page down to its own cap; the
/// recogniser reads its crops at this resolution, and more pixels would cost time and
/// memory and add nothing. An A4 page comes out at 171 dpi, where 9-point print is about 21 px
/// tall: enough for the recogniser, which reads lines at 48 px.
pub const RENDER_LONG_SIDE: u32 = 2000;
/// ...and never more than this many dots per inch: a business card or a label needs no
/// more to be read, and a small page stays small.
pub const MAX_RENDER_DPI: f32 = 300.0;
/// Most bytes one rendered page holds (PDFium renders BGRA): the long side's square.
/// Whatever the page's size says (a 200-inch page is the classic PDF bomb), this is what
/// rendering allocates.
pub const MAX_RENDER_BYTES: u64 = RENDER_LONG_SIDE as u64 * RENDER_LONG_SIDE as u64 * 4;
/// A page whose text layer is longer than this is not read from it (a page of genuine
/// text holds a few thousand characters): it is rendered and read like a scan, whose cost
/// the render size bounds.
pub const MAX_TEXT_CHARS: usize = 50_000;
/// Fewer visible characters than this and the text layer is not trusted to be the page:
/// a page number on a scanned page, or text drawn as shapes.
pub const MIN_TEXT_CHARS: usize = 8;
/// Share of a text layer's characters that must map to readable Unicode: fonts without a
/// ToUnicode map give private-use or replacement characters, which OCR reads better.
pub const MIN_READABLE_SHARE: f32 = 0.95;
/// Images covering this share of a page make it a scan: its text layer, if any, is an
/// OCR layer of unknown quality, so the page is OCRed.
pub const SCAN_IMAGE_SHARE: f32 = 0.5;
/// Time one page may take to render or to read its text layer. PDFium cannot be stopped
/// mid-page, so this is checked after each page: a document of slow pages ends at the
/// first one, and a page that never finishes is ended by the function's timeout (its
/// message's last receive ends the task with its code).
pub const MAX_PAGE_TIME: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, thiserror::Error)]
pub enum PdfError {
    #[error("PDFium not found; tried {tried:?}. Run models/fetch, or set DOCUSNAP_PDFIUM_LIB")]
    LibraryNotFound { tried: Vec<std::path::PathBuf> },
    #[error("PDFium cannot be loaded: {0}")]
    LibraryLoad(String),
    #[error("the PDF is encrypted; send it without a password")]
    Encrypted,
    #[error("the PDF cannot be read: {0}")]
    Broken(String),
    #[error("the PDF has no pages")]
    NoPages,
    #[error("the PDF has {0} pages; the limit is {MAX_PDF_PAGES}")]
    TooManyPages(usize),
    #[error("page {page} of the PDF cannot be read: {detail}")]
    Page { page: usize, detail: String },
    #[error("page {page} of the PDF took {seconds:.1} s; the limit is {} s", MAX_PAGE_TIME.as_secs())]
    TooSlow { page: usize, seconds: f32 },
}

impl PdfError {
    /// Whether the document is at fault (reading it again gives the same answer), rather
    /// than the machine (PDFium missing).
    pub fn is_document_fault(&self) -> bool {
        !matches!(self, PdfError::LibraryNotFound { .. } | PdfError::LibraryLoad(_))
    }
}

/// One page of a PDF, before it is read.
#[derive(Clone, PartialEq)]
pub enum PdfPage {
    /// Read from the text layer when the document was split.
    Text(Page),
    /// A page to render and OCR: the document (shared by its pages) and the page's index.
    Scan { document: Arc<Vec<u8>>, index: usize },
}

impl std::fmt::Debug for PdfPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PdfPage::Text(page) => write!(f, "Text({} lines)", page.lines.len()),
            PdfPage::Scan { document, index } => write!(f, "Scan(page {index} of a {}-byte PDF)", document.len()),
        }
    }
}

/// PDFium, bound on first use and kept for the process, or why it could not be bound
/// (kept too: the library does not appear while the process lives).
static PDFIUM: OnceLock<Result<Mutex<Pdfium>, PdfError>> = OnceLock::new();

fn pdfium() -> Result<MutexGuard<'static, Pdfium>, PdfError> {
    let bound = PDFIUM.get_or_init(|| {
        let path = crate::runtime::locate_pdfium().map_err(|tried| PdfError::LibraryNotFound { tried })?;
        let bindings =
            Pdfium::bind_to_library(&path).map_err(|e| PdfError::LibraryLoad(format!("{}: {e:?}", path.display())))?;
        Ok(Mutex::new(Pdfium::new(bindings)))
    });
    match bound {
        // A panic while the lock was held leaves PDFium as it was between calls.
        Ok(lock) => Ok(lock.lock().unwrap_or_else(|e| e.into_inner())),
        Err(e) => Err(e.clone()),
    }
}

/// Binds PDFium now rather than on the first PDF (start-up does this off the hot path).
pub fn warm() -> Result<(), PdfError> {
    pdfium().map(drop)
}

fn open<'a>(pdfium: &'a Pdfium, bytes: &'a [u8]) -> Result<PdfDocument<'a>, PdfError> {
    pdfium.load_pdf_from_byte_slice(bytes, None).map_err(|e| match e {
        PdfiumError::PdfiumLibraryInternalError(
            PdfiumInternalError::PasswordError | PdfiumInternalError::SecurityError,
        ) => PdfError::Encrypted,
        other => PdfError::Broken(format!("{other:?}")),
    })
}

/// The pages of a PDF: each read from its text layer when that is usable, else left to
/// be rendered and OCRed when it is read.
pub fn split(bytes: Vec<u8>) -> Result<Vec<PdfPage>, PdfError> {
    let document_bytes = Arc::new(bytes);
    let pdfium = pdfium()?;
    let document = open(&pdfium, &document_bytes)?;
    let pages = document.pages();
    let count = usize::try_from(pages.len()).unwrap_or(0);
    if count == 0 {
        return Err(PdfError::NoPages);
    }
    if count > MAX_PDF_PAGES {
        return Err(PdfError::TooManyPages(count));
    }
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        let started = Instant::now();
        let page_error = |detail: String| PdfError::Page { page: index + 1, detail };
        // Within MAX_PDF_PAGES: the index fits PDFium's i32.
        let page = pages.get(index as i32).map_err(|e| page_error(format!("{e:?}")))?;
        let read = match text_layer(&page) {
            Some(text) => PdfPage::Text(text),
            None => PdfPage::Scan { document: document_bytes.clone(), index },
        };
        check_time(index + 1, started)?;
        out.push(read);
    }
    Ok(out)
}

fn check_time(page: usize, started: Instant) -> Result<(), PdfError> {
    let took = started.elapsed();
    if took > MAX_PAGE_TIME {
        return Err(PdfError::TooSlow { page, seconds: took.as_secs_f32() });
    }
    Ok(())
}

/// Pixels per point for a page `width` x `height` points: the long side at
/// [`RENDER_LONG_SIDE`], at most [`MAX_RENDER_DPI`].
fn render_scale(width: f32, height: f32) -> f32 {
    let long = width.max(height).max(1.0);
    (RENDER_LONG_SIDE as f32 / long).min(MAX_RENDER_DPI / 72.0)
}

fn pixel_size(width: f32, height: f32) -> (u32, u32) {
    let scale = render_scale(width, height);
    let side = |points: f32| ((points * scale).round() as u32).clamp(1, RENDER_LONG_SIDE);
    (side(width), side(height))
}

/// Renders one page of a PDF as [`split`] left it.
pub fn render(document: &[u8], index: usize) -> Result<RgbImage, PdfError> {
    let started = Instant::now();
    let page_number = index + 1;
    let page_error = |detail: String| PdfError::Page { page: page_number, detail };
    let pdfium = pdfium()?;
    let document = open(&pdfium, document)?;
    let index = i32::try_from(index).map_err(|_| PdfError::TooManyPages(index))?;
    let page = document.pages().get(index).map_err(|e| page_error(format!("{e:?}")))?;
    let (width, height) = (page.width().value, page.height().value);
    if !(width.is_finite() && height.is_finite()) || width <= 0.0 || height <= 0.0 {
        return Err(page_error(format!("its size is {width}x{height} points")));
    }
    let (w, h) = pixel_size(width, height);
    debug_assert!(u64::from(w) * u64::from(h) * 4 <= MAX_RENDER_BYTES);
    let config = PdfRenderConfig::new().set_target_size(w as i32, h as i32).render_form_data(true);
    let bitmap = page.render_with_config(&config).map_err(|e| page_error(format!("{e:?}")))?;
    let image = bitmap.as_image().map_err(|e| page_error(format!("{e:?}")))?.into_rgb8();
    check_time(page_number, started)?;
    Ok(image)
}

/// What a page's text layer says, in the page's rendered pixels, when it is usable:
/// enough visible characters that map to Unicode, and no image covering most of the page.
fn text_layer(page: &PdfPage_<'_>) -> Option<Page> {
    let (width, height) = (page.width().value, page.height().value);
    if !(width.is_finite() && height.is_finite()) || width <= 0.0 || height <= 0.0 {
        return None;
    }
    // A rotated page's characters are in its unrotated frame: rendering gets it right.
    if !matches!(page.rotation(), Ok(PdfPageRenderRotation::None)) {
        return None;
    }
    if image_share(page, width * height) >= SCAN_IMAGE_SHARE {
        return None;
    }
    let text = page.text().ok()?;
    let chars = text.chars();
    if chars.len() > MAX_TEXT_CHARS {
        return None;
    }
    let scale = render_scale(width, height);
    let mut fragments = Fragments::default();
    let (mut visible, mut readable, mut invisible) = (0usize, 0usize, 0usize);
    for ch in chars.iter() {
        let Some(c) = ch.unicode_char() else {
            visible += 1;
            continue;
        };
        if c.is_whitespace() || c == '\0' {
            fragments.space(c == '\n' || c == '\r');
            continue;
        }
        visible += 1;
        if is_readable(c) {
            readable += 1;
        }
        if matches!(ch.render_mode(), Ok(PdfPageTextRenderMode::Invisible)) {
            invisible += 1;
        }
        if let Ok(bounds) = ch.loose_bounds() {
            let b = Rect {
                left: bounds.left().value * scale,
                right: bounds.right().value * scale,
                top: (height - bounds.top().value) * scale,
                bottom: (height - bounds.bottom().value) * scale,
            };
            fragments.push(c, b);
        }
    }
    let usable = visible >= MIN_TEXT_CHARS
        && readable as f32 >= MIN_READABLE_SHARE * visible as f32
        // Invisible text over a page is an OCR layer.
        && invisible * 2 < visible;
    if !usable {
        return None;
    }
    let (w, h) = pixel_size(width, height);
    let lines = crate::layout::reading_order(fragments.finish());
    Some(Page { width: w, height: h, orientation: Default::default(), lines })
}

type PdfPage_<'a> = pdfium_render::prelude::PdfPage<'a>;

fn is_readable(c: char) -> bool {
    let private_use = matches!(c as u32, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    !(c.is_control() || private_use || c == '\u{FFFD}' || c == '\u{FFFE}')
}

/// The share of the page that image objects cover (overlaps counted twice, capped at 1).
fn image_share(page: &PdfPage_<'_>, page_area: f32) -> f32 {
    let mut covered = 0.0;
    for object in page.objects().iter() {
        if object.object_type() != PdfPageObjectType::Image {
            continue;
        }
        if let Ok(bounds) = object.bounds() {
            let rect = bounds.to_rect();
            covered += (rect.width().value * rect.height().value).abs();
        }
    }
    (covered / page_area).min(1.0)
}

#[derive(Clone, Copy, Debug)]
struct Rect {
    left: f32,
    right: f32,
    top: f32,
    bottom: f32,
}

/// Characters gathered into fragments: runs of one line with no wide gap. The engine's
/// reading order then joins fragments into lines by the same rule it applies to OCR
/// output, so a table's columns stay apart here as they do in a photo.
#[derive(Default)]
struct Fragments {
    done: Vec<TextLine>,
    text: String,
    rect: Option<Rect>,
    space: bool,
}

impl Fragments {
    fn space(&mut self, line_break: bool) {
        if line_break {
            self.close();
        } else {
            self.space = true;
        }
    }

    fn push(&mut self, c: char, b: Rect) {
        if let Some(r) = self.rect {
            let height = (r.bottom - r.top).min(b.bottom - b.top).max(0.1);
            let overlap = r.bottom.min(b.bottom) - r.top.max(b.top);
            let gap = b.left - r.right;
            let same_line = overlap >= crate::layout::SAME_ROW_OVERLAP * height;
            let near = gap <= crate::layout::MERGE_GAP_HEIGHTS * height && b.left >= r.left - height;
            if !(same_line && near) {
                self.close();
            }
        }
        match &mut self.rect {
            Some(r) => {
                if self.space {
                    self.text.push(' ');
                }
                r.left = r.left.min(b.left);
                r.right = r.right.max(b.right);
                r.top = r.top.min(b.top);
                r.bottom = r.bottom.max(b.bottom);
            }
            None => self.rect = Some(b),
        }
        self.space = false;
        self.text.push(c);
    }

    fn close(&mut self) {
        self.space = false;
        if let Some(r) = self.rect.take() {
            let quad: Quad = [
                Point::new(r.left, r.top),
                Point::new(r.right, r.top),
                Point::new(r.right, r.bottom),
                Point::new(r.left, r.bottom),
            ];
            self.done.push(TextLine { text: std::mem::take(&mut self.text), score: 1.0, quad });
        }
        self.text.clear();
    }

    fn finish(mut self) -> Vec<TextLine> {
        self.close();
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_size_is_bounded_whatever_the_page_says() {
        // A4 at the detector's side.
        assert_eq!(pixel_size(595.0, 842.0), (1413, 2000));
        // A 200-inch square page (the classic bomb) renders at the same cap.
        assert_eq!(pixel_size(14_400.0, 14_400.0), (2000, 2000));
        // A business card is not blown up past 300 dpi.
        assert_eq!(pixel_size(252.0, 144.0), (1050, 600));
        // A sliver of a page still has a pixel.
        assert_eq!(pixel_size(0.01, 500.0), (1, 2000));
    }

    #[test]
    fn characters_without_unicode_are_not_readable() {
        assert!(is_readable('A') && is_readable('é') && is_readable('中'));
        assert!(!is_readable('\u{E001}') && !is_readable('\u{FFFD}') && !is_readable('\u{2}'));
    }

    #[test]
    fn fragments_split_at_lines_and_column_gaps() {
        let rect = |left: f32, top: f32| Rect { left, right: left + 8.0, top, bottom: top + 20.0 };
        let mut f = Fragments::default();
        for (i, c) in "AB".chars().enumerate() {
            f.push(c, rect(10.0 + 9.0 * i as f32, 100.0));
        }
        f.space(false);
        f.push('C', rect(33.0, 100.0)); // a word space: same fragment
        f.push('D', rect(200.0, 100.0)); // a column gap
        f.push('E', rect(10.0, 140.0)); // the next line
        let lines = f.finish();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["AB C", "D", "E"]);
        assert_eq!(lines[0].quad[0], Point::new(10.0, 100.0));
        assert_eq!(lines[0].quad[2], Point::new(41.0, 120.0));
    }
}
