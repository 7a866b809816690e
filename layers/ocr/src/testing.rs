//! Pages with known text, rendered with real fonts (Debian's fonts-dejavu-core and
//! fonts-wqy-microhei), for tests of the engine and of the functions that use it.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

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

fn load_font(font_path: &str) -> FontRef<'static> {
    FontRef::try_from_slice_and_index(font_bytes(font_path), 0).expect("a font")
}

/// Draws `text` from `x` on `baseline`, darkening what is under it; returns where it ends.
fn draw(image: &mut RgbImage, font: &FontRef<'_>, scale: PxScale, mut x: f32, baseline: f32, text: &str) -> f32 {
    let scaled = font.as_scaled(scale);
    for c in text.chars() {
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
    x
}

/// Black text on white, one line per entry, `px` pixels tall.
pub fn render(lines: &[&str], font_path: &str, px: f32) -> RgbImage {
    let font = load_font(font_path);
    let scale = PxScale::from(px);
    let scaled = font.as_scaled(scale);
    let width =
        lines.iter().map(|l| l.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum::<f32>()).fold(0.0, f32::max)
            as u32
            + 80;
    let line_height = (px * 1.8) as u32;
    let mut image = RgbImage::from_pixel(width, line_height * lines.len() as u32 + 60, Rgb([255, 255, 255]));
    for (row, line) in lines.iter().enumerate() {
        let baseline = 30.0 + row as f32 * line_height as f32 + scaled.ascent();
        draw(&mut image, &font, scale, 40.0, baseline, line);
    }
    image
}

/// One row of a page: its pieces of text, each at its distance from the left margin, and
/// the row's height in pixels.
pub struct Row {
    pub px: f32,
    pub pieces: Vec<(f32, String)>,
}

/// A page of `rows` (each `spacing` times its height below the last), `width` wide, and
/// each piece's text with its box (left, top, right, bottom): the ground truth of a
/// rendered page.
pub fn render_rows(rows: &[Row], font_path: &str, width: u32, spacing: f32) -> (RgbImage, Vec<(String, [f32; 4])>) {
    let font = load_font(font_path);
    let height = rows.iter().map(|r| r.px * spacing).sum::<f32>() as u32 + 80;
    let mut image = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let mut truth = Vec::new();
    let mut top = 40.0;
    for row in rows {
        let scale = PxScale::from(row.px);
        let scaled = font.as_scaled(scale);
        let baseline = top + scaled.ascent();
        for (x, text) in &row.pieces {
            let right = draw(&mut image, &font, scale, 40.0 + x, baseline, text);
            truth.push((text.clone(), [40.0 + x, top, right, top + row.px]));
        }
        top += row.px * spacing;
    }
    (image, truth)
}

/// How wide `text` is drawn `px` tall.
pub fn text_width(text: &str, font_path: &str, px: f32) -> f32 {
    let font = load_font(font_path);
    let scaled = font.as_scaled(PxScale::from(px));
    text.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum()
}

pub use image::codecs::jpeg::JpegEncoder;
pub use image::{imageops, ImageFormat, Rgb, RgbImage};

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

/// PDFs written by hand, object by object, so that the tests of PDF input do not read
/// back what the library under test wrote. Text is set in Helvetica (one of PDF's
/// standard fonts, which every reader has); scans are JPEG images drawn over the page.
pub mod pdf {
    /// One line of text: left and baseline in points from the page's bottom left, size.
    pub struct Text<'a> {
        pub x: f32,
        pub y: f32,
        pub size: f32,
        pub text: &'a str,
    }

    /// What one page holds.
    pub enum Content<'a> {
        Text(Vec<Text<'a>>),
        /// A JPEG (`jpeg`, `width` x `height` pixels) stretched over the whole page.
        Scan {
            jpeg: Vec<u8>,
            width: u32,
            height: u32,
        },
        /// A scan with an invisible text layer over it, as OCR software writes.
        ScanWithLayer {
            jpeg: Vec<u8>,
            width: u32,
            height: u32,
            layer: Vec<Text<'a>>,
        },
    }

    pub struct Page<'a> {
        pub width: f32,
        pub height: f32,
        pub content: Content<'a>,
    }

    impl<'a> Page<'a> {
        pub fn text(width: f32, height: f32, lines: Vec<Text<'a>>) -> Self {
            Page { width, height, content: Content::Text(lines) }
        }

        /// A scan of `image`, at `dpi`.
        pub fn scan(image: &image::RgbImage, dpi: f32) -> Self {
            let (width, height) = image.dimensions();
            Page {
                width: width as f32 * 72.0 / dpi,
                height: height as f32 * 72.0 / dpi,
                content: Content::Scan { jpeg: jpeg(image), width, height },
            }
        }
    }

    pub fn jpeg(image: &image::RgbImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Jpeg).expect("encoding a JPEG");
        out.into_inner()
    }

    fn escape(text: &str) -> String {
        text.chars()
            .flat_map(|c| match c {
                '(' | ')' | '\\' => vec!['\\', c],
                _ => vec![c],
            })
            .collect()
    }

    fn text_ops(lines: &[Text<'_>], render_mode: u8) -> String {
        lines
            .iter()
            .map(|l| format!("BT {render_mode} Tr /F1 {} Tf {} {} Td ({}) Tj ET\n", l.size, l.x, l.y, escape(l.text)))
            .collect()
    }

    /// Options for broken and hostile documents.
    #[derive(Default)]
    pub struct Options {
        /// An /Encrypt dictionary whose user password is not empty.
        pub encrypted: bool,
        /// The page tree's root lists itself among its kids.
        pub page_tree_loop: bool,
    }

    /// A whole PDF of `pages`.
    pub fn document(pages: &[Page<'_>]) -> Vec<u8> {
        document_with(pages, &Options::default())
    }

    pub fn document_with(pages: &[Page<'_>], options: &Options) -> Vec<u8> {
        // Objects: 1 catalog, 2 page tree, 3 font, then per page: page, contents, image.
        let mut objects: Vec<Vec<u8>> = vec![
            Vec::new(),
            Vec::new(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
        ];
        let mut kids = Vec::new();
        for page in pages {
            let page_id = objects.len() + 1;
            let contents_id = page_id + 1;
            let image_id = page_id + 2;
            kids.push(format!("{page_id} 0 R"));
            let (ops, image) = match &page.content {
                Content::Text(lines) => (text_ops(lines, 0), None),
                Content::Scan { jpeg, width, height } => {
                    (format!("q {} 0 0 {} 0 0 cm /Im1 Do Q\n", page.width, page.height), Some((jpeg, width, height)))
                }
                Content::ScanWithLayer { jpeg, width, height, layer } => (
                    format!("q {} 0 0 {} 0 0 cm /Im1 Do Q\n{}", page.width, page.height, text_ops(layer, 3)),
                    Some((jpeg, width, height)),
                ),
            };
            let xobject = if image.is_some() { format!(" /XObject << /Im1 {image_id} 0 R >>") } else { String::new() };
            objects.push(
                format!(
                    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /Font << /F1 3 0 R >>{xobject} >> /Contents {contents_id} 0 R >>",
                    page.width, page.height
                )
                .into_bytes(),
            );
            objects.push(stream("", ops.as_bytes()));
            match image {
                Some((jpeg, width, height)) => objects.push(stream(
                    &format!("/Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode"),
                    jpeg,
                )),
                None => objects.push(b"null".to_vec()),
            }
        }
        if options.page_tree_loop {
            kids.push("2 0 R".into());
        }
        objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>".to_vec();
        objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), kids.len()).into_bytes();
        let encrypt_id = objects.len() + 1;
        if options.encrypted {
            // The standard handler, revision 2, with O and U that no empty password opens.
            objects.push(
                format!("<< /Filter /Standard /V 1 /R 2 /O <{}> /U <{}> /P -4 >>", "ab".repeat(32), "cd".repeat(32))
                    .into_bytes(),
            );
        }
        let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        let encrypt = if options.encrypted {
            format!(" /Encrypt {encrypt_id} 0 R /ID [<{0}> <{0}>]", "01".repeat(16))
        } else {
            String::new()
        };
        out.extend_from_slice(
            format!("trailer\n<< /Size {} /Root 1 0 R{encrypt} >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
                .as_bytes(),
        );
        out
    }

    fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\nendstream");
        out
    }
}

/// A multi-page TIFF of `pages` (8-bit RGB, uncompressed), as a scanner's feeder writes.
pub fn multipage_tiff(pages: &[RgbImage]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut out).expect("a TIFF encoder");
    for page in pages {
        encoder
            .write_image::<tiff::encoder::colortype::RGB8>(page.width(), page.height(), page.as_raw())
            .expect("a TIFF page");
    }
    out.into_inner()
}

/// A phone photo's weight: `lines` printed large on a `width` x `height` sheet with sensor
/// noise (deterministic), as a JPEG of `quality`. Noise is what makes real photos large;
/// the text stays readable after the detector's downscale.
pub fn noisy_photo_jpeg(lines: &[&str], width: u32, height: u32, noise: u8, quality: u8) -> Vec<u8> {
    let text = render(lines, LATIN_FONT, height as f32 / 24.0);
    let mut photo = RgbImage::from_pixel(width, height, Rgb([236, 232, 224]));
    let (ox, oy) = (width / 10, height / 8);
    for (x, y, pixel) in text.enumerate_pixels() {
        if x + ox < width && y + oy < height && pixel.0[0] < 250 {
            photo.put_pixel(x + ox, y + oy, Rgb(pixel.0.map(|v| (v as u16 * 224 / 255) as u8)));
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for pixel in photo.pixels_mut() {
        for channel in pixel.0.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let delta = (state % (2 * noise as u64 + 1)) as i16 - noise as i16;
            *channel = (*channel as i16 + delta).clamp(0, 255) as u8;
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&photo)
        .expect("encoding a JPEG");
    out
}

/// `image` turned `degrees` clockwise about its centre on a canvas grown to hold it all,
/// the corners filled white: a page fed or photographed askew.
pub fn skewed(image: &RgbImage, degrees: f32) -> RgbImage {
    crate::orientation::turned_by(image, degrees).0
}

/// A JPEG with an APP1 EXIF segment holding one Orientation entry (1-8), inserted right
/// after SOI: what a phone writes instead of turning the pixels.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
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
