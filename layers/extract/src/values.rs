//! Values found in OCR lines: dates, money amounts and totals, e-mails, phone numbers.
//! Hand-written scanners (no regex engine): OCR text is short, and the rules stay
//! readable and tolerant of OCR's habits (merged tokens, stray punctuation).

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

impl Date {
    fn new(year: i32, month: u32, day: u32) -> Option<Self> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        ((1..=days).contains(&day) && (1900..=2100).contains(&year)).then_some(Self { year, month, day })
    }

    /// A date if it exists in the calendar (and lies between 1900 and 2100).
    pub fn checked(year: i32, month: u32, day: u32) -> Option<Self> {
        Self::new(year, month, day)
    }

    /// As the protocol wants dates in kv: "Jan 01, 2025".
    pub fn for_kv(&self) -> String {
        format!("{} {:02}, {}", MONTHS[self.month as usize - 1], self.day, self.year)
    }

    /// As the protocol wants dates in fill values: "2025-01-01".
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A month by name or abbreviation ("Dec", "Dec.", "December", "Sept"): any prefix of at
/// least three letters of a month's name.
fn month_number(word: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january", "february", "march", "april", "may", "june",
        "july", "august", "september", "october", "november", "december",
    ];
    let word = word.trim_matches(|c: char| c == '.' || c == ',').to_ascii_lowercase();
    if word.len() < 3 {
        return None;
    }
    NAMES.iter().position(|name| name.starts_with(&word)).map(|i| i as u32 + 1)
}

fn year_from(part: &str) -> Option<i32> {
    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
    match digits.len() {
        // OCR often runs the time into the year ("20188:13:39PM"): the first four digits.
        4.. => digits[..4].parse().ok(),
        2 => digits.parse::<i32>().ok().map(|y| if y < 70 { 2000 + y } else { 1900 + y }),
        _ => None,
    }
}

fn number(part: &str) -> Option<u32> {
    (!part.is_empty() && part.len() <= 2 && part.chars().all(|c| c.is_ascii_digit())).then(|| part.parse().ok()).flatten()
}

/// A single-token date: `25/12/2018`, `2018-12-25`, `25.12.18`, `25-Dec-2018`.
/// Day and month are read day first (as on receipts outside the US), unless the second
/// number cannot be a month.
fn token_date(token: &str) -> Option<Date> {
    let token = token.trim_matches(|c: char| !c.is_alphanumeric());
    let parts: Vec<&str> = token.split(['/', '-', '.']).collect();
    if parts.len() < 3 {
        return None;
    }
    let (a, b, c) = (parts[0], parts[1], parts[2]);
    if a.len() == 4 {
        return Date::new(a.parse().ok()?, number(b)?, number(c.get(..2.min(c.len()))?)?);
    }
    let year = year_from(c)?;
    if let Some(month) = month_number(b) {
        return Date::new(year, month, number(a)?);
    }
    let (first, second) = (number(a)?, number(b)?);
    if first > 12 || second <= 12 {
        Date::new(year, second, first)
    } else {
        Date::new(year, first, second)
    }
}

/// Every date in a line, in order: single tokens, `25 Dec 2018`, `Dec 25, 2018`.
pub fn find_dates(line: &str) -> Vec<Date> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut dates = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some(date) = token_date(tokens[i]) {
            dates.push(date);
            i += 1;
            continue;
        }
        let word = |k: usize| tokens.get(i + k).map(|t| t.trim_matches(|c: char| c == ',' || c == '.'));
        let found = match (word(0), word(1), word(2)) {
            (Some(d), Some(m), Some(y)) if month_number(m).is_some() => {
                number(d).and_then(|d| Date::new(year_from(y)?, month_number(m)?, d))
            }
            (Some(m), Some(d), Some(y)) if month_number(m).is_some() => {
                number(d).and_then(|d| Date::new(year_from(y)?, month_number(m)?, d))
            }
            _ => None,
        };
        match found {
            Some(date) => {
                dates.push(date);
                i += 3;
            }
            None => i += 1,
        }
    }
    dates
}

/// Currency marks that may stand before an amount, attached or not.
const CURRENCIES: [&str; 10] = ["RM", "MYR", "USD", "EUR", "SGD", "$", "€", "£", "¥", "￥"];

/// A money amount: digits with exactly two decimals, thousands separated by commas,
/// after an optional currency mark ("RM9.00", "$ 1,234.50", "12.50").
fn token_amount(token: &str) -> Option<String> {
    let mut t = token.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '(' | ')' | '*'));
    for currency in CURRENCIES {
        // Checked with `get`: OCR text is not ASCII, and a byte slice may split a character.
        if t.len() > currency.len() && t.get(..currency.len()).is_some_and(|head| head.eq_ignore_ascii_case(currency)) {
            t = &t[currency.len()..];
            break;
        }
    }
    let t = t.strip_prefix('-').unwrap_or(t);
    let (whole, cents) = t.split_once('.')?;
    if cents.len() != 2 || !cents.chars().all(|c| c.is_ascii_digit()) || whole.is_empty() {
        return None;
    }
    let groups: Vec<&str> = whole.split(',').collect();
    let well_grouped = groups.iter().all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit()))
        && (groups.len() == 1 || (groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3)));
    well_grouped.then(|| t.to_owned())
}

/// Every money amount in a line, as written (without its currency mark).
pub fn find_amounts(line: &str) -> Vec<String> {
    line.split_whitespace().filter_map(token_amount).collect()
}

/// The document's total: the amount on (or right after) the last line that names a total,
/// a grand or rounded total winning over a plain one. Subtotals and counts ("TOTAL QTY",
/// "TOTAL ITEMS") are not totals.
pub fn find_total(lines: &[&str]) -> Option<String> {
    let mut best: Option<(u8, String)> = None;
    for (i, line) in lines.iter().enumerate() {
        let upper = line.to_uppercase();
        let squashed: String = upper.chars().filter(|c| c.is_ascii_alphabetic()).collect();
        if !squashed.contains("TOTAL") && !squashed.contains("AMOUNTDUE") {
            continue;
        }
        if ["SUBTOTAL", "TOTALQTY", "TOTALQUANTITY", "TOTALITEM", "TOTALDISCOUNT", "TOTALSAVING"]
            .iter()
            .any(|not| squashed.contains(not))
        {
            continue;
        }
        let rank = if ["ROUND", "GRAND", "NETT", "NET", "AMOUNTDUE"].iter().any(|k| squashed.contains(k)) { 2 } else { 1 };
        let amount = find_amounts(line).pop().or_else(|| lines.get(i + 1).and_then(|next| find_amounts(next).into_iter().next()));
        if let Some(amount) = amount {
            if best.as_ref().is_none_or(|(r, _)| rank >= *r) {
                best = Some((rank, amount));
            }
        }
    }
    best.map(|(_, amount)| amount)
}

/// E-mail addresses in a line.
pub fn find_emails(line: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|t| {
            let Some((user, domain)) = t.split_once('@') else { return false };
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        })
        .map(str::to_owned)
        .collect()
}

/// Labels that introduce a document's number ("Invoice No", "Receipt #", "Passport No.").
const NUMBER_LABELS: &[(&str, &str)] = &[
    ("invoice", "Invoice Number"),
    ("receipt", "Receipt Number"),
    ("bill", "Bill Number"),
    ("document", "Document Number"),
    ("order", "Order Number"),
    ("reference", "Reference Number"),
    ("ref", "Reference Number"),
    ("passport", "Passport Number"),
    ("id", "ID Number"),
    ("card", "Card Number"),
    ("account", "Account Number"),
];

/// A document number in a line: one of [`NUMBER_LABELS`], then "no", "number" or "#",
/// then a token with a digit in it. Returns the key it goes under and the number.
pub fn find_document_number(line: &str) -> Option<(&'static str, String)> {
    let words: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == ':').filter(|w| !w.is_empty()).collect();
    for (i, word) in words.iter().enumerate() {
        let lower = word.to_lowercase();
        let Some((_, key)) = NUMBER_LABELS.iter().find(|(label, _)| lower.trim_end_matches(['.', '#']) == *label) else { continue };
        let mut j = i + 1;
        if !lower.ends_with('#') {
            let marker = words.get(j).map(|w| w.to_lowercase()).unwrap_or_default();
            if !["no", "no.", "number", "#", "nr", "nr."].contains(&marker.as_str()) {
                continue;
            }
            j += 1;
        }
        let value = words.get(j)?.trim_matches(|c: char| !c.is_alphanumeric());
        if value.chars().any(|c| c.is_ascii_digit()) && value.len() >= 3 {
            return Some((key, value.to_owned()));
        }
    }
    None
}

/// Phone numbers in a line: runs of digits, spaces, `+`, `-` and parentheses holding 7
/// to 15 digits (the E.164 maximum), that are not dates or amounts.
pub fn find_phones(line: &str) -> Vec<String> {
    let mut phones = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, phones: &mut Vec<String>| {
        let candidate = current.trim().trim_end_matches(['-', '(']).trim().to_owned();
        let digits = candidate.chars().filter(char::is_ascii_digit).count();
        if (7..=15).contains(&digits) && token_date(&candidate).is_none() {
            phones.push(candidate);
        }
        current.clear();
    };
    for c in line.chars() {
        let allowed = c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | ' ');
        let starts = c.is_ascii_digit() || c == '+' || c == '(';
        if allowed && (!current.is_empty() || starts) {
            current.push(c);
        } else {
            // A '.' or ',' inside digits makes an amount or a decimal, not a phone.
            if matches!(c, '.' | ',') && current.ends_with(|d: char| d.is_ascii_digit()) {
                current.clear();
                continue;
            }
            flush(&mut current, &mut phones);
        }
    }
    flush(&mut current, &mut phones);
    phones
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(year: i32, month: u32, day: u32) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn dates_in_the_forms_receipts_and_forms_print_them() {
        let cases: &[(&str, Vec<Date>)] = &[
            ("DATE: 25/12/2018 8:13:39 PM", vec![d(2018, 12, 25)]),
            ("25/12/20188:13:39PM", vec![d(2018, 12, 25)]),
            ("Date 2019-03-07", vec![d(2019, 3, 7)]),
            ("07.03.19", vec![d(2019, 3, 7)]),
            ("12/25/2018", vec![d(2018, 12, 25)]),
            ("03/04/2018", vec![d(2018, 4, 3)]),
            ("Issued 25 Dec 2018, due Jan 5, 2019", vec![d(2018, 12, 25), d(2019, 1, 5)]),
            ("25-DEC-2018", vec![d(2018, 12, 25)]),
            ("September 9 2020", vec![d(2020, 9, 9)]),
            ("Sept. 9, 2020", vec![d(2020, 9, 9)]),
            ("31/02/2018 is no date; nor is 1.5 kg or 100 May Street", vec![]),
            ("Marketing 12 2020", vec![]),
        ];
        for (line, want) in cases {
            assert_eq!(&find_dates(line), want, "{line}");
        }
        assert_eq!(d(2025, 1, 1).for_kv(), "Jan 01, 2025");
        assert_eq!(d(2025, 1, 1).iso(), "2025-01-01");
    }

    #[test]
    fn amounts_with_and_without_currency_marks() {
        assert_eq!(find_amounts("9556939040118 1 PC 9.000 9.00"), ["9.00"]);
        assert_eq!(find_amounts("Total: RM9.00 ($ 1,234.50) -2.10"), ["9.00", "1,234.50", "2.10"]);
        assert!(find_amounts("1,23.45 12.5 1.234 v1.00a").is_empty());
        // Multi-byte text around and inside tokens: no panic, the amounts still found.
        assert_eq!(find_amounts("总计 ￥12.50 金额：3.00 ¥ 物出门，想不退还 €9.99"), ["12.50", "9.99"]);
    }

    #[test]
    fn the_total_is_the_grand_one_not_a_subtotal_or_a_count() {
        let receipt = [
            "SUB-TOTAL (GST) 15.00",
            "TOTAL QUANTITY 1",
            "Total:",
            "9.00",
            "Rounding Adjustment: 0.00",
            "Rounded Total (RM): 9.00",
            "CASH 10.00",
        ];
        assert_eq!(find_total(&receipt), Some("9.00".into()));
        assert_eq!(find_total(&["TOTAL 12.50", "CASH 20.00"]), Some("12.50".into()));
        assert_eq!(find_total(&["SUBTOTAL 12.50"]), None);
    }

    #[test]
    fn document_numbers_after_their_labels() {
        assert_eq!(find_document_number("Document No : TD01167104"), Some(("Document Number", "TD01167104".into())));
        assert_eq!(find_document_number("INVOICE # INV-2031"), Some(("Invoice Number", "INV-2031".into())));
        assert_eq!(find_document_number("Receipt# 0042"), Some(("Receipt Number", "0042".into())));
        assert_eq!(find_document_number("Passport No. X1234567"), Some(("Passport Number", "X1234567".into())));
        assert_eq!(find_document_number("Bill to: ACME"), None);
        assert_eq!(find_document_number("ID number unknown"), None);
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(find_emails("Mail: ann.lee@example.com, or (ops@docu-snap.io)."), ["ann.lee@example.com", "ops@docu-snap.io"]);
        assert!(find_emails("@home, a@b, x@.com").is_empty());
        assert_eq!(find_phones("TEL:012-6651783 FAX:03-33623608"), ["012-6651783", "03-33623608"]);
        assert_eq!(find_phones("Call +44 (20) 7946 0958 today"), ["+44 (20) 7946 0958"]);
        assert!(find_phones("Total 1,234.50 on 25/12/2018, GST No 12").is_empty());
        assert!(find_dates("物出门，想不退还或更换 2018年12月").is_empty());
        assert!(find_emails("邮箱：ann@例子.中国").len() <= 1);
    }
}
