//! Filling a form from the client's library without a model, and the key names both
//! extractors share with libraries the original service built.
//!
//! The original service's prompts named keys from a fixed list ([`original_keys`]:
//! "Full Name (English/Latin)", "Date of Birth (Full)", ...), so clients' libraries hold
//! those names while forms print short labels ("Name", "DOB"). Both sides are reduced to a
//! [`concept`] before they are compared.

use std::sync::LazyLock;

use docusnap_core::protocol::{Library, LibraryItem};
use docusnap_core::results::{LibraryKind, ResourceRef};
use serde_json::{Map, Value};

use crate::values::{find_dates, Date};

/// The original service's 130 default key names, as its libraries hold them.
pub fn original_keys() -> &'static [String] {
    static KEYS: LazyLock<Vec<String>> =
        LazyLock::new(|| serde_json::from_str(include_str!("original_keys.json")).unwrap_or_default());
    &KEYS
}

/// Qualifiers that name the same thing as the bare key: "Date of Birth (Full)" is the
/// date of birth, "Full Name (English/Latin)" the name as Latin-script forms ask for it.
const SAME_THING: &[&str] = &["full", "english/latin", "legal", "iso", "cm", "kg", "lbs", "ft/in", "national"];

/// Spellings of one thing, the first being the one the others fold to.
const SYNONYMS: &[&[&str]] = &[
    &[
        "full name",
        "name",
        "name of applicant",
        "applicant name",
        "applicant",
        "your name",
        "name in full",
        "cardholder full name",
        "card holder",
        "cardholder name",
    ],
    &["first name", "given name", "given names", "forename", "forenames", "cardholder first name"],
    &["last name", "surname", "family name", "cardholder last name"],
    &["date of birth", "dob", "d o b", "birth date", "birthdate", "birthday", "date of birth dd mm yyyy", "born on"],
    &["date of birth year", "year of birth", "birth year"],
    &["date of birth month", "month of birth", "birth month"],
    &["date of birth day", "day of birth", "birth day"],
    &["place of birth", "birthplace", "birth place", "born in"],
    &[
        "phone number",
        "phone",
        "tel",
        "tel no",
        "telephone",
        "telephone number",
        "mobile",
        "mobile number",
        "mobile no",
        "contact number",
        "phone no",
        "contact no",
    ],
    &["email", "e mail", "email address", "e mail address"],
    &["address", "addr", "home address", "residential address", "current address", "street address", "mailing address"],
    &["postal code zip code", "postal code", "postcode", "post code", "zip", "zip code"],
    &["address city", "city", "town", "city town"],
    &["address country", "country", "country of residence"],
    &["address province state", "state", "province", "state province"],
    &["document number", "document no", "passport number", "passport no", "travel document number"],
    &[
        "personal id",
        "id number",
        "id no",
        "identity number",
        "identity card number",
        "ic no",
        "ic number",
        "nric",
        "national id",
        "national id number",
    ],
    &["nationality", "citizenship"],
    &["gender", "sex"],
    &["date of issue", "issue date", "date issued", "issued on"],
    &["expiration date", "date of expiry", "expiry date", "expiry", "expires", "valid until", "valid thru", "valid to"],
    &["occupation", "profession", "job title", "job"],
    &["marital status", "civil status"],
    &[
        "driver license number",
        "driving licence number",
        "licence number",
        "license number",
        "licence no",
        "license no",
    ],
    &["machine readable zone mrz", "mrz"],
];

/// Things a field can also be filled from when nothing names it directly, in order: an ID
/// number is often only a document's number.
const SECOND_CHOICES: &[(&str, &str)] = &[("personal id", "document number"), ("document number", "personal id")];

/// Lowercase words, punctuation dropped: "E-mail:" and "e mail" compare equal.
pub fn words(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect::<String>()
        .replace('\'', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a key or label names: its words, with qualifiers that change nothing dropped and
/// synonyms folded. "Full Name (English/Latin)", "Name" and "Name:" are all "full name";
/// "Date of Birth (Year)" stays apart from "Date of Birth (Full)".
pub fn concept(name: &str) -> String {
    let mut bare = String::new();
    let mut rest = name;
    while let Some(open) = rest.find('(') {
        bare.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(')') else { break };
        let inner = rest[open + 1..open + close].trim().to_lowercase();
        if !SAME_THING.contains(&inner.as_str()) {
            bare.push(' ');
            bare.push_str(&inner);
        }
        rest = &rest[open + close + 1..];
    }
    bare.push_str(rest);
    let words = words(&bare);
    SYNONYMS
        .iter()
        .find(|spellings| spellings.iter().any(|s| *s == words))
        .map(|spellings| spellings[0].to_owned())
        .unwrap_or(words)
}

/// How much a library entry is trusted for personal details: official documents (identity
/// documents, cards, licences) over other documents and forms, and receipts last, since a
/// shop prints a name or address as it was told.
fn standing(item: &LibraryItem) -> u8 {
    let about = format!("{} {}", item.title, item.tags.join(" ")).to_lowercase();
    const OFFICIAL: &[&str] =
        &["passport", "identity", "id card", "licence", "license", "permit", "visa", "certificate", "card"];
    const RECEIPTS: &[&str] = &["receipt", "invoice", "bill"];
    if OFFICIAL.iter().any(|w| about.contains(w)) {
        2
    } else if RECEIPTS.iter().any(|w| about.contains(w)) {
        0
    } else {
        1
    }
}

/// When an entry was made: its issue date or, for receipts and letters, its date.
fn issued(item: &LibraryItem) -> Option<Date> {
    let dated = ["date of issue", "date", "valid from", "issue date"];
    item.kv
        .iter()
        .filter(|(key, _)| dated.contains(&concept(key).as_str()))
        .filter_map(|(_, value)| find_dates(&value_text(value)).into_iter().next())
        .max_by_key(|d| (d.year, d.month, d.day))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A library entry with where it stands among the others.
struct Entry<'a> {
    kind: LibraryKind,
    item: &'a LibraryItem,
    /// (standing, issue date, place in the library): the greatest is preferred. Clients add
    /// new results at the end, so among undated entries of one standing the last is newest.
    rank: (u8, Option<(i32, u32, u32)>, usize),
}

impl Entry<'_> {
    /// The entry's non-empty value for `wanted` (a concept), if it has one.
    fn value(&self, wanted: &str) -> Option<String> {
        self.item
            .kv
            .iter()
            .find(|(key, value)| concept(key) == wanted && !value_text(value).is_empty())
            .map(|(_, v)| value_text(v))
    }

    fn source(&self) -> ResourceRef {
        ResourceRef { kind: self.kind, resource_id: self.item.id.clone() }
    }
}

/// Values for a form's fields from the client's library. A field takes the value of the
/// best entry that names it (see [`Entry::rank`]); a name is combined from first and last
/// names and a date from its parts when no entry has it whole. Dates become YYYY-MM-DD;
/// other values are copied as they are.
pub fn fill(fields: &[String], library: &Library) -> Map<String, Value> {
    let items =
        library.doc.iter().map(|i| (LibraryKind::Doc, i)).chain(library.form.iter().map(|i| (LibraryKind::Form, i)));
    let mut entries: Vec<Entry> = items
        .enumerate()
        .map(|(place, (kind, item))| Entry {
            kind,
            item,
            rank: (standing(item), issued(item).map(|d| (d.year, d.month, d.day)), place),
        })
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.rank));
    let mut out = Map::new();
    for field in fields {
        let wanted = concept(field);
        let second = SECOND_CHOICES.iter().filter(|(f, _)| *f == wanted).map(|(_, s)| *s);
        let found = std::iter::once(wanted.as_str())
            .chain(second)
            .find_map(|c| entries.iter().find_map(|e| e.value(c).map(|v| (v, e.source()))))
            .or_else(|| combined(&wanted, &entries));
        if let Some((value, source)) = found {
            let value =
                if is_date(&wanted) { find_dates(&value).first().map(|d| d.iso()).unwrap_or(value) } else { value };
            out.insert(field.clone(), serde_json::json!({"value": value, "source": source}));
        }
    }
    out
}

fn is_date(concept: &str) -> bool {
    ["date", "birth", "expir", "valid", "issue"].iter().any(|w| concept.contains(w))
        && !["place", "year", "month", "day"].iter().any(|w| concept.contains(w))
}

/// A value made from parts that one entry holds: a full name from first and last names,
/// a date of birth from its year, month and day.
fn combined(wanted: &str, entries: &[Entry]) -> Option<(String, ResourceRef)> {
    entries.iter().find_map(|e| {
        let value = match wanted {
            "full name" => format!("{} {}", e.value("first name")?, e.value("last name")?),
            "date of birth" => {
                let part = |p: &str| e.value(&format!("date of birth {p}"))?.trim().parse::<u32>().ok();
                Date::checked(part("year")? as i32, part("month")?, part("day")?)?.iso()
            }
            _ => return None,
        };
        Some((value, e.source()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_original_keys_and_short_labels_name_the_same_things() {
        assert_eq!(original_keys().len(), 130);
        // The copy is the evaluation data's list, where a checkout has it beside the repo.
        let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/original_default_keys.json");
        if let Ok(text) = std::fs::read_to_string(shared) {
            assert_eq!(serde_json::from_str::<Vec<String>>(&text).unwrap(), original_keys());
        }
        for (original, short) in [
            ("Full Name (English/Latin)", "Name:"),
            ("Date of Birth (Full)", "DOB"),
            ("Address (Full)", "Home address"),
            ("Phone Number", "Tel. No."),
            ("Gender (Legal)", "Sex"),
            ("Postal Code/ZIP Code", "Post code"),
            ("Expiration Date (Full)", "Date of expiry"),
            ("Nationality", "Citizenship"),
            ("Last Name (English/Latin)", "Surname"),
        ] {
            assert_eq!(concept(original), concept(short), "{original} / {short}");
        }
        assert_ne!(concept("Date of Birth (Year)"), concept("Date of Birth (Full)"));
        assert_ne!(concept("Full Name (Native)"), concept("Full Name (English/Latin)"));
        assert_eq!(concept("Year of birth"), concept("Date of Birth (Year)"));
    }

    #[test]
    fn fill_matches_fields_to_library_keys_by_name_and_synonym() {
        let library: Library = serde_json::from_value(json!({
            "doc": [{"id": "passport-1", "title": "Passport", "kv": {"Name": "Ann Lee", "DOB": "Mar 04, 1990", "Passport No.": "X1234567"}}],
            "form": [{"id": "form-7", "title": "Old form", "kv": {"E-mail": "ann@example.com", "Phone": ""}}]
        }))
        .unwrap();
        let fields: Vec<String> =
            ["Full name", "Date of birth", "Passport number", "Email address", "Phone", "Signature"]
                .map(String::from)
                .to_vec();
        assert_eq!(
            Value::Object(fill(&fields, &library)),
            json!({
                "Full name": {"value": "Ann Lee", "source": {"type": "doc", "resource_id": "passport-1"}},
                "Date of birth": {"value": "1990-03-04", "source": {"type": "doc", "resource_id": "passport-1"}},
                "Passport number": {"value": "X1234567", "source": {"type": "doc", "resource_id": "passport-1"}},
                "Email address": {"value": "ann@example.com", "source": {"type": "form", "resource_id": "form-7"}}
            })
        );
    }

    #[test]
    fn official_documents_then_the_newest_win_and_parts_combine() {
        let library: Library = serde_json::from_value(json!({"doc": [
            {"id": "old-id", "title": "Identity card", "tags": ["identity"], "kv": {"Address (Full)": "1 Old Road", "Date of Issue (Full)": "Jan 01, 2015"}},
            {"id": "receipt", "title": "Hardware receipt", "tags": ["receipt"], "kv": {"Address": "9 Shop Lane", "Date": "Feb 02, 2024"}},
            {"id": "new-id", "title": "Identity card", "tags": ["identity"], "kv": {"Address (Full)": "2 New Street", "Date of Issue (Full)": "Mar 03, 2022"}},
            {"id": "pp", "title": "Passport", "kv": {"First Name (English/Latin)": "Wei", "Last Name (English/Latin)": "Li",
                "Date of Birth (Year)": "1990", "Date of Birth (Month)": "2", "Date of Birth (Day)": "28", "Document Number": "E1234567"}},
            {"id": "letter", "title": "Letter", "kv": {"Phone Number": "+60 12-345 6789"}}
        ]})).unwrap();
        let fields: Vec<String> = ["Address", "Name", "Date of birth", "ID No.", "Tel"].map(String::from).to_vec();
        let filled = fill(&fields, &library);
        let value = |f: &str| filled[f]["value"].as_str().unwrap().to_owned();
        let source = |f: &str| filled[f]["source"]["resource_id"].as_str().unwrap().to_owned();
        assert_eq!((value("Address"), source("Address")), ("2 New Street".into(), "new-id".into()));
        assert_eq!((value("Name"), source("Name")), ("Wei Li".into(), "pp".into()));
        assert_eq!(value("Date of birth"), "1990-02-28");
        assert_eq!(value("ID No."), "E1234567", "an ID number falls back to the document number");
        assert_eq!(value("Tel"), "+60 12-345 6789", "not a date: kept as written");
    }
}
