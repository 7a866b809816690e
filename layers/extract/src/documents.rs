//! The documents inside one upload: an expense report's PDF, or a stack of photos, holds
//! several receipts and invoices. Where one ends and the next begins is read from the
//! pages themselves, the way a person leafing through them would:
//!
//! 1. a page numbered as a continuation ("Page 2 of 3", "2/3" beside "page", "continued")
//!    belongs to the document before it, and "Page 1 of ..." starts one;
//! 2. otherwise a page starts a new document when the one before it has closed (a total
//!    was read on its last page) and this page stands on its own: a date, a total or a
//!    company's letterhead of its own. A closed invoice followed by its terms and
//!    conditions stays one document; three receipts become three;
//! 3. otherwise a page dated otherwise than the document so far starts a new one: one
//!    document has one date, and a continuation page that repeats its header repeats it;
//! 4. otherwise a page whose letterhead names another company starts a new document;
//! 5. otherwise the page continues the document (a long invoice's middle pages).
//!
//! v1 keeps one result per task: [`merge`] folds the documents into it without losing a
//! value, qualifying a label that an earlier document already used by the page it is on
//! ("Total (Page 2)"), as repeated form labels are.

use std::ops::Range;

use docusnap_core::results::{DocResult, MAX_RELATED, MAX_TAGS};
use serde_json::{Map, Value};

use crate::header::letterhead;
use crate::layout::{row_texts, rows, Line};
use crate::values::{find_best_date, find_total, Date};

/// Most documents one upload is split into: a page budget's worth of receipts is an
/// expense report; past this, later pages join the last document rather than multiply
/// the LLM calls of one task.
pub const MAX_DOCUMENTS: usize = 20;

/// What splitting reads of one page.
#[derive(Debug, Default, Clone, PartialEq)]
struct PageFacts {
    /// No text at all: a blank page, or one OCR could not read.
    empty: bool,
    /// "Page n of m": n.
    number: Option<u32>,
    continued: bool,
    has_total: bool,
    date: Option<Date>,
    /// A company's name at the top, upper-cased with spacing folded.
    company: Option<String>,
}

fn facts(lines: &[Line]) -> PageFacts {
    let all: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let texts: Vec<&str> = all.iter().copied().filter(|t| !t.trim().is_empty()).collect();
    let row_texts = row_texts(&rows(lines), &all);
    let row_refs: Vec<&str> = row_texts.iter().map(String::as_str).collect();
    let head = letterhead(&texts);
    PageFacts {
        empty: texts.is_empty(),
        number: texts.iter().find_map(|t| page_number(t)),
        continued: texts.iter().any(|t| says_continued(t)),
        has_total: find_total(&row_refs).is_some(),
        date: find_best_date(&texts),
        company: head.name.filter(|_| head.is_company).map(|n| fold(&n)),
    }
}

fn fold(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ").to_uppercase()
}

/// The page's own number when a line says "Page 2", "Page 2 of 3", "page 2/3" or "Pg. 2".
fn page_number(line: &str) -> Option<u32> {
    let lower = line.to_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| c.is_whitespace() || c == ':' || c == '.').filter(|w| !w.is_empty()).collect();
    words.iter().enumerate().find_map(|(i, word)| {
        if !matches!(*word, "page" | "pg" | "p") {
            return None;
        }
        let next = words.get(i + 1)?;
        // "2/3" or "2", then optionally "of 3"
        let n = next.split('/').next()?.parse::<u32>().ok()?;
        // A lone "p 5" is as often a price or a paragraph: only "page" stands alone.
        let numbered = *word == "page" || next.contains('/') || words.get(i + 2) == Some(&"of");
        (numbered && (1..=999).contains(&n)).then_some(n)
    })
}

/// A line that says only which page this is ("Page 1 of 3 Pages", "Page1 of 3", "PAGE 2"):
/// page furniture, neither a label's value nor a table's row. OCR often joins the word
/// and the number ("Page1").
pub(crate) fn is_pagination(line: &str) -> bool {
    let lower = line.to_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| c.is_whitespace() || matches!(c, ':' | '.' | '/')).filter(|w| !w.is_empty()).collect();
    let number = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit());
    let page_word = |w: &str| w.strip_prefix("page").is_some_and(|rest| rest.is_empty() || rest == "s" || number(rest));
    // "Pages: 4" on a fax cover is its count of pages, a field.
    words.first().is_some_and(|w| w.strip_prefix("page").is_some_and(|rest| rest.is_empty() || number(rest)))
        && words.iter().any(|w| number(w) || w.strip_prefix("page").is_some_and(number))
        && words.iter().all(|w| number(w) || page_word(w) || *w == "of")
}

fn says_continued(line: &str) -> bool {
    let lower = line.to_lowercase();
    ["continued", "cont'd", "(cont.)", "carried forward", "brought forward"].iter().any(|w| lower.contains(w))
}

/// The documents of pages `0..pages.len()`, as ranges of page indices in order; one range
/// for a single page or a single document.
pub fn split(pages: &[Vec<Line>]) -> Vec<Range<usize>> {
    let facts: Vec<PageFacts> = pages.iter().map(|p| facts(p)).collect();
    let mut documents: Vec<Range<usize>> = Vec::new();
    for (p, page) in facts.iter().enumerate() {
        let Some(current) = documents.last_mut() else {
            documents.push(p..p + 1);
            continue;
        };
        let previous = &facts[p - 1];
        let company = facts[current.clone()].iter().find_map(|f| f.company.clone());
        let date = facts[current.clone()].iter().find_map(|f| f.date);
        let stands_alone = page.date.is_some() || page.has_total || page.company.is_some();
        // Blank pages so far are no document of their own: they join the next.
        let blank_so_far = facts[current.clone()].iter().all(|f| f.empty);
        let starts = !blank_so_far
            && (match page.number {
                Some(n) if n > 1 => false,
                Some(_) => true,
                None if page.continued => false,
                None if previous.has_total && stands_alone => true,
                None if matches!((date, page.date), (Some(a), Some(b)) if a != b) => true,
                None => matches!((&company, &page.company), (Some(a), Some(b)) if a != b),
            });
        if starts && documents.len() < MAX_DOCUMENTS {
            documents.push(p..p + 1);
        } else if let Some(current) = documents.last_mut() {
            current.end = p + 1;
        }
    }
    if documents.is_empty() {
        documents.push(0..pages.len());
    }
    documents
}

/// One result for v1 from the documents' results, in order: the first document's title
/// (with how many follow), every tag up to the limit, each document's description, and
/// every kv entry; a label an earlier document used gets the page it is on.
pub fn merge(documents: &[(Range<usize>, DocResult)]) -> Option<DocResult> {
    let ((_, first), rest) = documents.split_first()?;
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut merged = DocResult {
        title: format!("{} and {} more document{}", first.title, rest.len(), if rest.len() == 1 { "" } else { "s" }),
        tags: Vec::new(),
        description: String::new(),
        kv: Map::new(),
        related: Vec::new(),
        fields: None,
    };
    let mut descriptions = Vec::new();
    for (pages, doc) in documents {
        for tag in &doc.tags {
            if merged.tags.len() < MAX_TAGS && !merged.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                merged.tags.push(tag.clone());
            }
        }
        for item in &doc.related {
            if merged.related.len() < MAX_RELATED && !merged.related.contains(item) {
                merged.related.push(item.clone());
            }
        }
        let where_ = page_span(pages);
        descriptions.push(format!("{} ({where_}): {}", doc.title, doc.description.trim()));
        for (key, value) in &doc.kv {
            let key = if merged.kv.contains_key(key) { qualified(&merged.kv, key, pages.start) } else { key.clone() };
            merged.kv.insert(key, value.clone());
        }
    }
    merged.description = descriptions.join(" ");
    Some(merged)
}

/// "Total (Page 2)", or with a further number when that too is taken (a label twice on one
/// document's page is already the document's own affair, but must not overwrite).
fn qualified(kv: &Map<String, Value>, key: &str, page: usize) -> String {
    let base = format!("{key} (Page {})", page + 1);
    (1..)
        .map(|n| if n == 1 { base.clone() } else { format!("{base} {n}") })
        .find(|k| !kv.contains_key(k))
        .unwrap_or(base)
}

fn page_span(pages: &Range<usize>) -> String {
    if pages.len() <= 1 {
        format!("page {}", pages.start + 1)
    } else {
        format!("pages {}-{}", pages.start + 1, pages.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(texts: &[&str]) -> Vec<Line> {
        Line::stacked(&texts.iter().map(|t| (*t, 20.0)).collect::<Vec<_>>())
    }

    fn receipt(shop: &str, total: &str) -> Vec<Line> {
        page(&[shop, "12 JALAN MERDEKA, 50000 KUALA LUMPUR", "Date: 12/03/2018", "TEA 2.00", &format!("TOTAL {total}")])
    }

    #[test]
    fn a_line_that_only_numbers_the_page_is_pagination() {
        for line in ["Page 1 of 3 Pages", "Page1 of 3", "PAGE 2", "page 2/3"] {
            assert!(is_pagination(line), "{line}");
        }
        for line in ["Page", "Pages: 4", "Pages (including cover sheet): 2", "Page 1 of 3 Total 18.90", "Pager 5"] {
            assert!(!is_pagination(line), "{line}");
        }
    }

    #[test]
    fn closed_receipts_each_start_a_document() {
        let pages = [
            receipt("KEDAI MAJU SDN BHD", "9.50"),
            receipt("KEDAI MAJU SDN BHD", "18.90"),
            receipt("ABC TRADING", "4.80"),
        ];
        assert_eq!(split(&pages), [0..1, 1..2, 2..3]);
    }

    #[test]
    fn numbered_and_unclosed_pages_continue_their_document() {
        let invoice_1 = page(&["ACME SUPPLIES SDN BHD", "INVOICE", "Date: 01/02/2026", "Widget 10.00", "Page 1 of 2"]);
        let invoice_2 = page(&["Gadget 5.00", "TOTAL 15.00", "Page 2 of 2"]);
        let terms = page(&["Terms and conditions", "Goods sold are not returnable."]);
        let pages = [invoice_1, invoice_2, terms, receipt("ABC TRADING", "4.80")];
        assert_eq!(split(&pages), [0..3, 3..4], "the terms page stands on nothing of its own");
        assert_eq!(split(&pages[..1]), vec![0..1_usize]);
        assert_eq!(page_number("Page 2 of 3"), Some(2));
        assert_eq!(page_number("pg. 3/4"), Some(3));
        assert_eq!(page_number("P 5 COFFEE"), None);
    }

    #[test]
    fn another_date_starts_a_document_and_the_same_date_repeated_does_not() {
        let unclosed = |date: &str| page(&["Kedai Maju", &format!("Date: {date}"), "TEA 2.00"]);
        assert_eq!(split(&[unclosed("12/03/2018"), unclosed("13/03/2018")]), [0..1, 1..2]);
        assert_eq!(split(&[unclosed("12/03/2018"), unclosed("12/03/2018")]), vec![0..2_usize]);
    }

    #[test]
    fn another_companys_letterhead_starts_a_document_even_when_no_total_was_read() {
        let unclosed = page(&["KEDAI MAJU SDN BHD", "Date: 12/03/2018", "TEA 2.00"]);
        assert_eq!(split(&[unclosed, receipt("ABC TRADING SDN BHD", "4.80")]), [0..1, 1..2]);
    }

    #[test]
    fn merging_keeps_every_documents_values() {
        let doc = |title: &str, total: &str| DocResult {
            title: title.into(),
            tags: vec!["receipt".into()],
            description: "A receipt.".into(),
            kv: json!({"Company": title, "Total": total}).as_object().unwrap().clone(),
            related: vec![],
            fields: None,
        };
        let merged = merge(&[(0..1, doc("A", "9.50")), (1..2, doc("B", "18.90")), (2..3, doc("C", "4.80"))]).unwrap();
        assert_eq!(merged.kv["Total"], "9.50");
        assert_eq!(merged.kv["Total (Page 2)"], "18.90");
        assert_eq!(merged.kv["Total (Page 3)"], "4.80");
        assert_eq!(merged.kv["Company (Page 3)"], "C");
        assert_eq!(merged.title, "A and 2 more documents");
        assert_eq!(merged.tags, ["receipt"]);
        assert!(merged.description.contains("B (page 2)"));
        let one = merge(&[(0..2, doc("A", "1"))]).unwrap();
        assert_eq!(one, doc("A", "1"));
    }
}
