//! What can go wrong in the Git adapter, with the facts to say why.

use super::*;

// ---------------------------------------------------------------------------------------------
// Errors

/// A libgit2 failure with its message scrubbed of URL userinfo and known secrets.
#[derive(Debug, Clone)]
pub struct Cause {
    pub message: String,
    pub code: ErrorCode,
    pub class: ErrorClass,
}

impl Cause {
    pub(super) fn git(e: &git2::Error, remote: Option<&Remote>) -> Self {
        Cause {
            message: scrub(e.message(), remote),
            code: e.code(),
            class: e.class(),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{dir} is owned by another user, and git refuses repositories it does not own (safe.directory)")]
    NotOwned { dir: PathBuf },
    #[error("{dir} has no `origin` remote")]
    NoOrigin { dir: PathBuf },
    #[error("cannot open the git checkout at {dir}")]
    Open {
        dir: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("cannot create a temporary directory to clone {url}")]
    TempDir {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("authentication to {url} failed{}; check the token and its permissions", user.as_ref().map(|u| format!(" as user {u:?}")).unwrap_or_default())]
    Auth {
        url: String,
        user: Option<String>,
        #[source]
        source: Cause,
    },
    #[error("the SSH host key of {url} is unknown or does not match; add the host to ~/.ssh/known_hosts")]
    HostKey {
        url: String,
        #[source]
        source: Cause,
    },
    #[error("branch {branch:?} does not exist on {url}")]
    NoSuchBranch { url: String, branch: String },
    #[error("{op} {refname} on {url} failed")]
    Remote {
        op: &'static str,
        url: String,
        refname: String,
        #[source]
        source: Cause,
    },
    #[error("{op} ({what}) in {dir} failed")]
    Local {
        op: &'static str,
        what: String,
        dir: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("{name:?} is not a valid branch name")]
    InvalidBranch { name: String },
    #[error("editing the checkout of {base} in {dir} failed")]
    Edit {
        dir: PathBuf,
        base: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("the edit reported {path}, which is not a file inside the repository")]
    EditPath { path: PathBuf },
    #[error("reading {path} in {dir} failed")]
    Io {
        dir: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("push of {branch:?} to {url} was rejected {attempts} times; last: {reason}")]
    PushRejected {
        url: String,
        branch: String,
        reason: String,
        attempts: u32,
    },
}

impl GitError {
    /// Advice for the user (`help:` lines), where there is any.
    pub fn help(&self) -> Vec<String> {
        match self {
            GitError::NotOwned { dir } => vec![
                format!(
                    "if you trust it: git config --global --add safe.directory {}",
                    dir.display()
                ),
                "in CI (GITHUB_ACTIONS or GITLAB_CI set) the check is off for the job's own checkout"
                    .to_string(),
            ],
            GitError::NoOrigin { .. } => vec!["pass --remote URL".to_string()],
            _ => Vec::new(),
        }
    }

    /// Network faults and server errors, worth another attempt.
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, GitError::Remote { source, .. }
            if matches!(source.class, ErrorClass::Net | ErrorClass::Http | ErrorClass::Os | ErrorClass::Ssl)
                // A 4xx (wrong repository path, forbidden) will not get better by waiting.
                && !source.message.contains("status code: 4")
                && source.code != ErrorCode::Certificate)
    }
}

impl Classify for GitError {
    fn is_bad_input(&self) -> bool {
        match self {
            GitError::Open { .. }
            | GitError::NotOwned { .. }
            | GitError::NoOrigin { .. }
            | GitError::Auth { .. }
            | GitError::HostKey { .. }
            | GitError::NoSuchBranch { .. }
            | GitError::InvalidBranch { .. } => true,
            // The edit's own error decides: a usage or manifest error is the user's input.
            GitError::Edit { source, .. } => source.chain().any(|c| {
                c.is::<crate::fault::Usage>()
                    || c.downcast_ref::<crate::manifest::ManifestError>()
                        .is_some_and(Classify::is_bad_input)
            }),
            GitError::TempDir { .. }
            | GitError::Remote { .. }
            | GitError::Local { .. }
            | GitError::EditPath { .. }
            | GitError::Io { .. }
            | GitError::PushRejected { .. } => false,
        }
    }
}

/// A test over a commit's trailers.
pub(crate) type TrailerPredicate<'a> = dyn Fn(&[(String, String)]) -> bool + 'a;
