//! A page's letterhead: the issuer's name and address at the top of receipts, invoices
//! and letters. The name is the first prominent line (handwritten notes and stray numbers
//! above it skipped), continued while it has not ended in a company suffix; the address is
//! the block after it, registration numbers skipped, up to its postcode line.

/// Lines of a letterhead are among the first of a page.
const HEADER_WINDOW: usize = 12;
/// A name wraps onto at most this many lines; an address onto at most this many.
const MAX_NAME_LINES: usize = 3;
const MAX_ADDRESS_LINES: usize = 5;

/// Words that end a company's name (or make a line one).
const COMPANY_MARKERS: &[&str] = &[
    "SDN BHD",
    "SDN. BHD.",
    "SDN.BHD",
    "S/B",
    "BHD",
    "BERHAD",
    "ENTERPRISE",
    "ENTERPRISES",
    "TRADING",
    "LTD",
    "LIMITED",
    "INC",
    "CORP",
    "CORPORATION",
    "COMPANY",
    "CO",
    "LLC",
    "GMBH",
    "PLC",
    "有限公司",
    "公司",
];
/// Words of a company's trade: a line with one is a name even without a suffix.
const TRADE_WORDS: &[&str] = &[
    "RESTAURANT",
    "RESTORAN",
    "HARDWARE",
    "BAKERY",
    "CAFE",
    "MART",
    "STORE",
    "SHOP",
    "STATIONERY",
    "PHARMACY",
    "MACHINERY",
    "ELECTRICAL",
    "BOOKSTORE",
    "SUPERMARKET",
    "HOTEL",
    "PERNIAGAAN",
    "KEDAI",
];
/// Words that start or fill an address line.
const ADDRESS_WORDS: &[&str] = &[
    "NO",
    "LOT",
    "JALAN",
    "JLN",
    "TAMAN",
    "TMN",
    "LEVEL",
    "BLOCK",
    "BLK",
    "STREET",
    "ST",
    "ROAD",
    "RD",
    "AVENUE",
    "AVE",
    "LORONG",
    "PERSIARAN",
    "BANDAR",
    "KAWASAN",
    "FLOOR",
    "SUITE",
    "UNIT",
    "STRASSE",
    "路",
    "号",
];
/// Lines that end a letterhead.
const HEADER_ENDS: &[&str] =
    &["TEL", "FAX", "PHONE", "GST", "INVOICE", "RECEIPT", "CASH", "DATE", "EMAIL", "WWW", "HTTP", "BILL", "CASHIER"];

#[derive(Debug, Default, PartialEq)]
pub struct Letterhead {
    pub name: Option<String>,
    /// Whether the name reads as a company's (a suffix or a trade word), not just a heading.
    pub is_company: bool,
    pub address: Option<String>,
    /// Where the name and the address begin, as indices into the lines given.
    pub name_at: usize,
    pub address_at: usize,
}

fn words(line: &str) -> Vec<String> {
    line.to_uppercase()
        .split(|c: char| !c.is_alphanumeric() && c != '.')
        .map(|w| w.trim_matches('.').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

fn has_word(line: &str, list: &[&str]) -> bool {
    let upper = line.to_uppercase();
    let words = words(line);
    list.iter().any(|m| {
        if m.contains([' ', '/']) || !m.is_ascii() {
            upper.contains(m)
        } else {
            words.iter().any(|w| w == m)
        }
    })
}

fn letters(line: &str) -> usize {
    line.chars().filter(|c| c.is_alphabetic()).count()
}

fn digits(line: &str) -> usize {
    line.chars().filter(|c| c.is_ascii_digit()).count()
}

/// A handwritten note (all lowercase), a number, or punctuation: not a letterhead line.
fn is_noise(line: &str) -> bool {
    let has_upper = line.chars().any(|c| c.is_uppercase());
    let has_lower = line.chars().any(|c| c.is_lowercase());
    letters(line) < 3 || (has_lower && !has_upper) || digits(line) > letters(line)
}

/// "(789417-W)", "CO.REG : 933109-X", "JM0325955-V": a registration, not an address.
fn is_registration(line: &str) -> bool {
    let upper = line.to_uppercase();
    const NUMBER_LABELS: [&str; 6] = ["CO. NO", "CO NO", "COMPANY NO", "ROC NO", "BR NO", "ROC:"];
    upper.contains("REG")
        || NUMBER_LABELS.iter().any(|l| upper.contains(l))
        || upper.contains("FORMERLY")
        || upper.contains("LICENSEE")
        || (line.split_whitespace().count() <= 3
            && digits(line) >= 4
            && !has_word(line, ADDRESS_WORDS)
            && !has_postcode(line))
        || line.split(|c: char| c.is_whitespace() || "()[]:".contains(c)).any(|token| {
            // Malaysian company numbers: digits, a dash and a check letter (789417-W).
            token.rsplit_once('-').is_some_and(|(number, check)| {
                digits(number) >= 4 && check.len() == 1 && check.chars().all(|c| c.is_ascii_alphabetic())
            })
        })
}

fn has_postcode(line: &str) -> bool {
    line.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() == 5)
}

fn is_address(line: &str) -> bool {
    has_word(line, ADDRESS_WORDS) || has_postcode(line) || (digits(line) > 0 && line.contains(','))
}

/// A line that opens an address: a number, a street word or a postcode first.
fn starts_address(line: &str) -> bool {
    let upper = line.to_uppercase();
    let first = upper.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty()).unwrap_or_default();
    line.trim_start().starts_with(|c: char| c.is_ascii_digit())
        || ADDRESS_WORDS.iter().any(|w| {
            first == *w || (first.starts_with(w) && first[w.len()..].starts_with(|c: char| c.is_ascii_digit()))
        })
        || has_postcode(line)
}

/// A phone, a tax number, a document's label, a date or an e-mail: the letterhead is over.
/// A colon counts after a word ("Cashier:"), not after a house number ("NO.5:", "No: 28").
fn ends_header(line: &str) -> bool {
    let labelled = line.split_once(':').is_some_and(|(before, _)| {
        let before = before.trim();
        !before.chars().any(|c| c.is_ascii_digit()) && !has_word(before, ADDRESS_WORDS) && letters(before) >= 2
    });
    let web = line.to_lowercase().contains(".com");
    has_word(line, HEADER_ENDS) || labelled || line.contains('@') || web
}

/// A phone number alone on its line ("016-5498845,", "H/P:019-7521215").
fn is_phone(line: &str) -> bool {
    !crate::values::find_phones(line).is_empty() && !has_word(line, STREET_WORDS) && !has_postcode(line)
}

/// Address words that a registration line never holds ("NO" it does: "Co. No.").
const STREET_WORDS: &[&str] = &[
    "LOT",
    "JALAN",
    "JLN",
    "TAMAN",
    "TMN",
    "STREET",
    "ROAD",
    "AVENUE",
    "LORONG",
    "PERSIARAN",
    "BANDAR",
    "KAWASAN",
    "FLOOR",
    "LEVEL",
    "SUITE",
    "UNIT",
];

/// The issuer's name ends at its company suffix: "AEON CO. (M) BHD (126926-H)" is
/// "AEON CO. (M) BHD", the registration after it dropped.
fn cut_after_suffix(name: &str) -> &str {
    let upper = name.to_uppercase();
    let end = ["SDN BHD", "SDN. BHD.", "SDN. BHD", "SDN.BHD", "S/B", "BHD", "BERHAD"]
        .iter()
        .filter_map(|m| upper.rfind(m).map(|at| at + m.len()))
        .max();
    match end {
        // The suffix must end a word, and an uppercase copy has the same byte offsets only
        // for ASCII: elsewhere the name stays whole.
        Some(end) if name.is_ascii() && !name[end..].starts_with(|c: char| c.is_alphanumeric()) => {
            name[..end].trim_end()
        }
        _ => name,
    }
}

/// A line with a date in it (a receipt's stamp printed among the letterhead).
fn is_dated(line: &str) -> bool {
    !crate::values::find_dates(line).is_empty()
}

pub fn letterhead(lines: &[&str]) -> Letterhead {
    let window = &lines[..lines.len().min(HEADER_WINDOW)];
    // A line with a company suffix before the address names the issuer even below a
    // slogan or a brand ("Home of Sticky Bones", "B.I.G."); else the first prominent line.
    let address_begins = window
        .iter()
        .position(|l| (starts_address(l) || is_address(l)) && !has_word(l, COMPANY_MARKERS))
        .unwrap_or(window.len());
    let with_suffix = window[..address_begins].iter().position(|l| {
        has_word(l, COMPANY_MARKERS) && !is_registration(cut_after_suffix(l)) && !ends_header(l) && !is_noise(l)
    });
    // A name wrapped onto the suffix's line starts on the capitals above it
    // ("PASARAYA BORONG PINTAR" over "SDN BHD").
    let with_suffix = with_suffix.map(|mut at| {
        let top = at.saturating_sub(MAX_NAME_LINES - 1);
        while at > top {
            let above = window[at - 1];
            let capitals = !above.chars().any(|c| c.is_lowercase());
            if !capitals
                || is_noise(above)
                || ends_header(above)
                || starts_address(above)
                || has_word(above, COMPANY_MARKERS)
                || is_registration(above)
            {
                break;
            }
            at -= 1;
        }
        at
    });
    let first = || window.iter().position(|l| !is_noise(l) && !ends_header(l) && !starts_address(l));
    let Some(start) = with_suffix.or_else(first) else {
        return Letterhead::default();
    };
    let mut name = vec![window[start]];
    let mut next = start + 1;
    while next < window.len() && name.len() < MAX_NAME_LINES {
        let line = window[next];
        let ended = has_word(name.last().unwrap_or(&""), COMPANY_MARKERS);
        if ended
            || is_noise(line)
            || is_registration(cut_after_suffix(line))
            || starts_address(line)
            || ends_header(line)
        {
            break;
        }
        // Only a name that is still open (no suffix yet) and written in capitals continues.
        if line.chars().any(|c| c.is_lowercase()) {
            break;
        }
        name.push(line);
        next += 1;
    }
    let name = cut_after_suffix(&name.join(" ")).to_owned();
    let is_company = has_word(&name, COMPANY_MARKERS) || has_word(&name, TRADE_WORDS);
    // The address is the block after the name, up to the first line that is a phone, a
    // registration, a date or a label: registration numbers, dates and branch names before
    // it are stepped over.
    let mut address: Vec<&str> = Vec::new();
    let mut address_at = next;
    for (i, &line) in window.iter().enumerate().skip(next) {
        let opens = starts_address(line) || is_address(line);
        if address.is_empty() {
            if opens
                && !ends_header(line)
                && !is_dated(line)
                && !is_phone(line)
                && (!is_registration(line) || has_word(line, STREET_WORDS))
            {
                address_at = i;
                address.push(line);
            }
            continue;
        }
        let registration = is_registration(line) && !has_word(line, STREET_WORDS);
        if ends_header(line) || is_dated(line) || is_phone(line) || registration || address.len() == MAX_ADDRESS_LINES {
            break;
        }
        address.push(line);
    }
    let address = address.iter().any(|l| has_postcode(l) || has_word(l, ADDRESS_WORDS)).then(|| address.join(" "));
    Letterhead { name: Some(name), is_company, address: address.filter(|a| !a.is_empty()), name_at: start, address_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_of_receipt_letterheads() {
        let cases: &[(&[&str], &str, Option<&str>)] = &[
            (
                &["tan woon yann", "BOOK TA .K (TAMAN DAYA) SDN BHD", "789417-W", "NO.53 55,57 & 59, JALAN SAGU 18,", "TAMAN DAYA,", "81100 JOHOR BAHRU,", "JOHOR.", "Document No : TD01167104"],
                "BOOK TA .K (TAMAN DAYA) SDN BHD",
                Some("NO.53 55,57 & 59, JALAN SAGU 18, TAMAN DAYA, 81100 JOHOR BAHRU, JOHOR."),
            ),
            (
                &["HOME MASTER HARDWARE &", "ELECTRICAL", "NO.113G & 115G, JALAN SETIA GEMBILANG", "U13/BG BANDAR SETIA ALAM,", "40170 BANDAR SETIA ALAM,", "SELANGOR.", "Company Reg No. :SA0371155-P"],
                "HOME MASTER HARDWARE & ELECTRICAL",
                Some("NO.113G & 115G, JALAN SETIA GEMBILANG U13/BG BANDAR SETIA ALAM, 40170 BANDAR SETIA ALAM, SELANGOR."),
            ),
            (&["1950", "0598", "Gerbang Alaf Restaurants Sdn Bhd", "(65351-M)", "Level 6, Bangunan TH", "No.3, Jalan SS21/39,47400 Petaling Jaya", "TEL 03"],
             "Gerbang Alaf Restaurants Sdn Bhd", Some("Level 6, Bangunan TH No.3, Jalan SS21/39,47400 Petaling Jaya")),
            (&["CORNER BAKERY", "12 Main Street", "Date: 25/03/2026", "TOTAL 23.40"], "CORNER BAKERY", Some("12 Main Street")),
        ];
        for (lines, name, address) in cases {
            let head = letterhead(lines);
            assert_eq!(head.name.as_deref(), Some(*name), "{lines:?}");
            assert_eq!(head.address.as_deref(), *address, "{lines:?}");
        }
        assert!(letterhead(cases[0].0).is_company);
        // The issuer with a company suffix below a brand line; a wrapped name joined; the
        // registration after the suffix dropped; a phone ends the address.
        let head = letterhead(&[
            "B.I.G.",
            "Ben's Grocer",
            "PASARAYA BORONG",
            "PINTAR SDN BHD (913144-A)",
            "Lot 6, Jalan Batai,",
            "50490, Kuala Lumpur",
            "016-5498845",
            "Table 5",
        ]);
        assert_eq!(head.name.as_deref(), Some("PASARAYA BORONG PINTAR SDN BHD"));
        assert_eq!(head.address.as_deref(), Some("Lot 6, Jalan Batai, 50490, Kuala Lumpur"));
        let head = letterhead(&[
            "UNIHAKKA INTERNATIONAL SDN BHD",
            "05 Mar 2018 18:24",
            "(867388-U)",
            "12, Jalan Tampoi 7/4,Kawasan Perindustrian",
            "Tampoi,81200 Johor Bahru, Johor",
            "TAX INVOICE",
        ]);
        assert_eq!(
            head.address.as_deref(),
            Some("12, Jalan Tampoi 7/4,Kawasan Perindustrian Tampoi,81200 Johor Bahru, Johor")
        );
        assert_eq!(letterhead(&["12.50", "x"]), Letterhead::default());
    }
}
