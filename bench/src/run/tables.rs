//! The markdown every scenario prints: a [`Table`] writer (header, alignment row, rows, the
//! blank line after it) and the cell formats the tables share (client statuses, MiB,
//! per-round values, latency quantiles).

use std::fmt::{Display, Write as _};

use crate::load::Part;

/// A column of a [`Table`]: its header and whether its cells are right-aligned (numbers).
pub(crate) struct Column {
    name: String,
    right: bool,
}

/// A left-aligned column (text).
pub(crate) fn left(name: impl Into<String>) -> Column {
    Column {
        name: name.into(),
        right: false,
    }
}

/// A right-aligned column (numbers).
pub(crate) fn right(name: impl Into<String>) -> Column {
    Column {
        name: name.into(),
        right: true,
    }
}

/// A markdown table, written whole by [`Table::write`].
pub(crate) struct Table {
    header: String,
    alignments: String,
    rows: String,
}

impl Table {
    pub(crate) fn new(columns: impl IntoIterator<Item = Column>) -> Self {
        let columns: Vec<Column> = columns.into_iter().collect();
        let mut alignments = "|".to_owned();
        for column in &columns {
            alignments.push_str(if column.right { "---:|" } else { "---|" });
        }
        Self {
            header: markdown_row(columns.iter().map(|c| &c.name as &dyn Display)),
            alignments,
            rows: String::new(),
        }
    }

    /// The two-column table of named figures (`| figure | value |`).
    pub(crate) fn figures() -> Self {
        Self::new([left("figure"), left("value")])
    }

    pub(crate) fn row(&mut self, cells: &[&dyn Display]) {
        self.rows.push_str(&markdown_row(cells.iter().copied()));
        self.rows.push('\n');
    }

    /// Writes the table and the blank line that ends it.
    pub(crate) fn write(self, out: &mut String) {
        let _ = writeln!(out, "{}\n{}\n{}", self.header, self.alignments, self.rows);
    }
}

fn markdown_row<'a>(cells: impl IntoIterator<Item = &'a dyn Display>) -> String {
    let mut row = "|".to_owned();
    for cell in cells {
        let text = cell.to_string();
        if text.is_empty() {
            row.push_str(" |");
        } else {
            let _ = write!(row, " {text} |");
        }
    }
    row
}

/// The statuses of `part`'s answers and the reasons of its requests without one.
pub(crate) fn statuses(part: &Part) -> String {
    let mut items: Vec<String> = part
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    for (e, n) in &part.errors {
        items.push(format!("no answer ({e}): {n}"));
    }
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

pub(crate) fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1_048_576.0)
}

/// The verdict of an invariant.
pub(crate) fn pass_or_fail(held: bool) -> &'static str {
    if held { "PASS" } else { "FAIL" }
}

/// The verdict of a target.
pub(crate) fn met_or_not(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// One value per round, in round order, with `digits` decimals.
pub(crate) fn each_round(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Latency quantiles of `part` in milliseconds, with `digits` decimals: `p50 / p99 / ...`.
pub(crate) fn quantiles_ms(part: &Part, quantiles: &[f64], digits: usize) -> String {
    quantiles
        .iter()
        .map(|q| format!("{:.digits$}", part.ms(*q)))
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_its_header_alignments_rows_and_a_blank_line() {
        let mut table = Table::new([left("name"), right("count")]);
        table.row(&[&"a", &1]);
        table.row(&[&format!("b{}", 2), &22.5]);
        table.row(&[&"", &3]);
        let mut out = String::new();
        table.write(&mut out);
        assert_eq!(
            out,
            "| name | count |\n|---|---:|\n| a | 1 |\n| b2 | 22.5 |\n| | 3 |\n\n"
        );
    }

    #[test]
    fn each_round_lists_the_values_in_round_order() {
        assert_eq!(each_round(&[1.0, 2.25, 3.5], 1), "1.0 / 2.2 / 3.5");
    }
}
