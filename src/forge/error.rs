//! What can go wrong talking to a forge, with the facts to say why and what to fix, and [`Ctx`],
//! which turns an answer into the error that names who asked what.

use serde::de::DeserializeOwned;

use super::*;

/// Everything that can go wrong talking to a forge.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// A required setting (environment variable or flag) is missing or malformed.
    #[error("forge configuration: {setting}: {message}")]
    Config {
        setting: &'static str,
        message: String,
    },
    /// The token was rejected (401) or lacks a permission (403).
    #[error(
        "{repo}: {op}{}: HTTP {status}: the token lacks `{permission}` ({message})",
        pr_suffix(*number)
    )]
    Permission {
        repo: String,
        op: &'static str,
        number: Option<u64>,
        status: u16,
        permission: String,
        message: String,
    },
    /// 5xx, 429 or a secondary rate limit that outlasted the retries.
    #[error(
        "{repo}: {op}{}: forge unavailable after {attempts} attempts: {}{message}",
        pr_suffix(*number),
        status.map(|s| format!("HTTP {s}: ")).unwrap_or_default()
    )]
    Unavailable {
        repo: String,
        op: &'static str,
        number: Option<u64>,
        status: Option<u16>,
        attempts: usize,
        message: String,
        /// What the server asked to wait (`retry-after`, rate-limit reset), if anything.
        retry_after: Option<Duration>,
    },
    /// No such pull/merge request.
    #[error("{repo}: {op}: pull request #{number} not found")]
    NotFound {
        repo: String,
        op: &'static str,
        number: u64,
    },
    /// The forge refused the merge (conflicts, not mergeable, required checks).
    #[error("{repo}: merge #{number}: HTTP {status}: not mergeable: {message}")]
    NotMergeable {
        repo: String,
        number: u64,
        status: u16,
        message: String,
    },
    /// The request's head moved since it was inspected; the merge was not done.
    #[error(
        "{repo}: merge #{number}: HTTP {status}: head is no longer {expected_head_sha}: {message}"
    )]
    HeadChanged {
        repo: String,
        number: u64,
        status: u16,
        expected_head_sha: String,
        message: String,
    },
    /// Creating said "already exists" but no request for the branch could be found.
    #[error("{repo}: create pull request for {branch}: HTTP {status} says one exists, but none was found: {message}")]
    ExistsButMissing {
        repo: String,
        branch: String,
        status: u16,
        message: String,
    },
    /// Any other refusal (4xx) from the forge.
    #[error("{repo}: {op}{}: HTTP {status}: {message}", pr_suffix(*number))]
    Api {
        repo: String,
        op: &'static str,
        number: Option<u64>,
        status: u16,
        message: String,
    },
    /// The forge answered something this tool cannot read.
    #[error("{repo}: {op}: unexpected response: {message}")]
    Decode {
        repo: String,
        op: &'static str,
        message: String,
    },
    /// The forge cannot do what was asked the way it was asked.
    #[error("{forge}: {what} is not supported")]
    Unsupported { forge: &'static str, what: String },
}

pub(super) fn pr_suffix(number: Option<u64>) -> String {
    number.map(|n| format!(" #{n}")).unwrap_or_default()
}

impl crate::fault::Classify for ForgeError {
    fn is_bad_input(&self) -> bool {
        // A missing permission or setting needs the user to change the token or config first.
        matches!(
            self,
            ForgeError::Config { .. }
                | ForgeError::Permission { .. }
                | ForgeError::Unsupported { .. }
        )
    }
}

/// Who is calling, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Ctx<'a> {
    pub repo: &'a str,
    pub op: &'static str,
    pub number: Option<u64>,
}

impl Ctx<'_> {
    pub fn api(&self, raw: &RawResponse) -> ForgeError {
        ForgeError::Api {
            repo: self.repo.to_string(),
            op: self.op,
            number: self.number,
            status: raw.status,
            message: raw.message(),
        }
    }

    pub(crate) fn decode(&self, err: impl std::fmt::Display) -> ForgeError {
        ForgeError::Decode {
            repo: self.repo.to_string(),
            op: self.op,
            message: err.to_string(),
        }
    }

    pub(crate) fn not_found(&self) -> ForgeError {
        ForgeError::NotFound {
            repo: self.repo.to_string(),
            op: self.op,
            number: self.number.unwrap_or_default(),
        }
    }

    pub fn permission(&self, raw: &RawResponse, permission: String) -> ForgeError {
        ForgeError::Permission {
            repo: self.repo.to_string(),
            op: self.op,
            number: self.number,
            status: raw.status,
            permission,
            message: raw.message(),
        }
    }

    /// A 2xx answer passes; 404 on a request is [`ForgeError::NotFound`]; any other is
    /// [`ForgeError::Api`].
    pub(crate) fn expect_ok(&self, raw: &RawResponse) -> Result<(), ForgeError> {
        match raw.status {
            s if (200..300).contains(&s) => Ok(()),
            404 if self.number.is_some() => Err(self.not_found()),
            _ => Err(self.api(raw)),
        }
    }

    /// The body read as `T`, or [`ForgeError::Decode`].
    pub fn parse<T: DeserializeOwned>(&self, raw: &RawResponse) -> Result<T, ForgeError> {
        serde_json::from_slice(&raw.body).map_err(|e| self.decode(e))
    }

    /// The request was not merged, for `message`'s reason.
    pub(crate) fn not_mergeable(&self, status: u16, message: String) -> ForgeError {
        ForgeError::NotMergeable {
            repo: self.repo.to_string(),
            number: self.number.unwrap_or_default(),
            status,
            message,
        }
    }

    /// What a merge answered other than success means, the same on both forges: 404 no such
    /// request, 409 the head moved from `expected_head_sha`, 405/406/422 not mergeable (a
    /// conflict, a rule, a pipeline), anything else a plain refusal.
    pub(crate) fn merge_refused(&self, raw: &RawResponse, expected_head_sha: &str) -> ForgeError {
        match raw.status {
            404 => self.not_found(),
            405 | 406 | 422 => self.not_mergeable(raw.status, raw.message()),
            409 => ForgeError::HeadChanged {
                repo: self.repo.to_string(),
                number: self.number.unwrap_or_default(),
                status: raw.status,
                expected_head_sha: expected_head_sha.to_string(),
                message: raw.message(),
            },
            _ => self.api(raw),
        }
    }
}

// The requests as the tool sees them and the merge decision are plain values and a pure
// function; they live in `plan` (below the adapters) and are re-exported here for the adapters.
pub use crate::plan::merge::*;
