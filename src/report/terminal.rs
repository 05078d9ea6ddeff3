//! Plain text for a person at a terminal.

use super::*;

pub fn stage_started(stage: &str) -> String {
    plain("==> ", stage)
}

pub fn progress(message: &str) -> String {
    plain("    ", message)
}

pub fn stage_finished(stage: &str, outcome: Outcome) -> String {
    plain("<== ", &format!("{stage}: {}", outcome.as_str()))
}

pub fn group(name: &str) -> String {
    plain("--- ", name)
}

pub fn output(key: OutputKey, value: &str) -> String {
    plain("", &format!("{}: {value}", key.name()))
}

/// `file:line:col: message`, the shape editors and terminals turn into links.
pub fn error(file: &Path, line: usize, col: usize, message: &str) -> String {
    plain(
        "error: ",
        &format!("{}:{line}:{col}: {message}", file.display()),
    )
}

/// Columns padded to the widest cell; line breaks in cells become spaces.
pub fn table(t: &Table) -> String {
    let width = t.width();
    let clean = |s: &str| neutralise(&s.replace(['\n', '\r'], " "));
    let all: Vec<Vec<String>> = std::iter::once(&t.columns)
        .chain(&t.rows)
        .map(|r| (0..width).map(|i| clean(Table::cell(r, i))).collect())
        .collect();
    let widths: Vec<usize> = (0..width)
        .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    if !t.title.is_empty() {
        out.push_str(&format!("{}\n", clean(&t.title)));
    }
    for r in &all {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn plain(prefix: &str, text: &str) -> String {
    super::gitlab::plain(prefix, text)
}

/// Plain lines for a person, on stderr so stdout stays free for a command's own result.
pub struct Terminal<W: Write + Send> {
    out: W,
    tokens: Vec<Token>,
}

impl<W: Write + Send> Terminal<W> {
    pub fn new(out: W) -> Self {
        Terminal {
            out,
            tokens: Vec::new(),
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, text: &str) -> Result<(), ReportError> {
        emit(&mut self.out, "stderr", &self.tokens, text)
    }
}

impl<W: Write + Send> Report for Terminal<W> {
    fn mask(&mut self, token: &Token) -> Result<(), ReportError> {
        remember(&mut self.tokens, token);
        Ok(())
    }
    fn stage_started(&mut self, stage: &str) -> Result<(), ReportError> {
        self.emit(&terminal::stage_started(stage))
    }
    fn progress(&mut self, message: &str) -> Result<(), ReportError> {
        self.emit(&terminal::progress(message))
    }
    fn stage_finished(&mut self, stage: &str, outcome: Outcome) -> Result<(), ReportError> {
        self.emit(&terminal::stage_finished(stage, outcome))
    }
    fn group(&mut self, name: &str) -> Result<(), ReportError> {
        self.emit(&terminal::group(name))
    }
    fn end_group(&mut self) -> Result<(), ReportError> {
        Ok(())
    }
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ReportError> {
        self.emit(&terminal::output(key, value))
    }
    fn summary_table(&mut self, table: &Table) -> Result<(), ReportError> {
        self.emit(&terminal::table(table))
    }
    fn error_at(
        &mut self,
        file: &Path,
        line: usize,
        col: usize,
        message: &str,
    ) -> Result<(), ReportError> {
        self.emit(&terminal::error(file, line, col, message))
    }
    fn finish(&mut self) -> Result<(), ReportError> {
        Ok(())
    }
}
