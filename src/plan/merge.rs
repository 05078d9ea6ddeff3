//! Pull and merge requests as the tool sees them, whatever the forge, and the one pure decision
//! over them: may the tool merge this request now ([`decide_merge`]). The forge adapters fetch
//! these values; nothing here talks to a forge.

/// The state of a pull/merge request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PrState {
    Open,
    Merged { merge_sha: String },
    Closed,
}

/// A pull request (GitHub) or merge request (GitLab), as the tool needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PullRequest {
    /// GitHub's number or GitLab's iid: what users see after `#` or `!`.
    pub number: u64,
    pub url: String,
    pub branch: String,
    pub base: String,
    pub head_sha: String,
    /// Who opened it: GitHub's `user.login`, GitLab's `author.username`. Their own approval
    /// never counts.
    pub author: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub state: PrState,
}

/// A comment on a pull/merge request (GitLab: a note that is not a system note).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Comment {
    pub id: u64,
    pub body: String,
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub labels: Vec<String>,
}

/// Review state as the forge adapters sum it up (`forge::approval`): approvals that may gate a
/// merge (by someone who may write, on the current head, not the author's own), counted once per
/// reviewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reviews {
    pub approvals: u32,
    pub changes_requested: bool,
}

/// Combined CI state of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checks {
    Pending,
    Success,
    /// Which check (or pipeline) failed.
    Failure(String),
    /// No checks are configured for the commit.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum MergeMethod {
    #[default]
    Merge,
    Squash,
    Rebase,
}

impl MergeMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        }
    }
}

/// Whether the forge could merge the request now (conflicts); `Unknown` while it computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mergeable {
    Yes,
    No,
    Unknown,
}

/// Which requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    Open,
    /// Merged or closed.
    Closed,
    All,
}

/// What a merge call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged now, as this commit on the base branch.
    Merged { sha: String },
    /// GitLab accepted "merge when the pipeline succeeds"; it has not merged yet.
    Scheduled,
}

/// Who may merge a stage's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApprovalGate {
    /// Open a request and wait for a human to merge it.
    #[default]
    PullRequest,
    /// The tool merges once `min` reviewers approved and checks pass.
    Approved { min: u32 },
    /// The tool merges as soon as checks pass.
    Auto,
    /// No request: the change is pushed straight to the base branch.
    Direct,
}

/// What to do with a request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeDecision {
    Merge,
    Wait(String),
    Blocked(String),
}

/// Decide whether the tool may merge `pr` now. Pure: the caller observes, this decides.
///
/// A failed check, a conflict, a requested change or a closed request block (a human must act);
/// missing approvals, running checks and a mergeability still being computed wait.
pub fn decide_merge(
    gate: ApprovalGate,
    pr: &PullRequest,
    reviews: &Reviews,
    checks: &Checks,
    mergeable: Mergeable,
) -> MergeDecision {
    let n = pr.number;
    match &pr.state {
        PrState::Merged { merge_sha } => {
            return MergeDecision::Blocked(format!("#{n} is already merged as {merge_sha}"))
        }
        PrState::Closed => {
            return MergeDecision::Blocked(format!("#{n} was closed without merging"))
        }
        PrState::Open => {}
    }
    let min = match gate {
        ApprovalGate::Direct => {
            return MergeDecision::Blocked(format!(
                "gate `direct` pushes to the base branch; #{n} is not the tool's to merge"
            ))
        }
        ApprovalGate::PullRequest => {
            return MergeDecision::Wait(format!("waiting for a maintainer to merge #{n}"))
        }
        ApprovalGate::Approved { min } => min,
        ApprovalGate::Auto => 0,
    };
    if let Checks::Failure(which) = checks {
        return MergeDecision::Blocked(format!("check `{which}` failed on #{n}"));
    }
    if mergeable == Mergeable::No {
        return MergeDecision::Blocked(format!("#{n} cannot be merged (conflicts with the base)"));
    }
    if reviews.changes_requested {
        return MergeDecision::Blocked(format!("a reviewer requested changes on #{n}"));
    }
    if reviews.approvals < min {
        return MergeDecision::Wait(format!(
            "#{n} has {} of {min} required approvals",
            reviews.approvals
        ));
    }
    if *checks == Checks::Pending {
        return MergeDecision::Wait(format!("checks are still running on #{n}"));
    }
    if mergeable == Mergeable::Unknown {
        return MergeDecision::Wait(format!("the forge is still computing whether #{n} merges"));
    }
    MergeDecision::Merge
}
