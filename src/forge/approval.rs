//! Who may approve: the rules that turn what a forge reports about a request's reviews into
//! [`Reviews`]. Pure: the adapters fetch (reviews or approvals, the head, the author, each
//! reviewer's access) and these functions decide.
//!
//! An approval counts only when its author may write to the repository, it was given on the
//! request's current head, and it is not the request author's own. On GitHub each reviewer's
//! latest deciding review wins: a later `CHANGES_REQUESTED` cancels an earlier approval,
//! `COMMENTED` changes nothing and `DISMISSED` leaves nothing. A requested change blocks only
//! when its author may write (as GitHub's branch protection counts it), whatever the commit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::Reviews;

/// A GitHub review's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
    /// Not submitted yet (or a state this tool does not know): never decides anything.
    Pending,
}

impl ReviewState {
    #[cfg(test)]
    pub(crate) fn from_github(s: &str) -> Self {
        match s {
            "APPROVED" => ReviewState::Approved,
            "CHANGES_REQUESTED" => ReviewState::ChangesRequested,
            "COMMENTED" => ReviewState::Commented,
            "DISMISSED" => ReviewState::Dismissed,
            _ => ReviewState::Pending,
        }
    }

    /// Whether this review replaces the reviewer's earlier decision.
    fn decides(self) -> bool {
        matches!(
            self,
            ReviewState::Approved | ReviewState::ChangesRequested | ReviewState::Dismissed
        )
    }
}

/// One GitHub review as listed by `GET /repos/{owner}/{repo}/pulls/{n}/reviews`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitHubReview {
    /// `user.login`; empty when GitHub has no user (a deleted account).
    pub reviewer: String,
    pub state: ReviewState,
    /// `commit_id`: the head the review was given on.
    pub commit_id: Option<String>,
    /// `author_association`: `OWNER`, `MEMBER`, `COLLABORATOR`, `CONTRIBUTOR`, `NONE`...
    pub association: String,
}

/// `author_association` values of someone who may be able to write; the permission endpoint
/// still has to confirm it (`MEMBER` is any member of the owning organization).
pub(crate) fn trusted_association(association: &str) -> bool {
    matches!(association, "OWNER" | "MEMBER" | "COLLABORATOR")
}

/// `permission` from `GET /repos/{owner}/{repo}/collaborators/{user}/permission` that allows
/// pushing (GitHub maps `maintain` to `write`; it is accepted either way).
pub(crate) fn permission_can_write(permission: &str) -> bool {
    matches!(permission, "admin" | "maintain" | "write")
}

/// GitHub logins are case-insensitive.
fn login_key(login: &str) -> String {
    login.to_ascii_lowercase()
}

/// Each reviewer's latest deciding review, `reviews` being in the order they were submitted.
fn latest_decisions(reviews: &[GitHubReview]) -> BTreeMap<String, &GitHubReview> {
    let mut latest = BTreeMap::new();
    for r in reviews {
        if r.state.decides() && !r.reviewer.is_empty() {
            latest.insert(login_key(&r.reviewer), r);
        }
    }
    latest
}

/// Whether `r` (a reviewer's latest decision) would count or block, before asking whether its
/// author may write.
fn matters(r: &GitHubReview, head_sha: &str, author: &str) -> bool {
    if !trusted_association(&r.association) {
        return false;
    }
    match r.state {
        ReviewState::Approved => {
            r.commit_id.as_deref() == Some(head_sha) && login_key(&r.reviewer) != login_key(author)
        }
        ReviewState::ChangesRequested => true,
        _ => false,
    }
}

/// What a decision that matters does to the request when its author may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approves,
    RequestsChanges,
}

/// The one count both forges make: of the decisions that matter (keyed by who decided, each
/// once), those whose author `may_write` take effect: an approval adds one, a requested change
/// blocks.
fn tally<K>(
    decisions: impl IntoIterator<Item = (K, Decision)>,
    may_write: impl Fn(&K) -> bool,
) -> Reviews {
    let mut out = Reviews::default();
    for (who, decision) in decisions {
        if !may_write(&who) {
            continue;
        }
        match decision {
            Decision::Approves => out.approvals += 1,
            Decision::RequestsChanges => out.changes_requested = true,
        }
    }
    out
}

/// Each reviewer's latest deciding review that matters, keyed by lower-cased login.
fn github_decisions<'a>(
    reviews: &'a [GitHubReview],
    head_sha: &'a str,
    author: &'a str,
) -> impl Iterator<Item = (String, Decision)> + 'a {
    latest_decisions(reviews)
        .into_iter()
        .filter(move |(_, r)| matters(r, head_sha, author))
        .filter_map(|(login, r)| match r.state {
            ReviewState::Approved => Some((login, Decision::Approves)),
            ReviewState::ChangesRequested => Some((login, Decision::RequestsChanges)),
            _ => None,
        })
}

/// The reviewers whose write permission decides the outcome (lower-cased logins, each once):
/// the adapter looks these up and passes the answers to [`summarize_github`].
pub(crate) fn github_reviewers_to_check(
    reviews: &[GitHubReview],
    head_sha: &str,
    author: &str,
) -> Vec<String> {
    github_decisions(reviews, head_sha, author)
        .map(|(login, _)| login)
        .collect()
}

/// Count the approvals that may gate a merge of a pull request whose head is `head_sha` and
/// whose author is `author`. `permissions` maps lower-cased logins to the permission endpoint's
/// `permission`; a reviewer missing from it is treated as unable to write.
pub(crate) fn summarize_github(
    reviews: &[GitHubReview],
    head_sha: &str,
    author: &str,
    permissions: &BTreeMap<String, String>,
) -> Reviews {
    tally(github_decisions(reviews, head_sha, author), |login| {
        permissions
            .get(login)
            .is_some_and(|p| permission_can_write(p))
    })
}

/// GitLab's Developer role: the least access that may push to a branch.
pub(crate) const GITLAB_DEVELOPER: u32 = 30;

/// One entry of `approved_by` from `GET /projects/:id/merge_requests/:iid/approvals`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitLabApproval {
    pub user_id: u64,
    pub username: String,
    /// `approved_at` (RFC 3339), where GitLab reports it.
    pub approved_at: Option<String>,
}

/// When the merge request's current head arrived, from its diff versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadSince {
    /// The newest diff version has the request's head; it was created then (RFC 3339).
    At(String),
    /// The versions do not show the current head yet (a push GitLab has not processed): no
    /// approval can be shown to be on it.
    Unknown,
}

fn parse_time(s: &str) -> Option<SystemTime> {
    // GitLab answers in UTC (`Z`); anything else is unreadable here and counts as not on head.
    humantime::parse_rfc3339(s.trim()).ok()
}

/// Whether an approval was given on the current head: after the head arrived. Where GitLab
/// does not report `approved_at`, this relies on GitLab resetting approvals on push.
fn gitlab_on_head(a: &GitLabApproval, head: &HeadSince) -> bool {
    let Some(at) = &a.approved_at else {
        return true;
    };
    match head {
        HeadSince::Unknown => false,
        HeadSince::At(since) => match (parse_time(at), parse_time(since)) {
            (Some(at), Some(since)) => at >= since,
            _ => false,
        },
    }
}

/// The approvals that matter: on the current head, not the author's own, one per user id.
fn gitlab_decisions(
    approvals: &[GitLabApproval],
    author_id: Option<u64>,
    head: &HeadSince,
) -> impl Iterator<Item = (u64, Decision)> {
    approvals
        .iter()
        .filter(|a| Some(a.user_id) != author_id && gitlab_on_head(a, head))
        .map(|a| a.user_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|id| (id, Decision::Approves))
}

/// The approvers whose access level decides the outcome (user ids, each once).
pub(crate) fn gitlab_approvers_to_check(
    approvals: &[GitLabApproval],
    author_id: Option<u64>,
    head: &HeadSince,
) -> Vec<u64> {
    gitlab_decisions(approvals, author_id, head)
        .map(|(id, _)| id)
        .collect()
}

/// Count the approvals of a merge request: by someone with at least Developer access
/// (`access` maps user ids to `access_level` from `members/all`; missing means none), on the
/// current head, not by the author. `changes_requested` is GitLab's own
/// (`detailed_merge_status` of `requested_changes`).
pub(crate) fn summarize_gitlab(
    approvals: &[GitLabApproval],
    author_id: Option<u64>,
    head: &HeadSince,
    access: &BTreeMap<u64, u32>,
    changes_requested: bool,
) -> Reviews {
    let mut out = tally(gitlab_decisions(approvals, author_id, head), |id| {
        access.get(id).is_some_and(|l| *l >= GITLAB_DEVELOPER)
    });
    out.changes_requested |= changes_requested;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "headsha";
    const OLD: &str = "oldsha";
    const AUTHOR: &str = "gitops-canary[bot]";

    fn r(who: &str, state: &str, commit: &str, assoc: &str) -> GitHubReview {
        GitHubReview {
            reviewer: who.into(),
            state: ReviewState::from_github(state),
            commit_id: Some(commit.into()),
            association: assoc.into(),
        }
    }

    fn perms(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect()
    }

    #[test]
    fn github_rules_table() {
        let writers = perms(&[
            ("alice", "write"),
            ("bob", "admin"),
            ("maint", "maintain"),
            ("reader", "read"),
            ("triager", "triage"),
            ("nobody", "none"),
            (AUTHOR, "write"),
        ]);
        let cases: Vec<(&str, Vec<GitHubReview>, u32, bool)> = vec![
            ("no reviews", vec![], 0, false),
            (
                "a writer's approval on the head counts",
                vec![r("alice", "APPROVED", HEAD, "MEMBER")],
                1,
                false,
            ),
            (
                "admin and maintain count too",
                vec![
                    r("bob", "APPROVED", HEAD, "OWNER"),
                    r("maint", "APPROVED", HEAD, "COLLABORATOR"),
                ],
                2,
                false,
            ),
            (
                "read, triage and none do not count",
                vec![
                    r("reader", "APPROVED", HEAD, "COLLABORATOR"),
                    r("triager", "APPROVED", HEAD, "MEMBER"),
                    r("nobody", "APPROVED", HEAD, "MEMBER"),
                ],
                0,
                false,
            ),
            (
                "an untrusted association does not count even with write",
                vec![
                    r("alice", "APPROVED", HEAD, "CONTRIBUTOR"),
                    r("bob", "APPROVED", HEAD, "NONE"),
                ],
                0,
                false,
            ),
            (
                "a reviewer the permission lookup did not answer does not count",
                vec![r("stranger", "APPROVED", HEAD, "MEMBER")],
                0,
                false,
            ),
            (
                "an approval on an older head does not count",
                vec![r("alice", "APPROVED", OLD, "MEMBER")],
                0,
                false,
            ),
            (
                "a new approval on the head after a push counts",
                vec![
                    r("alice", "APPROVED", OLD, "MEMBER"),
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                ],
                1,
                false,
            ),
            (
                "the author's own approval does not count (any case)",
                vec![r("GitOps-Canary[bot]", "APPROVED", HEAD, "MEMBER")],
                0,
                false,
            ),
            (
                "a later CHANGES_REQUESTED cancels the approval",
                vec![
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                    r("alice", "CHANGES_REQUESTED", HEAD, "MEMBER"),
                ],
                0,
                true,
            ),
            (
                "a later approval replaces CHANGES_REQUESTED",
                vec![
                    r("alice", "CHANGES_REQUESTED", OLD, "MEMBER"),
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                ],
                1,
                false,
            ),
            (
                "COMMENTED does not cancel",
                vec![
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                    r("alice", "COMMENTED", HEAD, "MEMBER"),
                ],
                1,
                false,
            ),
            (
                "DISMISSED leaves nothing",
                vec![
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                    r("alice", "DISMISSED", HEAD, "MEMBER"),
                ],
                0,
                false,
            ),
            (
                "PENDING decides nothing",
                vec![
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                    r("alice", "PENDING", HEAD, "MEMBER"),
                ],
                1,
                false,
            ),
            (
                "one approval per reviewer, logins case-insensitive",
                vec![
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                    r("Alice", "APPROVED", HEAD, "MEMBER"),
                ],
                1,
                false,
            ),
            (
                "a requested change on an old head still blocks",
                vec![
                    r("bob", "CHANGES_REQUESTED", OLD, "OWNER"),
                    r("alice", "APPROVED", HEAD, "MEMBER"),
                ],
                1,
                true,
            ),
            (
                "a requested change by someone who cannot write does not block",
                vec![
                    r("reader", "CHANGES_REQUESTED", HEAD, "COLLABORATOR"),
                    r("drive-by", "CHANGES_REQUESTED", HEAD, "NONE"),
                ],
                0,
                false,
            ),
        ];
        for (name, reviews, approvals, changes_requested) in cases {
            let got = summarize_github(&reviews, HEAD, AUTHOR, &writers);
            assert_eq!(
                got,
                Reviews {
                    approvals,
                    changes_requested
                },
                "{name}"
            );
        }
    }

    #[test]
    fn github_looks_up_only_reviewers_who_matter_once_each() {
        let reviews = vec![
            r("alice", "APPROVED", HEAD, "MEMBER"),
            r("ALICE", "COMMENTED", HEAD, "MEMBER"),
            r("alice", "APPROVED", HEAD, "MEMBER"),
            r("stale", "APPROVED", OLD, "MEMBER"),
            r("outsider", "APPROVED", HEAD, "NONE"),
            r(AUTHOR, "APPROVED", HEAD, "OWNER"),
            r("bob", "CHANGES_REQUESTED", OLD, "COLLABORATOR"),
            r("carol", "APPROVED", HEAD, "MEMBER"),
            r("carol", "DISMISSED", HEAD, "MEMBER"),
        ];
        assert_eq!(
            github_reviewers_to_check(&reviews, HEAD, AUTHOR),
            vec!["alice".to_string(), "bob".to_string()]
        );
    }

    fn a(id: u64, at: Option<&str>) -> GitLabApproval {
        GitLabApproval {
            user_id: id,
            username: format!("user{id}"),
            approved_at: at.map(str::to_string),
        }
    }

    #[test]
    fn gitlab_rules_table() {
        let access: BTreeMap<u64, u32> = [(1, 30), (2, 40), (3, 20), (4, 10), (9, 50)].into();
        let since = HeadSince::At("2026-01-01T10:00:00.000Z".into());
        let after = Some("2026-01-01T10:00:05.250Z");
        let before = Some("2026-01-01T09:59:59.999Z");
        let author = Some(9);
        let cases: Vec<(&str, Vec<GitLabApproval>, &HeadSince, u32)> = vec![
            ("none", vec![], &since, 0),
            (
                "Developer and Maintainer count",
                vec![a(1, after), a(2, after)],
                &since,
                2,
            ),
            (
                "Reporter, Guest and non-members do not count",
                vec![a(3, after), a(4, after), a(5, after)],
                &since,
                0,
            ),
            (
                "the author's own approval does not count",
                vec![a(9, after)],
                &since,
                0,
            ),
            (
                "an approval before the head arrived does not count",
                vec![a(1, before), a(2, after)],
                &since,
                1,
            ),
            (
                "at the same instant counts",
                vec![a(1, Some("2026-01-01T10:00:00Z"))],
                &since,
                1,
            ),
            (
                "a head GitLab has no version for yet: nothing counts",
                vec![a(1, after)],
                &HeadSince::Unknown,
                0,
            ),
            (
                "an unreadable time does not count",
                vec![a(1, Some("yesterday"))],
                &since,
                0,
            ),
            (
                "without approved_at, GitLab's reset on push is relied on",
                vec![a(1, None)],
                &HeadSince::Unknown,
                1,
            ),
            (
                "one approval per user",
                vec![a(1, after), a(1, after)],
                &since,
                1,
            ),
        ];
        for (name, approvals, head, want) in cases {
            let got = summarize_gitlab(&approvals, author, head, &access, false);
            assert_eq!(got.approvals, want, "{name}");
            assert!(!got.changes_requested, "{name}");
        }
        let blocked = summarize_gitlab(&[a(1, after)], author, &since, &access, true);
        assert_eq!(
            blocked,
            Reviews {
                approvals: 1,
                changes_requested: true
            }
        );
        assert_eq!(
            gitlab_approvers_to_check(&[a(2, after), a(9, after), a(1, before)], author, &since),
            vec![2]
        );
    }
}
