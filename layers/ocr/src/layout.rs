//! Reading order: lines top to bottom, left to right, with fragments of one line merged.

use crate::geometry::Quad;
use crate::page::TextLine;

/// Two boxes are in one row when their vertical extents overlap by at least this share of
/// the smaller height. Rows are compared box to box, never by a band that grows as boxes
/// join: on a skewed photo a growing band swallows the next line.
pub(crate) const SAME_ROW_OVERLAP: f32 = 0.5;

/// Fragments are merged into one line only when they overlap vertically this much...
const MERGE_OVERLAP: f32 = 0.7;
/// ...are about as tall as each other (a heading beside body text is not one line)...
const MERGE_HEIGHT_RATIO: f32 = 1.5;
/// ...and stand less than this many line heights apart: a word space is under half a
/// height, while table and receipt columns ("TOTAL        12.50") stand further apart and
/// stay separate lines. Measured on ../shared/data: merging wider gaps costs accuracy.
pub(crate) const MERGE_GAP_HEIGHTS: f32 = 0.6;

fn top(q: &Quad) -> f32 {
    q.iter().map(|p| p.y).fold(f32::MAX, f32::min)
}
fn bottom(q: &Quad) -> f32 {
    q.iter().map(|p| p.y).fold(f32::MIN, f32::max)
}
fn left(q: &Quad) -> f32 {
    q.iter().map(|p| p.x).fold(f32::MAX, f32::min)
}
fn right(q: &Quad) -> f32 {
    q.iter().map(|p| p.x).fold(f32::MIN, f32::max)
}

/// Orders recognised lines for reading and merges same-line fragments.
pub(crate) fn reading_order(mut lines: Vec<TextLine>) -> Vec<TextLine> {
    lines.sort_by(|a, b| (top(&a.quad) + bottom(&a.quad)).total_cmp(&(top(&b.quad) + bottom(&b.quad))));
    let mut rows: Vec<Vec<TextLine>> = Vec::new();
    for line in lines {
        match rows.last_mut() {
            Some(row) if row.last().is_some_and(|last| overlap(&last.quad, &line.quad) >= SAME_ROW_OVERLAP) => {
                row.push(line)
            }
            _ => rows.push(vec![line]),
        }
    }
    let mut out = Vec::new();
    for mut row in rows {
        row.sort_by(|a, b| left(&a.quad).total_cmp(&left(&b.quad)));
        let mut current: Option<TextLine> = None;
        for line in row {
            current = Some(match current {
                None => line,
                Some(previous) => {
                    let (h1, h2) = (bottom(&previous.quad) - top(&previous.quad), bottom(&line.quad) - top(&line.quad));
                    let alike = h1.max(h2) <= MERGE_HEIGHT_RATIO * h1.min(h2).max(1.0);
                    let close = left(&line.quad) - right(&previous.quad) < MERGE_GAP_HEIGHTS * h1.min(h2);
                    if alike && close && overlap(&previous.quad, &line.quad) >= MERGE_OVERLAP {
                        merge(previous, line)
                    } else {
                        out.push(previous);
                        line
                    }
                }
            });
        }
        out.extend(current);
    }
    out
}

/// Vertical overlap of two boxes as a share of the smaller height.
fn overlap(a: &Quad, b: &Quad) -> f32 {
    let shared = bottom(a).min(bottom(b)) - top(a).max(top(b));
    shared / (bottom(a) - top(a)).min(bottom(b) - top(b)).max(1.0)
}

fn merge(a: TextLine, b: TextLine) -> TextLine {
    let (na, nb) = (a.text.chars().count().max(1) as f32, b.text.chars().count().max(1) as f32);
    let score = (a.score * na + b.score * nb) / (na + nb);
    let quad = [a.quad[0], b.quad[1], b.quad[2], a.quad[3]];
    // Chinese runs need no space between fragments; Latin words do.
    let joiner = match (a.text.chars().last(), b.text.chars().next()) {
        (Some(x), Some(y)) if !x.is_ascii() && !y.is_ascii() => "",
        _ => " ",
    };
    TextLine { text: format!("{}{joiner}{}", a.text, b.text), score, quad }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{rect, Point};

    fn line(text: &str, l: f32, t: f32, r: f32, b: f32) -> TextLine {
        TextLine { text: text.into(), score: 0.9, quad: rect(l, t, r, b) }
    }

    #[test]
    fn rows_read_top_to_bottom_then_left_to_right() {
        let lines = vec![
            line("12.50", 300.0, 52.0, 360.0, 72.0),
            line("Coffee", 10.0, 10.0, 90.0, 30.0),
            line("TOTAL", 10.0, 50.0, 80.0, 70.0),
            line("shop", 95.0, 11.0, 160.0, 31.0), // 5 px after "Coffee": one line, merged
        ];
        let texts: Vec<String> = reading_order(lines).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["Coffee shop", "TOTAL", "12.50"]);
    }

    #[test]
    fn merged_fragments_span_both_boxes() {
        let merged = reading_order(vec![line("你好", 0.0, 0.0, 40.0, 20.0), line("世界", 48.0, 1.0, 88.0, 21.0)]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].text, "你好世界");
        assert_eq!(merged[0].quad[1], Point::new(88.0, 1.0));
    }

    #[test]
    fn a_skewed_page_does_not_chain_lines_into_one_row() {
        // Each line overlaps the next by a little; none should join the first's row.
        let lines = vec![
            line("one", 0.0, 0.0, 50.0, 20.0),
            line("two", 60.0, 12.0, 110.0, 32.0),
            line("three", 120.0, 24.0, 170.0, 44.0),
        ];
        let out = reading_order(lines);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|l| !l.text.contains(' ')));
    }

    #[test]
    fn lines_barely_touching_stay_apart() {
        let lines = vec![line("upper", 0.0, 0.0, 50.0, 20.0), line("lower", 0.0, 16.0, 50.0, 36.0)];
        assert_eq!(reading_order(lines).len(), 2);
    }
}
