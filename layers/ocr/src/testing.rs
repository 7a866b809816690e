//! Pages with known text, rendered with real fonts (Debian's fonts-dejavu-core and
//! fonts-wqy-microhei), for tests of the engine and of the functions that use it.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

pub const LATIN_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
pub const CJK_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

fn font_bytes(path: &str) -> &'static [u8] {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<String, &'static [u8]>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache.entry(path.to_owned()).or_insert_with(|| {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; scripts/test installs the fonts"));
        Box::leak(bytes.into_boxed_slice())
    })
}

/// Black text on white, one line per entry, `px` pixels tall.
pub fn render(lines: &[&str], font_path: &str, px: f32) -> RgbImage {
    let font = FontRef::try_from_slice_and_index(font_bytes(font_path), 0).expect("a font");
    let scale = PxScale::from(px);
    let scaled = font.as_scaled(scale);
    let width = lines
        .iter()
        .map(|l| l.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum::<f32>())
        .fold(0.0, f32::max) as u32
        + 80;
    let line_height = (px * 1.8) as u32;
    let mut image = RgbImage::from_pixel(width, line_height * lines.len() as u32 + 60, Rgb([255, 255, 255]));
    for (row, line) in lines.iter().enumerate() {
        let baseline = 30.0 + row as f32 * line_height as f32 + scaled.ascent();
        let mut x = 40.0;
        for c in line.chars() {
            let id = font.glyph_id(c);
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(x, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let (px, py) = (bounds.min.x as i32 + gx as i32, bounds.min.y as i32 + gy as i32);
                    if px >= 0 && py >= 0 && (px as u32) < image.width() && (py as u32) < image.height() {
                        let value = (255.0 * (1.0 - coverage.clamp(0.0, 1.0))) as u8;
                        let pixel = image.get_pixel_mut(px as u32, py as u32);
                        pixel.0 = pixel.0.map(|old| old.min(value));
                    }
                });
            }
            x += scaled.h_advance(id);
        }
    }
    image
}


pub use image::ImageFormat;

/// A rendered page encoded in `format` (PNG, JPEG, TIFF, WebP, BMP).
pub fn render_as(lines: &[&str], font_path: &str, px: f32, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    render(lines, font_path, px).write_to(&mut out, format).expect("encoding a page");
    out.into_inner()
}

/// A rendered page encoded as PNG, as a client would upload it.
pub fn render_png(lines: &[&str], font_path: &str, px: f32) -> Vec<u8> {
    let mut png = std::io::Cursor::new(Vec::new());
    render(lines, font_path, px).write_to(&mut png, image::ImageFormat::Png).expect("encoding a PNG");
    png.into_inner()
}

/// `png` with its IHDR claiming `width` x `height`, its CRC made right so that a decoder
/// believes the header: for tests of decompression bombs and absurd dimensions.
pub fn png_with_size(png: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut png = png.to_vec();
    // IHDR's width and height are the big-endian u32s at offsets 16 and 20; its CRC
    // covers bytes 12..29 and sits at 29..33.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// The CRC-32 of PNG chunks (ISO 3309).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
