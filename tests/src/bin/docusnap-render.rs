//! `docusnap-render OUT.png LINE...`: a page with the given printed lines, rendered with the
//! fonts the test setup installs (for scripts/chaos, which sends such pages through the
//! local stack).

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(out), lines) = (args.next(), args.collect::<Vec<_>>()) else {
        eprintln!("usage: docusnap-render OUT.png LINE...");
        std::process::exit(2);
    };
    if lines.is_empty() {
        eprintln!("usage: docusnap-render OUT.png LINE...");
        std::process::exit(2);
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let png = docusnap_ocr::testing::render_png(&lines, docusnap_ocr::testing::LATIN_FONT, 32.0);
    if let Err(e) = std::fs::write(&out, png) {
        eprintln!("{out}: {e}");
        std::process::exit(1);
    }
}
