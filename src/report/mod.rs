//! Progress, outputs and summaries in the shape each CI system understands.
//!
//! The app loop talks to one small trait, [`Report`]; [`detect`] picks the implementation
//! from the environment: [`GitHubActions`] (workflow commands on stdout, `$GITHUB_OUTPUT`,
//! `$GITHUB_STEP_SUMMARY`), [`GitLab`] (collapsible log sections and a dotenv report that
//! later jobs read as variables), [`Json`] (one document on stdout at the end) or
//! [`Terminal`] (plain lines on stderr for a person). Everything a CI system parses is built
//! by pure functions in [`github`], [`gitlab`], [`markdown`] and [`terminal`], which the unit
//! tests pin byte for byte; each room also holds its writer, which only appends those strings
//! to files and streams. Every other line a command prints goes through [`console`].
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
pub mod github;
pub mod gitlab;
mod json;
pub mod logging;
pub(crate) mod markdown;
pub(crate) mod terminal;
#[cfg(test)]
mod tests;

pub use github::GitHubActions;
pub use gitlab::GitLab;
pub(crate) use json::*;
pub(crate) use terminal::Terminal;

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
pub(crate) enum Kind {
    Terminal,
    Json,
    GitHubActions,
    GitLab,
}

/// The dotenv report path when `GITOPS_CANARY_DOTENV` is not set.
pub(crate) const DEFAULT_DOTENV: &str = "gitops-canary.env";

/// Pick a reporter from environment variables (`env` looks one up). A CI system wins over
/// `--output`: there the outputs and summaries are the machine-readable interface, and a
/// JSON document on stdout would be interleaved with workflow commands.
pub(crate) fn choose(env: impl Fn(&str) -> Option<String>, output: Output) -> Kind {
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
pub(crate) fn detect(output: Output) -> Box<dyn Report> {
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
            || crate::clock::since_epoch().as_secs(),
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

// ---------------------------------------------------------------------------------------
// CI inputs arrive as empty variables.

/// The names of `GITOPS_CANARY_*` variables whose value is empty.
///
/// An action input left blank still becomes an environment variable, set to "", and GitLab
/// does the same for a variable declared without a value. clap takes an empty variable as a
/// given, empty value (`--repo ""` fails), so the rule is: an empty `GITOPS_CANARY_*`
/// variable means "not set", and [`unset_empty_inputs`] removes them before parsing.
pub(crate) fn empty_inputs(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<OsString> {
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
