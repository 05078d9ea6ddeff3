//! Reading GitLab's answers: the bodies of merge requests, approvals, diff versions, members and
//! pipelines, a merge request as the tool's value, its mergeability and checks, and what a 403
//! says the token lacks.

use serde::Deserialize;

use crate::forge::{Checks, Mergeable, PrState, PullRequest, RawResponse};

#[derive(Debug, Deserialize)]
pub(super) struct Mr {
    pub(super) iid: u64,
    pub(super) title: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    pub(super) state: String,
    pub(super) source_branch: String,
    pub(super) target_branch: String,
    #[serde(default)]
    pub(super) sha: Option<String>,
    #[serde(default)]
    pub(super) merge_commit_sha: Option<String>,
    #[serde(default)]
    pub(super) squash_commit_sha: Option<String>,
    #[serde(default)]
    pub(super) labels: Vec<String>,
    pub(super) web_url: String,
    #[serde(default)]
    pub(super) detailed_merge_status: Option<String>,
    #[serde(default)]
    pub(super) merge_status: Option<String>,
    #[serde(default)]
    pub(super) author: Option<UserRef>,
}

#[derive(Debug, Deserialize)]
pub(super) struct UserRef {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) username: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Approvals {
    #[serde(default)]
    pub(super) approved_by: Vec<ApprovedBy>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ApprovedBy {
    pub(super) user: UserRef,
    /// GitLab reports it in newer versions only.
    #[serde(default)]
    pub(super) approved_at: Option<String>,
}

/// One of `GET /merge_requests/:iid/versions` (newest first): each push makes one.
#[derive(Debug, Deserialize)]
pub(super) struct DiffVersion {
    pub(super) head_commit_sha: String,
    pub(super) created_at: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Member {
    pub(super) access_level: u32,
}

#[derive(Debug, Deserialize)]
pub(super) struct Pipeline {
    pub(super) id: u64,
    pub(super) status: String,
}

/// What a 403 on `op` says the token lacks: the scope GitLab names, else the scope and role the
/// operation needs.
pub(super) fn permission_for(op: &str, raw: &RawResponse) -> String {
    let v: serde_json::Value = serde_json::from_slice(&raw.body).unwrap_or_default();
    if v.get("error").and_then(|e| e.as_str()) == Some("insufficient_scope") {
        let scope = v.get("scope").and_then(|s| s.as_str()).unwrap_or("api");
        return format!("scope {scope}");
    }
    match op {
        "merge" => {
            "api scope and merge rights on the target branch (Developer or Maintainer)".into()
        }
        "find merge request"
        | "list merge requests"
        | "reviews"
        | "approver access"
        | "checks"
        | "list comments"
        | "get merge request" => "read_api scope and at least the Reporter role".into(),
        _ => "api scope and at least the Developer role".into(),
    }
}

/// A merge request as the tool sees it: its iid is the number; `locked` is closed.
pub(super) fn pull_request(mr: Mr) -> PullRequest {
    let state = match mr.state.as_str() {
        "merged" => PrState::Merged {
            merge_sha: mr
                .merge_commit_sha
                .or(mr.squash_commit_sha)
                .unwrap_or_default(),
        },
        "closed" | "locked" => PrState::Closed,
        _ => PrState::Open,
    };
    PullRequest {
        number: mr.iid,
        url: mr.web_url,
        branch: mr.source_branch,
        base: mr.target_branch,
        head_sha: mr.sha.unwrap_or_default(),
        author: mr.author.map(|a| a.username).unwrap_or_default(),
        title: mr.title,
        body: mr.description.unwrap_or_default(),
        labels: mr.labels,
        state,
    }
}

/// GitLab's `detailed_merge_status` (and the older `merge_status`) as a yes/no/not-yet.
pub(super) fn mergeable_from(detailed: Option<&str>, legacy: Option<&str>) -> Mergeable {
    match detailed {
        Some("mergeable") => Mergeable::Yes,
        Some("conflict" | "need_rebase" | "broken_status") => Mergeable::No,
        Some(_) => Mergeable::Unknown,
        None => match legacy {
            Some("can_be_merged") => Mergeable::Yes,
            Some("cannot_be_merged" | "cannot_be_merged_recheck") => Mergeable::No,
            _ => Mergeable::Unknown,
        },
    }
}

/// The newest pipeline of a commit as its checks.
pub(super) fn checks_from(pipeline: Option<&Pipeline>) -> Checks {
    let Some(p) = pipeline else {
        return Checks::None;
    };
    match p.status.as_str() {
        "success" | "skipped" => Checks::Success,
        "failed" | "canceled" | "canceling" => {
            Checks::Failure(format!("pipeline {} {}", p.id, p.status))
        }
        _ => Checks::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mergeability_from_detailed_status() {
        assert_eq!(mergeable_from(Some("mergeable"), None), Mergeable::Yes);
        assert_eq!(
            mergeable_from(Some("conflict"), Some("can_be_merged")),
            Mergeable::No
        );
        assert_eq!(mergeable_from(Some("checking"), None), Mergeable::Unknown);
        assert_eq!(
            mergeable_from(Some("ci_still_running"), None),
            Mergeable::Unknown
        );
        assert_eq!(
            mergeable_from(None, Some("cannot_be_merged")),
            Mergeable::No
        );
        assert_eq!(mergeable_from(None, None), Mergeable::Unknown);
    }

    #[test]
    fn pipeline_status_to_checks() {
        let p = |s: &str| Pipeline {
            id: 4,
            status: s.into(),
        };
        assert_eq!(checks_from(None), Checks::None);
        assert_eq!(checks_from(Some(&p("success"))), Checks::Success);
        assert_eq!(checks_from(Some(&p("running"))), Checks::Pending);
        assert_eq!(checks_from(Some(&p("manual"))), Checks::Pending);
        assert_eq!(
            checks_from(Some(&p("failed"))),
            Checks::Failure("pipeline 4 failed".into())
        );
    }
}
