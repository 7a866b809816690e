//! Tables: a row of column headings over rows of cells. Each heading's cells are one key's
//! values, a list in row order ("NAME OF ACCOUNT": ["Texaco Seattle", "Dari Mart"]),
//! which the protocol flattens to "NAME OF ACCOUNT.1", "NAME OF ACCOUNT.2".

use crate::layout::Line;

/// A heading is a short label: a few words, no digits, no value after a colon.
const MAX_HEADING_WORDS: usize = 5;
/// A table has at least this many columns, and this many rows that fill two of them: a
/// pair of lines over a paragraph is not a table.
const MIN_COLUMNS: usize = 2;
const MIN_ROWS: usize = 2;
/// Rows of one table follow each other within this many line heights; a wider gap ends it.
const MAX_ROW_GAP_LINES: f32 = 2.5;
/// A row holding one cell close under the row before is that cell's text wrapped in its
/// column ("Wachtell, Lipton, Rosen" over "& Katz"), not a row: within this many line
/// heights, and under this share of the table's narrowest gap between rows (text wraps
/// tighter than a table's rows are spaced).
const MAX_WRAP_GAP_LINES: f32 = 0.8;
const WRAP_SHARE_OF_ROW_GAP: f32 = 0.6;

/// One column read from a table: its heading's line, its heading, its cells, each the
/// lines it was printed on (one cell: a label over its value).
pub struct Column {
    pub heading_at: usize,
    pub heading: String,
    pub cells: Vec<Vec<usize>>,
}

pub(crate) fn is_heading(line: &Line) -> bool {
    let text = line.text.trim();
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let digits = text.chars().filter(|c| c.is_ascii_digit()).count();
    let colon_inside = text.trim_end_matches(':').contains(':');
    letters >= 2
        && digits == 0
        && !colon_inside
        && !has_initials(text)
        && text.split_whitespace().count() <= MAX_HEADING_WORDS
}

/// A person's name written with initials ("A. H. Tisch"): a list's entry, never a heading
/// or a label.
pub(crate) fn has_initials(text: &str) -> bool {
    text.split_whitespace().any(|w| w.chars().count() == 2 && w.ends_with('.') && w.starts_with(char::is_alphabetic))
}

/// The tables among `rows` (from [`crate::layout::rows`]), skipping lines already `used`
/// (and marking those a table takes).
pub fn columns(lines: &[Line], rows: &[Vec<usize>], used: &mut [bool]) -> Vec<Column> {
    let mut found = Vec::new();
    let mut r = 0;
    while r < rows.len() {
        let heading_row = |r: usize| -> Option<Vec<usize>> {
            let heads: Vec<usize> = rows.get(r)?.iter().copied().filter(|&i| !used[i]).collect();
            (heads.len() >= MIN_COLUMNS && heads.iter().all(|&i| is_heading(&lines[i]))).then_some(heads)
        };
        let Some(mut heads) = heading_row(r) else {
            r += 1;
            continue;
        };
        // Headings printed on two rows ("NO. OF" over "STORES"): the lower row stands over
        // the cells, and each of its headings is read with what stands above it
        // ("NO. OF STORES").
        // A heading of the upper row with none under it ("Name of Account" printed across
        // both rows) is a column of its own.
        let mut above: Vec<usize> = Vec::new();
        while let Some(lower) = heading_row(r + 1) {
            let upper = std::mem::replace(&mut heads, lower);
            let under_none =
                |u: usize| !heads.iter().any(|&h| lines[u].left < lines[h].right && lines[u].right > lines[h].left);
            let spanning: Vec<usize> = upper.iter().copied().filter(|&u| under_none(u)).collect();
            above = upper.into_iter().filter(|u| !spanning.contains(u)).collect();
            heads.extend(spanning);
            heads.sort_by(|&a, &b| lines[a].left.total_cmp(&lines[b].left));
            r += 1;
        }
        let heading_of = |head: usize| {
            let own = lines[head].text.trim().trim_end_matches(':').trim();
            let overlap_with =
                |u: usize, h: usize| lines[u].right.min(lines[h].right) - lines[u].left.max(lines[h].left);
            let overlap = |u: usize| overlap_with(u, head);
            // An upper line over two lower headings is two headings OCR read as one: it
            // names neither alone.
            let over_one = |u: usize| heads.iter().filter(|&&h| overlap_with(u, h) > 0.0).count() == 1;
            let over = above
                .iter()
                .filter(|&&u| overlap(u) > 0.0 && over_one(u))
                .max_by(|&&a, &&b| overlap(a).total_cmp(&overlap(b)));
            match over {
                Some(&u) => format!("{} {own}", lines[u].text.trim()),
                None => own.to_owned(),
            }
        };
        // Each column spans from halfway to its left neighbour to halfway to its right one.
        let spans: Vec<(f32, f32)> = heads
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let left = if k == 0 { f32::MIN } else { (lines[heads[k - 1]].right + lines[i].left) / 2.0 };
                let right = heads.get(k + 1).map_or(f32::MAX, |&n| (lines[i].right + lines[n].left) / 2.0);
                (left, right)
            })
            .collect();
        let height = heads.iter().map(|&i| lines[i].height()).fold(0.0, f32::max).max(1.0);
        let mut cells: Vec<Vec<Vec<usize>>> = vec![Vec::new(); heads.len()];
        // The column each line of the row before went to: where a wrapped cell continues.
        let mut last_row: Vec<usize> = Vec::new();
        let mut row_gap = f32::MAX;
        let mut bottom = heads.iter().map(|&i| lines[i].bottom).fold(f32::MIN, f32::max);
        let mut filled_rows = 0;
        let mut next = r + 1;
        while let Some(row) = rows.get(next) {
            // Print in the margin beside the rows is not a cell of theirs, nor a row.
            let free: Vec<usize> = row.iter().copied().filter(|&i| !used[i] && !lines[i].is_margin_print()).collect();
            if free.is_empty() && row.iter().any(|&i| !used[i]) {
                next += 1;
                continue;
            }
            let top = free.iter().map(|&i| lines[i].top).fold(f32::MAX, f32::min);
            if free.is_empty()
                || top - bottom > MAX_ROW_GAP_LINES * height
                || lines[free[0]].page != lines[heads[0]].page
            {
                break;
            }
            let spans_two = |i: usize| {
                let width = (lines[i].right - lines[i].left).max(1.0);
                let covered =
                    |(l, r): &(f32, f32)| (lines[i].right.min(*r) - lines[i].left.max(*l)).max(0.0) / width > 0.25;
                spans.iter().filter(|s| covered(s)).count() >= 2
            };
            // A cell lines up with its heading: by its left edge, its right edge (amounts)
            // or its centre, whichever fits a heading best. One that OCR read together with
            // its neighbour spans two, and belongs where it starts.
            let column_of = |i: usize| {
                let cell = &lines[i];
                if spans_two(i) {
                    let at = cell.left + cell.height();
                    return spans.iter().position(|(l, r)| (*l..*r).contains(&at));
                }
                let centre = |l: &Line| (l.left + l.right) / 2.0;
                let misfit = |h: &Line| {
                    (cell.left - h.left).abs().min((cell.right - h.right).abs()).min((centre(cell) - centre(h)).abs())
                };
                heads
                    .iter()
                    .enumerate()
                    .min_by(|(_, &a), (_, &b)| misfit(&lines[a]).total_cmp(&misfit(&lines[b])))
                    .map(|(k, _)| k)
            };
            let placed: Vec<(usize, usize)> = free.iter().filter_map(|&i| column_of(i).map(|c| (c, i))).collect();
            let distinct = {
                let mut cols: Vec<usize> = placed.iter().map(|(c, _)| *c).collect();
                cols.dedup();
                cols.len()
            };
            // A line across two columns alone on its row is a sentence under the table;
            // beside other cells it is two cells OCR read as one.
            let spanning = free.len() < MIN_COLUMNS && free.iter().any(|&i| spans_two(i));
            // A table opens with a full row; a label with a colon is the form again.
            // More lines than columns, or a row of headings again: another layout begins.
            // A bill's closing rows (total, tax, change) end its items, as does the
            // page's number at its foot.
            let crowded = free.len() > heads.len() || heading_row(next).is_some();
            let closing = free.first().is_some_and(|&i| crate::values::is_closing_label(&lines[i].text))
                || free.iter().any(|&i| crate::documents::is_pagination(&lines[i].text));
            if spanning
                || closing
                || crowded
                || (distinct < MIN_COLUMNS && filled_rows == 0)
                || free.iter().any(|&i| lines[i].text.contains(':'))
            {
                break;
            }
            let wraps = distinct == 1
                && filled_rows > 0
                && top - bottom <= MAX_WRAP_GAP_LINES * height
                && top - bottom < WRAP_SHARE_OF_ROW_GAP * row_gap
                && placed.iter().all(|(c, _)| last_row.contains(c) && !cells[*c].is_empty());
            if wraps {
                for (c, i) in placed {
                    if let Some(cell) = cells[c].last_mut() {
                        cell.push(i);
                    }
                }
            } else {
                row_gap = row_gap.min((top - bottom).max(0.0));
                last_row = placed.iter().map(|(c, _)| *c).collect();
                for (c, i) in placed {
                    cells[c].push(vec![i]);
                }
            }
            filled_rows += usize::from(distinct >= MIN_COLUMNS);
            bottom = free.iter().map(|&i| lines[i].bottom).fold(f32::MIN, f32::max);
            next += 1;
        }
        // One row under headings is a row of labels over their values, as forms print
        // "Date" over "November 12, 1999": the pairs are kept, a value each.
        if filled_rows == 0 || (filled_rows < MIN_ROWS && cells.iter().any(|c| c.len() > 1)) {
            r += 1;
            continue;
        }
        for &u in &above {
            used[u] = true;
        }
        for (k, &head) in heads.iter().enumerate() {
            used[head] = true;
            for &i in cells[k].iter().flatten() {
                used[i] = true;
            }
            let heading = heading_of(head);
            found.push(Column { heading_at: head, heading, cells: std::mem::take(&mut cells[k]) });
        }
        r = next;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::rows;

    /// Each column's cells, by the first line of each.
    fn first_lines<'a>(found: &[Column], lines: &'a [Line]) -> Vec<Vec<&'a str>> {
        found.iter().map(|c| c.cells.iter().map(|cell| lines[cell[0]].text.as_str()).collect()).collect()
    }

    fn at(text: &str, x: f32, y: f32) -> Line {
        Line::new(text, 0, [x, y, x + 10.0 * text.len() as f32, y + 20.0])
    }

    #[test]
    fn headings_over_cells_make_columns_and_a_paragraph_does_not() {
        let lines = vec![
            at("NAME OF ACCOUNT", 10.0, 100.0),
            at("NO. OF STORES", 300.0, 100.0),
            at("Texaco Seattle", 10.0, 130.0),
            at("225", 320.0, 130.0),
            at("Dari Mart", 10.0, 160.0),
            at("27", 320.0, 160.0),
            at("Zip Trip", 10.0, 190.0),
            at("Signed by the manager", 10.0, 400.0),
        ];
        let mut used = vec![false; lines.len()];
        let found = columns(&lines, &rows(&lines), &mut used);
        let read: Vec<(String, Vec<&str>)> = found
            .iter()
            .map(|c| (c.heading.clone(), c.cells.iter().map(|cell| lines[cell[0]].text.as_str()).collect()))
            .collect();
        assert_eq!(
            read,
            [
                ("NAME OF ACCOUNT".to_string(), vec!["Texaco Seattle", "Dari Mart", "Zip Trip"]),
                ("NO. OF STORES".to_string(), vec!["225", "27"])
            ]
        );
        assert!(!used[7], "a line after a gap is not the table's");

        let prose = vec![at("Dear Sir", 10.0, 100.0), at("Yours", 300.0, 100.0), at("we write to say", 10.0, 130.0)];
        assert!(columns(&prose, &rows(&prose), &mut [false; 3]).is_empty());
    }

    #[test]
    fn a_bills_closing_rows_are_not_items() {
        let lines = vec![
            at("ITEM", 10.0, 100.0),
            at("AMOUNT", 300.0, 100.0),
            at("Teh tarik", 10.0, 130.0),
            at("2.50", 310.0, 130.0),
            at("Nasi lemak", 10.0, 160.0),
            at("16.40", 310.0, 160.0),
            at("TOTAL", 10.0, 190.0),
            at("18.90", 310.0, 190.0),
            at("CHANGE DUE", 10.0, 220.0),
            at("1.10", 310.0, 220.0),
        ];
        let mut used = vec![false; lines.len()];
        let cells = first_lines(&columns(&lines, &rows(&lines), &mut used), &lines);
        assert_eq!(cells, [vec!["Teh tarik", "Nasi lemak"], vec!["2.50", "16.40"]]);
        assert!(!used[6] && !used[7], "the total is left for the label/value rules");
        for label in ["SUB TOTAL", "Sub-Total 17.00", "GST 6% 1.02", "Rounding Adj", "Total Amount"] {
            assert!(crate::values::is_closing_label(label), "{label}");
        }
        for item in ["Teh tarik", "Nasi lemak ayam", "Total Gym membership fee for the month of May"] {
            assert!(!crate::values::is_closing_label(item), "{item}");
        }
    }

    #[test]
    fn print_in_the_margin_is_no_cell_and_the_pages_number_ends_the_table() {
        let lines = vec![
            at("NAME OF ACCOUNT", 10.0, 100.0),
            at("NO. OF STORES", 300.0, 100.0),
            at("Texaco Seattle", 10.0, 130.0),
            at("225", 320.0, 130.0),
            // A filing number printed upright in the margin, beside the rows.
            Line::new("82253245", 0, [600.0, 125.0, 615.0, 240.0]),
            at("Dari Mart", 10.0, 160.0),
            at("27", 320.0, 160.0),
            at("STYLE.XLS", 10.0, 190.0),
            at("Page 1 of 3 Pages", 300.0, 190.0),
        ];
        let mut used = vec![false; lines.len()];
        let cells = first_lines(&columns(&lines, &rows(&lines), &mut used), &lines);
        assert_eq!(cells, [vec!["Texaco Seattle", "Dari Mart"], vec!["225", "27"]]);
        assert!(!used[4] && !used[7] && !used[8]);
    }

    #[test]
    fn cells_read_together_and_cells_wrapped_onto_a_second_line_stay_cells() {
        let lines = vec![
            at("Recipient", 10.0, 100.0),
            at("Company", 250.0, 100.0),
            at("Phone", 500.0, 100.0),
            at("Mr. Koplow", 10.0, 130.0),
            // OCR read the company and the phone number as one line.
            Line::new("Wachtell, Lipton, Rosen (212) 403-1000", 0, [250.0, 130.0, 620.0, 150.0]),
            at("& Katz", 250.0, 152.0),
            at("Mr. Golden", 10.0, 180.0),
            at("Davis Polk", 250.0, 180.0),
            at("(212) 450-4000", 500.0, 180.0),
        ];
        let found = columns(&lines, &rows(&lines), &mut vec![false; lines.len()]);
        let read: Vec<Vec<String>> = found
            .iter()
            .map(|c| {
                c.cells
                    .iter()
                    .map(|cell| cell.iter().map(|&i| lines[i].text.as_str()).collect::<Vec<_>>().join(" "))
                    .collect()
            })
            .collect();
        assert_eq!(read[0], ["Mr. Koplow", "Mr. Golden"]);
        assert_eq!(read[1], ["Wachtell, Lipton, Rosen (212) 403-1000 & Katz", "Davis Polk"]);
        assert_eq!(read[2], ["(212) 450-4000"]);
    }

    #[test]
    fn headings_on_two_rows_are_read_together() {
        let lines = vec![
            at("Name of Account", 10.0, 100.0),
            at("Ind/Lor", 200.0, 100.0),
            at("Number of", 300.0, 100.0),
            at("Volume", 200.0, 125.0),
            at("Stores", 300.0, 125.0),
            at("Quality Dairy", 10.0, 160.0),
            at("151/15", 200.0, 160.0),
            at("31", 310.0, 160.0),
            at("Bay Stations", 10.0, 190.0),
            at("81/9", 200.0, 190.0),
            at("18", 310.0, 190.0),
        ];
        let found = columns(&lines, &rows(&lines), &mut vec![false; lines.len()]);
        let headings: Vec<&str> = found.iter().map(|c| c.heading.as_str()).collect();
        assert_eq!(headings, ["Name of Account", "Ind/Lor Volume", "Number of Stores"]);
        assert_eq!(found[2].cells.iter().map(|cell| lines[cell[0]].text.as_str()).collect::<Vec<_>>(), ["31", "18"]);
    }
}
