//! GitLab job-log sections and the dotenv report.

use super::*;

/// GitLab refuses dotenv reports of 5 KB or more.
pub(crate) const DOTENV_LIMIT: usize = 5 * 1024 - 1;

/// A section name may hold letters, digits, `_`, `.` and `-`; anything else becomes `_`.
pub(crate) fn section_name(title: &str, seq: usize) -> String {
    let mut name: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    // A sequence number keeps two sections with the same title apart.
    name.push_str(&format!("_{seq}"));
    name
}

pub fn section_start(unix: u64, name: &str, header: &str, collapsed: bool) -> String {
    let opts = if collapsed { "[collapsed=true]" } else { "" };
    format!(
        "\x1b[0Ksection_start:{unix}:{name}{opts}\r\x1b[0K{}\n",
        neutralise(header).replace('\n', " ")
    )
}

pub fn section_end(unix: u64, name: &str) -> String {
    format!("\x1b[0Ksection_end:{unix}:{name}\r\x1b[0K\n")
}

/// Log text with terminal control characters made visible, so a value from a
/// repository cannot forge a section marker or rewrite the line before it.
pub fn plain(prefix: &str, text: &str) -> String {
    let mut out = String::new();
    for line in split_lines(text) {
        out.push_str(prefix);
        out.push_str(&neutralise(line));
        out.push('\n');
    }
    out
}

/// `KEY=VALUE` lines in key order. GitLab's parser takes no blank lines, comments,
/// quoting or multi-line values, and the file must stay under 5 KB.
pub fn dotenv(values: &BTreeMap<OutputKey, String>) -> Result<String, ReportError> {
    let mut out = String::new();
    for (key, value) in values {
        if value.contains(['\n', '\r']) {
            return Err(ReportError::MultilineDotenv {
                key: key.dotenv_name(),
            });
        }
        out.push_str(&format!("{}={}\n", key.dotenv_name(), value));
    }
    if out.len() > DOTENV_LIMIT {
        return Err(ReportError::DotenvTooLarge {
            size: out.len(),
            limit: DOTENV_LIMIT,
        });
    }
    Ok(out)
}

/// GitLab CI: collapsible sections on stdout and a dotenv report (`artifacts:reports:dotenv`)
/// rewritten whole on every output, so it is valid whenever the job stops.
pub struct GitLab<W: Write + Send> {
    out: W,
    dotenv: PathBuf,
    clock: fn() -> u64,
    tokens: Vec<Token>,
    values: BTreeMap<OutputKey, String>,
    sections: Vec<String>,
    seq: usize,
}

impl<W: Write + Send> GitLab<W> {
    pub fn new(out: W, dotenv: PathBuf, clock: fn() -> u64) -> Self {
        GitLab {
            out,
            dotenv,
            clock,
            tokens: Vec::new(),
            values: BTreeMap::new(),
            sections: Vec::new(),
            seq: 0,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, text: &str) -> Result<(), ReportError> {
        emit(&mut self.out, "stdout", &self.tokens, text)
    }
}

impl<W: Write + Send> Report for GitLab<W> {
    /// GitLab has no run-time masking; the token is only scrubbed from our own output.
    fn mask(&mut self, token: &Token) -> Result<(), ReportError> {
        remember(&mut self.tokens, token);
        Ok(())
    }
    fn stage_started(&mut self, stage: &str) -> Result<(), ReportError> {
        self.emit(&gitlab::plain("==> ", stage))
    }
    fn progress(&mut self, message: &str) -> Result<(), ReportError> {
        self.emit(&gitlab::plain("  | ", message))
    }
    fn stage_finished(&mut self, stage: &str, outcome: Outcome) -> Result<(), ReportError> {
        self.emit(&gitlab::plain(
            "<== ",
            &format!("{stage}: {}", outcome.as_str()),
        ))
    }
    fn group(&mut self, name: &str) -> Result<(), ReportError> {
        // Same contract as GitHub: one group at a time.
        self.end_group()?;
        self.seq += 1;
        let section = gitlab::section_name(name, self.seq);
        let line = gitlab::section_start((self.clock)(), &section, name, true);
        self.sections.push(section);
        self.emit(&line)
    }
    fn end_group(&mut self) -> Result<(), ReportError> {
        let Some(section) = self.sections.pop() else {
            return Ok(());
        };
        let line = gitlab::section_end((self.clock)(), &section);
        self.emit(&line)
    }
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ReportError> {
        let value = redacted(&self.tokens, value);
        let mut values = self.values.clone();
        values.insert(key, value);
        let text = gitlab::dotenv(&values)?;
        std::fs::write(&self.dotenv, text).map_err(|source| ReportError::File {
            what: "dotenv report",
            path: self.dotenv.clone(),
            source,
        })?;
        self.values = values;
        Ok(())
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
        // Red, like GitLab's own "ERROR:" lines; the text itself is neutralised.
        let text = terminal::error(file, line, col, message);
        self.emit(&format!("\x1b[31;1m{}\x1b[0m\n", text.trim_end()))
    }
    fn finish(&mut self) -> Result<(), ReportError> {
        while !self.sections.is_empty() {
            self.end_group()?;
        }
        Ok(())
    }
}
