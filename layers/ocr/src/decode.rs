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
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| DecodeError::Corrupt(e.into()))?;
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
    check_dimensions(width, height)?;
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

/// Refuses an image of no pixels or of more than the limits allow, before its pixels are read.
fn check_dimensions(width: u32, height: u32) -> Result<(), DecodeError> {
    let too_many = u64::from(width) * u64::from(height) > MAX_PIXELS || width.max(height) > MAX_SIDE;
    if too_many || width == 0 || height == 0 {
        return Err(DecodeError::TooManyPixels { width, height });
    }
    Ok(())
}

/// Decodes frame `index` of a multi-page TIFF as 8-bit RGB, within the same limits as
/// [`decode`]: dimensions are checked from the frame's directory before its pixels are
/// read. The common document colour types are read (bilevel and grey scans, RGB, RGBA,
/// CMYK, 8 or 16 bits); others are refused as corrupt.
pub fn decode_tiff_frame(bytes: &[u8], index: usize) -> Result<RgbImage, DecodeError> {
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::ColorType;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(DecodeError::TooManyBytes(bytes.len()));
    }
    let corrupt = |e: tiff::TiffError| {
        DecodeError::Corrupt(image::ImageError::Decoding(image::error::DecodingError::new(
            image::ImageFormat::Tiff.into(),
            e,
        )))
    };
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = MAX_DECODED_BYTES as usize * 2;
    limits.intermediate_buffer_size = MAX_DECODER_ALLOC as usize;
    let mut decoder = Decoder::new(Cursor::new(bytes)).map_err(corrupt)?.with_limits(limits);
    decoder.seek_to_image(index).map_err(corrupt)?;
    let (width, height) = decoder.dimensions().map_err(corrupt)?;
    check_dimensions(width, height)?;
    let colortype = decoder.colortype().map_err(corrupt)?;
    let channels = match colortype {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        ColorType::RGB(_) => 3,
        ColorType::RGBA(_) | ColorType::CMYK(_) => 4,
        _ => return Err(DecodeError::UnknownFormat),
    };
    let samples: Vec<u8> = match decoder.read_image().map_err(corrupt)? {
        DecodingResult::U8(v) => v,
        // The high byte of each sample: 16-bit scans read as 8-bit ones.
        DecodingResult::U16(v) => v.into_iter().map(|x| (x >> 8) as u8).collect(),
        _ => return Err(DecodeError::UnknownFormat),
    };
    let pixels = width as usize * height as usize;
    // Bilevel scans come packed, a bit a pixel, each row padded to a byte.
    let samples = if matches!(colortype, ColorType::Gray(1)) {
        unpack_bits(&samples, width as usize, height as usize)
    } else {
        samples
    };
    if samples.len() < pixels * channels {
        return Err(DecodeError::UnknownFormat);
    }
    let mut rgb = Vec::with_capacity(pixels * 3);
    for px in samples.chunks_exact(channels).take(pixels) {
        let value = match (colortype, channels) {
            (ColorType::CMYK(_), _) => {
                let k = 255 - u16::from(px[3]);
                let ink = |c: u8| ((255 - u16::from(c)) * k / 255) as u8;
                [ink(px[0]), ink(px[1]), ink(px[2])]
            }
            (_, 1 | 2) => [px[0]; 3],
            _ => [px[0], px[1], px[2]],
        };
        rgb.extend_from_slice(&value);
    }
    RgbImage::from_raw(width, height, rgb).ok_or(DecodeError::UnknownFormat)
}

/// 1-bit samples (0 black, as the decoder hands them) to 8-bit grey.
fn unpack_bits(packed: &[u8], width: usize, height: usize) -> Vec<u8> {
    let row_bytes = width.div_ceil(8);
    let mut out = Vec::with_capacity(width * height);
    for row in packed.chunks(row_bytes).take(height) {
        for x in 0..width {
            let bit = row.get(x / 8).map_or(0, |b| (b >> (7 - x % 8)) & 1);
            out.push(if bit == 1 { 255 } else { 0 });
        }
    }
    out
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
        assert!(
            matches!(decode(&bomb), Err(DecodeError::TooManyPixels { .. } | DecodeError::Corrupt(_))),
            "{:?}",
            decode(&bomb).err()
        );
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
        let with_exif = crate::testing::with_exif_orientation(&jpeg, 6);
        let upright = decode(&with_exif).unwrap();
        assert_eq!(upright.dimensions(), (20, 40));
        // The stored image's left edge is the viewed image's top edge.
        assert!(upright.get_pixel(10, 2)[0] < 64, "top should be dark");
        assert!(upright.get_pixel(10, 37)[0] > 192, "bottom should be light");
    }
}
