//! The offline rules extractor: the protocol's result shapes from OCR lines alone,
//! deterministic, with no model. It is what runs when no LLM is configured, and the
//! fallback when the LLM fails.

use std::collections::HashSet;

use docusnap_core::protocol::{Library, LibraryItem};
use docusnap_core::results::{is_blank, DocResult, LibraryKind, ResourceRef, FORM_TYPE_KEY, MAX_RELATED, MAX_TAGS};
use serde_json::{Map, Value};

use crate::header::letterhead;
pub use crate::layout::Line;
use crate::layout::{row_texts, rows};
use crate::mrz::find_mrz;
use crate::values::{find_best_date, find_document_number, find_emails, find_phones, find_total};

/// Labels are short: a "label: value" line whose label runs past this many words is a
/// sentence with a colon in it. Forms' longest run to about eight ("Number of pages
/// including cover sheet:").
const MAX_LABEL_WORDS: usize = 8;
/// The title is sought among the first lines of the first page.
const TITLE_WINDOW: usize = 8;
/// A value printed under its label starts within this many label heights below it: a
/// blank line's worth of space, not the next block of the page.
const MAX_VALUE_GAP_LINES: f32 = 1.5;
/// A form's answer wraps onto the lines under it only when its line is full: this many
/// characters, or reaching the page's right edge. A short value ends where it ends.
const FULL_LINE_CHARS: usize = 30;
/// Wrapped lines of one answer follow each other within this many line heights; a wider
/// gap is the next field.
const MAX_WRAP_GAP_LINES: f32 = 0.8;
/// Most lines one answer takes: a paragraph, not the rest of the page.
const MAX_ANSWER_LINES: usize = 12;
/// What a checkbox holds when ticked, as OCR reads it.
const MARKS: [&str; 9] = ["X", "x", "✓", "✔", "☑", "☒", "■", "✗", "V"];

/// A document's title, tags, description, key/values and related library items.
pub fn extract_doc(lines: &[Line], library: &Library) -> DocResult {
    doc_from(&read(lines), library, false)
}

/// The lines with text, trimmed: what every rule reads.
fn read(lines: &[Line]) -> Vec<Line> {
    lines
        .iter()
        .filter(|l| !l.text.trim().is_empty())
        .map(|l| Line { text: l.text.trim().to_owned(), ..l.clone() })
        .collect()
}

/// Key/values with the position (a line index) each was read at: the result lists them
/// in document order, as a person reads the page, whatever order the rules found them in.
#[derive(Default)]
struct Kv(Vec<(usize, String, Value)>);

impl Kv {
    fn contains_key(&self, key: &str) -> bool {
        self.0.iter().any(|(_, k, _)| k == key)
    }

    /// Whether a key has `word` in it, case ignored.
    fn has(&self, word: &str) -> bool {
        self.0.iter().any(|(_, k, _)| k.to_lowercase().contains(word))
    }

    fn holds(&self, value: &str) -> bool {
        self.0.iter().any(|(_, _, v)| v.as_str() == Some(value))
    }

    /// Adds a key unless it is already there.
    fn add(&mut self, at: usize, key: &str, value: String) {
        self.add_value(at, key, Value::String(value));
    }

    fn add_value(&mut self, at: usize, key: &str, value: Value) {
        if !self.contains_key(key) {
            self.0.push((at, key.to_owned(), value));
        }
    }

    /// Sets a key, read at `at`, over any earlier reading.
    fn set(&mut self, at: usize, key: &str, value: String) {
        self.0.retain(|(_, k, _)| k != key);
        self.0.push((at, key.to_owned(), Value::String(value)));
    }

    fn into_map(mut self) -> Map<String, Value> {
        self.0.sort_by_key(|(at, _, _)| *at);
        self.0.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}

fn doc_from(lines: &[Line], library: &Library, is_form: bool) -> DocResult {
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let mut kv = Kv::default();
    let mut used = vec![false; lines.len()];
    label_values(lines, &mut used, &mut kv, is_form);
    // Rows once: tables, a form's side-by-side labels and the date and total read them.
    let rows = rows(lines);
    for column in crate::table::columns(lines, &rows, &mut used) {
        let text = |cell: &Vec<usize>| cell.iter().map(|&i| lines[i].text.trim()).collect::<Vec<_>>().join(" ");
        let mut cells: Vec<Value> = column.cells.iter().map(|cell| Value::String(text(cell))).collect();
        let value = match cells.len() {
            0 => continue,
            1 => cells.remove(0),
            _ => Value::Array(cells),
        };
        kv.add_value(column.heading_at, &column.heading, value);
    }
    if is_form {
        mark_pairs(lines, &mut used, &mut kv);
        row_pairs(lines, &rows, &mut used, &mut kv);
    }
    let tags = tags(&texts);
    let head = letterhead(&texts);
    // A form's facts are its labels' values. Values found unlabelled (a fax header's date
    // and number, a sender's letterhead) are a document's facts, not the form's fields.
    if !is_form {
        add_found_values(&rows, &texts, &mut kv);
        let issued = tags.iter().any(|t| t == "receipt" || t == "invoice");
        if let Some(name) = head.name.as_ref().filter(|_| head.is_company || issued) {
            kv.add(head.name_at, "Company", name.clone());
        }
        if let Some(address) = head.address.clone() {
            kv.add(head.address_at, "Address", address);
        }
    }
    let kv = kv.into_map();
    // A company's letterhead names the document better than its tallest line.
    let title = match head.name {
        Some(name) if head.is_company => name,
        _ => title(lines).unwrap_or_else(|| "Untitled document".to_owned()),
    };
    let description = describe(&title, &tags, &kv);
    let related = related(&title, &kv, library);
    DocResult { title, tags, description, kv, related, fields: None }
}

/// A form: as a document, with the blanks to fill as `fields` and "Form Type" first in kv.
pub fn extract_form(lines: &[Line], library: &Library) -> DocResult {
    let lines = read(lines);
    let mut result = doc_from(&lines, library, true);
    let fields = blanks(&lines);
    let mut kv = Map::new();
    kv.insert(FORM_TYPE_KEY.to_owned(), Value::String(result.title.clone()));
    let found = std::mem::take(&mut result.kv);
    // A value that reads as one of the page's own labels is that label, printed where a
    // value would be (an option repeated for the next question, a table's heading beside
    // the same table's), not what was filled in.
    let labels: HashSet<String> =
        found.keys().chain(fields.iter()).map(|k| fold_label(k)).filter(|k| !k.is_empty()).collect();
    let is_label = |value: &Value| value.as_str().is_some_and(|v| labels.contains(&fold_label(v)));
    kv.extend(found.into_iter().filter(|(key, value)| {
        !fields.contains(key)
            && key != FORM_TYPE_KEY
            && !is_label(value)
            && !is_notice(key, value)
            && !value.as_str().is_some_and(is_instruction)
    }));
    result.kv = kv;
    if !result.tags.iter().any(|t| t == "form") && result.tags.len() < MAX_TAGS {
        result.tags.insert(0, "form".to_owned());
    }
    result.fields = Some(fields);
    result
}

/// Stems of the words that name a printed notice ("CONFIDENTIALITY NOTICE", "Disclaimer"),
/// short enough to survive OCR's misreads of fine print ("CONLDENTIALITY NOTE", "COND
/// ALTY NOTIC").
const NOTICE_STEMS: [&str; 3] = ["dential", "notic", "disclaim"];
/// A notice is printed sentences; an answer filled in beside a label is a few words.
const MIN_NOTICE_WORDS: usize = 20;

/// A notice and its printed paragraph (a fax's confidentiality note): part of the form
/// itself, read as a label and its value only because it starts with a colon.
fn is_notice(key: &str, value: &Value) -> bool {
    let key = fold_label(key);
    NOTICE_STEMS.iter().any(|stem| key.contains(stem))
        && value.as_str().is_some_and(|v| v.split_whitespace().count() >= MIN_NOTICE_WORDS)
}

/// A label as the page's labels are compared: letters only, lower case, without the
/// number or page a repeated label is told apart by ("Company 2", "Date (Page 2)").
fn fold_label(text: &str) -> String {
    let text = text.split(" (Page ").next().unwrap_or(text);
    text.chars().filter(|c| c.is_alphabetic()).flat_map(char::to_lowercase).collect()
}

/// The page each label was first taken on. A label printed again on a later page is
/// another field of the form: it is kept apart by its page ("Date (Page 2)") rather than
/// merged with the first.
#[derive(Default)]
struct LabelPages(Vec<(String, usize)>);

impl LabelPages {
    fn first(&self, label: &str) -> Option<usize> {
        self.0.iter().find(|(l, _)| l == label).map(|(_, page)| *page)
    }

    /// The key of `label` seen on `page`.
    fn key(&self, label: &str, page: usize) -> String {
        match self.first(label) {
            Some(first) if first != page => format!("{label} (Page {})", page + 1),
            _ => label.to_owned(),
        }
    }

    /// Records that `label` was taken on `page`; a later page changes nothing.
    fn take(&mut self, label: &str, page: usize) {
        if self.first(label).is_none() {
            self.0.push((label.to_owned(), page));
        }
    }
}

/// A label as printed, without its colon and trailing dots or dashes, if it reads as one:
/// short, with letters, and not itself a date.
fn as_label(text: &str) -> Option<&str> {
    let label = text.trim().trim_end_matches([':', '.', '-', '_']).trim();
    let words = label.split_whitespace().count();
    (!label.is_empty()
        && words <= MAX_LABEL_WORDS
        && label.chars().any(char::is_alphabetic)
        && find_best_date(&[label]).is_none())
    .then_some(label)
}

/// "Label: value" on one line; "Label:" with its value to its right on the same row, or
/// under it in its column (as forms print them, and as FUNSD annotates them).
///
/// On a form three things differ from a receipt: a date stays as printed (its order,
/// 12/10/98, is the form's country's, which the page alone cannot tell); an answer that
/// fills its line carries on to the lines wrapped under it ([`wrapped`]); and a label
/// printed again on the page (a list of recipients, each "Company:") is another field,
/// numbered ("Company 2"), not dropped.
fn label_values(lines: &[Line], used: &mut [bool], kv: &mut Kv, is_form: bool) {
    let mut pages = LabelPages::default();
    for (i, line) in lines.iter().enumerate() {
        if used[i] {
            continue;
        }
        let pairs = inline_pairs(&line.text);
        let last = pairs.len().saturating_sub(1);
        for (n, (label, value)) in pairs.into_iter().enumerate() {
            let Some(label) = as_label(&label) else { continue };
            // A speck OCR read after the colon ("TO:.") is no value: the label's value
            // stands beside or under it, as a bare label's does.
            let is_speck =
                value.chars().count() <= 2 && value.chars().all(|c| matches!(c, '.' | ',' | ';' | '\'' | '`'));
            let mut value = if is_speck { String::new() } else { value };
            let mut value_at = i;
            if value.is_empty() && n == last {
                // Bare labels side by side, nothing between them, are a table's headings:
                // its reader takes them.
                if is_form && heading_neighbour(lines, i, used) {
                    continue;
                }
                let Some(j) = value_line(lines, i, used) else { continue };
                value = lines[j].text.clone();
                used[j] = true;
                value_at = j;
            }
            if is_blank(&value) {
                continue;
            }
            // Where the label ends: the value beside it, or its share of its own line.
            let label_right = if value_at != i && line.same_row(&lines[value_at]) {
                lines[value_at].left
            } else {
                let share = (label.chars().count() + 1) as f32 / line.text.chars().count().max(1) as f32;
                line.left + (line.right - line.left) * share.min(1.0)
            };
            // Only a form's bare label ("COUNSEL:", its value on a line of its own) is read
            // with a line above it: an inline "Label: value" is not wrapped.
            let wrapped_label =
                if is_form && n == 0 && value_at != i { label_above(lines, i, used, label_right) } else { None };
            let label = match wrapped_label {
                Some(j) => {
                    used[j] = true;
                    format!("{} {label}", lines[j].text.trim())
                }
                _ => label.to_owned(),
            };
            let label = label.as_str();
            let mut key = pages.key(label, line.page);
            if kv.contains_key(&key) {
                if !is_form {
                    continue;
                }
                key = (2..).map(|n| format!("{key} {n}")).find(|k| !kv.contains_key(k)).unwrap_or(key);
            }
            if is_form && n == last {
                for j in wrapped(lines, value_at, used) {
                    value.push(' ');
                    value.push_str(lines[j].text.trim());
                    used[j] = true;
                }
            }
            // A date's label takes only a date: "Date:" over a blank is followed by whatever
            // comes next on the page, often not its value.
            let is_date_label = label.to_lowercase().contains("date");
            let value = match find_best_date(&[value.as_str()]) {
                Some(date) if is_date_label && !is_form => date.for_kv(),
                Some(_) if is_date_label => value,
                None if is_date_label && !value.chars().any(|c| c.is_ascii_digit()) => continue,
                _ => value,
            };
            pages.take(label, line.page);
            used[i] = true;
            kv.add(i, &key, value);
        }
    }
}

/// The "Label: value" pairs of one line: "Area: 5 Region: 17" is two. Between two colons,
/// the last word starts the next label when it is a capitalised word and something comes
/// before it; a colon between digits (a time) splits nothing.
fn inline_pairs(text: &str) -> Vec<(String, String)> {
    let mut parts: Vec<&str> = Vec::new();
    let mut start = 0;
    for (at, c) in text.char_indices() {
        let digit = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_digit());
        if c == ':' && !(text[..at].ends_with(|c: char| c.is_ascii_digit()) && digit(&text[at + 1..])) {
            parts.push(&text[start..at]);
            start = at + 1;
        }
    }
    if parts.is_empty() {
        return Vec::new();
    }
    parts.push(&text[start..]);
    let mut pairs = Vec::new();
    let mut label = parts[0].trim().to_owned();
    for (k, part) in parts[1..].iter().enumerate() {
        let is_last = k + 2 == parts.len();
        let words: Vec<&str> = part.split_whitespace().collect();
        let next_label = words.last().filter(|w| {
            !is_last
                && words.len() >= 2
                && w.starts_with(|c: char| c.is_uppercase())
                && w.chars().all(char::is_alphabetic)
        });
        match next_label {
            Some(next) => {
                pairs.push((label, words[..words.len() - 1].join(" ")));
                label = (*next).to_owned();
            }
            None if is_last => pairs.push((std::mem::take(&mut label), part.trim().to_owned())),
            // Not a label after all: the colon belongs to the value.
            None => {
                let rest = parts[k + 1..].join(":");
                pairs.push((label, rest.trim().to_owned()));
                return pairs;
            }
        }
    }
    pairs
}

/// The lines an answer wraps onto under `lines[from]`: each under the one before, close
/// (within [`MAX_WRAP_GAP_LINES`]), starting near its left edge, while the line before is
/// full; none that reads as a label, a blank or a box.
fn wrapped(lines: &[Line], from: usize, used: &[bool]) -> Vec<usize> {
    let page = lines[from].page;
    let page_right = lines.iter().filter(|l| l.page == page).map(|l| l.right).fold(f32::MIN, f32::max);
    let mut taken: Vec<usize> = Vec::new();
    let mut last = from;
    while taken.len() < MAX_ANSWER_LINES {
        let prev = &lines[last];
        let h = prev.height().max(1.0);
        let full = prev.text.chars().count() >= FULL_LINE_CHARS || prev.right >= page_right - 3.0 * h;
        if !full {
            break;
        }
        let next = (0..lines.len())
            .filter(|&j| j != from && !used[j] && !taken.contains(&j))
            .filter(|&j| {
                let l = &lines[j];
                l.page == page
                    && l.top > prev.top + 0.5 * h
                    && l.top - prev.bottom <= MAX_WRAP_GAP_LINES * h
                    && l.left >= prev.left - 1.5 * h
                    && l.left <= prev.left + 0.5 * (prev.right - prev.left)
            })
            .min_by(|&a, &b| lines[a].top.total_cmp(&lines[b].top));
        let Some(j) = next else { break };
        let text = lines[j].text.trim();
        // A line with its own label to its left is that label's value, not this one's.
        let labelled = (0..lines.len()).any(|k| {
            k != j
                && lines[k].same_row(&lines[j])
                && lines[k].right <= lines[j].left
                && lines[k].text.trim_end().ends_with(':')
        });
        if !can_be_value(text) || is_blank(text) || text.ends_with(':') || labelled {
            break;
        }
        taken.push(j);
        last = j;
    }
    taken
}

/// A form's ticked boxes: a mark ("X", "✓") on a row beside a short label ("NOV", "YES"),
/// as the label's value.
fn mark_pairs(lines: &[Line], used: &mut [bool], kv: &mut Kv) {
    for m in 0..lines.len() {
        if used[m] || !MARKS.contains(&lines[m].text.trim()) {
            continue;
        }
        let mark = &lines[m];
        let gap = |j: usize| {
            let l = &lines[j];
            if l.left >= mark.right {
                l.left - mark.right
            } else {
                mark.left - l.right
            }
        };
        let label = (0..lines.len())
            .filter(|&j| j != m && !used[j] && mark.same_row(&lines[j]) && gap(j) >= 0.0)
            .filter(|&j| gap(j) <= 3.0 * mark.height().max(lines[j].height()))
            .filter(|&j| !MARKS.contains(&lines[j].text.trim()) && is_option(&lines[j]))
            .min_by(|&a, &b| gap(a).total_cmp(&gap(b)));
        if let Some(j) = label {
            let key = option_text(&lines[j].text).to_owned();
            if !kv.contains_key(&key) {
                used[j] = true;
                used[m] = true;
                kv.add(j, &key, "X".to_owned());
            }
        }
    }
}

/// A box's label with the box's brackets OCR read beside it ("JUNE 30[") and its colon
/// taken off.
fn option_text(text: &str) -> &str {
    text.trim().trim_matches(['[', ']', '(', ')']).trim().trim_end_matches(':').trim()
}

/// Whether a line can label a box to tick: a short heading ("NOV", "YES"), or a date or
/// day to choose ("JUNE 30", "Sep 22"): a few words, mostly letters, a day's or a year's
/// digits at most.
fn is_option(line: &Line) -> bool {
    let text = option_text(&line.text);
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let digits = text.chars().filter(|c| c.is_ascii_digit()).count();
    crate::table::is_heading(line)
        || (text.split_whitespace().count() <= 3 && letters >= 3 && digits <= 4 && !text.contains(':'))
}

/// A form's rows of a label and its value side by side with no colon ("MEDIA TYPE   DIRECT
/// MAIL"): two lines on a row, the left a short heading, a clear gap between them. Only on
/// forms: on a receipt such rows are items and their prices.
fn row_pairs(lines: &[Line], rows: &[Vec<usize>], used: &mut [bool], kv: &mut Kv) {
    for row in rows {
        let free: Vec<usize> = row.iter().copied().filter(|&i| !used[i]).collect();
        let [label, value] = free[..] else { continue };
        let (left, right) = (&lines[label], &lines[value]);
        let gap = right.left - left.right;
        // The page's number at its foot beside a file name ("STYLE.XLS   Page 1 of 3") is
        // page furniture, not a pair.
        if !crate::table::is_heading(left)
            || right.text.ends_with(':')
            || gap < left.height()
            || is_blank(&right.text)
            || crate::documents::is_pagination(&right.text)
        {
            continue;
        }
        let key = left.text.trim().to_owned();
        if !kv.contains_key(&key) {
            used[label] = true;
            used[value] = true;
            kv.add(label, &key, right.text.trim().to_owned());
        }
    }
}

/// Values found anywhere, under the keys the prompt asks the LLM for. Dates and totals
/// are read by row: a label and its value are often two lines side by side.
fn add_found_values(rows: &[Vec<usize>], texts: &[&str], kv: &mut Kv) {
    let row_texts = row_texts(rows, texts);
    let row_refs: Vec<&str> = row_texts.iter().map(String::as_str).collect();
    let row_at = |r: usize| rows[r].iter().copied().min().unwrap_or(0);
    if let Some((r, date)) = crate::values::find_best_date_at(&row_refs) {
        // The date beside a date label or a time is the document's, under "Date" as every
        // receipt and letter has it; a printed label that holds the same date ("Bill Date")
        // gives up its entry rather than repeat it.
        if !kv.contains_key("Date") {
            let value = date.for_kv();
            // "Bill Date", "Invoice Date": a label ending in "date" names the document's;
            // "Date of Birth" does not, and stays.
            let generic = |key: &str| key.to_lowercase().trim_end_matches([':', '.', ' ']).ends_with("date");
            kv.0.retain(|(_, key, v)| !(generic(key) && v.as_str() == Some(value.as_str())));
            kv.add(row_at(r), "Date", value);
        }
    }
    if let Some((r, total)) = find_total(&row_refs) {
        kv.set(row_at(r), "Total", total);
    }
    if !kv.has("mail") {
        if let Some((i, email)) =
            texts.iter().enumerate().find_map(|(i, l)| find_emails(l).into_iter().next().map(|e| (i, e)))
        {
            kv.add(i, "Email", email);
        }
    }
    for (i, (key, number)) in texts.iter().enumerate().filter_map(|(i, l)| find_document_number(l).map(|n| (i, n))) {
        // A "Label: value" pair for the same number already holds it under the printed label.
        if !kv.holds(&number) {
            kv.add(i, key, number);
        }
    }
    if let Some(mrz) = find_mrz(texts) {
        let at =
            texts.iter().position(|t| mrz.lines.first().is_some_and(|m| t.contains(m.as_str()))).unwrap_or(texts.len());
        kv.set(at, "Machine Readable Zone (MRZ)", mrz.lines.join("\n"));
        // Under the original service's key names; a value the page's own labels already
        // gave ("Date of Birth: 12 AUG 1974") is not repeated.
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !kv.holds(v)) {
                kv.add(at, key, value);
            }
        };
        put("Document Number", mrz.document_number.clone());
        put("Last Name (English/Latin)", mrz.surname);
        put("First Name (English/Latin)", mrz.given_names);
        put("Nationality Code (ISO)", mrz.nationality);
        put("Date of Birth (Full)", mrz.birth_date.map(|d| d.for_kv()));
        put("Expiration Date (Full)", mrz.expiry_date.map(|d| d.for_kv()));
        put("Gender (Legal)", mrz.sex.map(String::from));
    }
    if !kv.has("phone") && !kv.has("tel") {
        if let Some((i, phone)) =
            texts.iter().enumerate().find_map(|(i, l)| find_phones(l).into_iter().next().map(|p| (i, p)))
        {
            kv.add(i, "Phone Number", phone);
        }
    }
}

/// The most heading-like of the first lines: tall, early, words rather than numbers, and
/// not a label/value.
fn title(lines: &[Line]) -> Option<String> {
    let weight = |(i, line): &(usize, &Line)| {
        let digits = line.text.chars().filter(|c| c.is_ascii_digit()).count();
        let numeric = if digits > 0 { 0.7 } else { 1.0 };
        line.height() * (1.0 - 0.05 * *i as f32) * numeric
    };
    lines
        .iter()
        .take(TITLE_WINDOW)
        .enumerate()
        .filter(|(_, l)| l.text.chars().filter(|c| c.is_alphabetic()).count() >= 3 && !l.text.contains(':'))
        .max_by(|a, b| weight(a).total_cmp(&weight(b)))
        .map(|(_, l)| l.text.trim().to_owned())
}

/// 1 to 4 tags from what the text is about.
fn tags(lines: &[&str]) -> Vec<String> {
    let text = lines.join(" ").to_lowercase();
    const KINDS: &[(&str, &[&str])] = &[
        ("receipt", &["receipt", "cash", "change", "total", "gst", "tax invoice"]),
        ("invoice", &["invoice", "bill to", "amount due"]),
        ("form", &["application", "form", "signature", "please fill"]),
        ("identity", &["passport", "identity card", "nationality", "date of birth"]),
        ("letter", &["dear ", "sincerely", "regards"]),
        ("contract", &["agreement", "party", "terms and conditions"]),
    ];
    let mut tags: Vec<String> = KINDS
        .iter()
        .filter(|(_, words)| words.iter().any(|w| text.contains(w)))
        .map(|(tag, _)| (*tag).to_owned())
        .take(MAX_TAGS)
        .collect();
    if tags.is_empty() {
        tags.push("document".to_owned());
    }
    tags
}

fn describe(title: &str, tags: &[String], kv: &Map<String, Value>) -> String {
    let mut description = format!("{} ({})", title, tags.join(", "));
    for key in ["Date", "Total"] {
        if let Some(value) = kv.get(key).and_then(Value::as_str) {
            description.push_str(&format!("; {} {}", key.to_lowercase(), value));
        }
    }
    description.push('.');
    description
}

/// Library items that share the title's words or a key/value with this document.
fn related(title: &str, kv: &Map<String, Value>, library: &Library) -> Vec<ResourceRef> {
    let words = |s: &str| -> Vec<String> {
        s.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).map(str::to_owned).collect()
    };
    let ours = words(title);
    let score = |item: &LibraryItem| {
        let theirs = words(&item.title);
        let shared_words = ours.iter().filter(|w| theirs.contains(w)).count();
        let shared_values = kv.iter().filter(|(k, v)| item.kv.get(*k) == Some(*v)).count();
        shared_words + 2 * shared_values
    };
    let mut scored: Vec<(usize, ResourceRef)> = library
        .doc
        .iter()
        .map(|i| (score(i), ResourceRef { kind: LibraryKind::Doc, resource_id: i.id.clone() }))
        .chain(
            library.form.iter().map(|i| (score(i), ResourceRef { kind: LibraryKind::Form, resource_id: i.id.clone() })),
        )
        .filter(|(s, _)| *s > 0)
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    scored.into_iter().take(MAX_RELATED).map(|(_, r)| r).collect()
}

/// Whether the line after a bare "Label:" can be its value: not another label, and not
/// itself a blank or a box to tick.
fn can_be_value(line: &str) -> bool {
    !line.contains(':') && !line.contains("__") && !line.starts_with(['□', '☐']) && !line.starts_with('[')
}

/// The line that holds the value of the bare label `lines[i]` ("Label:"): the nearest
/// line to its right on its row, else the first under it in its column; none when that
/// line is another label, a blank or a box.
fn value_line(lines: &[Line], i: usize, used: &[bool]) -> Option<usize> {
    let label = &lines[i];
    let free = |j: usize| j != i && !used.get(j).copied().unwrap_or(false);
    let beside = (0..lines.len())
        .filter(|&j| free(j) && lines[j].left >= label.right - label.height() && label.same_row(&lines[j]))
        .min_by(|&a, &b| lines[a].left.total_cmp(&lines[b].left));
    let under = || {
        (i + 1..lines.len())
            .filter(|&j| free(j) && label.above(&lines[j], MAX_VALUE_GAP_LINES))
            .min_by(|&a, &b| lines[a].top.total_cmp(&lines[b].top))
    };
    // Beside it another label: a row of headings ("Recipient(s):  Company:"), whose
    // values stand under them.
    let beside_label = beside.is_some_and(|j| lines[j].text.trim_end().ends_with(':'));
    let found = if beside_label { under() } else { beside.or_else(under) };
    found.filter(|&j| {
        can_be_value(&lines[j].text)
            && !lines[j].is_margin_print()
            && !crate::documents::is_pagination(&lines[j].text)
            && !is_instruction(&lines[j].text)
            && !labels_a_value(lines, j, used)
    })
}

/// Whether `lines[j]` is itself a label: a heading's words with a value of its own right
/// beside it (a number, a ticked box). Under a section's heading ("SHIP TO:") stands its
/// first field ("CUSTOMER SHIPPING NUMBER  198-1160006"), not the heading's value.
fn labels_a_value(lines: &[Line], j: usize, used: &[bool]) -> bool {
    let line = &lines[j];
    crate::table::is_heading(line)
        && (0..lines.len()).any(|k| {
            let other = &lines[k];
            k != j
                && !used.get(k).copied().unwrap_or(false)
                && line.same_row(other)
                && other.left >= line.right
                && other.left - line.right <= 6.0 * line.height().max(1.0)
                && (other.text.chars().any(|c| c.is_ascii_digit()) || MARKS.contains(&other.text.trim()))
        })
}

/// The first half of a label wrapped over two lines in a narrow column ("PLAINTIFF'S" over
/// "COUNSEL:"): the line just above, starting where it starts and ending before the
/// value's column (`label_right`; a title over the form reaches across), short, without
/// digits or a colon, and alone on its row. Only for a label whose line starts with it.
fn label_above(lines: &[Line], i: usize, used: &[bool], label_right: f32) -> Option<usize> {
    let line = &lines[i];
    let h = line.height().max(1.0);
    let j = (0..lines.len())
        .filter(|&j| j != i && !used[j] && lines[j].page == line.page && lines[j].bottom <= line.top + 0.3 * h)
        .filter(|&j| line.top - lines[j].bottom <= 0.8 * h && (lines[j].left - line.left).abs() <= h)
        .max_by(|&a, &b| lines[a].bottom.total_cmp(&lines[b].bottom))?;
    let text = lines[j].text.trim();
    let alone = !(0..lines.len()).any(|k| k != j && lines[k].same_row(&lines[j]));
    let short = text.split_whitespace().count() <= 3 && lines[j].right <= label_right + h;
    (alone && short && text.chars().any(char::is_alphabetic) && !text.chars().any(|c| c.is_ascii_digit() || c == ':'))
        .then_some(j)
}

/// Whether the nearest line on either side of `lines[i]` on its row is a bare label.
fn heading_neighbour(lines: &[Line], i: usize, used: &[bool]) -> bool {
    let line = &lines[i];
    let on_row: Vec<usize> = (0..lines.len()).filter(|&j| j != i && !used[j] && line.same_row(&lines[j])).collect();
    let right = on_row
        .iter()
        .copied()
        .filter(|&j| lines[j].left >= line.right)
        .min_by(|&a, &b| lines[a].left.total_cmp(&lines[b].left));
    let left = on_row
        .iter()
        .copied()
        .filter(|&j| lines[j].right <= line.left)
        .max_by(|&a, &b| lines[a].right.total_cmp(&lines[b].right));
    [right, left].into_iter().flatten().any(|j| is_bare_label(&lines[j].text))
}

/// "Label:" alone on its line.
fn is_bare_label(text: &str) -> bool {
    text.trim_end().strip_suffix(':').is_some_and(|label| as_label(label).is_some() && !label.contains(':'))
}

/// A printed instruction where a label's value would be (after its colon, beside it or
/// under it), wholly in parentheses ("(Indicate Distributor's Cost Per Carton)"): the
/// form's words, not an answer.
fn is_instruction(text: &str) -> bool {
    let text = text.trim();
    text.starts_with('(') && text.ends_with(')') && text.chars().filter(|c| c.is_alphabetic()).count() > 3
}

/// Labels of the blanks to fill: "Label: ____", "Label ____", "□ Label", "[ ] Label", and
/// "Label:" with no value beside or under it. A label on two pages is two fields.
fn blanks(lines: &[Line]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut pages = LabelPages::default();
    let mut push = |label: &str, page: usize| {
        let label = label.trim().trim_end_matches([':', '.', '_']).trim();
        if label.is_empty()
            || !label.chars().any(char::is_alphabetic)
            || label.split_whitespace().count() > MAX_LABEL_WORDS
        {
            return;
        }
        let field = pages.key(label, page);
        pages.take(label, page);
        if !fields.contains(&field) {
            fields.push(field);
        }
    };
    for (i, line) in lines.iter().enumerate() {
        let text = line.text.as_str();
        if let Some(rest) =
            text.strip_prefix(['□', '☐']).or_else(|| text.strip_prefix("[ ]")).or_else(|| text.strip_prefix("[]"))
        {
            push(rest, line.page);
        } else if let Some(start) = text.find("__") {
            push(&text[..start], line.page);
        } else if let Some(label) = text.strip_suffix(':') {
            if value_line(lines, i, &[]).is_none() {
                push(label, line.page);
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(texts: &[(&str, f32)]) -> Vec<Line> {
        Line::stacked(texts)
    }

    /// A line of print 16 px high, `w` wide, its top left corner at (`x`, `y`).
    fn at(text: &str, x: f32, y: f32, w: f32) -> Line {
        Line::new(text, 0, [x, y, x + w, y + 16.0])
    }

    #[test]
    fn a_receipt_gives_its_title_date_total_and_labels() {
        let receipt = lines(&[
            ("BOOK TA.K (TAMAN DAYA) SDN BHD", 30.0),
            ("789417-W", 20.0),
            ("TEL:07-3525888", 20.0),
            ("Document No: TD01167104", 20.0),
            ("Date:", 20.0),
            ("25/12/2018 8:13:39 PM", 20.0),
            ("Cashier: MANIS", 20.0),
            ("Total:", 20.0),
            ("9.00", 20.0),
            ("Rounded Total (RM): 9.00", 20.0),
            ("CASH 10.00", 20.0),
        ]);
        let library = Library {
            doc: vec![
                docusnap_core::protocol::LibraryItem {
                    id: "same-shop".into(),
                    title: "Book Ta.K receipt".into(),
                    ..Default::default()
                },
                docusnap_core::protocol::LibraryItem {
                    id: "other".into(),
                    title: "Passport".into(),
                    ..Default::default()
                },
            ],
            form: vec![],
        };
        let doc = extract_doc(&receipt, &library);
        assert_eq!(doc.title, "BOOK TA.K (TAMAN DAYA) SDN BHD");
        assert_eq!(doc.kv.get("Date"), Some(&json!("Dec 25, 2018")));
        assert_eq!(doc.kv.get("Total"), Some(&json!("9.00")));
        assert_eq!(doc.kv.get("Document No"), Some(&json!("TD01167104")));
        assert_eq!(doc.kv.get("Cashier"), Some(&json!("MANIS")));
        assert_eq!(doc.kv.get("TEL"), Some(&json!("07-3525888")));
        assert_eq!(doc.tags, ["receipt"]);
        assert_eq!(doc.related, vec![ResourceRef { kind: LibraryKind::Doc, resource_id: "same-shop".into() }]);
        // What the rules produce passes the same checks an LLM's answer must.
        assert!(doc.normalise(false, &library).is_ok());
    }

    #[test]
    fn a_form_lists_its_blanks_apart_from_its_printed_values() {
        let form = lines(&[
            ("VISA APPLICATION FORM", 34.0),
            ("Embassy: Republic of Examples", 18.0),
            ("Full name: ________", 18.0),
            ("Date of birth ____", 18.0),
            ("Passport No:", 18.0),
            ("Address:", 18.0),
            ("□ Tourist visa", 18.0),
            ("[ ] Business visa", 18.0),
        ]);
        let result = extract_form(&form, &Library::default());
        assert_eq!(
            result.fields.clone().unwrap(),
            ["Full name", "Date of birth", "Passport No", "Address", "Tourist visa", "Business visa"]
        );
        assert_eq!(result.kv.get("Form Type"), Some(&json!("VISA APPLICATION FORM")));
        assert_eq!(result.kv.get("Embassy"), Some(&json!("Republic of Examples")));
        assert!(result.fields.as_ref().unwrap().iter().all(|f| !result.kv.contains_key(f)));
        assert!(result.tags.contains(&"form".to_string()));
        assert!(result.normalise(true, &Library::default()).is_ok());
    }

    #[test]
    fn a_date_label_takes_only_a_date_from_the_next_line() {
        let doc =
            extract_doc(&lines(&[("CLAIM", 30.0), ("Date:", 18.0), ("CORNER BAKERY", 18.0)]), &Library::default());
        assert_eq!(doc.kv.get("Date"), None);
        let doc = extract_doc(&lines(&[("CLAIM", 30.0), ("Date:", 18.0), ("03/01/2026", 18.0)]), &Library::default());
        assert_eq!(doc.kv.get("Date"), Some(&json!("Jan 03, 2026")));
    }

    #[test]
    fn kv_follows_the_page_and_values_sit_beside_or_under_their_labels() {
        let page = vec![
            Line::new("ACME TRADING SDN BHD", 0, [10.0, 0.0, 300.0, 30.0]),
            Line::new("12 Jalan Besar, 45600 Kuala Selangor", 0, [10.0, 40.0, 400.0, 60.0]),
            Line::new("Invoice No:", 0, [10.0, 80.0, 120.0, 100.0]),
            Line::new("INV-2031", 0, [200.0, 82.0, 300.0, 102.0]),
            // A speck read after the colon.
            Line::new("Cashier:.", 0, [10.0, 120.0, 90.0, 140.0]),
            Line::new("Mei Ling", 0, [12.0, 145.0, 90.0, 165.0]),
            Line::new("TOTAL", 0, [10.0, 200.0, 80.0, 220.0]),
            Line::new("RM 12.50", 0, [300.0, 203.0, 380.0, 223.0]),
            Line::new("Date: 2O/O3/2019 10:22", 0, [10.0, 240.0, 250.0, 260.0]),
        ];
        let doc = extract_doc(&page, &Library::default());
        let keys: Vec<&str> = doc.kv.keys().map(String::as_str).collect();
        assert_eq!(keys, ["Company", "Address", "Invoice No", "Cashier", "Total", "Date"], "{:?}", doc.kv);
        assert_eq!(doc.kv["Invoice No"], json!("INV-2031"), "the value to the right on its row");
        assert_eq!(doc.kv["Cashier"], json!("Mei Ling"), "the value under its label, past a speck");
        assert_eq!(doc.kv["Total"], json!("12.50"));
        assert_eq!(doc.kv["Date"], json!("Mar 20, 2019"), "O read as 0 among digits");
    }

    #[test]
    fn a_label_on_two_pages_is_two_fields_and_two_values() {
        let page = |p: usize, texts: &[&str]| -> Vec<Line> {
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| Line::new(*t, p, [10.0, 30.0 * i as f32, 200.0, 30.0 * i as f32 + 20.0]))
                .collect()
        };
        let mut lines = page(0, &["LEASE APPLICATION", "Date: 03/01/2026", "Name: ____", "Signature: ____"]);
        lines.extend(page(1, &["GUARANTOR", "Date: 04/01/2026", "Name: ____", "Signature: ____"]));
        let form = extract_form(&lines, &Library::default());
        assert_eq!(form.fields.as_deref().unwrap(), ["Name", "Signature", "Name (Page 2)", "Signature (Page 2)"]);
        // As printed: 03/01/2026 is March 1st or January 3rd by the form's country.
        assert_eq!(form.kv.get("Date"), Some(&json!("03/01/2026")));
        assert_eq!(form.kv.get("Date (Page 2)"), Some(&json!("04/01/2026")));
        assert_eq!(form.kv.keys().next().map(String::as_str), Some(FORM_TYPE_KEY));
        assert!(form.normalise(true, &Library::default()).is_ok());
    }

    #[test]
    fn a_forms_labels_side_by_side_with_and_without_colons() {
        assert_eq!(
            inline_pairs("Area: 5 Region: 17"),
            [("Area".to_string(), "5".to_string()), ("Region".to_string(), "17".to_string())]
        );
        assert_eq!(inline_pairs("Time: 10:22 am"), [("Time".to_string(), "10:22 am".to_string())]);
        assert!(inline_pairs("no colon here").is_empty());
        let row = |y: f32, left: &str, right: &str| {
            vec![Line::new(left, 0, [10.0, y, 200.0, y + 20.0]), Line::new(right, 0, [300.0, y, 450.0, y + 20.0])]
        };
        let mut page = vec![Line::new("COUPON CODE REGISTRATION FORM", 0, [10.0, 0.0, 400.0, 30.0])];
        page.extend(row(50.0, "MEDIA TYPE", "DIRECT MAIL"));
        page.extend(row(110.0, "Area: 5 Region: 17", "Fax: 555-0100"));
        // A cc list further down; right under "MEDIA TYPE  DIRECT MAIL" it would read as
        // two columns of names under two headings.
        page.extend(row(200.0, "A. H. Tisch", "G. Telford"));
        let form = extract_form(&page, &Library::default());
        assert_eq!(form.kv.get("MEDIA TYPE"), Some(&json!("DIRECT MAIL")));
        assert!(!form.kv.contains_key("A. H. Tisch"), "names with initials are a list, not labels");
        assert_eq!((form.kv.get("Area"), form.kv.get("Region")), (Some(&json!("5")), Some(&json!("17"))));
        // A document's rows are items and prices, not labels.
        let doc = extract_doc(&page, &Library::default());
        assert!(!doc.kv.contains_key("MEDIA TYPE"));
    }

    #[test]
    fn a_ticked_box_is_the_value_of_its_option_a_word_or_a_date() {
        let page = vec![
            at("PROGRESS REPORT", 10.0, 0.0, 300.0),
            // The box's bracket read with its date, the mark a little to the right.
            at("JUNE 30[", 400.0, 40.0, 50.0),
            at("X", 470.0, 40.0, 14.0),
            at("SEP 22", 560.0, 40.0, 45.0),
            at("YES", 400.0, 80.0, 30.0),
            at("X", 440.0, 80.0, 14.0),
            // A sentence beside a mark is no option.
            at("Please sign the form and send it back to us", 10.0, 120.0, 320.0),
            at("X", 340.0, 120.0, 14.0),
        ];
        let form = extract_form(&page, &Library::default());
        assert_eq!(form.kv.get("JUNE 30"), Some(&json!("X")));
        assert_eq!(form.kv.get("YES"), Some(&json!("X")));
        assert!(!form.kv.contains_key("SEP 22"), "the box ticked is the one beside the mark");
        assert_eq!(form.kv.values().filter(|v| *v == &json!("X")).count(), 2, "{:?}", form.kv);
    }

    /// A label's neighbour that is itself one of the page's labels (here an option to tick,
    /// printed again on the next row, where its box is ticked) is no value of it.
    #[test]
    fn a_value_that_is_a_label_of_the_page_is_no_value() {
        let page = vec![
            at("PROMOTION REPORT", 10.0, 0.0, 300.0),
            // Two rows of the same options to tick, far to the right of their labels.
            at("STATE:", 75.0, 40.0, 55.0),
            at("FULL", 290.0, 40.0, 35.0),
            at("PARTIAL", 485.0, 40.0, 51.0),
            at("X", 580.0, 40.0, 16.0),
            at("SCOPE:", 75.0, 85.0, 58.0),
            at("FULL", 290.0, 85.0, 35.0),
            at("X", 350.0, 85.0, 16.0),
            at("PARTIAL", 485.0, 85.0, 51.0),
            at("CONTACT:", 75.0, 130.0, 70.0),
            at("J. Smith", 160.0, 130.0, 60.0),
        ];
        let form = extract_form(&page, &Library::default());
        assert_eq!(form.kv.get("FULL"), Some(&json!("X")), "{:?}", form.kv);
        for label in ["STATE", "SCOPE"] {
            let value = form.kv.get(label).and_then(Value::as_str).unwrap_or_default();
            assert!(!["FULL", "PARTIAL"].contains(&value), "{label}: {value} is an option's label");
        }
        assert_eq!(form.kv.get("CONTACT"), Some(&json!("J. Smith")));
    }

    /// A notice's printed paragraph and an instruction in parentheses are part of the
    /// form, not values; a label that only shares a word with notices keeps its answer.
    #[test]
    fn a_notices_paragraph_and_a_printed_instruction_are_no_values() {
        let notice = "This facsimile is intended only for the person or entity to which it is addressed and may \
contain information that is privileged, confidential or otherwise protected from disclosure.";
        let page = vec![
            at("FAX TRANSMITTAL", 10.0, 0.0, 300.0),
            at("NOTICE NO.:", 10.0, 40.0, 90.0),
            at("4411", 110.0, 40.0, 40.0),
            at("REMARKS:", 10.0, 80.0, 80.0),
            at("Call me on arrival", 110.0, 80.0, 140.0),
            at("CONLDENTIALITY NOTE:", 10.0, 120.0, 160.0),
            at(notice, 180.0, 120.0, 900.0),
            at("PRICE: (Indicate cost per carton)", 10.0, 160.0, 260.0),
        ];
        let form = extract_form(&page, &Library::default());
        assert_eq!(form.kv.get("NOTICE NO"), Some(&json!("4411")), "{:?}", form.kv);
        assert_eq!(form.kv.get("REMARKS"), Some(&json!("Call me on arrival")));
        assert!(form.kv.keys().all(|k| !k.contains("NOTE")), "{:?}", form.kv);
        assert!(!form.kv.contains_key("PRICE"), "{:?}", form.kv);
    }
}
