//! The one table renderer behind every column of text techctl prints
//! (`status`, `keys list`, the plan, the cost estimate): columns as wide as
//! their widest cell, two spaces apart, numbers aligned on the right, no
//! trailing blanks.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
    indent: usize,
}

impl Table {
    /// A table whose first row is `header`.
    pub fn new(header: &[&str]) -> Table {
        let mut table = Table::default();
        table.row(header.iter().map(|h| h.to_string()));
        table
    }

    /// A table without a header.
    pub fn headless() -> Table {
        Table::default()
    }

    /// Every line starts with `spaces` blanks.
    pub fn indent(mut self, spaces: usize) -> Table {
        self.indent = spaces;
        self
    }

    /// Column `column` (from 0) is aligned as `align`.
    pub fn align(mut self, column: usize, align: Align) -> Table {
        self.right.retain(|c| *c != column);
        if align == Align::Right {
            self.right.push(column);
        }
        self
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = impl Into<String>>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// One line per row, without line ends.
    pub fn lines(&self) -> Vec<String> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        self.rows
            .iter()
            .map(|row| {
                let mut line = " ".repeat(self.indent);
                for (c, cell) in row.iter().enumerate() {
                    if c > 0 {
                        line.push_str("  ");
                    }
                    let pad = " ".repeat(widths[c] - cell.chars().count());
                    if self.right.contains(&c) {
                        line.push_str(&pad);
                        line.push_str(cell);
                    } else {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                }
                line.trim_end().to_string()
            })
            .collect()
    }

    /// The table as text, each line ended.
    pub fn render(&self) -> String {
        self.lines().into_iter().map(|l| l + "\n").collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_lines_end_without_blanks() {
        let mut table = Table::new(&["KID", "ROLE", "UNTIL"]).indent(2);
        table.row(["k-1", "signing", ""]);
        table.row(["key-2", "published", "in 1h"]);
        assert_eq!(
            table.render(),
            "  KID    ROLE       UNTIL\n  k-1    signing\n  key-2  published  in 1h\n"
        );
    }

    #[test]
    fn a_right_aligned_column_lines_numbers_up_and_width_counts_characters() {
        let mut table = Table::headless().align(1, Align::Right);
        table.row(["NAT → internet", "$36.50", "a month"]);
        table.row(["Total", "$112.00", ""]);
        assert_eq!(
            table.lines(),
            [
                "NAT → internet   $36.50  a month",
                "Total           $112.00"
            ]
        );
    }
}
