//! The input stage: what turns one uploaded item (a v1 `to_process` entry, a batch file)
//! into the pages OCR reads. The kind of item is told by its content, never by a name.
//!
//! An image is one page; a multi-page TIFF is a page per frame; a PDF is a page per PDF
//! page ([`crate::pdf`]), read from its text layer when that is usable. Pages stay encoded
//! (or unrendered) until they are read, so a task's pages are never all decoded at once.

use std::io::Cursor;
use std::sync::Arc;

use crate::decode::MAX_IMAGE_BYTES;
use crate::page::Page;
use crate::pdf::{self, PdfError, PdfPage};

/// Most pages one item, or all of one task's items together, may become: a PDF's own
/// limit, which a multi-page TIFF shares.
pub const MAX_ITEM_PAGES: usize = pdf::MAX_PDF_PAGES;

/// What an item is, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// An image format the decoder reads (JPEG, PNG, WebP, BMP, TIFF).
    Image,
    /// A PDF document (`%PDF-`).
    Pdf,
    /// HEIC/HEIF or AVIF (an ISO-BMFF `ftyp` box with an image brand): recognised so that
    /// it is refused by name.
    Heif,
    /// Anything else.
    Unknown,
}

/// `ftyp` brands of HEIF-family stills (HEIC from iPhones, AVIF).
const HEIF_BRANDS: [&[u8; 4]; 9] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"];

impl InputKind {
    pub fn detect(bytes: &[u8]) -> Self {
        // PDF readers accept the header anywhere in the first kilobyte; writers put it first.
        if bytes.starts_with(b"%PDF-") {
            return InputKind::Pdf;
        }
        if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" && HEIF_BRANDS.iter().any(|b| &bytes[8..12] == *b) {
            return InputKind::Heif;
        }
        match image::guess_format(bytes) {
            Ok(
                image::ImageFormat::Jpeg
                | image::ImageFormat::Png
                | image::ImageFormat::WebP
                | image::ImageFormat::Bmp
                | image::ImageFormat::Tiff,
            ) => InputKind::Image,
            _ => InputKind::Unknown,
        }
    }
}

/// One page of a task, before it is read.
#[derive(Clone, Debug, PartialEq)]
pub enum PageInput {
    /// An encoded image; decoded (within [`crate::decode`]'s limits) when it is read.
    Image(Vec<u8>),
    /// One frame of a multi-page TIFF (the file shared by its frames), decoded when read.
    TiffFrame { file: Arc<Vec<u8>>, index: usize },
    /// A PDF page: its text layer, or a page to render and OCR.
    Pdf(PdfPage),
}

impl PageInput {
    /// Whether the page's text comes from the file (no OCR), not from its pixels.
    pub fn from_text_layer(&self) -> bool {
        matches!(self, PageInput::Pdf(PdfPage::Text(_)))
    }

    /// The page as read from its text layer, if it was.
    pub fn text_layer(&self) -> Option<&Page> {
        match self {
            PageInput::Pdf(PdfPage::Text(page)) => Some(page),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("HEIC/HEIF and AVIF photos are not supported (no maintained decoder ships in the function's image): send JPEG or PNG (on an iPhone, Settings > Camera > Formats > Most Compatible)")]
    Heif,
    #[error("not an image in a supported format (JPEG, PNG, WebP, BMP, TIFF) or a PDF")]
    UnknownFormat,
    #[error(transparent)]
    Pdf(#[from] PdfError),
    #[error("the TIFF file cannot be read: {0}")]
    Tiff(String),
    #[error("the task's items make {0} pages; the limit is {MAX_ITEM_PAGES}")]
    TooManyPages(usize),
    #[error("the item is {0} bytes; the limit is {MAX_IMAGE_BYTES}")]
    TooLarge(usize),
}

impl InputError {
    /// Whether the item is at fault (the same item fails the same way again).
    pub fn is_item_fault(&self) -> bool {
        match self {
            InputError::Pdf(e) => e.is_document_fault(),
            _ => true,
        }
    }
}

/// The pages of one uploaded item, in order. An item of any kind is held to the image
/// limit's bytes (the upload and batch ingestion check it first; this is the backstop).
pub fn split(item: Vec<u8>) -> Result<Vec<PageInput>, InputError> {
    if item.len() > MAX_IMAGE_BYTES {
        return Err(InputError::TooLarge(item.len()));
    }
    match InputKind::detect(&item) {
        InputKind::Image => {
            if image::guess_format(&item).ok() == Some(image::ImageFormat::Tiff) {
                let frames = tiff_frames(&item)?;
                if frames > 1 {
                    let file = Arc::new(item);
                    return Ok((0..frames).map(|index| PageInput::TiffFrame { file: file.clone(), index }).collect());
                }
            }
            Ok(vec![PageInput::Image(item)])
        }
        InputKind::Pdf => Ok(pdf::split(item)?.into_iter().map(PageInput::Pdf).collect()),
        InputKind::Heif => Err(InputError::Heif),
        InputKind::Unknown => Err(InputError::UnknownFormat),
    }
}

/// The pages of all of a task's items, in order, within [`MAX_ITEM_PAGES`] together.
pub fn split_all(items: impl IntoIterator<Item = Vec<u8>>) -> Result<Vec<PageInput>, (usize, InputError)> {
    let mut pages = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        pages.extend(split(item).map_err(|e| (i, e))?);
        if pages.len() > MAX_ITEM_PAGES {
            return Err((i, InputError::TooManyPages(pages.len())));
        }
    }
    Ok(pages)
}

/// How many frames a TIFF has, counted by walking its directories (no pixel is decoded).
fn tiff_frames(bytes: &[u8]) -> Result<usize, InputError> {
    let mut decoder = tiff::decoder::Decoder::new(Cursor::new(bytes)).map_err(|e| InputError::Tiff(e.to_string()))?;
    let mut frames = 1;
    while decoder.more_images() {
        if frames >= MAX_ITEM_PAGES {
            return Err(InputError::TooManyPages(frames + 1));
        }
        decoder.next_image().map_err(|e| InputError::Tiff(e.to_string()))?;
        frames += 1;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_told_apart_by_content() {
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(2, 2).write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        assert_eq!(InputKind::detect(&png), InputKind::Image);
        assert_eq!(split(png.clone()).unwrap(), vec![PageInput::Image(png)]);
        assert_eq!(InputKind::detect(b"%PDF-1.7\n..."), InputKind::Pdf);
        assert!(matches!(split(Vec::from(b"hello")), Err(InputError::UnknownFormat)));
        let mut big = b"%PDF-1.7\n".to_vec();
        big.resize(crate::decode::MAX_IMAGE_BYTES + 1, b' ');
        assert!(matches!(split(big), Err(InputError::TooLarge(_))));
    }

    #[test]
    fn heic_is_refused_by_name() {
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        assert_eq!(InputKind::detect(&heic), InputKind::Heif);
        let e = split(heic).unwrap_err();
        assert!(matches!(e, InputError::Heif) && e.to_string().contains("HEIC"), "{e}");
        // An MP4 video is not a HEIF still.
        assert_eq!(InputKind::detect(b"\0\0\0\x18ftypisom\0\0\0\0"), InputKind::Unknown);
    }

    #[test]
    fn a_one_page_tiff_stays_one_encoded_image() {
        let mut tif = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(3, 2).write_to(&mut tif, image::ImageFormat::Tiff).unwrap();
        let tif = tif.into_inner();
        assert_eq!(split(tif.clone()).unwrap(), vec![PageInput::Image(tif)]);
    }
}
