//! Progress, outputs and summaries in the shape each CI system understands.
//!
//! The app loop talks to one small trait, [`Report`]; [`detect`] picks the implementation
//! from the environment: [`GitHubActions`] (workflow commands on stdout, `$GITHUB_OUTPUT`,
//! `$GITHUB_STEP_SUMMARY`), [`GitLab`] (collapsible log sections and a dotenv report that
//! later jobs read as variables), [`Json`] (one document on stdout at the end) or
//! [`Terminal`] (plain lines on stderr for a person). Everything a CI system parses is built
//! by pure functions in [`github`], [`gitlab`], [`markdown`] and [`terminal`], which the unit
//! tests pin byte for byte; the structs below only append those strings to files and streams.
//!
//! Tokens never leave through a report: every reporter scrubs the tokens it was given with
//! [`Report::mask`] from everything it writes, and on GitHub the runner is also told to mask
//! them (`::add-mask::`) so that a later step echoing one is hidden too. Text from the outside
//! world (Ingress names, PR titles, error chains) is neutralised before it reaches a job log,
//! so it cannot smuggle in a workflow command or a section marker.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub mod console;
pub mod logging;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    #[default]
    Human,
    Json,
}
use crate::secret::{self, Token};

/// What can go wrong while reporting. Each is a failed operation (exit 1): the run did its
/// work but a CI system would not see the result.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot append to the {what} file {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the report to {stream}: {source}")]
    Stream {
        stream: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("output {key} has a multi-line value, which a GitLab dotenv report cannot hold")]
    MultilineDotenv { key: String },
    #[error("the dotenv report would be {size} bytes; GitLab accepts at most {limit}")]
    DotenvTooLarge { size: usize, limit: usize },
    #[error("cannot serialise the JSON report: {source}")]
    Json {
        #[source]
        source: serde_json::Error,
    },
}

impl crate::fault::Classify for ReportError {
    fn is_bad_input(&self) -> bool {
        false
    }
}

/// The values a run hands to the steps after it. The names are the `outputs:` of
/// `action.yml` (a test keeps them equal) and, upper-cased, the GitLab dotenv variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputKey {
    /// The stage the run reached, e.g. `2/4`.
    Stage,
    /// The canary weight now in the repository.
    Weight,
    /// The pull or merge request opened or waited on, if any.
    PullRequestUrl,
    /// Its number (GitHub) or iid (GitLab).
    PullRequestNumber,
    /// What this step did to it: `created`, `updated`, `merged` or `none`.
    PullRequestOperation,
    /// Its branch.
    Branch,
    /// Its head commit (or the commit pushed directly to the base).
    HeadSha,
    /// One word for where the rollout stands after the step: see [`RunStatus`].
    Status,
}

impl OutputKey {
    pub const ALL: [OutputKey; 8] = [
        OutputKey::Stage,
        OutputKey::Weight,
        OutputKey::PullRequestUrl,
        OutputKey::PullRequestNumber,
        OutputKey::PullRequestOperation,
        OutputKey::Branch,
        OutputKey::HeadSha,
        OutputKey::Status,
    ];

    /// The GitHub Actions output name.
    pub fn name(self) -> &'static str {
        match self {
            OutputKey::Stage => "stage",
            OutputKey::Weight => "weight",
            OutputKey::PullRequestUrl => "pull-request-url",
            OutputKey::PullRequestNumber => "pull-request-number",
            OutputKey::PullRequestOperation => "pull-request-operation",
            OutputKey::Branch => "branch",
            OutputKey::HeadSha => "head-sha",
            OutputKey::Status => "status",
        }
    }

    /// The GitLab dotenv variable, e.g. `GITOPS_CANARY_PULL_REQUEST_URL`.
    pub fn dotenv_name(self) -> String {
        format!(
            "GITOPS_CANARY_{}",
            self.name().replace('-', "_").to_ascii_uppercase()
        )
    }
}

/// The `status` output: where the rollout stands after the step, one word. The one list of
/// values: `action.yml` documents exactly these (a test holds them together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// A step was taken and the rollout goes on.
    Progressing,
    /// Nothing to do until something outside happens (a review, a sync, a timer).
    Waiting,
    /// Every stage passed and the stable runs the canary's version.
    Promoted,
    /// Every stage passed; promotion is off, so the canary keeps its weight.
    Complete,
    /// The rollout was rolled back to weight 0 (or the rollback is on its way).
    RolledBack,
    /// It cannot go on: an error, or a state that needs a person.
    Failed,
    /// The job was cancelled (SIGINT/SIGTERM) before the step ended.
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Progressing,
        RunStatus::Waiting,
        RunStatus::Promoted,
        RunStatus::Complete,
        RunStatus::RolledBack,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Progressing => "progressing",
            RunStatus::Waiting => "waiting",
            RunStatus::Promoted => "promoted",
            RunStatus::Complete => "complete",
            RunStatus::RolledBack => "rolled-back",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// How a stage ended for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Passed,
    /// Nothing failed, but the stage needs something outside this run (a merge, time).
    Waiting,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Waiting => "waiting",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// A table for the run summary. Rows may be shorter than `columns` (blank cells).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Self {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(mut self, cells: impl IntoIterator<Item = S>) -> Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The number of cells every rendered row gets: no cell is dropped.
    fn width(&self) -> usize {
        self.rows
            .iter()
            .map(Vec::len)
            .chain(std::iter::once(self.columns.len()))
            .max()
            .unwrap_or(0)
    }

    fn cell(cells: &[String], i: usize) -> &str {
        cells.get(i).map(String::as_str).unwrap_or("")
    }
}

/// What the app loop tells the outside world. Calls are cheap and may come in any order;
/// `finish` closes what is open and flushes what is buffered.
pub trait Report: Send {
    /// Register a secret: it is scrubbed from everything written after this call (and, on
    /// GitHub, masked by the runner). Call it for every token before anything else.
    fn mask(&mut self, token: &Token) -> Result<(), ReportError>;
    fn stage_started(&mut self, stage: &str) -> Result<(), ReportError>;
    fn progress(&mut self, message: &str) -> Result<(), ReportError>;
    fn stage_finished(&mut self, stage: &str, outcome: Outcome) -> Result<(), ReportError>;
    /// Open a foldable block of log lines; an open one is closed first (GitHub cannot nest).
    fn group(&mut self, name: &str) -> Result<(), ReportError>;
    fn end_group(&mut self) -> Result<(), ReportError>;
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ReportError>;
    fn summary_table(&mut self, table: &Table) -> Result<(), ReportError>;
    /// A problem at a place in a repository file (1-based line and column).
    fn error_at(
        &mut self,
        file: &Path,
        line: usize,
        col: usize,
        message: &str,
    ) -> Result<(), ReportError>;
    fn finish(&mut self) -> Result<(), ReportError>;
}

/// Which reporter fits the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Terminal,
    Json,
    GitHubActions,
    GitLab,
}

/// The dotenv report path when `GITOPS_CANARY_DOTENV` is not set.
pub const DEFAULT_DOTENV: &str = "gitops-canary.env";

/// Pick a reporter from environment variables (`env` looks one up). A CI system wins over
/// `--output`: there the outputs and summaries are the machine-readable interface, and a
/// JSON document on stdout would be interleaved with workflow commands.
pub fn choose(env: impl Fn(&str) -> Option<String>, output: Output) -> Kind {
    let is_true = |name: &str| env(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is_true("GITHUB_ACTIONS") {
        Kind::GitHubActions
    } else if is_true("GITLAB_CI") {
        Kind::GitLab
    } else if output == Output::Json {
        Kind::Json
    } else {
        Kind::Terminal
    }
}

/// The reporter for this process: [`choose`] over the real environment, with the file
/// paths the CI system gave us.
pub fn detect(output: Output) -> Box<dyn Report> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match choose(env, output) {
        Kind::GitHubActions => Box::new(GitHubActions::new(
            std::io::stdout(),
            env("GITHUB_OUTPUT").map(PathBuf::from),
            env("GITHUB_STEP_SUMMARY").map(PathBuf::from),
        )),
        Kind::GitLab => Box::new(GitLab::new(
            std::io::stdout(),
            PathBuf::from(env("GITOPS_CANARY_DOTENV").unwrap_or_else(|| DEFAULT_DOTENV.into())),
            unix_now,
        )),
        Kind::Json => Box::new(Json::new(std::io::stdout())),
        Kind::Terminal => Box::new(Terminal::new(std::io::stderr())),
    }
}

/// The CI reporter when running under GitHub Actions or GitLab CI, else `None`: on a terminal
/// and with `--output json` the commands print their own results.
pub fn ci() -> Option<Box<dyn Report>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match choose(env, Output::Human) {
        Kind::GitHubActions | Kind::GitLab => Some(detect(Output::Human)),
        Kind::Json | Kind::Terminal => None,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// CI inputs arrive as empty variables.

/// The names of `GITOPS_CANARY_*` variables whose value is empty.
///
/// An action input left blank still becomes an environment variable, set to "", and GitLab
/// does the same for a variable declared without a value. clap takes an empty variable as a
/// given, empty value (`--repo ""` fails), so the rule is: an empty `GITOPS_CANARY_*`
/// variable means "not set", and [`unset_empty_inputs`] removes them before parsing.
pub fn empty_inputs(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<OsString> {
    vars.into_iter()
        .filter(|(name, value)| {
            value.is_empty()
                && name
                    .to_str()
                    .is_some_and(|n| n.starts_with("GITOPS_CANARY_"))
        })
        .map(|(name, _)| name)
        .collect()
}

/// Apply the empty-means-unset rule to this process. Call it first in `main`, before any
/// thread exists (changing the environment races with threads reading it) and before clap
/// builds the command (clap reads the variables then).
pub fn unset_empty_inputs() {
    for name in empty_inputs(std::env::vars_os()) {
        std::env::remove_var(name);
    }
}

// ---------------------------------------------------------------------------------------
// Pure rendering.

/// GitHub Actions workflow commands and file commands.
pub mod github {
    use super::*;

    /// Escape a command's message, as the Actions toolkit does: `%`, CR and LF.
    pub fn escape_data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }

    /// Escape a command property value: the data escapes plus `:` and `,`, which would
    /// otherwise end the property list or the property.
    pub fn escape_property(s: &str) -> String {
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
    pub fn add_mask(token: &Token) -> String {
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
    pub fn output_entry(key: &str, value: &str) -> String {
        if !value.contains(['\n', '\r']) {
            return format!("{key}={value}\n");
        }
        let delimiter = heredoc_delimiter(value);
        format!("{key}<<{delimiter}\n{value}\n{delimiter}\n")
    }

    /// `GITOPS_CANARY_EOF`, or with a numeric suffix when the value contains it (the runner
    /// ends the value at the first line equal to the delimiter).
    pub fn heredoc_delimiter(value: &str) -> String {
        let base = "GITOPS_CANARY_EOF";
        if !value.contains(base) {
            return base.to_string();
        }
        (1u64..)
            .map(|n| format!("{base}_{n}"))
            .find(|d| !value.contains(d.as_str()))
            .unwrap_or_else(|| base.to_string())
    }
}

/// GitHub-flavoured Markdown for `$GITHUB_STEP_SUMMARY`.
pub mod markdown {
    use super::*;

    /// A pipe in a cell would split it; a line break would end the table row.
    pub fn escape_cell(s: &str) -> String {
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
}

/// GitLab job-log sections and the dotenv report.
pub mod gitlab {
    use super::*;

    /// GitLab refuses dotenv reports of 5 KB or more.
    pub const DOTENV_LIMIT: usize = 5 * 1024 - 1;

    /// A section name may hold letters, digits, `_`, `.` and `-`; anything else becomes `_`.
    pub fn section_name(title: &str, seq: usize) -> String {
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
}

/// Plain text for a person at a terminal.
pub mod terminal {
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
}

/// Lines of `text`, treating CRLF, LF and a lone CR as breaks; at least one line.
fn split_lines(text: &str) -> Vec<&str> {
    // A message ending in a newline is one line, not two.
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'))
        .collect();
    if lines.is_empty() {
        vec![""]
    } else {
        lines
    }
}

/// Control characters other than tab shown as `^X`, so data cannot move the cursor, clear
/// lines or open a GitLab section.
fn neutralise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push(c),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            '\u{7f}' => out.push_str("^?"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Writers.

/// Scrub known tokens, then write to the stream.
fn emit(
    out: &mut dyn Write,
    stream: &'static str,
    tokens: &[Token],
    text: &str,
) -> Result<(), ReportError> {
    let refs: Vec<&Token> = tokens.iter().collect();
    out.write_all(secret::redact(text, &refs).as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| ReportError::Stream { stream, source })
}

fn append(path: &Path, what: &'static str, text: &str) -> Result<(), ReportError> {
    let err = |source| ReportError::File {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

fn redacted(tokens: &[Token], text: &str) -> String {
    let refs: Vec<&Token> = tokens.iter().collect();
    secret::redact(text, &refs)
}

fn remember(tokens: &mut Vec<Token>, token: &Token) -> bool {
    if token.is_empty() || tokens.contains(token) {
        return false;
    }
    tokens.push(token.clone());
    true
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

/// The machine-readable report: everything collected, one JSON document on `finish`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct JsonDocument {
    pub stages: Vec<JsonStage>,
    /// Progress that came outside any stage.
    pub messages: Vec<String>,
    pub outputs: BTreeMap<&'static str, String>,
    pub tables: Vec<Table>,
    pub errors: Vec<JsonError>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonStage {
    pub name: String,
    pub outcome: Option<Outcome>,
    pub progress: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl JsonDocument {
    pub fn render(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self)
            .map(|s| s + "\n")
            .map_err(|source| ReportError::Json { source })
    }
}

pub struct Json<W: Write + Send> {
    out: W,
    tokens: Vec<Token>,
    doc: JsonDocument,
    finished: bool,
}

impl<W: Write + Send> Json<W> {
    pub fn new(out: W) -> Self {
        Json {
            out,
            tokens: Vec::new(),
            doc: JsonDocument::default(),
            finished: false,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// Values are scrubbed as they arrive: a token inside the serialised text could be
    /// escaped differently and slip past a later search.
    fn clean(&self, s: &str) -> String {
        redacted(&self.tokens, s)
    }

    fn open_stage(&mut self) -> Option<&mut JsonStage> {
        self.doc.stages.last_mut().filter(|s| s.outcome.is_none())
    }
}

impl<W: Write + Send> Report for Json<W> {
    fn mask(&mut self, token: &Token) -> Result<(), ReportError> {
        remember(&mut self.tokens, token);
        Ok(())
    }
    fn stage_started(&mut self, stage: &str) -> Result<(), ReportError> {
        let name = self.clean(stage);
        self.doc.stages.push(JsonStage {
            name,
            outcome: None,
            progress: Vec::new(),
        });
        Ok(())
    }
    fn progress(&mut self, message: &str) -> Result<(), ReportError> {
        let message = self.clean(message);
        match self.open_stage() {
            Some(stage) => stage.progress.push(message),
            None => self.doc.messages.push(message),
        }
        Ok(())
    }
    fn stage_finished(&mut self, stage: &str, outcome: Outcome) -> Result<(), ReportError> {
        let name = self.clean(stage);
        match self.doc.stages.iter_mut().rev().find(|s| s.name == name) {
            Some(s) => s.outcome = Some(outcome),
            None => self.doc.stages.push(JsonStage {
                name,
                outcome: Some(outcome),
                progress: Vec::new(),
            }),
        }
        Ok(())
    }
    fn group(&mut self, _name: &str) -> Result<(), ReportError> {
        Ok(())
    }
    fn end_group(&mut self) -> Result<(), ReportError> {
        Ok(())
    }
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ReportError> {
        let value = self.clean(value);
        self.doc.outputs.insert(key.name(), value);
        Ok(())
    }
    fn summary_table(&mut self, table: &Table) -> Result<(), ReportError> {
        let t = Table {
            title: self.clean(&table.title),
            columns: table.columns.iter().map(|c| self.clean(c)).collect(),
            rows: table
                .rows
                .iter()
                .map(|r| r.iter().map(|c| self.clean(c)).collect())
                .collect(),
        };
        self.doc.tables.push(t);
        Ok(())
    }
    fn error_at(
        &mut self,
        file: &Path,
        line: usize,
        col: usize,
        message: &str,
    ) -> Result<(), ReportError> {
        let e = JsonError {
            file: self.clean(&file.to_string_lossy()),
            line,
            col,
            message: self.clean(message),
        };
        self.doc.errors.push(e);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), ReportError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let text = self.doc.render()?;
        emit(&mut self.out, "stdout", &self.tokens, &text)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ghp_0123456789abcdefSECRET";

    /// One scripted run, the same for every reporter.
    fn script(r: &mut dyn Report) -> Result<(), ReportError> {
        r.mask(&Token::new(TOKEN))?;
        r.stage_started("stage 1/4: weight 10")?;
        r.group("edit manifests")?;
        r.progress("set canary-weight 0 -> 10 in apps/web/ingress.yaml")?;
        r.progress(&format!(
            "push https://x-access-token:{TOKEN}@github.com/o/r"
        ))?;
        r.end_group()?;
        r.output(OutputKey::Stage, "1/4")?;
        r.output(OutputKey::Weight, "10")?;
        r.output(OutputKey::PullRequestUrl, "https://github.com/o/r/pull/7")?;
        r.stage_finished("stage 1/4: weight 10", Outcome::Waiting)?;
        r.summary_table(
            &Table::new("Canary", &["Ingress", "Weight", "Note"])
                .row(["web/web-canary", "10", "a|b"])
                .row(["api/api-canary", "0"]),
        )?;
        r.error_at(
            Path::new("apps/api/ingress.yaml"),
            12,
            5,
            "canary-weight is not a number: \"ten\"",
        )?;
        r.output(OutputKey::Status, "waiting")?;
        r.finish()
    }

    fn visible(s: &str) -> String {
        s.replace('\x1b', "\\e").replace('\r', "\\r")
    }

    #[test]
    fn data_escaping_follows_the_toolkit() {
        assert_eq!(github::escape_data("50%\r\nnext"), "50%25%0D%0Anext");
        assert_eq!(
            github::escape_property("a:b,c%\n"),
            "a%3Ab%2Cc%25%0A",
            "properties also escape : and ,"
        );
        // Order matters: an escaped newline must not be escaped again.
        assert_eq!(github::escape_data("%0A"), "%250A");
    }

    #[test]
    fn error_command_escapes_properties_and_message() {
        let line = github::error(Path::new("dir,x/a:b.yaml"), 3, 9, "bad: 100%\nsee docs");
        assert_eq!(
            line,
            "::error file=dir%2Cx/a%3Ab.yaml,line=3,col=9::bad: 100%25%0Asee docs\n"
        );
    }

    #[test]
    fn command_without_properties() {
        assert_eq!(github::command("warning", &[], "x::y"), "::warning::x::y\n");
        assert_eq!(github::group("a\nb"), "::group::a%0Ab\n");
        assert_eq!(github::end_group(), "::endgroup::\n");
    }

    #[test]
    fn plain_text_cannot_issue_commands() {
        let s = github::plain("  | ", "ok\n  ::add-mask::x\r\n##[error]y\rz");
        assert_eq!(s, "  | ok\n  |   ::add-mask::x\n  | # #[error]y\n  | z\n");
        for line in s.lines() {
            assert!(!line.trim_start().starts_with("::"), "{line}");
            assert!(!line.contains("##["), "{line}");
        }
    }

    #[test]
    fn output_entries_single_and_heredoc() {
        assert_eq!(github::output_entry("weight", "25"), "weight=25\n");
        assert_eq!(
            github::output_entry("status", "a=b<<c"),
            "status=a=b<<c\n",
            "= and << inside a value are fine after the first ="
        );
        assert_eq!(
            github::output_entry("stage", "line1\nline2"),
            "stage<<GITOPS_CANARY_EOF\nline1\nline2\nGITOPS_CANARY_EOF\n"
        );
        let tricky = "x\nGITOPS_CANARY_EOF\nGITOPS_CANARY_EOF_1\ny";
        assert_eq!(github::heredoc_delimiter(tricky), "GITOPS_CANARY_EOF_2");
        assert!(github::output_entry("status", tricky).ends_with("\nGITOPS_CANARY_EOF_2\n"));
    }

    #[test]
    fn mask_line_escapes_the_value() {
        assert_eq!(
            github::add_mask(&Token::new("p%w\nd")),
            "::add-mask::p%25w%0Ad\n"
        );
    }

    #[test]
    fn markdown_cells_are_escaped() {
        let t = Table::new("T", &["a", "b"]).row(["x|y", "1\n2"]).row(["z"]);
        assert_eq!(
            markdown::table(&t),
            "### T\n\n| a | b |\n| --- | --- |\n| x\\|y | 1<br>2 |\n| z |  |\n\n"
        );
        let wide = Table::new("", &["a"]).row(["1", "2"]);
        assert_eq!(
            markdown::table(&wide),
            "| a |  |\n| --- | --- |\n| 1 | 2 |\n\n",
            "no cell is dropped"
        );
    }

    #[test]
    fn gitlab_sections_and_names() {
        assert_eq!(
            gitlab::section_name("Edit manifests: web/x", 3),
            "edit_manifests__web_x_3"
        );
        assert_eq!(
            gitlab::section_start(1700000000, "s_1", "Header", true),
            "\x1b[0Ksection_start:1700000000:s_1[collapsed=true]\r\x1b[0KHeader\n"
        );
        assert_eq!(
            gitlab::section_end(1700000001, "s_1"),
            "\x1b[0Ksection_end:1700000001:s_1\r\x1b[0K\n"
        );
        assert_eq!(
            visible(&gitlab::plain("", "a\x1b[0Ksection_end:1:x\rb")),
            "a^[[0Ksection_end:1:x\nb\n",
            "an escape in data is shown, not obeyed"
        );
    }

    #[test]
    fn dotenv_rules() {
        let mut v = BTreeMap::new();
        v.insert(OutputKey::Weight, "25".to_string());
        v.insert(OutputKey::Stage, "2/4".to_string());
        assert_eq!(
            gitlab::dotenv(&v).unwrap(),
            "GITOPS_CANARY_STAGE=2/4\nGITOPS_CANARY_WEIGHT=25\n"
        );
        v.insert(OutputKey::Status, "a\nb".to_string());
        assert!(matches!(
            gitlab::dotenv(&v),
            Err(ReportError::MultilineDotenv { key }) if key == "GITOPS_CANARY_STATUS"
        ));
        v.insert(OutputKey::Status, "x".repeat(6000));
        assert!(matches!(
            gitlab::dotenv(&v),
            Err(ReportError::DotenvTooLarge { .. })
        ));
    }

    #[test]
    fn output_key_names() {
        let names: Vec<_> = OutputKey::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "stage",
                "weight",
                "pull-request-url",
                "pull-request-number",
                "pull-request-operation",
                "branch",
                "head-sha",
                "status"
            ]
        );
        assert_eq!(
            OutputKey::PullRequestUrl.dotenv_name(),
            "GITOPS_CANARY_PULL_REQUEST_URL"
        );
    }

    #[test]
    fn choose_by_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(choose(env(&[]), Output::Human), Kind::Terminal);
        assert_eq!(choose(env(&[]), Output::Json), Kind::Json);
        assert_eq!(
            choose(env(&[("GITHUB_ACTIONS", "true")]), Output::Json),
            Kind::GitHubActions
        );
        assert_eq!(
            choose(env(&[("GITLAB_CI", "true")]), Output::Human),
            Kind::GitLab
        );
        assert_eq!(
            choose(env(&[("GITHUB_ACTIONS", "false")]), Output::Human),
            Kind::Terminal
        );
    }

    #[test]
    fn empty_inputs_are_found() {
        let vars = [
            ("GITOPS_CANARY_REPO", ""),
            ("GITOPS_CANARY_OUTPUT", "json"),
            ("HOME", ""),
            ("GITOPS_CANARY_WEIGHT", " "),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        assert_eq!(empty_inputs(vars), [OsString::from("GITOPS_CANARY_REPO")]);
    }

    #[test]
    fn terminal_session() {
        let mut r = Terminal::new(Vec::new());
        script(&mut r).unwrap();
        let out = String::from_utf8(r.into_inner()).unwrap();
        assert!(!out.contains(TOKEN));
        insta::assert_snapshot!("terminal_session", out);
    }

    #[test]
    fn json_session() {
        let mut r = Json::new(Vec::new());
        script(&mut r).unwrap();
        let out = String::from_utf8(r.into_inner()).unwrap();
        assert!(!out.contains(TOKEN));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["outputs"]["status"], "waiting");
        insta::assert_snapshot!("json_session", out);
    }

    #[test]
    fn github_session() {
        let dir = tempfile::tempdir().unwrap();
        let (o, s) = (dir.path().join("out"), dir.path().join("summary"));
        let mut r = GitHubActions::new(Vec::new(), Some(o.clone()), Some(s.clone()));
        script(&mut r).unwrap();
        let log = String::from_utf8(r.into_inner()).unwrap();
        // The token appears exactly once: on the add-mask line, first.
        assert_eq!(log.matches(TOKEN).count(), 1);
        assert!(log.starts_with(&format!("::add-mask::{TOKEN}\n")));
        let outputs = std::fs::read_to_string(o).unwrap();
        let summary = std::fs::read_to_string(s).unwrap();
        insta::assert_snapshot!(
            "github_session",
            format!("--- log\n{log}--- GITHUB_OUTPUT\n{outputs}--- GITHUB_STEP_SUMMARY\n{summary}")
        );
    }

    #[test]
    fn github_without_files_warns_once() {
        let mut r = GitHubActions::new(Vec::new(), None, None);
        r.output(OutputKey::Weight, "10").unwrap();
        r.summary_table(&Table::new("t", &["a"])).unwrap();
        let log = String::from_utf8(r.into_inner()).unwrap();
        assert_eq!(
            log,
            "::warning::GITHUB_OUTPUT is not set; gitops-canary outputs and summary are not recorded\n"
        );
    }

    #[test]
    fn gitlab_session() {
        let dir = tempfile::tempdir().unwrap();
        let dotenv = dir.path().join("gitops-canary.env");
        let mut r = GitLab::new(Vec::new(), dotenv.clone(), || 1764200000);
        script(&mut r).unwrap();
        let log = String::from_utf8(r.into_inner()).unwrap();
        assert!(!log.contains(TOKEN));
        let env = std::fs::read_to_string(dotenv).unwrap();
        insta::assert_snapshot!(
            "gitlab_session",
            format!("--- log\n{}--- dotenv\n{env}", visible(&log))
        );
    }

    #[test]
    fn gitlab_keeps_the_last_good_dotenv_on_a_bad_value() {
        let dir = tempfile::tempdir().unwrap();
        let dotenv = dir.path().join("r.env");
        let mut r = GitLab::new(Vec::new(), dotenv.clone(), || 0);
        r.output(OutputKey::Weight, "25").unwrap();
        assert!(r.output(OutputKey::Status, "two\nlines").is_err());
        r.output(OutputKey::Stage, "2/4").unwrap();
        assert_eq!(
            std::fs::read_to_string(dotenv).unwrap(),
            "GITOPS_CANARY_STAGE=2/4\nGITOPS_CANARY_WEIGHT=25\n"
        );
    }

    #[test]
    fn groups_do_not_nest_and_finish_closes() {
        let mut r = GitHubActions::new(Vec::new(), None, None);
        r.group("a").unwrap();
        r.group("b").unwrap();
        r.end_group().unwrap();
        r.end_group().unwrap();
        r.group("c").unwrap();
        r.finish().unwrap();
        let log = String::from_utf8(r.into_inner()).unwrap();
        assert_eq!(
            log,
            "::group::a\n::endgroup::\n::group::b\n::endgroup::\n::group::c\n::endgroup::\n"
        );
    }
}
