//! GitHub-flavoured Markdown for `$GITHUB_STEP_SUMMARY`.

use super::*;

/// A pipe in a cell would split it; a line break would end the table row.
pub(crate) fn escape_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
}

pub fn table(t: &Table) -> String {
    let width = t.width();
    let mut out = String::new();
    if !t.title.is_empty() {
        out.push_str(&format!("### {}\n\n", t.title.replace(['\n', '\r'], " ")));
    }
    if width == 0 {
        return out;
    }
    let row = |cells: &[String]| {
        let cells: Vec<String> = (0..width)
            .map(|i| escape_cell(Table::cell(cells, i)))
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    out.push_str(&row(&t.columns));
    out.push_str(&format!("|{}\n", " --- |".repeat(width)));
    for r in &t.rows {
        out.push_str(&row(r));
    }
    out.push('\n');
    out
}
