//! Where lines sit on the page: the rules read rows (lines side by side) and columns
//! (a value under its label), not only the text in reading order.

use docusnap_core::ocr_output::{PageText, TextLine};

/// One OCR line as the rules read it: its text, its page (from 0) and its box, an
/// axis-aligned rectangle in the upright page's pixels (OCR may have turned the page to
/// read it; see `PageText::upright`).
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub text: String,
    pub page: usize,
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

impl Line {
    pub fn new(text: impl Into<String>, page: usize, [left, top, right, bottom]: [f32; 4]) -> Self {
        Self { text: text.into(), page, left, top, right, bottom }
    }

    /// A line of `page` (its number `index`, from 0), its box in the page's upright frame.
    pub fn from_text_line(line: &TextLine, page: &PageText, index: usize) -> Self {
        let quad = page.upright(&line.quad);
        let xs = quad.map(|p| p[0]);
        let ys = quad.map(|p| p[1]);
        let min = |v: [f32; 4]| v.iter().copied().fold(f32::MAX, f32::min);
        let max = |v: [f32; 4]| v.iter().copied().fold(f32::MIN, f32::max);
        Self::new(line.text.clone(), index, [min(xs), min(ys), max(xs), max(ys)])
    }

    /// Lines one under another, each `height` tall and as wide as its text: what a test
    /// or a caller without boxes has.
    pub fn stacked(texts: &[(&str, f32)]) -> Vec<Line> {
        let mut top = 0.0;
        texts
            .iter()
            .map(|(text, height)| {
                let width = text.chars().count() as f32 * height * 0.5;
                let line = Line::new(*text, 0, [0.0, top, width, top + height]);
                top += height * 1.5;
                line
            })
            .collect()
    }

    /// Printed upright in the margin (a filing number, a stamp): taller than wide, and more
    /// than a character. Neither a label's value nor a table's cell.
    pub fn is_margin_print(&self) -> bool {
        self.text.chars().count() > 1 && self.height() > 2.0 * (self.right - self.left)
    }

    pub fn height(&self) -> f32 {
        (self.bottom - self.top).max(0.0)
    }

    fn centre_y(&self) -> f32 {
        (self.top + self.bottom) / 2.0
    }

    /// Whether `other` sits on this line's row: on the same page, with its vertical centre
    /// inside this line's band and the two overlapping by half the smaller height. Half,
    /// not all: a receipt scanned a little askew lifts a price against its label.
    pub fn same_row(&self, other: &Line) -> bool {
        let overlap = self.bottom.min(other.bottom) - self.top.max(other.top);
        self.page == other.page
            && overlap >= 0.5 * self.height().min(other.height())
            && (self.top..=self.bottom).contains(&other.centre_y())
                | (other.top..=other.bottom).contains(&self.centre_y())
    }

    /// Whether `other` begins under this line, in its column: below it on the same page,
    /// within a few line heights, and overlapping it horizontally.
    pub fn above(&self, other: &Line, max_gap_lines: f32) -> bool {
        let gap = other.top - self.bottom;
        self.page == other.page
            && other.centre_y() > self.bottom
            && gap <= max_gap_lines * self.height().max(1.0)
            && other.left < self.right
            && other.right > self.left
    }
}

/// The lines' indices grouped into rows, top to bottom, each row left to right. A row is
/// the lines on the row of its first (highest) line: measured against that one line, not
/// against any member, so tall, tightly spaced boxes do not chain a whole table into one.
pub fn rows(lines: &[Line]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|&a, &b| {
        (lines[a].page, lines[a].centre_y())
            .partial_cmp(&(lines[b].page, lines[b].centre_y()))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match rows.last_mut() {
            Some(row) if lines[row[0]].same_row(&lines[i]) => row.push(i),
            _ => rows.push(vec![i]),
        }
    }
    for row in &mut rows {
        row.sort_by(|&a, &b| lines[a].left.total_cmp(&lines[b].left));
    }
    rows
}

/// Each row's text: its lines' texts (`texts[i]` for line `i`) joined by spaces, left to
/// right, as a reader reads a row.
pub fn row_texts(rows: &[Vec<usize>], texts: &[&str]) -> Vec<String> {
    rows.iter().map(|row| row.iter().map(|&i| texts[i]).collect::<Vec<_>>().join(" ")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_gather_side_by_side_lines_even_a_little_askew() {
        let lines = vec![
            Line::new("TOTAL", 0, [10.0, 100.0, 80.0, 120.0]),
            Line::new("9.00", 0, [300.0, 104.0, 350.0, 124.0]),
            Line::new("CASH", 0, [10.0, 130.0, 70.0, 150.0]),
            Line::new("RM", 0, [5.0, 98.0, 20.0, 118.0]),
            Line::new("TOTAL", 1, [10.0, 100.0, 80.0, 120.0]),
        ];
        assert_eq!(rows(&lines), vec![vec![3, 0, 1], vec![2], vec![4]]);
        assert!(lines[0].above(&lines[2], 1.0));
        assert!(!lines[0].above(&lines[1], 1.0));
        assert!(!lines[0].above(&lines[4], 5.0), "another page");
    }
}
