//! Aligned plain-text tables with optional per-cell styles.
//!
//! Widths are computed on the unstyled text, then styles wrap the padded
//! cells, so columns stay aligned whether or not colour is stripped later.

use anstyle::Style;

/// One cell: text plus how to style it on a terminal.
pub struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    /// A cell with the given style.
    pub fn styled(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: sanitize(&text.into()),
            style,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self::styled(text, Style::new())
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self::styled(text, Style::new())
    }
}

/// A table with an optional header row.
#[derive(Default)]
pub struct Table {
    header: Option<Vec<Cell>>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table whose first row is a bold header.
    pub fn with_header<const N: usize>(names: [&str; N]) -> Self {
        let bold = Style::new().bold();
        Self {
            header: Some(names.iter().map(|n| Cell::styled(*n, bold)).collect()),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Renders the table; columns are separated by two spaces and the last
    /// column is not padded (no trailing blanks).
    pub fn render(&self) -> String {
        let all: Vec<&Vec<Cell>> = self.header.iter().chain(self.rows.iter()).collect();
        let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in &all {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(width(&cell.text));
            }
        }
        let mut out = String::new();
        for row in all {
            for (i, cell) in row.iter().enumerate() {
                let last = i + 1 == row.len();
                let pad = if last {
                    0
                } else {
                    widths[i] - width(&cell.text)
                };
                let style = cell.style;
                out.push_str(&format!("{style}{}{style:#}", cell.text));
                if !last {
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push('\n');
        }
        out
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// Replaces control characters (newlines, escape sequences) so that stored
/// text can neither break the layout nor drive the terminal.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_without_trailing_blanks() {
        let mut t = Table::with_header(["A", "LONG HEADER", "C"]);
        t.row(vec!["xyz".into(), "1".into(), "end".into()]);
        let plain = strip(&t.render());
        assert_eq!(plain, "A    LONG HEADER  C\nxyz  1            end\n");
    }

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(sanitize("a\nb\x1b[31m"), "a\u{FFFD}b\u{FFFD}[31m");
    }

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
