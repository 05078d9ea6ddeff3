//! Forges (GitHub pull requests, GitLab merge requests) behind one trait.
//!
//! A stage of a canary is a branch plus a change request on the forge, and the forge is part of
//! the tool's state: a re-run must find the request it opened before rather than open a second
//! one. So every adapter answers the same small questions (find by branch, create-or-return,
//! reviews, checks, mergeability, merge with an expected head) and reports failures as one
//! [`ForgeError`] that names the repository, the request number, the HTTP status and, for
//! 401/403, the permission the token lacks. Whether to merge is decided by the pure
//! [`decide_merge`] from plain values; the adapters only observe and act. Transient faults
//! (5xx, 429, GitHub's secondary rate limit) are retried with bounded backoff in `send`; the
//! rest of the plumbing both adapters share (scrubbing, permission errors, bodies, paging, what
//! a merge answer means) is the `rest` layer under them.

pub mod approval;
mod error;
pub mod github;
pub mod gitlab;
mod request;
mod rest;
#[cfg(test)]
mod tests;

pub use error::*;
pub use request::*;

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

pub use github::GitHub;
pub use gitlab::GitLab;

/// The operations the tool needs from a forge. `number` is GitHub's number or GitLab's iid.
pub trait Forge {
    /// The open request for `branch`; else the most recently updated merged/closed one.
    fn find_pr_by_branch(
        &self,
        branch: &str,
    ) -> impl Future<Output = Result<Option<PullRequest>, ForgeError>> + Send;
    fn list_prs_by_label(
        &self,
        label: &str,
        state: StateFilter,
    ) -> impl Future<Output = Result<Vec<PullRequest>, ForgeError>> + Send;
    /// Open a request, or return the open one for the same head branch (never a duplicate).
    fn create_pr(
        &self,
        new: &NewPullRequest,
    ) -> impl Future<Output = Result<PullRequest, ForgeError>> + Send;
    fn update_pr_body(
        &self,
        number: u64,
        body: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
    fn add_labels(
        &self,
        number: u64,
        labels: &[String],
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
    fn comment(
        &self,
        number: u64,
        body: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
    /// The comments on a request, oldest first (GitLab: without system notes).
    fn list_comments(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Vec<Comment>, ForgeError>> + Send;
    /// Replace the body of comment `id` on request `number`.
    fn update_comment(
        &self,
        number: u64,
        id: u64,
        body: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;
    /// The approvals that count for `pr` as observed (its head and author), see [`approval`].
    fn reviews(&self, pr: &PullRequest)
        -> impl Future<Output = Result<Reviews, ForgeError>> + Send;
    fn checks(&self, sha: &str) -> impl Future<Output = Result<Checks, ForgeError>> + Send;
    fn mergeable(&self, number: u64) -> impl Future<Output = Result<Mergeable, ForgeError>> + Send;
    /// Merge only if the head is still `expected_head_sha`.
    fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> impl Future<Output = Result<MergeOutcome, ForgeError>> + Send;
    fn close(&self, number: u64) -> impl Future<Output = Result<(), ForgeError>> + Send;
    fn web_url(&self, number: u64) -> String;
}

/// The request for a branch: the open one first; else the most recently updated (`prs` comes
/// newest first).
pub(crate) fn pick_for_branch(prs: Vec<PullRequest>) -> Option<PullRequest> {
    let open = prs.iter().position(|p| p.state == PrState::Open);
    match open {
        Some(i) => prs.into_iter().nth(i),
        None => prs.into_iter().next(),
    }
}

/// A create the forge refused because a request for `head` already exists: return that open
/// request (never a second one), or say it cannot be found.
pub(crate) async fn existing_open<F: Forge + Sync>(
    forge: &F,
    repo: &str,
    head: &str,
    status: u16,
    message: String,
) -> Result<PullRequest, ForgeError> {
    match forge.find_pr_by_branch(head).await? {
        Some(p) if p.state == PrState::Open => Ok(p),
        _ => Err(ForgeError::ExistsButMissing {
            repo: repo.to_string(),
            branch: head.to_string(),
            status,
            message,
        }),
    }
}

/// Add the labels a request should carry but does not (a found request, or a forge that
/// ignores labels on create).
pub(crate) async fn ensure_labels<F: Forge + Sync>(
    forge: &F,
    mut pr: PullRequest,
    wanted: &[String],
) -> Result<PullRequest, ForgeError> {
    let missing: Vec<String> = wanted
        .iter()
        .filter(|l| !pr.labels.contains(l))
        .cloned()
        .collect();
    if !missing.is_empty() {
        forge.add_labels(pr.number, &missing).await?;
        pr.labels.extend(missing);
    }
    Ok(pr)
}

/// Post `body` on request `number`, or edit the comment that carries `marker` (which
/// `body` must contain) so a re-run never posts it twice. Returns whether anything changed.
pub async fn upsert_comment<F: Forge + Sync>(
    forge: &F,
    number: u64,
    marker: &str,
    body: &str,
) -> Result<bool, ForgeError> {
    let comments = forge.list_comments(number).await?;
    match crate::plan::find_marked(&comments, marker) {
        Some(id) if comments.iter().any(|c| c.id == id && c.body == body) => Ok(false),
        Some(id) => forge.update_comment(number, id, body).await.map(|()| true),
        None => forge.comment(number, body).await.map(|()| true),
    }
}

/// One forge chosen at run time.
#[derive(Debug, Clone)]
pub enum AnyForge {
    GitHub(GitHub),
    GitLab(GitLab),
}

macro_rules! dispatch {
    ($self:ident, $f:ident, $($arg:expr),*) => {
        match $self {
            AnyForge::GitHub(g) => g.$f($($arg),*).await,
            AnyForge::GitLab(g) => g.$f($($arg),*).await,
        }
    };
}

impl Forge for AnyForge {
    async fn find_pr_by_branch(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError> {
        dispatch!(self, find_pr_by_branch, branch)
    }
    async fn list_prs_by_label(
        &self,
        label: &str,
        state: StateFilter,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        dispatch!(self, list_prs_by_label, label, state)
    }
    async fn create_pr(&self, new: &NewPullRequest) -> Result<PullRequest, ForgeError> {
        dispatch!(self, create_pr, new)
    }
    async fn update_pr_body(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        dispatch!(self, update_pr_body, number, body)
    }
    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        dispatch!(self, add_labels, number, labels)
    }
    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        dispatch!(self, comment, number, body)
    }
    async fn list_comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        dispatch!(self, list_comments, number)
    }
    async fn update_comment(&self, number: u64, id: u64, body: &str) -> Result<(), ForgeError> {
        dispatch!(self, update_comment, number, id, body)
    }
    async fn reviews(&self, pr: &PullRequest) -> Result<Reviews, ForgeError> {
        dispatch!(self, reviews, pr)
    }
    async fn checks(&self, sha: &str) -> Result<Checks, ForgeError> {
        dispatch!(self, checks, sha)
    }
    async fn mergeable(&self, number: u64) -> Result<Mergeable, ForgeError> {
        dispatch!(self, mergeable, number)
    }
    async fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> Result<MergeOutcome, ForgeError> {
        dispatch!(self, merge, number, method, expected_head_sha)
    }
    async fn close(&self, number: u64) -> Result<(), ForgeError> {
        dispatch!(self, close, number)
    }
    fn web_url(&self, number: u64) -> String {
        match self {
            AnyForge::GitHub(g) => g.web_url(number),
            AnyForge::GitLab(g) => g.web_url(number),
        }
    }
}
