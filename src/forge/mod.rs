//! Forges (GitHub pull requests, GitLab merge requests) behind one trait.
//!
//! A stage of a canary is a branch plus a change request on the forge, and the forge is part of
//! the tool's state: a re-run must find the request it opened before rather than open a second
//! one. So every adapter answers the same small questions (find by branch, create-or-return,
//! reviews, checks, mergeability, merge with an expected head) and reports failures as one
//! [`ForgeError`] that names the repository, the request number, the HTTP status and, for
//! 401/403, the permission the token lacks. Whether to merge is decided by the pure
//! [`decide_merge`] from plain values; the adapters only observe and act. Transient faults
//! (5xx, 429, GitHub's secondary rate limit) are retried with bounded backoff in [`send`].

pub mod approval;
pub mod github;
pub mod gitlab;

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

pub use github::GitHub;
pub use gitlab::GitLab;

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

fn pr_suffix(number: Option<u64>) -> String {
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

// The requests as the tool sees them and the merge decision are plain values and a pure
// function; they live in `plan` (below the adapters) and are re-exported here for the adapters.
pub use crate::plan::merge::*;

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

/// How hard to retry transient faults. Bounded: attempts and each wait are capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry-after`/`x-ratelimit-reset` wait honoured; longer ones fail now.
    pub max_server_wait: Duration,
    /// The longest one request may take, connect to last byte; a server that accepts and
    /// never answers is a transient fault after this long.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_server_wait: Duration::from_secs(120),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// One HTTP answer, whatever the client library.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The forge's `message` (GitHub, GitLab) or `error_description`, else the raw body, short.
    pub fn message(&self) -> String {
        let v: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        let from_json = v.as_ref().and_then(|v| {
            let m = v
                .get("message")
                .or_else(|| v.get("error_description"))
                .or_else(|| v.get("error"))?;
            Some(match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
        let mut text =
            from_json.unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        if let Some(errors) = v.as_ref().and_then(|v| v.get("errors")) {
            text.push_str(&format!(" {errors}"));
        }
        if text.len() > 300 {
            let mut cut = 300;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// How long the server asked to wait, if this is a rate-limit answer.
    ///
    /// GitHub: `retry-after` seconds, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`
    /// (epoch seconds). GitLab: `retry-after` or `ratelimit-reset`.
    pub fn server_wait(&self, now_epoch: u64) -> Option<Duration> {
        if let Some(s) = self
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_secs(s));
        }
        let exhausted = self.header("x-ratelimit-remaining").map(str::trim) == Some("0")
            || self.header("ratelimit-remaining").map(str::trim) == Some("0");
        if exhausted {
            let reset = self
                .header("x-ratelimit-reset")
                .or_else(|| self.header("ratelimit-reset"))
                .and_then(|v| v.trim().parse::<u64>().ok())?;
            return Some(Duration::from_secs(reset.saturating_sub(now_epoch).max(1)));
        }
        None
    }

    /// 5xx, 429, or a 403 carrying rate-limit headers (GitHub's secondary rate limit).
    pub fn is_transient(&self, now_epoch: u64) -> bool {
        self.status >= 500
            || self.status == 429
            || (self.status == 403 && self.server_wait(now_epoch).is_some())
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

    pub fn decode(&self, err: impl std::fmt::Display) -> ForgeError {
        ForgeError::Decode {
            repo: self.repo.to_string(),
            op: self.op,
            message: err.to_string(),
        }
    }

    pub fn not_found(&self) -> ForgeError {
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
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Send with bounded retries on transport errors and transient statuses; any other status is
/// returned for the caller to interpret. `attempt` must build a fresh request each call.
pub(crate) async fn send<F, Fut>(
    policy: &RetryPolicy,
    ctx: &Ctx<'_>,
    mut attempt: F,
) -> Result<RawResponse, ForgeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<RawResponse, String>>,
{
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_retries)
        .with_jitter();
    let max_server_wait = policy.max_server_wait;
    let request_timeout = policy.request_timeout;
    let run = || {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fut = attempt();
        async move {
            // One deadline here covers both transports (octocrab and reqwest).
            let answer = tokio::time::timeout(request_timeout, fut)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer within {}",
                        humantime::format_duration(request_timeout)
                    ))
                });
            match answer {
                Err(transport) => Err(ForgeError::Unavailable {
                    repo: ctx.repo.to_string(),
                    op: ctx.op,
                    number: ctx.number,
                    status: None,
                    attempts: 0,
                    message: transport,
                    retry_after: None,
                }),
                Ok(raw) if raw.is_transient(now_epoch()) => Err(ForgeError::Unavailable {
                    repo: ctx.repo.to_string(),
                    op: ctx.op,
                    number: ctx.number,
                    status: Some(raw.status),
                    attempts: 0,
                    message: raw.message(),
                    retry_after: raw.server_wait(now_epoch()),
                }),
                Ok(raw) => Ok(raw),
            }
        }
    };
    let result = run
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e| {
            matches!(e, ForgeError::Unavailable { retry_after, .. }
                if retry_after.is_none_or(|w| w <= max_server_wait))
        })
        .adjust(|e, dur| {
            // The server's wait wins over our own backoff, but only while retries remain.
            let dur = dur?;
            match e {
                ForgeError::Unavailable { retry_after: Some(w), .. } => Some(*w),
                _ => Some(dur),
            }
        })
        .notify(|e, dur| {
            if let ForgeError::Unavailable { status, message, .. } = e {
                tracing::warn!(repo = ctx.repo, op = ctx.op, status = ?status, %message, wait = ?dur,
                    "forge: transient failure, retrying");
            }
        })
        .await;
    result.map_err(|mut e| {
        if let ForgeError::Unavailable { attempts: a, .. } = &mut e {
            *a = attempts.load(std::sync::atomic::Ordering::Relaxed);
        }
        e
    })
}

/// Percent-encode one path segment (GitLab project paths, branch names in queries).
pub(crate) fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(state: PrState) -> PullRequest {
        PullRequest {
            number: 7,
            url: "https://example/pr/7".into(),
            branch: "canary/web-25".into(),
            base: "main".into(),
            head_sha: "abc".into(),
            author: "bot".into(),
            title: "t".into(),
            body: "b".into(),
            labels: vec![],
            state,
        }
    }

    fn approved(n: u32) -> Reviews {
        Reviews {
            approvals: n,
            changes_requested: false,
        }
    }

    fn is_wait(d: &MergeDecision) -> bool {
        matches!(d, MergeDecision::Wait(_))
    }
    fn is_blocked(d: &MergeDecision) -> bool {
        matches!(d, MergeDecision::Blocked(_))
    }

    #[test]
    fn pull_request_gate_always_waits_for_a_human() {
        let d = decide_merge(
            ApprovalGate::PullRequest,
            &pr(PrState::Open),
            &approved(5),
            &Checks::Success,
            Mergeable::Yes,
        );
        assert!(is_wait(&d), "{d:?}");
    }

    #[test]
    fn direct_gate_never_merges_a_request() {
        let d = decide_merge(
            ApprovalGate::Direct,
            &pr(PrState::Open),
            &approved(5),
            &Checks::Success,
            Mergeable::Yes,
        );
        assert!(is_blocked(&d), "{d:?}");
    }

    #[test]
    fn approved_gate_counts_approvals() {
        let gate = ApprovalGate::Approved { min: 2 };
        let open = pr(PrState::Open);
        let d = decide_merge(gate, &open, &approved(1), &Checks::Success, Mergeable::Yes);
        assert_eq!(
            d,
            MergeDecision::Wait("#7 has 1 of 2 required approvals".into())
        );
        let d = decide_merge(gate, &open, &approved(2), &Checks::Success, Mergeable::Yes);
        assert_eq!(d, MergeDecision::Merge);
        let d = decide_merge(gate, &open, &approved(3), &Checks::None, Mergeable::Yes);
        assert_eq!(d, MergeDecision::Merge);
    }

    #[test]
    fn approved_gate_blocks_on_requested_changes_even_with_approvals() {
        let r = Reviews {
            approvals: 3,
            changes_requested: true,
        };
        let d = decide_merge(
            ApprovalGate::Approved { min: 1 },
            &pr(PrState::Open),
            &r,
            &Checks::Success,
            Mergeable::Yes,
        );
        assert!(is_blocked(&d), "{d:?}");
    }

    #[test]
    fn auto_gate_needs_no_approval_but_green_checks() {
        let open = pr(PrState::Open);
        assert_eq!(
            decide_merge(
                ApprovalGate::Auto,
                &open,
                &approved(0),
                &Checks::Success,
                Mergeable::Yes
            ),
            MergeDecision::Merge
        );
        assert!(is_wait(&decide_merge(
            ApprovalGate::Auto,
            &open,
            &approved(0),
            &Checks::Pending,
            Mergeable::Yes
        )));
        assert_eq!(
            decide_merge(
                ApprovalGate::Auto,
                &open,
                &approved(0),
                &Checks::Failure("lint".into()),
                Mergeable::Yes
            ),
            MergeDecision::Blocked("check `lint` failed on #7".into())
        );
    }

    #[test]
    fn mergeability_unknown_waits_and_conflict_blocks() {
        let open = pr(PrState::Open);
        assert!(is_wait(&decide_merge(
            ApprovalGate::Auto,
            &open,
            &approved(0),
            &Checks::Success,
            Mergeable::Unknown
        )));
        assert!(is_blocked(&decide_merge(
            ApprovalGate::Auto,
            &open,
            &approved(0),
            &Checks::Success,
            Mergeable::No
        )));
    }

    #[test]
    fn failed_check_blocks_before_missing_approvals_wait() {
        let d = decide_merge(
            ApprovalGate::Approved { min: 2 },
            &pr(PrState::Open),
            &approved(0),
            &Checks::Failure("ci".into()),
            Mergeable::Unknown,
        );
        assert!(is_blocked(&d), "{d:?}");
    }

    #[test]
    fn merged_or_closed_requests_are_not_merged_again() {
        for state in [
            PrState::Merged {
                merge_sha: "m".into(),
            },
            PrState::Closed,
        ] {
            for gate in [
                ApprovalGate::Auto,
                ApprovalGate::Approved { min: 0 },
                ApprovalGate::PullRequest,
            ] {
                let d = decide_merge(
                    gate,
                    &pr(state.clone()),
                    &approved(9),
                    &Checks::Success,
                    Mergeable::Yes,
                );
                assert!(is_blocked(&d), "{gate:?} {state:?}: {d:?}");
            }
        }
    }

    #[test]
    fn server_wait_reads_retry_after_and_ratelimit_reset() {
        let mut raw = RawResponse {
            status: 403,
            headers: http::HeaderMap::new(),
            body: br#"{"message":"You have exceeded a secondary rate limit"}"#.to_vec(),
        };
        assert_eq!(raw.server_wait(1000), None);
        assert!(!raw.is_transient(1000));
        raw.headers
            .insert("x-ratelimit-remaining", "0".parse().unwrap());
        raw.headers
            .insert("x-ratelimit-reset", "1007".parse().unwrap());
        assert_eq!(raw.server_wait(1000), Some(Duration::from_secs(7)));
        assert!(raw.is_transient(1000));
        raw.headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(raw.server_wait(1000), Some(Duration::from_secs(3)));
        assert_eq!(raw.message(), "You have exceeded a secondary rate limit");
    }

    #[test]
    fn permission_and_config_errors_are_bad_input() {
        use crate::fault::Classify;
        let p = ForgeError::Permission {
            repo: "o/r".into(),
            op: "merge",
            number: Some(3),
            status: 403,
            permission: "contents: write".into(),
            message: "Resource not accessible by integration".into(),
        };
        assert!(p.is_bad_input());
        assert_eq!(
            p.to_string(),
            "o/r: merge #3: HTTP 403: the token lacks `contents: write` (Resource not accessible by integration)"
        );
        let u = ForgeError::Unavailable {
            repo: "o/r".into(),
            op: "get",
            number: None,
            status: Some(502),
            attempts: 6,
            message: "bad gateway".into(),
            retry_after: None,
        };
        assert!(!u.is_bad_input());
    }
}
