//! The rules extractor on the engine's own reading of rendered documents with known
//! fields: what it finds must survive real OCR, not only typed-in lines.

use docusnap_core::ocr_output::{OcrOutput, TextOrigin};
use docusnap_core::protocol::Library;
use docusnap_extract::rules::{extract_doc, extract_form};
use docusnap_extract::OcrText;
use docusnap_ocr::testing::{render, RgbImage, LATIN_FONT};
use docusnap_tests::ocr_engine;

fn read(lines: &[&str]) -> OcrText {
    read_image(&render(lines, LATIN_FONT, 30.0))
}

fn read_image(image: &RgbImage) -> OcrText {
    let page = ocr_engine().read(image).expect("the page reads");
    let page = docusnap_ocr_fn::page_text(page, TextOrigin::Ocr);
    OcrText::from_output(&OcrOutput { pages: vec![page], ..OcrOutput::default() })
}

#[test]
fn a_passport_page_gives_its_holder_numbers_and_dates_from_labels_and_mrz() {
    let ocr = read(&[
        "REPUBLIC OF UTOPIA",
        "PASSPORT",
        "Surname: ERIKSSON",
        "Given Names: ANNA MARIA",
        "Passport No. L898902C3",
        "Date of Birth: 12 AUG 1974",
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ]);
    let doc = extract_doc(&ocr.lines, &Library::default());
    assert_eq!(doc.kv["Surname"], "ERIKSSON", "{:?}", doc.kv);
    assert_eq!(doc.kv["Date of Birth"], "Aug 12, 1974");
    assert_eq!(doc.kv["Passport Number"], "L898902C3");
    assert!(doc.tags.iter().any(|t| t == "identity"), "{:?}", doc.tags);
    // What only the MRZ holds goes under the original service's key names, as clients'
    // libraries have them; what the page labels stays under its printed label, once.
    let mrz = doc.kv.get("Machine Readable Zone (MRZ)").and_then(|v| v.as_str());
    let mrz = mrz.unwrap_or_else(|| panic!("no MRZ in {:?} from {:?}", doc.kv, ocr.lines));
    assert!(mrz.starts_with("P<UTO") && mrz.lines().count() == 2, "{mrz}");
    assert_eq!(doc.kv["Expiration Date (Full)"], "Apr 15, 2012");
    assert_eq!(doc.kv["Gender (Legal)"], "F");
    assert!(!doc.kv.contains_key("Date of Birth (Full)"), "the printed date of birth is not repeated: {:?}", doc.kv);
}

#[test]
fn a_receipt_and_a_form_read_from_their_images() {
    let receipt = read(&[
        "KEDAI MAJU TRADING",
        "No. 12, Jalan Besar,",
        "81100 Johor Bahru",
        "Invoice No: INV-0042",
        "Date: 03/11/2025",
        "Tea 2.50",
        "TOTAL 12.50",
    ]);
    let doc = extract_doc(&receipt.lines, &Library::default());
    assert_eq!(doc.title, "KEDAI MAJU TRADING");
    assert_eq!(doc.kv["Company"], "KEDAI MAJU TRADING");
    assert_eq!(doc.kv["Address"], "No. 12, Jalan Besar, 81100 Johor Bahru", "{:?}", doc.kv);
    assert_eq!(doc.kv["Date"], "Nov 03, 2025");
    assert_eq!(doc.kv["Total"], "12.50");
    assert_eq!(doc.kv["Invoice No"], "INV-0042");

    let form = read(&[
        "MEMBERSHIP APPLICATION",
        "Club: Riverside Rowing",
        "Name: ____________",
        "Phone: ________",
        "[ ] Student",
    ]);
    let result = extract_form(&form.lines, &Library::default());
    let fields = result.fields.clone().unwrap();
    assert!(fields.contains(&"Name".to_string()) && fields.contains(&"Phone".to_string()), "{fields:?}");
    assert_eq!(result.kv["Club"], "Riverside Rowing");
    assert!(result.kv.contains_key("Form Type"));
    assert!(fields.iter().all(|f| !result.kv.contains_key(f)));
}

/// A receipt that came sideways, upside down or askew gives the fields it gives upright:
/// OCR stands it up and levels it, and the rules read its rows and columns in that frame
/// (its boxes stay in the pixels of the page as it came).
#[test]
fn a_turned_or_skewed_receipt_gives_the_fields_of_an_upright_one() {
    use docusnap_ocr::testing::imageops::{rotate180, rotate270, rotate90};
    let upright = render(
        &[
            "KEDAI MAJU TRADING",
            "No. 12, Jalan Besar,",
            "81100 Johor Bahru",
            "Date: 03/11/2025",
            "Tea                      2.50",
            "Cake                    10.00",
            "TOTAL                   12.50",
            "Thank you",
        ],
        LATIN_FONT,
        30.0,
    );
    let fields = |ocr: &OcrText| {
        let doc = extract_doc(&ocr.lines, &Library::default());
        ["Company", "Address", "Date", "Total"].map(|key| doc.kv.get(key).map(|v| v.to_string()).unwrap_or_default())
    };
    let want = fields(&read_image(&upright));
    assert_eq!(want[3], "\"12.50\"", "{want:?}");
    assert_eq!(want[2], "\"Nov 03, 2025\"", "{want:?}");
    for (name, image) in [
        ("a quarter clockwise", rotate90(&upright)),
        ("upside down", rotate180(&upright)),
        ("a quarter counter-clockwise", rotate270(&upright)),
        ("10° askew", docusnap_ocr::testing::skewed(&upright, 10.0)),
        ("8° askew the other way", docusnap_ocr::testing::skewed(&upright, -8.0)),
    ] {
        assert_eq!(fields(&read_image(&image)), want, "turned {name}");
    }
}
