//! GitHub Actions workflow commands and file commands.

use super::*;

/// Escape a command's message, as the Actions toolkit does: `%`, CR and LF.
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a command property value: the data escapes plus `:` and `,`, which would
/// otherwise end the property list or the property.
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::name k=v,k2=v2::message` plus a newline. Property keys are ours, never user data.
pub fn command(name: &str, properties: &[(&str, String)], message: &str) -> String {
    let props = properties
        .iter()
        .map(|(k, v)| format!("{k}={}", escape_property(v)))
        .collect::<Vec<_>>()
        .join(",");
    let sep = if props.is_empty() { "" } else { " " };
    format!("::{name}{sep}{props}::{}\n", escape_data(message))
}

/// The one line that must carry a token in clear: the runner swallows it and masks the
/// value in every later log line of the job.
pub(crate) fn add_mask(token: &Token) -> String {
    command("add-mask", &[], token.expose())
}

pub fn group(title: &str) -> String {
    command("group", &[], title)
}

pub fn end_group() -> String {
    "::endgroup::\n".to_string()
}

/// An error annotation on a file position, shown on the PR diff and the run page.
pub fn error(file: &Path, line: usize, col: usize, message: &str) -> String {
    let file = file.to_string_lossy().replace('\\', "/");
    command(
        "error",
        &[
            ("file", file),
            ("line", line.to_string()),
            ("col", col.to_string()),
        ],
        message,
    )
}

/// Ordinary log text, made inert: the runner reads a line as a command when it starts
/// with `::` after leading blanks, and (legacy syntax) when `##[` appears anywhere. Each
/// line gets `prefix` (which must not start with a blank or `:`) and `##[` is broken up.
pub fn plain(prefix: &str, text: &str) -> String {
    let mut out = String::new();
    for line in split_lines(text) {
        out.push_str(prefix);
        out.push_str(&line.replace("##[", "# #["));
        out.push('\n');
    }
    out
}

/// One entry for `$GITHUB_OUTPUT`: `key=value`, or the heredoc form for a value with a
/// line break, with a delimiter that does not occur in the value.
pub(crate) fn output_entry(key: &str, value: &str) -> String {
    if !value.contains(['\n', '\r']) {
        return format!("{key}={value}\n");
    }
    let delimiter = heredoc_delimiter(value);
    format!("{key}<<{delimiter}\n{value}\n{delimiter}\n")
}

/// `GITOPS_CANARY_EOF`, or with a numeric suffix when the value contains it (the runner
/// ends the value at the first line equal to the delimiter).
pub(crate) fn heredoc_delimiter(value: &str) -> String {
    let base = "GITOPS_CANARY_EOF";
    if !value.contains(base) {
        return base.to_string();
    }
    (1u64..)
        .map(|n| format!("{base}_{n}"))
        .find(|d| !value.contains(d.as_str()))
        .unwrap_or_else(|| base.to_string())
}

/// GitHub Actions: workflow commands and log lines on stdout (where the runner reads
/// commands), outputs appended to `$GITHUB_OUTPUT`, tables to `$GITHUB_STEP_SUMMARY`.
pub struct GitHubActions<W: Write + Send> {
    out: W,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    tokens: Vec<Token>,
    group_open: bool,
    warned: bool,
}

impl<W: Write + Send> GitHubActions<W> {
    pub fn new(out: W, output_file: Option<PathBuf>, summary_file: Option<PathBuf>) -> Self {
        GitHubActions {
            out,
            output_file,
            summary_file,
            tokens: Vec::new(),
            group_open: false,
            warned: false,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, text: &str) -> Result<(), ReportError> {
        emit(&mut self.out, "stdout", &self.tokens, text)
    }

    /// A runner too old for file commands: say so once instead of failing the run.
    fn warn_missing(&mut self, var: &str) -> Result<(), ReportError> {
        if self.warned {
            return Ok(());
        }
        self.warned = true;
        let msg = format!("{var} is not set; gitops-canary outputs and summary are not recorded");
        self.emit(&github::command("warning", &[], &msg))
    }
}

impl<W: Write + Send> Report for GitHubActions<W> {
    fn mask(&mut self, token: &Token) -> Result<(), ReportError> {
        if remember(&mut self.tokens, token) {
            // Written raw: scrubbing this line would defeat it.
            let line = github::add_mask(token);
            self.out
                .write_all(line.as_bytes())
                .and_then(|()| self.out.flush())
                .map_err(|source| ReportError::Stream {
                    stream: "stdout",
                    source,
                })?;
        }
        Ok(())
    }
    fn stage_started(&mut self, stage: &str) -> Result<(), ReportError> {
        self.emit(&github::plain("==> ", stage))
    }
    fn progress(&mut self, message: &str) -> Result<(), ReportError> {
        self.emit(&github::plain("  | ", message))
    }
    fn stage_finished(&mut self, stage: &str, outcome: Outcome) -> Result<(), ReportError> {
        self.emit(&github::plain(
            "<== ",
            &format!("{stage}: {}", outcome.as_str()),
        ))
    }
    fn group(&mut self, name: &str) -> Result<(), ReportError> {
        self.end_group()?;
        self.group_open = true;
        self.emit(&github::group(name))
    }
    fn end_group(&mut self) -> Result<(), ReportError> {
        if !self.group_open {
            return Ok(());
        }
        self.group_open = false;
        self.emit(&github::end_group())
    }
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ReportError> {
        let Some(path) = self.output_file.clone() else {
            return self.warn_missing("GITHUB_OUTPUT");
        };
        let entry = github::output_entry(key.name(), &redacted(&self.tokens, value));
        append(&path, "GITHUB_OUTPUT", &entry)
    }
    fn summary_table(&mut self, table: &Table) -> Result<(), ReportError> {
        let Some(path) = self.summary_file.clone() else {
            return self.warn_missing("GITHUB_STEP_SUMMARY");
        };
        let md = markdown::table(table);
        append(&path, "GITHUB_STEP_SUMMARY", &redacted(&self.tokens, &md))
    }
    fn error_at(
        &mut self,
        file: &Path,
        line: usize,
        col: usize,
        message: &str,
    ) -> Result<(), ReportError> {
        self.emit(&github::error(file, line, col, message))
    }
    fn finish(&mut self) -> Result<(), ReportError> {
        self.end_group()
    }
}
