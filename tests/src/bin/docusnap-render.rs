//! `docusnap-render OUT.png LINE...`: a page with the given printed lines, rendered with the
//! fonts the test setup installs (for scripts/chaos, which sends such pages through the
//! local stack).
//!
//! `docusnap-render OUT.pdf --scanned-pages N`: a scanned statement of N pages (each a
//! 150-dpi image of 24 printed lines, no text layer), for scripts/bench-pdf.
//!
//! `docusnap-render OUT.jpg --photo MEGABYTES LINE...`: a photo of the printed lines with
//! sensor noise, at least MEGABYTES large (the v2 test's phone photo).
//!
//! `docusnap-render OUTDIR --turned IMAGE...`: each image as a phone or scanner may send
//! it, for scripts/eval-ocr and eval-extract's `--turned` (see [`TURNS`]).
//!
//! `docusnap-render OUTDIR --mixed-pages N`: N Chinese and English document pages
//! (`OUTDIR/images/NNN.png` or `.jpg`) with their lines' text and boxes (`OUTDIR/gt/NNN.json`), for
//! scripts/eval-ocr and bench-ocr (see [`mixed_page`]).

use docusnap_ocr::testing::imageops::{rotate180, rotate270, rotate90};
use docusnap_ocr::testing::{
    noisy_photo_jpeg, pdf, render, render_png, render_rows, skewed, text_width, with_exif_orientation, ImageFormat,
    JpegEncoder, RgbImage, Row, CJK_FONT, LATIN_FONT,
};

/// The turned set: each variant's name, and how it is made from the upright page. EXIF
/// orientation 6 says "turn the stored image a quarter clockwise to view it".
const TURNS: [(&str, Turn); 8] = [
    ("r90", Turn::Pixels(90)),
    ("r180", Turn::Pixels(180)),
    ("r270", Turn::Pixels(270)),
    // Pixels turned a quarter counter-clockwise, and the tag that stands them upright.
    ("exif-upright", Turn::Exif { pixels: 270, tag: 6 }),
    // Upright pixels and a tag that turns them: an app turned the pixels and kept the tag.
    ("exif-turned", Turn::Exif { pixels: 0, tag: 6 }),
    ("skew+10", Turn::Skew(10.0)),
    ("skew-10", Turn::Skew(-10.0)),
    // A control, not a turn: the skewed pixels turned back level. What it loses against
    // the original is the resampling's (small print blurs), not the reading's.
    ("skew-back", Turn::SkewBack(10.0)),
];

#[derive(Clone, Copy)]
enum Turn {
    Pixels(u16),
    Exif { pixels: u16, tag: u16 },
    Skew(f32),
    SkewBack(f32),
}

const USAGE: &str =
    "usage: docusnap-render OUT.png LINE... | docusnap-render OUT.pdf --scanned-pages N | docusnap-render OUT.jpg --photo MEGABYTES LINE... | docusnap-render OUTDIR --turned IMAGE... | docusnap-render OUTDIR --mixed-pages N";

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bytes = match args.as_slice() {
        [out, flag, n] if out.ends_with(".pdf") && flag == "--scanned-pages" => {
            let n: usize = n.parse().unwrap_or_else(|_| fail(USAGE));
            scanned_statement(n)
        }
        [out, flag, megabytes, lines @ ..] if out.ends_with(".jpg") && flag == "--photo" && !lines.is_empty() => {
            let want: f64 = megabytes.parse().unwrap_or_else(|_| fail(USAGE));
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            // A 12-megapixel sheet; more noise until the JPEG weighs what was asked.
            (8..=64u8)
                .step_by(8)
                .map(|noise| noisy_photo_jpeg(&lines, 4000, 3000, noise, 100))
                .find(|jpeg| jpeg.len() as f64 >= want * 1e6)
                .unwrap_or_else(|| fail("a photo that large needs more pixels"))
        }
        [out, flag, n] if flag == "--mixed-pages" => {
            let n: usize = n.parse().unwrap_or_else(|_| fail(USAGE));
            for index in 0..n {
                write_mixed_page(std::path::Path::new(out), index);
            }
            return;
        }
        [out, flag, images @ ..] if flag == "--turned" && !images.is_empty() => {
            for image in images {
                turned(std::path::Path::new(out), std::path::Path::new(image));
            }
            return;
        }
        [_, lines @ ..] if !lines.is_empty() => {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            render_png(&lines, LATIN_FONT, 32.0)
        }
        _ => fail(USAGE),
    };
    let out = &args[0];
    if let Err(e) = std::fs::write(out, bytes) {
        eprintln!("{out}: {e}");
        std::process::exit(1);
    }
}

/// A bank statement's pages: a heading and 22 dated transactions each, then the page number.
fn scanned_statement(pages: usize) -> Vec<u8> {
    let scans: Vec<pdf::Page> = (1..=pages)
        .map(|page| {
            let mut lines = vec![
                "HARBOUR SAVINGS BANK - STATEMENT".to_owned(),
                "Date        Description              Amount".to_owned(),
            ];
            for row in 0..22 {
                let day = (page * 22 + row) % 28 + 1;
                let amount = ((page * 37 + row * 101) % 9000) as f32 / 7.0;
                lines
                    .push(format!("2026-03-{day:02}  CARD PAYMENT SHOP {:03}   {amount:>9.2}", (page * 7 + row) % 500));
            }
            lines.push(format!("Page {page} of {pages}"));
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            pdf::Page::scan(&render(&lines, LATIN_FONT, 28.0), 150.0)
        })
        .collect();
    pdf::document(&scans)
}

/// Writes `OUTDIR/<variant>/<image's name>.jpg` for each of [`TURNS`].
fn turned(out: &std::path::Path, path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    let upright = docusnap_ocr::decode::decode(&bytes).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    // Quality 95: what a phone writes, and little enough loss that the variants compare
    // with the original scans.
    let jpeg = |image: &RgbImage| {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 95).encode_image(image).unwrap_or_else(|e| fail(&e.to_string()));
        out
    };
    let pixels = |degrees: u16| match degrees {
        90 => rotate90(&upright),
        180 => rotate180(&upright),
        270 => rotate270(&upright),
        _ => upright.clone(),
    };
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    for (name, turn) in TURNS {
        let bytes = match turn {
            Turn::Pixels(degrees) => jpeg(&pixels(degrees)),
            Turn::Exif { pixels: degrees, tag } => with_exif_orientation(&jpeg(&pixels(degrees)), tag),
            Turn::Skew(degrees) => jpeg(&skewed(&upright, degrees)),
            Turn::SkewBack(degrees) => jpeg(&skewed(&skewed(&upright, degrees), -degrees)),
        };
        let dir = out.join(name);
        let file = dir.join(format!("{stem}.jpg"));
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, bytes)) {
            fail(&format!("{}: {e}", file.display()));
        }
    }
}

/// A deterministic sequence (xorshift) for the mixed pages: the same pages on every machine.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 32) % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const COMPANIES: [&str; 8] = [
    "上海晨光文具有限公司",
    "北京华联商厦股份有限公司",
    "深圳市腾达电子科技有限公司",
    "杭州西湖茶叶贸易公司",
    "广州白云物流有限公司",
    "成都天府餐饮管理有限公司",
    "南京金陵印刷厂",
    "Sino-Pacific Trading Co., Ltd.",
];
const ITEMS: [&str; 12] = [
    "打印纸 A4",
    "签字笔",
    "文件夹",
    "笔记本电脑",
    "无线鼠标",
    "办公椅",
    "绿茶 250g",
    "矿泉水",
    "快递服务费",
    "会议室租金",
    "USB 数据线",
    "墨盒 HP 803",
];
const NAMES: [&str; 8] = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄晓明"];
const PLACES: [&str; 6] = [
    "上海市浦东新区世纪大道100号",
    "北京市朝阳区建国路88号",
    "广州市天河区体育西路191号",
    "深圳市南山区科技园南区",
    "杭州市西湖区文三路478号",
    "成都市锦江区红星路三段1号",
];
const SENTENCES: [&str; 8] = [
    "本公司承诺所提供的信息真实有效。",
    "请于收到通知后七个工作日内办理相关手续。",
    "如有疑问请致电客服热线 400-820-8820。",
    "会议将于下午两点在三楼会议室召开。",
    "付款方式：银行转账或支付宝。",
    "请妥善保管本收据，遗失不补。",
    "The goods remain our property until paid in full.",
    "感谢您的惠顾，欢迎再次光临！",
];

/// Page `index` of the mixed set: an invoice with an item table, an application form, or
/// a notice in paragraphs; Chinese labels with English beside them, values in digits and
/// Latin letters; its print size, line spacing and width drawn from fixed ranges. (Its
/// ruling and how it was captured: [`write_mixed_page`].)
fn mixed_page(index: usize) -> (Vec<Row>, u32, f32) {
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 2026).wrapping_mul(0x2545_f491_4f6c_dd1d));
    // Print from a receipt's small type to a heading's, lines from tight to double-spaced.
    let px = 16.0 + dice.below(19) as f32;
    let spacing = 1.3 + dice.below(9) as f32 / 10.0;
    let width = 1000 + 100 * dice.below(5) as u32;
    let row = |px: f32, pieces: Vec<(f32, String)>| Row { px, pieces };
    let line = |px: f32, text: String| Row { px, pieces: vec![(0.0, text)] };
    let date = format!("2026-{:02}-{:02}", 1 + dice.below(12), 1 + dice.below(28));
    let mut rows = Vec::new();
    match index % 3 {
        0 => {
            rows.push(line(px * 1.4, format!("{} 增值税普通发票", dice.pick(&["销售", "服务", "采购"]))));
            rows.push(line(px, format!("公司名称 Company: {}", dice.pick(&COMPANIES))));
            rows.push(row(
                px,
                vec![
                    (0.0, format!("日期 Date: {date}")),
                    (width as f32 * 0.5, format!("发票号码 No.: {:08}", dice.next() % 100_000_000)),
                ],
            ));
            let columns = [0.0, width as f32 * 0.38, width as f32 * 0.52, width as f32 * 0.70];
            let header = ["品名 Item", "数量 Qty", "单价 Price", "金额 Amount"];
            rows.push(row(px, columns.iter().zip(header).map(|(&x, h)| (x, h.to_owned())).collect()));
            let mut total = 0u64;
            for _ in 0..3 + dice.below(4) {
                let (qty, cents) = (1 + dice.below(9) as u64, 100 + dice.next() % 50_000);
                total += qty * cents;
                let cells = [dice.pick(&ITEMS).to_owned(), qty.to_string(), money(cents), money(qty * cents)];
                rows.push(row(px, columns.iter().zip(cells).map(|(&x, c)| (x, c)).collect()));
            }
            rows.push(row(px, vec![(columns[2], "合计 Total".to_owned()), (columns[3], format!("¥{}", money(total)))]));
            rows.push(line(px, format!("地址 Address: {}", dice.pick(&PLACES))));
        }
        1 => {
            rows.push(line(px * 1.4, format!("{}申请表 Application Form", dice.pick(&["会员", "入职", "报销"]))));
            rows.push(row(
                px,
                vec![
                    (0.0, format!("姓名 Name: {}", dice.pick(&NAMES))),
                    (width as f32 * 0.5, format!("性别 Sex: {}", dice.pick(&["男 M", "女 F"]))),
                ],
            ));
            rows.push(line(px, format!("电话 Phone: 1{:010}", dice.next() % 10_000_000_000)));
            rows.push(line(px, format!("身份证号 ID No.: 3101{:014}", dice.next() % 100_000_000_000_000)));
            rows.push(line(px, format!("单位 Employer: {}", dice.pick(&COMPANIES))));
            rows.push(line(px, format!("住址 Address: {}", dice.pick(&PLACES))));
            rows.push(line(px, format!("申请日期 Date: {date}")));
            rows.push(line(px, format!("备注 Remarks: {}", dice.pick(&SENTENCES))));
            rows.push(row(
                px,
                vec![(0.0, "签名 Signature:".to_owned()), (width as f32 * 0.5, "审核 Approved: 是 Yes".to_owned())],
            ));
        }
        _ => {
            rows.push(line(
                px * 1.4,
                format!("关于{}的通知", dice.pick(&["年度体检", "办公室搬迁", "系统升级", "春节放假"])),
            ));
            rows.push(line(px, format!("发文单位: {}", dice.pick(&COMPANIES))));
            for _ in 0..4 + dice.below(4) {
                rows.push(line(px, dice.pick(&SENTENCES).to_owned()));
            }
            rows.push(row(px, vec![(width as f32 * 0.5, format!("日期 Date: {date}"))]));
        }
    }
    // Fine print at the foot, as invoices and forms carry it: 12-20 px.
    let fine = (px * 0.6).max(12.0);
    rows.push(line(fine, format!("注 Note: {}", dice.pick(&SENTENCES))));
    // A piece that would run past the right edge moves to fit.
    for row in &mut rows {
        for (x, text) in &mut row.pieces {
            let w = text_width(text, CJK_FONT, row.px);
            *x = x.min((width as f32 - 80.0 - w).max(0.0));
        }
    }
    (rows, width, spacing)
}

/// Rules an invoice's item table (its rows from the header to the last item, see
/// [`mixed_page`]): a grey line above each row and below the last, and between columns.
fn rule_table(image: &mut RgbImage, rows: &[Row], truth: &[(String, [f32; 4])], spacing: f32) {
    let grey = docusnap_ocr::testing::Rgb([110, 110, 110]);
    // Rows 0-2 are the title, company and date; the table runs from row 3 to the last
    // item, before the total, the address and the fine print.
    let table: Vec<usize> = (3..rows.len() - 3).collect();
    let piece_top = |row: usize| {
        let before: usize = rows[..row].iter().map(|r| r.pieces.len()).sum();
        truth[before].1[1]
    };
    let gap = |row: usize| rows[row].px * (spacing - 1.0) / 2.0;
    let (Some(&first), Some(&last)) = (table.first(), table.last()) else {
        return;
    };
    let top = piece_top(first) - gap(first);
    let bottom = piece_top(last) + rows[last].px + gap(last);
    let (left, right) = (28.0, image.width() as f32 - 28.0);
    let mut ys: Vec<f32> = table.iter().map(|&r| piece_top(r) - gap(r)).collect();
    ys.push(bottom);
    for y in ys {
        for x in left as u32..right as u32 {
            image.put_pixel(x, y as u32, grey);
        }
    }
    let columns: Vec<f32> = rows[first].pieces.iter().map(|(x, _)| 40.0 + x - 12.0).chain([right]).collect();
    for x in columns {
        for y in top as u32..=bottom as u32 {
            image.put_pixel((x as u32).min(image.width() - 1), y, grey);
        }
    }
}

/// Page `index` as it was captured (see [`write_mixed_page`]), encoded, and its extension.
fn captured(image: RgbImage, index: usize) -> (Vec<u8>, &'static str) {
    let jpeg = |image: &RgbImage, quality: u8| {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, quality).encode_image(image).unwrap_or_else(|e| fail(&e.to_string()));
        out
    };
    match index % 4 {
        0 => {
            let mut out = std::io::Cursor::new(Vec::new());
            image.write_to(&mut out, ImageFormat::Png).unwrap_or_else(|e| fail(&e.to_string()));
            (out.into_inner(), "png")
        }
        1 => (jpeg(&image, 70), "jpg"),
        2 => (jpeg(&docusnap_ocr::testing::imageops::blur(&image, 0.7), 80), "jpg"),
        _ => {
            let mut dice = Dice(0x5851_f42d_4c95_7f2d ^ index as u64);
            let mut copy = image;
            for pixel in copy.pixels_mut() {
                for channel in pixel.0.iter_mut() {
                    // Paper at 232, ink at 60, and grain of up to 12 levels either way.
                    let ink = 1.0 - f32::from(*channel) / 255.0;
                    let level = 232.0 - ink * 172.0 + dice.below(25) as f32 - 12.0;
                    *channel = level.clamp(0.0, 255.0) as u8;
                }
            }
            (jpeg(&copy, 75), "jpg")
        }
    }
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The mixed set's version, written beside it: scripts/ocr_scoring.py renders it again
/// when its own differs. 2: smaller print and tighter lines, a line of fine print, ruled
/// tables, and pages captured as scans and photos are.
const MIXED_VERSION: &str = "2";

/// Writes page `index` of the mixed set and its ground truth, in ../shared/data's form.
/// An invoice's item table is ruled, as Chinese invoices are. A quarter of the pages each
/// are kept as rendered (PNG), saved as JPEG at quality 70, softened as a scanner does
/// (blur 0.7 px, then JPEG 80), or photocopied (grey paper and ink, grain, JPEG 75): what
/// reaches the service is rarely a clean render.
fn write_mixed_page(out: &std::path::Path, index: usize) {
    let (rows, width, spacing) = mixed_page(index);
    let (mut image, truth) = render_rows(&rows, CJK_FONT, width, spacing);
    if index.is_multiple_of(3) {
        rule_table(&mut image, &rows, &truth, spacing);
    }
    let (image, extension) = captured(image, index);
    let lines: Vec<serde_json::Value> = truth
        .into_iter()
        .map(|(text, [l, t, r, b])| serde_json::json!({"text": text, "box": [l, t, r, t, r, b, l, b]}))
        .collect();
    let (images, gt) = (out.join("images"), out.join("gt"));
    let written = std::fs::create_dir_all(&images)
        .and_then(|()| std::fs::create_dir_all(&gt))
        .map_err(|e| e.to_string())
        .and_then(|()| {
            std::fs::write(images.join(format!("{index:03}.{extension}")), &image).map_err(|e| e.to_string())
        })
        .and_then(|()| std::fs::write(out.join("version"), MIXED_VERSION).map_err(|e| e.to_string()))
        .and_then(|()| {
            std::fs::write(gt.join(format!("{index:03}.json")), serde_json::json!({"lines": lines}).to_string())
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        fail(&format!("{}: {e}", out.display()));
    }
}
