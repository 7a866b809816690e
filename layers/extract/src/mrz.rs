//! Machine-readable zones of passports and ID cards (ICAO 9303): two lines of 44
//! characters (TD3, passports) or three of 30 (TD1, ID cards), `[A-Z0-9<]` only. OCR reads
//! `<` as `«`, `K` or spaces now and then, so lines are recognised by their filler, and
//! fields are taken only where the layout puts them.

use crate::values::Date;

/// A line is MRZ when it is long and mostly code characters with a run of fillers.
const MIN_MRZ_LEN: usize = 28;
const MIN_FILLERS: usize = 3;

/// What a machine-readable zone says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mrz {
    /// The zone's lines as printed (fillers kept), for kv "MRZ".
    pub lines: Vec<String>,
    pub document_number: Option<String>,
    pub surname: Option<String>,
    pub given_names: Option<String>,
    pub nationality: Option<String>,
    pub birth_date: Option<Date>,
    pub expiry_date: Option<Date>,
    pub sex: Option<char>,
}

/// The line in MRZ characters: `«` (OCR's reading of `<<`) as `<<`, look-alikes of `<`
/// as `<`, spaces dropped, upper case.
fn normalise(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars().filter(|c| !c.is_whitespace()) {
        match c {
            '«' => out.push_str("<<"),
            '‹' | '〈' | '＜' => out.push('<'),
            c => out.push(c.to_ascii_uppercase()),
        }
    }
    out
}

fn is_mrz_line(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    chars.len() >= MIN_MRZ_LEN
        && chars.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '<')
        && chars.iter().filter(|c| **c == '<').count() >= MIN_FILLERS
}

/// YYMMDD: years up to 30 years ahead are this century's (expiry dates), the rest the last.
fn yymmdd(text: &str, future: bool) -> Option<Date> {
    if text.len() != 6 || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (yy, mm, dd): (i32, u32, u32) = (text[0..2].parse().ok()?, text[2..4].parse().ok()?, text[4..6].parse().ok()?);
    let pivot = if future { 60 } else { 30 };
    let year = if yy < pivot { 2000 + yy } else { 1900 + yy };
    Date::checked(year, mm, dd)
}

fn field(text: &str) -> Option<String> {
    let value = text.trim_matches('<').replace('<', " ");
    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
    (!value.is_empty()).then_some(value)
}

fn slice(line: &str, from: usize, to: usize) -> &str {
    line.get(from..to.min(line.len())).unwrap_or("")
}

/// The first machine-readable zone among `lines`.
pub fn find_mrz(lines: &[&str]) -> Option<Mrz> {
    let normalised: Vec<String> = lines.iter().map(|l| normalise(l)).collect();
    let start = normalised.iter().position(|l| is_mrz_line(l))?;
    let zone: Vec<String> = normalised[start..].iter().take_while(|l| is_mrz_line(l)).take(3).cloned().collect();
    let mut mrz = Mrz { lines: zone.clone(), ..Default::default() };
    let names = |mrz: &mut Mrz, text: &str| {
        if let Some((surname, given)) = text.split_once("<<") {
            mrz.surname = field(surname);
            mrz.given_names = field(given);
        }
    };
    if zone[0].len() >= 40 && zone[0].starts_with('P') {
        // TD3: P<UTOERIKSSON<<ANNA<MARIA<<< / L898902C36UTO7408122F1204159ZE184226B<<<<<10
        names(&mut mrz, slice(&zone[0], 5, 44));
        if let Some(second) = zone.get(1) {
            mrz.document_number = field(slice(second, 0, 9));
            mrz.nationality = field(slice(second, 10, 13));
            mrz.birth_date = yymmdd(slice(second, 13, 19), false);
            mrz.sex = slice(second, 20, 21).chars().next().filter(|c| matches!(c, 'M' | 'F'));
            mrz.expiry_date = yymmdd(slice(second, 21, 27), true);
        }
    } else if zone.len() == 3 {
        // TD1: I<UTOD231458907<<<<<<<<<<<<<<< / 7408122F1204159UTO<<<<<<<<<<<6 / ERIKSSON<<ANNA<MARIA<<<<<<<<<<
        mrz.document_number = field(slice(&zone[0], 5, 14));
        mrz.birth_date = yymmdd(slice(&zone[1], 0, 6), false);
        mrz.sex = slice(&zone[1], 7, 8).chars().next().filter(|c| matches!(c, 'M' | 'F'));
        mrz.expiry_date = yymmdd(slice(&zone[1], 8, 14), true);
        mrz.nationality = field(slice(&zone[1], 15, 18));
        names(&mut mrz, &zone[2]);
    }
    Some(mrz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passport_and_id_card_zones_are_read() {
        let passport = find_mrz(&[
            "PASSPORT",
            "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
            "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
        ])
        .unwrap();
        assert_eq!(passport.document_number.as_deref(), Some("L898902C3"));
        assert_eq!(passport.surname.as_deref(), Some("ERIKSSON"));
        assert_eq!(passport.given_names.as_deref(), Some("ANNA MARIA"));
        assert_eq!(passport.nationality.as_deref(), Some("UTO"));
        assert_eq!(passport.birth_date.map(|d| d.iso()).as_deref(), Some("1974-08-12"));
        assert_eq!(passport.expiry_date.map(|d| d.iso()).as_deref(), Some("2012-04-15"));
        assert_eq!(passport.sex, Some('F'));

        let card = find_mrz(&[
            "I<UTOD231458907<<<<<<<<<<<<<<<",
            "7408122F1204159UTO<<<<<<<<<<<6",
            "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
        ])
        .unwrap();
        assert_eq!(card.document_number.as_deref(), Some("D23145890"));
        assert_eq!(card.given_names.as_deref(), Some("ANNA MARIA"));
        assert_eq!(card.lines.len(), 3);

        // OCR's habits: « for <, spaces inside.
        let ocr = find_mrz(&["P<UTOERIKSSON«ANNA<MARIA<<<<<<<<<<<< <<<<<<<", "x"]).unwrap();
        assert_eq!(ocr.surname.as_deref(), Some("ERIKSSON"));
        assert!(find_mrz(&["TOTAL 9.00", "THANK YOU <<< COME AGAIN"]).is_none());
    }
}
