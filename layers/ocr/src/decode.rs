//! Image decoding within limits: the header is read first, and an image whose dimensions
//! are over the limits is refused before a pixel is decoded (a decompression bomb costs
//! a header read, not gigabytes).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// Largest encoded image: the v1 protocol promises photos of up to 20 MiB.
pub const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;
/// Most pixels in one image: a 50-megapixel phone camera (8160x6120) fits; decoded as
/// RGB that is 150 MB, within a 2 GB function's memory with room for the models.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Longest side: a panorama or a long receipt photographed in one piece fits.
pub const MAX_SIDE: u32 = 20_000;
/// Most bytes an image may decode to in its own pixel format: a [`MAX_PIXELS`] photo as
/// 8-bit RGB. Counting pixels alone let a 50-megapixel 16-bit RGBA PNG (0.4 MB on the
/// wire) decode to 400 MB; such an image must now be smaller in pixels to be read.
pub const MAX_DECODED_BYTES: u64 = MAX_PIXELS * 3;
/// The decoder's own allocation cap, a backstop for formats whose header understates
/// what decoding allocates.
const MAX_DECODER_ALLOC: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the image is {0} bytes; the limit is {MAX_IMAGE_BYTES}")]
    TooManyBytes(usize),
    #[error("the image is {width}x{height}; the limits are {MAX_PIXELS} pixels and {MAX_SIDE} per side")]
    TooManyPixels { width: u32, height: u32 },
    #[error("the image decodes to {0} bytes in its pixel format; the limit is {MAX_DECODED_BYTES}")]
    TooManyDecodedBytes(u64),
    #[error("not an image in a supported format (JPEG, PNG, WebP, BMP, TIFF)")]
    UnknownFormat,
    #[error("the image cannot be decoded: {0}")]
    Corrupt(#[source] image::ImageError),
}

/// Decodes an image, upright as its EXIF orientation says, as 8-bit RGB.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(DecodeError::TooManyBytes(bytes.len()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| DecodeError::Corrupt(e.into()))?;
    if reader.format().is_none() {
        return Err(DecodeError::UnknownFormat);
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(limit_or_corrupt)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS || width > MAX_SIDE || height > MAX_SIDE || width == 0 || height == 0 {
        return Err(DecodeError::TooManyPixels { width, height });
    }
    let decoded_bytes = decoder.total_bytes();
    if decoded_bytes > MAX_DECODED_BYTES {
        return Err(DecodeError::TooManyDecodedBytes(decoded_bytes));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    // To 8-bit RGB first, dropping the decoded buffer, then turned upright: a rotation
    // copies the image, and an 8-bit RGB copy is the smallest there is.
    let mut image = DynamicImage::ImageRgb8(DynamicImage::from_decoder(decoder).map_err(limit_or_corrupt)?.into_rgb8());
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

fn limit_or_corrupt(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Unsupported(_) => DecodeError::UnknownFormat,
        other => DecodeError::Corrupt(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::png_with_size;
    use image::{ImageFormat, Rgb};

    fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_each_supported_format() {
        let mut image = RgbImage::from_pixel(7, 5, Rgb([10, 20, 30]));
        image.put_pixel(0, 0, Rgb([200, 0, 0]));
        for format in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::WebP, ImageFormat::Jpeg] {
            let decoded = decode(&encode(&image, format)).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(decoded.dimensions(), (7, 5), "{format:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert!(matches!(decode(b"plain text, not an image"), Err(DecodeError::UnknownFormat)));
        let mut png = encode(&RgbImage::new(4, 4), ImageFormat::Png);
        png.truncate(png.len() / 2);
        assert!(matches!(decode(&png), Err(DecodeError::Corrupt(_))));
        assert!(matches!(decode(&vec![0u8; MAX_IMAGE_BYTES + 1]), Err(DecodeError::TooManyBytes(_))));
    }

    /// A PNG whose header claims 60000x60000 pixels (10.8 GB as RGB) but whose data is a
    /// few bytes: refused from the header, without allocating the pixels.
    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        let png = encode(&RgbImage::new(1, 1), ImageFormat::Png);
        let bomb = png_with_size(&png, 60_000, 60_000);
        assert!(matches!(decode(&bomb), Err(DecodeError::TooManyPixels { .. } | DecodeError::Corrupt(_))), "{:?}", decode(&bomb).err());
        // Within the side limit but over the pixel limit: the typed error.
        let bomb = png_with_size(&png, 10_000, 10_000);
        assert!(matches!(decode(&bomb), Err(DecodeError::TooManyPixels { width: 10_000, height: 10_000 })));
    }

    /// A 16-bit RGBA PNG under the pixel limit but over the decoded-byte limit (8 bytes a
    /// pixel): refused from its header, before its pixels are allocated.
    #[test]
    fn a_deep_image_is_refused_by_its_decoded_bytes() {
        let small = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_pixel(2, 2, image::Rgba([65535; 4]));
        let mut png = Cursor::new(Vec::new());
        small.write_to(&mut png, ImageFormat::Png).unwrap();
        let png = png.into_inner();
        assert_eq!(decode(&png).unwrap().dimensions(), (2, 2), "a small deep image still reads");
        // 8000x6000: 48 megapixels (within MAX_PIXELS), 384 MB as 16-bit RGBA.
        let png = png_with_size(&png, 8_000, 6_000);
        assert!(matches!(decode(&png), Err(DecodeError::TooManyDecodedBytes(384_000_000))), "{:?}", decode(&png).err());
    }

    /// A JPEG carrying EXIF orientation 6 (rotate 90° clockwise to view) comes out upright.
    #[test]
    fn exif_orientation_is_applied() {
        let mut image = RgbImage::from_pixel(40, 20, Rgb([255, 255, 255]));
        for y in 0..20 {
            for x in 0..10 {
                image.put_pixel(x, y, Rgb([0, 0, 0])); // dark on the left
            }
        }
        let jpeg = encode(&image, ImageFormat::Jpeg);
        let with_exif = insert_exif_orientation(&jpeg, 6);
        let upright = decode(&with_exif).unwrap();
        assert_eq!(upright.dimensions(), (20, 40));
        // The stored image's left edge is the viewed image's top edge.
        assert!(upright.get_pixel(10, 2)[0] < 64, "top should be dark");
        assert!(upright.get_pixel(10, 37)[0] > 192, "bottom should be light");
    }

    /// Inserts an APP1 EXIF segment with one Orientation entry right after SOI.
    fn insert_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF, IFD at 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xff, 0xe1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend(app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}
