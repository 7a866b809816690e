//! The input stage: what turns one uploaded item (a v1 `to_process` entry, a batch file)
//! into the pages OCR reads. The kind of item is told by its content, never by a name.
//!
//! Today an item is one image. A new input format (PDF, multi-page TIFF) adds a
//! [`InputKind`], and [`split`] turns such an item into several [`PageInput`]s; pages stay
//! encoded until they are read, so a task's pages are never all decoded at once.

/// What an item is, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// An image format the decoder reads (JPEG, PNG, WebP, BMP, TIFF).
    Image,
    /// A PDF document (`%PDF-`).
    Pdf,
    /// Anything else.
    Unknown,
}

impl InputKind {
    pub fn detect(bytes: &[u8]) -> Self {
        if bytes.starts_with(b"%PDF-") {
            return InputKind::Pdf;
        }
        match image::guess_format(bytes) {
            Ok(image::ImageFormat::Jpeg | image::ImageFormat::Png | image::ImageFormat::WebP | image::ImageFormat::Bmp | image::ImageFormat::Tiff) => {
                InputKind::Image
            }
            _ => InputKind::Unknown,
        }
    }
}

/// One page of a task, before it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageInput {
    /// An encoded image; decoded (within [`crate::decode`]'s limits) when it is read.
    Image(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0} input is not supported yet")]
    Unsupported(&'static str),
    #[error("not an image in a supported format (JPEG, PNG, WebP, BMP, TIFF)")]
    UnknownFormat,
}

/// The pages of one uploaded item, in order.
pub fn split(item: Vec<u8>) -> Result<Vec<PageInput>, InputError> {
    match InputKind::detect(&item) {
        InputKind::Image => Ok(vec![PageInput::Image(item)]),
        InputKind::Pdf => Err(InputError::Unsupported("PDF")),
        InputKind::Unknown => Err(InputError::UnknownFormat),
    }
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
        assert!(matches!(split(b"%PDF-1.4".to_vec()), Err(InputError::Unsupported("PDF"))));
        assert!(matches!(split(b"hello".to_vec()), Err(InputError::UnknownFormat)));
    }
}
