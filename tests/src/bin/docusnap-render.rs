//! `docusnap-render OUT.png LINE...`: a page with the given printed lines, rendered with the
//! fonts the test setup installs (for scripts/chaos, which sends such pages through the
//! local stack).
//!
//! `docusnap-render OUT.pdf --scanned-pages N`: a scanned statement of N pages (each a
//! 150-dpi image of 24 printed lines, no text layer), for scripts/bench-pdf.
//!
//! `docusnap-render OUT.jpg --photo MEGABYTES LINE...`: a photo of the printed lines with
//! sensor noise, at least MEGABYTES large (the v2 test's phone photo).

use docusnap_ocr::testing::{noisy_photo_jpeg, pdf, render, render_png, LATIN_FONT};

const USAGE: &str =
    "usage: docusnap-render OUT.png LINE... | docusnap-render OUT.pdf --scanned-pages N | docusnap-render OUT.jpg --photo MEGABYTES LINE...";

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
