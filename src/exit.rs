//! Process exit codes, one place.
//!
//! 0: done. 1: a check or an operation failed (a gate said no, a push was refused).
//! 2: bad input or usage (malformed YAML, no such Ingress, an out-of-range weight, a bad
//! config, a flag combination): the user must change something before a re-run can succeed.
//! `code_for` and `help` are the one mapping from an error to what the process says and exits
//! with.

pub use crate::fault::Classify;

/// A usage problem in the flags (or the settings they resolve to): the flag at fault, what is
/// wrong, and what to do about it. Always exit 2; `help` becomes a `help:` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", flag.map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct UsageError {
    /// The flag as typed (`--stages`), when one flag is at fault.
    pub flag: Option<&'static str>,
    pub message: String,
    /// Advice, one line.
    pub help: Option<String>,
}

impl UsageError {
    /// A problem of no single flag (a combination, a missing choice).
    pub fn new(message: impl Into<String>) -> Self {
        UsageError {
            flag: None,
            message: message.into(),
            help: None,
        }
    }

    /// A problem with the value of `flag`.
    pub fn flag(flag: &'static str, message: impl Into<String>) -> Self {
        UsageError {
            flag: Some(flag),
            ..UsageError::new(message)
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub(crate) const BAD_INPUT: u8 = 2;
/// Stopped by SIGINT (128 + 2) or SIGTERM (128 + 15), as shells report them.
pub(crate) const INTERRUPTED: u8 = 130;
pub(crate) const TERMINATED: u8 = 143;

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
        // `fault::Usage` is the lower layers' untyped form (an edit callback's refusal).
        if cause.is::<UsageError>()
            || cause.is::<crate::fault::Usage>()
            || cause.is::<clap::Error>()
        {
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
        if let Some(help) = cause
            .downcast_ref::<UsageError>()
            .and_then(|e| e.help.clone())
        {
            return vec![help];
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_error_names_its_flag_exits_2_and_says_what_to_do() {
        let e = UsageError::flag("--stages", "stage weight 0 is outside 1..=100")
            .help("give rising weights, e.g. --stages 10,50,100");
        assert_eq!(e.to_string(), "--stages: stage weight 0 is outside 1..=100");
        let err = anyhow::Error::new(e).context("resolving the settings");
        assert_eq!(code_for(&err), BAD_INPUT);
        assert_eq!(help(&err), ["give rising weights, e.g. --stages 10,50,100"]);
        let plain = anyhow::Error::new(UsageError::new("no canary"));
        assert_eq!(render(&plain), "no canary");
        assert!(help(&plain).is_empty());
    }
}
