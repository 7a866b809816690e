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
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
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
    (!part.is_empty() && part.len() <= 2 && part.chars().all(|c| c.is_ascii_digit()))
        .then(|| part.parse().ok())
        .flatten()
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

/// OCR reads digits as look-alike letters: O for 0, I or l for 1, S for 5, B for 8.
/// (Not D for 0: it opens "DEC" in `25-DEC-2018`.)
const LOOK_ALIKES: [(char, char); 6] = [('O', '0'), ('o', '0'), ('I', '1'), ('l', '1'), ('S', '5'), ('B', '8')];

/// A token with its look-alike letters read as digits where they sit among digits and
/// date separators: "2O18" and "O1/12/2018" mend, "DEC" and "SOLD" stay.
fn mend_digits(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    let numeric = |c: char| c.is_ascii_digit() || matches!(c, '/' | '-' | '.' | ':');
    let look_alike = |c: char| LOOK_ALIKES.iter().any(|(l, _)| *l == c);
    if chars.iter().filter(|c| c.is_ascii_digit()).count() < 2 {
        return token.to_owned();
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let neighbours = [i.checked_sub(1).and_then(|j| chars.get(j)), chars.get(i + 1)];
            let among_digits = neighbours.iter().flatten().any(|&&n| n.is_ascii_digit())
                && neighbours.iter().flatten().all(|&&n| numeric(n) || look_alike(n));
            match LOOK_ALIKES.iter().find(|(l, _)| *l == c) {
                Some((_, digit)) if among_digits => *digit,
                _ => c,
            }
        })
        .collect()
}

/// Words that label a document's date ("Date:", "Tarikh", "Invoice Date").
const DATE_LABELS: [&str; 3] = ["DATE", "TARIKH", "DATED"];

fn has_time(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    chars.windows(4).any(|w| w[0].is_ascii_digit() && w[1] == ':' && w[2].is_ascii_digit() && w[3].is_ascii_digit())
}

/// The document's date among `lines` (rows of a page, in order): the first date on a row
/// with a date label, else the first beside a time (a receipt's transaction stamp), else
/// the first; never a birth, expiry or due date. Returns the row's index and the date.
pub fn find_best_date_at(lines: &[&str]) -> Option<(usize, Date)> {
    let mut best: Option<(u8, usize, Date)> = None;
    for (i, line) in lines.iter().enumerate() {
        let Some(date) = find_dates(line).into_iter().next() else {
            continue;
        };
        let upper = line.to_uppercase();
        let labelled = DATE_LABELS.iter().any(|l| upper.split(|c: char| !c.is_alphanumeric()).any(|w| w == *l))
            || i.checked_sub(1).is_some_and(|p| {
                let above = lines[p].trim().trim_end_matches(':').to_uppercase();
                DATE_LABELS.contains(&above.as_str())
            });
        // A birth, expiry or due date is a date on the document, not the document's.
        let someone_elses = ["BIRTH", "EXPIR", "VALID", "DUE", "DOB"].iter().any(|w| upper.contains(w));
        if someone_elses {
            continue;
        }
        let rank = if labelled {
            2
        } else if has_time(line) {
            1
        } else {
            0
        };
        if best.is_none_or(|(r, _, _)| rank > r) {
            best = Some((rank, i, date));
        }
    }
    best.map(|(_, i, date)| (i, date))
}

/// [`find_best_date_at`] without the position.
pub fn find_best_date(lines: &[&str]) -> Option<Date> {
    find_best_date_at(lines).map(|(_, date)| date)
}

/// Every date in a line, in order: single tokens, `25 Dec 2018`, `Dec 25, 2018`.
pub fn find_dates(line: &str) -> Vec<Date> {
    // A colon ends a label glued to its date ("DATE:15/06/2017"); splitting a time at its
    // colons costs nothing, since its parts are no date.
    let mended: Vec<String> =
        line.split(|c: char| c.is_whitespace() || c == ':').filter(|t| !t.is_empty()).map(mend_digits).collect();
    let tokens: Vec<&str> = mended.iter().map(String::as_str).collect();
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

/// A money amount: digits with exactly two decimals after a dot or, as much of Europe
/// and Asia writes them, a comma; thousands grouped by commas (or dots, with comma
/// cents); after an optional currency mark ("RM9.00", "$ 1,234.50", "12,50"). Returned
/// with a dot for the decimals and its grouping as written.
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
    let (whole, cents, group) = match (t.rsplit_once('.'), t.rsplit_once(',')) {
        (Some((whole, cents)), None) => (whole, cents, ','),
        (Some((whole, cents)), Some((before, _))) if before.len() < whole.len() => (whole, cents, ','),
        (None, Some((whole, cents))) => (whole, cents, '.'),
        (_, Some((whole, cents))) => (whole, cents, '.'),
        (None, None) => return None,
    };
    if cents.len() != 2 || !cents.chars().all(|c| c.is_ascii_digit()) || whole.is_empty() {
        return None;
    }
    let groups: Vec<&str> = whole.split(group).collect();
    let well_grouped = groups.iter().all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit()))
        && (groups.len() == 1 || (groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3)));
    well_grouped.then(|| format!("{}.{cents}", groups.join(if group == ',' { "," } else { "" })))
}

/// Every money amount in a line, as written (without its currency mark).
pub fn find_amounts(line: &str) -> Vec<String> {
    line.split_whitespace().filter_map(token_amount).collect()
}

/// What a row that names a total is worth as the document's total: the amount paid
/// (rounded, grand, nett, due, with tax included) over a plain "Total", and counts,
/// subtotals, discounts, tax alone and totals before tax not at all.
fn total_rank(line: &str) -> Option<u8> {
    // OCR's misreadings of the label itself ("TOTL", "T0TAL") are read as it.
    let upper: String = line
        .to_uppercase()
        .split(' ')
        .map(|w| {
            if w.len() >= 4 && edit_distance(w.trim_matches(|c: char| !c.is_alphanumeric()), "TOTAL") == 1 {
                "TOTAL"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let squashed: String = upper.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if !["TOTAL", "AMOUNTDUE", "AMTDUE", "AMOUNTPAYABLE", "NETAMT", "NETAMOUNT", "NETTAMT", "NETTAMOUNT"]
        .iter()
        .any(|label| squashed.contains(label))
    {
        return None;
    }
    const NOT_TOTALS: [&str; 14] = [
        "SUBTOTAL",
        "TOTALQTY",
        "TOTALQUANTITY",
        "TOTALITEM",
        "TOTALDISCOUNT",
        "TOTALSAVING",
        "TOTALGST",
        "TOTALTAX",
        "EXCL",
        "BEFORE",
        "TOTALNOOF",
        "TOTALUNIT",
        "TAXTOTAL",
        "GSTTOTAL",
    ];
    if NOT_TOTALS.iter().any(|not| squashed.contains(not)) {
        return None;
    }
    // "TOTAL INCLUDES 6% GST 1.51" mostly states the tax inside the total, its amount the
    // tax; some receipts print the total so. Such a row counts only when no other does.
    if upper.split(|c: char| !c.is_alphabetic()).any(|w| w == "INCLUDES" || w == "INCLUDED") {
        return Some(0);
    }

    const PAID: [&str; 9] = ["ROUND", "GRAND", "NETT", "NET", "AMOUNTDUE", "AMTDUE", "PAYABLE", "INCL", "INC"];
    Some(if PAID.iter().any(|k| squashed.contains(k)) { 2 } else { 1 })
}

/// Whether `text` starts with the label of a bill's closing rows: totals, tax, rounding,
/// discount, what was paid and the change. A table of items ends where they begin; they
/// are label/value pairs, not items. The label is the words before the first digit, at
/// most four of them ("SUB TOTAL", "GST 6%", "CHANGE DUE", "Total Amount").
pub fn is_closing_label(text: &str) -> bool {
    const CLOSING: [&str; 20] = [
        "TOTAL", "SUBTOTAL", "TAX", "GST", "SST", "VAT", "CHANGE", "CASH", "ROUNDING", "ROUND", "BALANCE", "DUE",
        "DISCOUNT", "TIP", "TENDERED", "PAID", "SERVICE", "NETT", "NET", "PAYABLE",
    ];
    let label: String = text.chars().take_while(|c| !c.is_ascii_digit()).collect();
    let words: Vec<String> = label
        .split(|c: char| !c.is_alphabetic() && c != '-')
        .filter(|w| !w.is_empty())
        .map(|w| w.replace('-', "").to_uppercase())
        .collect();
    !words.is_empty() && words.len() <= 4 && words.iter().any(|w| CLOSING.contains(&w.as_str()))
}

/// The document's total among `rows` (the texts of a page's rows, top to bottom): the
/// amount on the row of the strongest total label, or on the row under it when its own
/// has none; among rows as strong, the lowest, since a receipt's last total is the one
/// paid. Returns the row's index and the amount.
pub fn find_total(rows: &[&str]) -> Option<(usize, String)> {
    let mut best: Option<(u8, usize, String)> = None;
    for (i, row) in rows.iter().enumerate() {
        let Some(mut rank) = total_rank(row) else { continue };
        // A row with several amounts sums a table's columns (a tax summary's "Total: 106.10
        // 6.37"): the document's total only when no other row names one.
        let mut amounts = find_amounts(row);
        amounts.dedup();
        if amounts.len() > 1 {
            rank = 0;
        }
        let under = || {
            rows.get(i + 1)
                .filter(|next| total_rank(next).is_none())
                .and_then(|next| find_amounts(next).into_iter().next())
        };
        if let Some(amount) = find_amounts(row).pop().or_else(|| spaced_amount(row)).or_else(under) {
            if best.as_ref().is_none_or(|(r, _, _)| rank >= *r) {
                best = Some((rank, i, amount));
            }
        }
    }
    let (_, at, amount) = best?;
    Some((at, rounded(rows, at, amount)))
}

/// The last amount of a row whose decimal point OCR lost or spaced ("RM 64 13",
/// "170. 00"): whole units, then a token of exactly two digits.
fn spaced_amount(row: &str) -> Option<String> {
    let tokens: Vec<&str> = row.split_whitespace().collect();
    tokens.windows(2).rev().find_map(|pair| {
        let whole = pair[0].trim_end_matches('.');
        let whole = CURRENCIES.iter().find_map(|c| whole.strip_prefix(c)).unwrap_or(whole);
        let units = !whole.is_empty() && whole.len() <= 6 && whole.chars().all(|c| c.is_ascii_digit());
        let cents = pair[1].len() == 2 && pair[1].chars().all(|c| c.is_ascii_digit());
        (units && cents).then(|| format!("{whole}.{}", pair[1]))
    })
}

/// Levenshtein distance between two short words, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A total followed by a rounding adjustment ("ROUNDING ADJ -0.01") is paid rounded: the
/// adjustment is added, unless the total's own label says it is the rounded one.
fn rounded(rows: &[&str], at: usize, amount: String) -> String {
    let is_rounding = |row: &str| row.to_uppercase().contains("ROUND");
    if is_rounding(rows[at]) {
        return amount;
    }
    let Some(row) = rows[at + 1..].iter().take(2).find(|r| is_rounding(r)) else {
        return amount;
    };
    // Negative when a minus or an opening parenthesis stands before the amount, with at
    // most a currency mark between ("-0.02", "-RM 0.02", "(0.02)").
    let signed = |row: &str, text: &str| -> Option<i64> {
        let cents: i64 = text.replace([',', '.'], "").parse().ok()?;
        // An amount mended from a spaced one is not in the row as such: read as positive.
        let before = &row[..row.rfind(text).unwrap_or(0)];
        let mark = before.trim_end().trim_end_matches(|c: char| c.is_alphabetic() || "$€£¥￥".contains(c)).trim_end();
        let negative = mark.ends_with(['-', '(']);
        Some(if negative { -cents } else { cents })
    };
    match find_amounts(row).pop() {
        Some(adj) if adj != "0.00" => match (signed(rows[at], &amount), signed(row, &adj)) {
            (Some(total), Some(adj)) if adj.abs() < 10 => format!("{}.{:02}", (total + adj) / 100, (total + adj) % 100),
            _ => amount,
        },
        _ => amount,
    }
}

/// E-mail addresses in a line.
pub fn find_emails(line: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|t| {
            let Some((user, domain)) = t.split_once('@') else {
                return false;
            };
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
        let Some((_, key)) = NUMBER_LABELS.iter().find(|(label, _)| lower.trim_end_matches(['.', '#']) == *label)
        else {
            continue;
        };
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
        // OCR's look-alikes inside digits are read as digits; month names stay words.
        assert_eq!(find_dates("DATE:15/O6/2O17"), vec![d(2017, 6, 15)]);
        assert_eq!(find_dates("25-DEC-2018 SOLD"), vec![d(2018, 12, 25)]);
        assert_eq!(find_dates("I2.03.2019"), vec![d(2019, 3, 12)]);
        // The document's date: beside a date label, else beside a time, else the first.
        let rows = ["Valid until 31/12/2019", "10:22 05/03/2019", "Date : 04/03/2019", "Due 30/03/2019"];
        assert_eq!(find_best_date_at(&rows), Some((2, d(2019, 3, 4))));
        assert_eq!(find_best_date_at(&rows[..2]), Some((1, d(2019, 3, 5))));
        assert_eq!(find_best_date_at(&["Date", "04/03/2019"]), Some((1, d(2019, 3, 4))));
        assert_eq!(d(2025, 1, 1).for_kv(), "Jan 01, 2025");
        assert_eq!(d(2025, 1, 1).iso(), "2025-01-01");
    }

    #[test]
    fn amounts_with_and_without_currency_marks() {
        assert_eq!(find_amounts("9556939040118 1 PC 9.000 9.00"), ["9.00"]);
        assert_eq!(find_amounts("Total: RM9.00 ($ 1,234.50) -2.10"), ["9.00", "1,234.50", "2.10"]);
        assert!(find_amounts("1,23.45 12.5 1.234 v1.00a").is_empty());
        // Comma cents, and dots grouping thousands before them.
        assert_eq!(find_amounts("SUMME 12,50 EUR 1.234,50"), ["12.50", "1234.50"]);
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
        assert_eq!(find_total(&receipt), Some((5, "9.00".into())));
        assert_eq!(find_total(&["TOTAL 12.50", "CASH 20.00"]), Some((0, "12.50".into())));
        assert_eq!(find_total(&["SUBTOTAL 12.50"]), None);
        let taxed = ["Total Excl. GST 10.00", "GST 6% 0.60", "Total Incl. GST 10.60", "Total GST 0.60"];
        assert_eq!(find_total(&taxed), Some((2, "10.60".into())));
        let rounding =
            ["TOTAL AMT.RM 60.31", "ROUNDING ADJ.... -0.01", "60.30", "CASH 70.30", "TOTAL INCLUDES 6% GST 3.41"];
        assert_eq!(find_total(&rounding), Some((0, "60.30".into())));
        // OCR's usual damage: a misspelt label, a lost decimal point.
        assert_eq!(find_total(&["TOTL, : RM 73.00", "CASH RM 80.00"]), Some((0, "73.00".into())));
        assert_eq!(find_total(&["GRAND TOTAL 10 00", "CASH 20.00"]), Some((0, "10.00".into())));
        assert_eq!(find_total(&["TOTE BAG 1 5.00", "HOTEL TAX 2.00"]), None);
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
        assert_eq!(
            find_emails("Mail: ann.lee@example.com, or (ops@docu-snap.io)."),
            ["ann.lee@example.com", "ops@docu-snap.io"]
        );
        assert!(find_emails("@home, a@b, x@.com").is_empty());
        assert_eq!(find_phones("TEL:012-6651783 FAX:03-33623608"), ["012-6651783", "03-33623608"]);
        assert_eq!(find_phones("Call +44 (20) 7946 0958 today"), ["+44 (20) 7946 0958"]);
        assert!(find_phones("Total 1,234.50 on 25/12/2018, GST No 12").is_empty());
        assert!(find_dates("物出门，想不退还或更换 2018年12月").is_empty());
        assert!(find_emails("邮箱：ann@例子.中国").len() <= 1);
    }
}
