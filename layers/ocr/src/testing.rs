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
