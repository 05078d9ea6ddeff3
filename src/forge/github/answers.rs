//! Reading GitHub's answers: octocrab's pull requests and reviews as the tool's values, commit
//! statuses and check runs as one [`Checks`], and what a 403 says the token lacks.

use octocrab::models::{self, pulls};

use crate::forge::approval::{GitHubReview, ReviewState};
use crate::forge::{Checks, PrState, PullRequest, RawResponse};

/// The permission each operation needs, named as in a workflow's `permissions:` block.
fn permission_for(op: &str) -> &'static str {
    match op {
        "merge" => "contents: write",
        "checks" => "checks: read` and `statuses: read",
        "reviewer permission" => "metadata: read",
        "create pull request"
        | "update body"
        | "add labels"
        | "comment"
        | "update comment"
        | "close" => "pull-requests: write",
        _ => "pull-requests: read",
    }
}

/// GitHub names what it wanted in `x-accepted-github-permissions` (`pull_requests=write`);
/// without it, fall back to what the operation needs.
pub(super) fn missing_permission(op: &str, raw: &RawResponse) -> String {
    let msg = raw.message();
    if msg.contains("not permitted to create or approve pull requests") {
        return "the repository setting \"Allow GitHub Actions to create and approve pull requests\"".into();
    }
    if let Some(accepted) = raw
        .headers
        .get("x-accepted-github-permissions")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    {
        // Alternatives are separated by `;`, permissions within one by `,`.
        let first = accepted.split(';').next().unwrap_or(accepted);
        return first
            .split(',')
            .filter_map(|p| p.trim().split_once('='))
            .map(|(k, v)| format!("{}: {v}", k.replace('_', "-")))
            .collect::<Vec<_>>()
            .join("`, `");
    }
    permission_for(op).to_string()
}

/// octocrab's pull request as the tool sees it: merged if GitHub says so in either field.
pub(super) fn pull_request(pr: pulls::PullRequest) -> PullRequest {
    let state = if pr.merged_at.is_some() || pr.merged == Some(true) {
        PrState::Merged {
            merge_sha: pr.merge_commit_sha.clone().unwrap_or_default(),
        }
    } else if pr.state == Some(models::IssueState::Closed) {
        PrState::Closed
    } else {
        PrState::Open
    };
    PullRequest {
        number: pr.number,
        url: pr.html_url.map(|u| u.to_string()).unwrap_or(pr.url),
        branch: pr.head.ref_field,
        base: pr.base.ref_field,
        head_sha: pr.head.sha,
        author: pr.user.map(|u| u.login).unwrap_or_default(),
        title: pr.title.unwrap_or_default(),
        body: pr.body.unwrap_or_default(),
        labels: pr
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.name)
            .collect(),
        state,
    }
}

/// One review as the approval rules read it.
pub(super) fn review(r: pulls::Review) -> GitHubReview {
    use models::AuthorAssociation as A;
    let state = match r.state {
        Some(pulls::ReviewState::Approved) => ReviewState::Approved,
        Some(pulls::ReviewState::ChangesRequested) => ReviewState::ChangesRequested,
        Some(pulls::ReviewState::Commented) => ReviewState::Commented,
        Some(pulls::ReviewState::Dismissed) => ReviewState::Dismissed,
        _ => ReviewState::Pending,
    };
    let association = match r.author_association {
        Some(A::Owner) => "OWNER".to_string(),
        Some(A::Member) => "MEMBER".to_string(),
        Some(A::Collaborator) => "COLLABORATOR".to_string(),
        Some(A::Other(s)) => s,
        _ => "NONE".to_string(),
    };
    GitHubReview {
        reviewer: r.user.map(|u| u.login).unwrap_or_default(),
        state,
        commit_id: r.commit_id,
        association,
    }
}

/// Check runs that ended in one of these failed the commit.
const FAILED_CONCLUSIONS: &[&str] = &[
    "failure",
    "timed_out",
    "cancelled",
    "action_required",
    "startup_failure",
    "stale",
];

/// The combined commit statuses and the check runs of a commit as one [`Checks`].
pub(super) fn checks(
    combined: &models::CombinedStatus,
    runs: &models::checks::ListCheckRuns,
) -> Checks {
    let statuses = combined.statuses.iter().map(|s| {
        let state = match s.state {
            models::StatusState::Success => CheckState::Success,
            models::StatusState::Pending => CheckState::Pending,
            _ => CheckState::Failed,
        };
        (s.context.clone().unwrap_or_else(|| "status".into()), state)
    });
    let runs = runs.check_runs.iter().map(|r| {
        let state = match r.conclusion.as_deref() {
            None => CheckState::Pending,
            Some(c) if FAILED_CONCLUSIONS.contains(&c) => CheckState::Failed,
            Some(_) => CheckState::Success,
        };
        (r.name.clone(), state)
    });
    combine_checks(statuses.chain(runs))
}

/// One check's state, forge-neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckState {
    Success,
    Pending,
    Failed,
}

/// Any failure names the first failing check; else any pending waits; none at all is `None`.
fn combine_checks(items: impl Iterator<Item = (String, CheckState)>) -> Checks {
    let mut any = false;
    let mut pending = false;
    for (name, state) in items {
        any = true;
        match state {
            CheckState::Failed => return Checks::Failure(name),
            CheckState::Pending => pending = true,
            CheckState::Success => {}
        }
    }
    match (any, pending) {
        (false, _) => Checks::None,
        (true, true) => Checks::Pending,
        (true, false) => Checks::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_combine() {
        use CheckState::*;
        let c = |v: Vec<(&str, CheckState)>| {
            combine_checks(v.into_iter().map(|(n, s)| (n.to_string(), s)))
        };
        assert_eq!(c(vec![]), Checks::None);
        assert_eq!(c(vec![("a", Success), ("b", Success)]), Checks::Success);
        assert_eq!(c(vec![("a", Success), ("b", Pending)]), Checks::Pending);
        assert_eq!(
            c(vec![("a", Pending), ("b", Failed)]),
            Checks::Failure("b".into())
        );
    }
}
