//! Aligned plain-text tables with optional per-cell styles, laid out by
//! comfy-table.
//!
//! Widths are display widths (a CJK character or most emoji take two
//! columns of a terminal, a combining accent none), so columns stay
//! aligned whatever the names hold. Given a width (the terminal's), a
//! table fits it: optional columns are left out first, in the order the
//! table names them, then long cells wrap onto more lines; columns marked
//! whole (ids people copy) never wrap. Without a width (a pipe, a file)
//! every row is one line, as wide as it takes, for `grep`, `cut` and `awk`.
//! Styles are written around the text only, so padding never carries
//! colour codes, and anstream strips them off a terminal.

use anstyle::{AnsiColor, Effects, Style};
use comfy_table::{Attribute, Color, ColumnConstraint, ContentArrangement};
use unicode_width::UnicodeWidthStr;

/// Blanks between two columns.
const GAP: u16 = 2;
/// How narrow a wrappable column may become when deciding whether the
/// table fits without leaving optional columns out.
const WRAP_FLOOR: usize = 16;

/// One cell: text plus how to style it on a terminal.
pub(crate) struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    /// A cell with the given style.
    pub(crate) fn styled(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: sanitize(&text.into()),
            style,
        }
    }

    fn to_comfy(&self) -> comfy_table::Cell {
        let mut cell = comfy_table::Cell::new(&self.text);
        if let Some(anstyle::Color::Ansi(color)) = self.style.get_fg_color() {
            cell = cell.fg(colour(color));
        }
        let effects = self.style.get_effects();
        if effects.contains(Effects::BOLD) {
            cell = cell.add_attribute(Attribute::Bold);
        }
        if effects.contains(Effects::DIMMED) {
            cell = cell.add_attribute(Attribute::Dim);
        }
        cell
    }
}

/// The 16 ANSI colours, as comfy-table (crossterm) names them.
fn colour(color: AnsiColor) -> Color {
    match color {
        AnsiColor::Black => Color::Black,
        AnsiColor::Red => Color::DarkRed,
        AnsiColor::Green => Color::DarkGreen,
        AnsiColor::Yellow => Color::DarkYellow,
        AnsiColor::Blue => Color::DarkBlue,
        AnsiColor::Magenta => Color::DarkMagenta,
        AnsiColor::Cyan => Color::DarkCyan,
        AnsiColor::White => Color::Grey,
        AnsiColor::BrightBlack => Color::DarkGrey,
        AnsiColor::BrightRed => Color::Red,
        AnsiColor::BrightGreen => Color::Green,
        AnsiColor::BrightYellow => Color::Yellow,
        AnsiColor::BrightBlue => Color::Blue,
        AnsiColor::BrightMagenta => Color::Magenta,
        AnsiColor::BrightCyan => Color::Cyan,
        AnsiColor::BrightWhite => Color::White,
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
pub(crate) struct Table {
    header: Option<Vec<Cell>>,
    rows: Vec<Vec<Cell>>,
    /// Columns left out, first to last, while the table does not fit.
    optional: Vec<usize>,
    /// Columns never wrapped.
    whole: Vec<usize>,
}

/// A rendered table, and the header names of the columns left out to fit.
pub(crate) struct Rendered {
    pub text: String,
    pub hidden: Vec<String>,
}

impl Table {
    /// A table whose first row is a bold header.
    pub(crate) fn with_header<const N: usize>(names: [&str; N]) -> Self {
        let bold = Style::new().bold();
        Self {
            header: Some(names.iter().map(|n| Cell::styled(*n, bold)).collect()),
            ..Self::default()
        }
    }

    /// Columns (by index) that may be left out when the table is wider
    /// than its width, the first named first.
    pub(crate) fn optional(mut self, columns: &[usize]) -> Self {
        self.optional = columns.to_vec();
        self
    }

    /// Columns (by index) that never wrap: ids, key ids, times.
    pub(crate) fn whole(mut self, columns: &[usize]) -> Self {
        self.whole = columns.to_vec();
        self
    }

    /// Appends a row.
    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Renders the table within `width` columns (`None`: no limit, one
    /// line per row). Columns are separated by two blanks; no line ends
    /// with blanks.
    pub(crate) fn render_within(&self, width: Option<usize>) -> Rendered {
        let all: Vec<&Vec<Cell>> = self.header.iter().chain(self.rows.iter()).collect();
        let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
        if columns == 0 {
            return Rendered {
                text: String::new(),
                hidden: Vec::new(),
            };
        }
        let mut natural = vec![0usize; columns];
        for row in &all {
            for (i, cell) in row.iter().enumerate() {
                natural[i] = natural[i].max(cell.text.width());
            }
        }
        let hidden = match width {
            Some(width) => self.to_hide(&natural, width),
            None => Vec::new(),
        };

        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        // Colour codes always; anstream removes them where they do not belong.
        table.enforce_styling();
        table.style_text_only();
        match width {
            Some(width) => {
                table
                    .set_content_arrangement(ContentArrangement::Dynamic)
                    .set_width(u16::try_from(width).unwrap_or(u16::MAX));
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        if let Some(header) = &self.header {
            table.set_header(header.iter().map(Cell::to_comfy).collect::<Vec<_>>());
        }
        for row in &self.rows {
            table.add_row(row.iter().map(Cell::to_comfy).collect::<Vec<_>>());
        }
        let last_shown = (0..columns).rev().find(|i| !hidden.contains(i));
        for (i, column) in table.column_iter_mut().enumerate() {
            let gap = if Some(i) == last_shown { 0 } else { GAP };
            column.set_padding((0, gap));
            if hidden.contains(&i) {
                column.set_constraint(ColumnConstraint::Hidden);
            } else if self.whole.contains(&i) {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
        let mut text = String::new();
        for line in table.lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        let names = hidden
            .iter()
            .filter_map(|&i| self.header.as_ref()?.get(i).map(|c| c.text.clone()))
            .collect();
        Rendered {
            text,
            hidden: names,
        }
    }

    /// The optional columns to leave out so that the others fit in
    /// `width`, counting wrappable columns at no more than [`WRAP_FLOOR`].
    fn to_hide(&self, natural: &[usize], width: usize) -> Vec<usize> {
        let needed = |hidden: &[usize]| -> usize {
            let shown: Vec<usize> = (0..natural.len()).filter(|i| !hidden.contains(i)).collect();
            let cells: usize = shown
                .iter()
                .map(|&i| {
                    if self.whole.contains(&i) {
                        natural[i]
                    } else {
                        natural[i].min(WRAP_FLOOR)
                    }
                })
                .sum();
            cells + usize::from(GAP) * shown.len().saturating_sub(1)
        };
        // Whole rows fit as they are: nothing to leave out.
        let full: usize =
            natural.iter().sum::<usize>() + usize::from(GAP) * natural.len().saturating_sub(1);
        let mut hidden = Vec::new();
        if full <= width {
            return hidden;
        }
        for &column in &self.optional {
            if needed(&hidden) <= width {
                break;
            }
            hidden.push(column);
        }
        hidden
    }
}

/// Replaces control characters (newlines, escape sequences) so that stored
/// text can neither break the layout nor drive the terminal.
pub(crate) fn sanitize(text: &str) -> String {
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
        let plain = strip(&t.render_within(None).text);
        assert_eq!(plain, "A    LONG HEADER  C\nxyz  1            end\n");
    }

    #[test]
    fn wide_characters_keep_columns_aligned() {
        let mut t = Table::with_header(["NAME", "STATUS"]);
        for name in ["billing", "計費サービス", "🚀 launch", "café"] {
            t.row(vec![name.into(), "active".into()]);
        }
        let plain = strip(&t.render_within(None).text);
        // Every STATUS starts at the same display column.
        let starts: Vec<usize> = plain
            .lines()
            .map(|l| {
                let at = l.find("active").or_else(|| l.find("STATUS")).unwrap();
                l[..at].width()
            })
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{plain}");
        assert_eq!(starts[0], "計費サービス".width() + 2, "{plain}");
    }

    #[test]
    fn a_width_hides_optional_columns_then_wraps() {
        let mut t = Table::with_header(["ID", "NAME", "EXTRA", "MORE"])
            .whole(&[0])
            .optional(&[3, 2]);
        t.row(vec![
            "0123456789abcdef0123456789abcdef".into(),
            "a name long enough to need wrapping on a narrow terminal".into(),
            "something".into(),
            "else entirely".into(),
        ]);
        let wide = t.render_within(Some(200));
        assert!(wide.hidden.is_empty());
        assert_eq!(wide.text.lines().count(), 2, "{}", wide.text);

        let narrow = t.render_within(Some(60));
        assert_eq!(narrow.hidden, ["MORE", "EXTRA"]);
        let plain = strip(&narrow.text);
        for line in plain.lines() {
            assert!(line.width() <= 60, "{line:?} in\n{plain}");
        }
        // The id is never cut; the name wraps onto more lines.
        assert!(
            plain.contains("0123456789abcdef0123456789abcdef"),
            "{plain}"
        );
        assert!(plain.lines().count() > 2, "{plain}");
        assert!(!plain.contains("EXTRA"), "{plain}");
    }

    #[test]
    fn colours_surround_the_text_only() {
        let mut t = Table::with_header(["A", "B"]);
        t.row(vec![
            Cell::styled("on", Style::new().fg_color(Some(AnsiColor::Green.into()))),
            "x".into(),
        ]);
        let text = t.render_within(None).text;
        assert!(text.contains("\x1b["), "{text:?}");
        assert_eq!(strip(&text), "A   B\non  x\n");
        assert!(text.lines().all(|l| !l.ends_with(' ')), "{text:?}");
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
