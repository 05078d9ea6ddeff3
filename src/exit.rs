//! Process exit codes, one place.
//!
//! 0: done. 1: a check or an operation failed (a gate said no, a push was refused).
//! 2: bad input or usage (malformed YAML, no such Ingress, an out-of-range weight, a bad
//! config): the user must change something before a re-run can succeed.

pub use crate::fault::{Classify, Usage};

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const BAD_INPUT: u8 = 2;
/// Stopped by SIGINT (128 + 2) or SIGTERM (128 + 15), as shells report them.
pub const INTERRUPTED: u8 = 130;
pub const TERMINATED: u8 = 143;

/// The exit code for an error: 2 when the first typed cause in its chain is the user's
/// input, else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    fn classify<E: Classify + std::error::Error + 'static>(
        cause: &(dyn std::error::Error + 'static),
    ) -> Option<u8> {
        cause
            .downcast_ref::<E>()
            .map(|e| if e.is_bad_input() { BAD_INPUT } else { FAILED })
    }
    for cause in err.chain() {
        if cause.is::<Usage>() || cause.is::<clap::Error>() {
            return BAD_INPUT;
        }
        // A failed edit is classified by the edit's own error, next in the chain.
        if matches!(
            cause.downcast_ref::<crate::git::GitError>(),
            Some(crate::git::GitError::Edit { .. })
        ) {
            continue;
        }
        let code = classify::<crate::manifest::ManifestError>(cause)
            .or_else(|| classify::<crate::config::ConfigError>(cause))
            .or_else(|| classify::<crate::metrics::MetricsError>(cause))
            .or_else(|| classify::<crate::git::GitError>(cause))
            .or_else(|| classify::<crate::forge::ForgeError>(cause))
            .or_else(|| classify::<crate::cluster::ClusterError>(cause))
            .or_else(|| classify::<crate::rollout::AppError>(cause));
        if let Some(code) = code {
            return code;
        }
    }
    FAILED
}

/// Advice for the user, one `help:` line each, from the first cause in the chain that has any.
pub fn help(err: &anyhow::Error) -> Vec<String> {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::git::GitError>() {
            let h = e.help();
            if !h.is_empty() {
                return h;
            }
        }
    }
    Vec::new()
}

/// One line: the error and its causes, outermost first.
pub fn render(err: &anyhow::Error) -> String {
    format!("{err:#}")
}
