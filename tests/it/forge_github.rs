//! The GitHub adapter against the stateful fake GitHub: pull requests are created once and
//! found again, reviews, checks and merges read and act as GitHub answers, faults are retried
//! within bounds, and a missing permission is named without ever showing the token.

use crate::support::fake_github;

use std::time::Duration;

use fake_github::{fake_sha, FakeGitHub, Fault, PR_AUTHOR};
use gitops_canary::exit::Classify;
use gitops_canary::forge::github::{GitHub, GitHubConfig};
use gitops_canary::forge::{
    decide_merge, upsert_comment, AnyForge, ApprovalGate, Checks, Forge, ForgeError, MergeDecision,
    MergeMethod, MergeOutcome, Mergeable, NewPullRequest, PrState, RetryPolicy, Reviews,
    StateFilter,
};
use gitops_canary::secret::Token;

const TOKEN: &str = "ghp_FAKEsecretTOKEN1234567890abcdef";
const BRANCH: &str = "gitops-canary/default-web-25";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_server_wait: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
    }
}

async fn setup() -> (FakeGitHub, GitHub) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGitHub::start("acme", "gitops", TOKEN).await;
    let gh = client(&fake, TOKEN);
    (fake, gh)
}

fn client(fake: &FakeGitHub, token: &str) -> GitHub {
    GitHub::new(GitHubConfig {
        api_url: fake.api_url(),
        server_url: "https://github.com".into(),
        repo: fake.full_name(),
        token: Token::new(token),
        retry: fast_retry(),
    })
    .unwrap()
}

fn new_pr(branch: &str, labels: &[&str]) -> NewPullRequest {
    NewPullRequest {
        title: "canary: web to 25%".into(),
        body: "Stage 2 of 4".into(),
        head: branch.into(),
        base: "main".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

/// No token in any rendering of an error.
fn assert_no_token(e: &ForgeError) {
    for text in [
        format!("{e}"),
        format!("{e:?}"),
        format!("{:#}", anyhow::Error::msg(e.to_string())),
    ] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
}

#[tokio::test]
async fn create_then_find_and_never_duplicate() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh
        .create_pr(&new_pr(BRANCH, &["gitops-canary", "canary:web"]))
        .await
        .unwrap();
    assert_eq!(pr.number, 1);
    assert_eq!(pr.branch, BRANCH);
    assert_eq!(pr.base, "main");
    assert_eq!(pr.head_sha, fake_sha("c1"));
    assert_eq!(pr.state, PrState::Open);
    assert_eq!(pr.url, "https://github.com/acme/gitops/pull/1");
    assert_eq!(pr.labels, vec!["gitops-canary", "canary:web"]);
    assert_eq!(
        fake.pr(1).unwrap().labels,
        vec!["gitops-canary", "canary:web"]
    );

    let found = gh.find_pr_by_branch(BRANCH).await.unwrap().expect("found");
    assert_eq!(found, pr);

    // A re-run creates again: GitHub answers 422 "A pull request already exists"; we return #1.
    let again = gh
        .create_pr(&new_pr(BRANCH, &["gitops-canary", "canary:web"]))
        .await
        .unwrap();
    assert_eq!(again.number, 1);
    assert_eq!(fake.prs().len(), 1, "no duplicate pull request");
    assert_eq!(fake.count("POST", "/pulls"), 2);
    let second_create = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pulls"))
        .nth(1)
        .unwrap();
    assert_eq!(second_create.status, 422);
    assert!(
        second_create
            .body
            .contains("A pull request already exists for acme:"),
        "{}",
        second_create.body
    );
    assert_eq!(fake.pr(1).unwrap().labels.len(), 2, "labels not duplicated");

    assert_eq!(gh.find_pr_by_branch("no-such-branch").await.unwrap(), None);
}

#[tokio::test]
async fn create_on_missing_branch_is_a_validation_error() {
    let (_fake, gh) = setup().await;
    let err = gh
        .create_pr(&new_pr("never-pushed", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::Api { status: 422, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("invalid"), "{err}");
}

#[tokio::test]
async fn find_prefers_the_open_request_then_the_most_recent() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let first = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    fake.close_pr(first.number);
    fake.set_branch(BRANCH, &fake_sha("c2"));
    let second = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    assert_eq!(second.number, 2);
    // A newer, closed request on the same branch must not hide the open one.
    fake.set_branch("other", &fake_sha("o"));
    gh.create_pr(&new_pr("other", &[])).await.unwrap();
    gh.update_pr_body(first.number, "touched later")
        .await
        .unwrap();

    let found = gh.find_pr_by_branch(BRANCH).await.unwrap().unwrap();
    assert_eq!(found.number, 2);
    assert_eq!(found.state, PrState::Open);

    gh.merge(2, MergeMethod::Merge, &fake_sha("c2"))
        .await
        .unwrap();
    // Both closed now: the merge touched #2 last, so it is the most recent.
    let found = gh.find_pr_by_branch(BRANCH).await.unwrap().unwrap();
    assert_eq!(found.number, 2);
    assert!(matches!(found.state, PrState::Merged { .. }));
}

#[tokio::test]
async fn list_by_label_and_state() {
    let (fake, gh) = setup().await;
    for (i, b) in ["a", "b", "c"].iter().enumerate() {
        fake.set_branch(b, &fake_sha(b));
        let labels: &[&str] = if i < 2 {
            &["gitops-canary"]
        } else {
            &["other"]
        };
        gh.create_pr(&new_pr(b, labels)).await.unwrap();
    }
    gh.close(1).await.unwrap();
    let nums = |v: Vec<gitops_canary::forge::PullRequest>| {
        v.into_iter().map(|p| p.number).collect::<Vec<_>>()
    };
    assert_eq!(
        nums(
            gh.list_prs_by_label("gitops-canary", StateFilter::Open)
                .await
                .unwrap()
        ),
        vec![2]
    );
    assert_eq!(
        nums(
            gh.list_prs_by_label("gitops-canary", StateFilter::Closed)
                .await
                .unwrap()
        ),
        vec![1]
    );
    let mut all = nums(
        gh.list_prs_by_label("gitops-canary", StateFilter::All)
            .await
            .unwrap(),
    );
    all.sort();
    assert_eq!(all, vec![1, 2]);
}

#[tokio::test]
async fn list_follows_pages() {
    let (fake, gh) = setup().await;
    // 105 open requests: more than one page of 100.
    for i in 0..105 {
        let b = format!("b{i}");
        fake.set_branch(&b, &fake_sha(&b));
        gh.create_pr(&new_pr(&b, &["many"])).await.unwrap();
    }
    let all = gh
        .list_prs_by_label("many", StateFilter::Open)
        .await
        .unwrap();
    assert_eq!(all.len(), 105);
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/pulls") && r.query.contains("page=2")));
}

/// A comment found again by its marker is edited in place, across pages; a re-run posts
/// nothing twice.
#[tokio::test]
async fn comments_are_listed_across_pages_and_edited_by_marker() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    for i in 0..105 {
        gh.comment(pr.number, &format!("chatter {i}"))
            .await
            .unwrap();
    }
    let marker = "<!-- gitops-canary:gates rollout=web stage=1 -->";
    let body = format!("stage 1: wait\n{marker}\n");
    assert!(upsert_comment(&gh, pr.number, marker, &body).await.unwrap());
    let all = gh.list_comments(pr.number).await.unwrap();
    assert_eq!(all.len(), 106, "every page is read");
    assert_eq!(all[0].body, "chatter 0", "oldest first");
    // The same body again: nothing changes; a new verdict edits the same comment.
    assert!(!upsert_comment(&gh, pr.number, marker, &body).await.unwrap());
    let passed = format!("stage 1: pass\n{marker}\n");
    assert!(upsert_comment(&gh, pr.number, marker, &passed)
        .await
        .unwrap());
    let comments = fake.comments(pr.number);
    assert_eq!(comments.len(), 106, "edited, not posted again");
    assert_eq!(comments.last().unwrap(), &passed);
    let err = gh
        .update_comment(pr.number, 999_999, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, ForgeError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn body_labels_comments() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    gh.update_pr_body(pr.number, "new body\n\n- stage 2")
        .await
        .unwrap();
    gh.add_labels(
        pr.number,
        &["canary:25".to_string(), "gitops-canary".to_string()],
    )
    .await
    .unwrap();
    gh.add_labels(pr.number, &["canary:25".to_string()])
        .await
        .unwrap();
    gh.comment(pr.number, "Stage healthy after 10m")
        .await
        .unwrap();
    let got = fake.pr(pr.number).unwrap();
    assert_eq!(got.body.as_deref(), Some("new body\n\n- stage 2"));
    assert_eq!(got.labels, vec!["canary:25", "gitops-canary"]);
    assert_eq!(fake.comments(pr.number), vec!["Stage healthy after 10m"]);
    let err = gh.comment(99, "x").await.unwrap_err();
    assert!(
        matches!(err, ForgeError::NotFound { number: 99, .. }),
        "{err:?}"
    );
}

fn approvals(n: u32, changes_requested: bool) -> Reviews {
    Reviews {
        approvals: n,
        changes_requested,
    }
}

/// Requests to the collaborator permission endpoint so far.
fn permission_lookups(fake: &FakeGitHub) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/permission"))
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn reviews_count_each_reviewers_latest_decision() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    assert_eq!(pr.author, PR_AUTHOR);
    assert_eq!(gh.reviews(&pr).await.unwrap(), Reviews::default());
    for who in ["alice", "bob", "carol"] {
        fake.grant(who, "write");
    }
    fake.add_review(pr.number, "alice", "APPROVED");
    fake.add_review(pr.number, "bob", "CHANGES_REQUESTED");
    fake.add_review(pr.number, "carol", "COMMENTED");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(1, true));
    fake.add_review(pr.number, "bob", "APPROVED");
    fake.add_review(pr.number, "alice", "COMMENTED");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(2, false));
    fake.add_review(pr.number, "alice", "DISMISSED");
    assert_eq!(gh.reviews(&pr).await.unwrap().approvals, 1);
}

#[tokio::test]
async fn approval_by_someone_who_cannot_write_is_ignored() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    // A stranger on a public repository; an organization member who only reads; a triager
    // recorded as a collaborator; someone with write whose association GitHub says is none.
    fake.add_review_with(pr.number, "stranger", "APPROVED", "NONE", None);
    fake.add_review_with(
        pr.number,
        "first-timer",
        "APPROVED",
        "FIRST_TIME_CONTRIBUTOR",
        None,
    );
    fake.add_review_with(pr.number, "org-reader", "APPROVED", "MEMBER", None);
    fake.grant("triager", "triage");
    fake.add_review_with(pr.number, "triager", "APPROVED", "COLLABORATOR", None);
    fake.grant("odd", "write");
    fake.add_review_with(pr.number, "odd", "APPROVED", "CONTRIBUTOR", None);
    // Nor does a stranger's requested change block the stage.
    fake.add_review_with(pr.number, "troll", "CHANGES_REQUESTED", "NONE", None);
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(0, false));
    // Only the plausible writers were looked up, and each once.
    let mut asked = permission_lookups(&fake);
    asked.sort();
    assert_eq!(
        asked,
        vec![
            "/repos/acme/gitops/collaborators/org-reader/permission",
            "/repos/acme/gitops/collaborators/triager/permission",
        ]
    );
    // Made a maintainer (reported as `write`), the same approval counts.
    fake.grant("triager", "maintain");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(1, false));
}

#[tokio::test]
async fn approval_on_an_older_head_is_ignored() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    fake.grant("alice", "write");
    fake.add_review(pr.number, "alice", "APPROVED");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(1, false));
    // A push after the approval: the head the tool observes (and would merge) is new.
    fake.push_to_pr(pr.number, &fake_sha("c2"));
    let pr = gh.find_pr_by_branch(BRANCH).await.unwrap().unwrap();
    assert_eq!(pr.head_sha, fake_sha("c2"));
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(0, false));
    // A review given on an explicit older commit after the push does not count either.
    let c1 = fake_sha("c1");
    fake.add_review_with(pr.number, "alice", "APPROVED", "MEMBER", Some(&c1));
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(0, false));
    fake.add_review(pr.number, "alice", "APPROVED");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(1, false));
}

#[tokio::test]
async fn the_authors_own_approval_is_ignored() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    // The token's user may write, and its review says APPROVED on the head.
    fake.grant(PR_AUTHOR, "admin");
    fake.add_review_with(pr.number, PR_AUTHOR, "APPROVED", "OWNER", None);
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(0, false));
    assert!(permission_lookups(&fake).is_empty());
    fake.grant("alice", "write");
    fake.add_review(pr.number, "alice", "APPROVED");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(1, false));
}

#[tokio::test]
async fn a_later_change_request_cancels_the_same_reviewers_approval() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    let gate = ApprovalGate::Approved { min: 1 };
    let decide = |r: &Reviews| decide_merge(gate, &pr, r, &Checks::Success, Mergeable::Yes);
    fake.grant("alice", "write");
    fake.add_review(pr.number, "alice", "APPROVED");
    // A stranger's approval does not stand in for alice's once she withdraws it.
    fake.add_review_with(pr.number, "stranger", "APPROVED", "NONE", None);
    assert_eq!(
        decide(&gh.reviews(&pr).await.unwrap()),
        MergeDecision::Merge
    );
    fake.add_review(pr.number, "alice", "CHANGES_REQUESTED");
    let r = gh.reviews(&pr).await.unwrap();
    assert_eq!(r, approvals(0, true));
    assert!(matches!(decide(&r), MergeDecision::Blocked(_)), "{r:?}");
    // A comment afterwards changes nothing; a new approval on the head replaces the request.
    fake.add_review(pr.number, "alice", "COMMENTED");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(0, true));
    fake.add_review(pr.number, "alice", "APPROVED");
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(1, false));
}

#[tokio::test]
async fn a_writers_approval_on_the_head_counts_once() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    fake.grant("alice", "write");
    fake.grant("Owner-Bob", "admin");
    fake.add_review_with(pr.number, "alice", "APPROVED", "COLLABORATOR", None);
    fake.add_review_with(pr.number, "alice", "APPROVED", "COLLABORATOR", None);
    fake.add_review_with(pr.number, "Owner-Bob", "APPROVED", "OWNER", None);
    assert_eq!(gh.reviews(&pr).await.unwrap(), approvals(2, false));
    // Confirmed with the permission endpoint, once per reviewer per pass.
    let mut asked = permission_lookups(&fake);
    asked.sort();
    assert_eq!(
        asked,
        vec![
            "/repos/acme/gitops/collaborators/alice/permission",
            "/repos/acme/gitops/collaborators/owner-bob/permission",
        ]
    );
}

#[tokio::test]
async fn a_token_that_cannot_read_permissions_fails_the_pass() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    fake.grant("alice", "write");
    fake.add_review(pr.number, "alice", "APPROVED");
    fake.fail_on("GET", "/permission", 1, Fault::Forbidden { accepted: None });
    let err = gh.reviews(&pr).await.unwrap_err();
    assert!(
        matches!(&err, ForgeError::Permission { permission, .. } if permission == "metadata: read"),
        "{err:?}"
    );
}

#[tokio::test]
async fn checks_combine_statuses_and_check_runs() {
    let (fake, gh) = setup().await;
    let sha = fake_sha("c1");
    assert_eq!(gh.checks(&sha).await.unwrap(), Checks::None);
    fake.add_status(&sha, "ci/build", "pending");
    assert_eq!(gh.checks(&sha).await.unwrap(), Checks::Pending);
    fake.add_status(&sha, "ci/build", "success");
    assert_eq!(gh.checks(&sha).await.unwrap(), Checks::Success);
    fake.add_check_run(&sha, "lint", "in_progress", None);
    assert_eq!(gh.checks(&sha).await.unwrap(), Checks::Pending);
    fake.add_check_run(&sha, "test", "completed", Some("failure"));
    assert_eq!(
        gh.checks(&sha).await.unwrap(),
        Checks::Failure("test".into())
    );

    let other = fake_sha("c2");
    fake.add_check_run(&other, "lint", "completed", Some("success"));
    fake.add_check_run(&other, "optional", "completed", Some("skipped"));
    assert_eq!(gh.checks(&other).await.unwrap(), Checks::Success);
    fake.add_status(&other, "deploy/preview", "error");
    assert_eq!(
        gh.checks(&other).await.unwrap(),
        Checks::Failure("deploy/preview".into())
    );
}

#[tokio::test]
async fn mergeable_states() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    assert_eq!(gh.mergeable(pr.number).await.unwrap(), Mergeable::Yes);
    fake.set_mergeable(pr.number, None);
    assert_eq!(gh.mergeable(pr.number).await.unwrap(), Mergeable::Unknown);
    fake.set_mergeable(pr.number, Some(false));
    assert_eq!(gh.mergeable(pr.number).await.unwrap(), Mergeable::No);
    let err = gh
        .merge(pr.number, MergeMethod::Merge, &pr.head_sha)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::NotMergeable { status: 405, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn merge_methods_expected_head_and_hook() {
    let (fake, gh) = setup().await;
    for (i, method) in [MergeMethod::Merge, MergeMethod::Squash, MergeMethod::Rebase]
        .into_iter()
        .enumerate()
    {
        let b = format!("b{i}");
        fake.set_branch(&b, &fake_sha(&b));
        let pr = gh.create_pr(&new_pr(&b, &[])).await.unwrap();
        let out = gh.merge(pr.number, method, &pr.head_sha).await.unwrap();
        let MergeOutcome::Merged { sha } = out else {
            panic!("{out:?}")
        };
        let got = fake.pr(pr.number).unwrap();
        assert_eq!(got.merge_method.as_deref(), Some(method.as_str()));
        assert_eq!(got.merge_commit_sha.as_deref(), Some(sha.as_str()));
        let seen = gh.find_pr_by_branch(&b).await.unwrap().unwrap();
        assert_eq!(seen.state, PrState::Merged { merge_sha: sha });
    }

    // The head moved since we looked: GitHub answers 409 and nothing is merged.
    fake.set_branch("moved", &fake_sha("m1"));
    let pr = gh.create_pr(&new_pr("moved", &[])).await.unwrap();
    fake.push_to_pr(pr.number, &fake_sha("m2"));
    let err = gh
        .merge(pr.number, MergeMethod::Squash, &pr.head_sha)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::HeadChanged { status: 409, .. }),
        "{err:?}"
    );
    assert!(fake.pr(pr.number).unwrap().open);

    // A hook (the e2e harness merging in a real repository) decides the merge sha.
    fake.on_merge(|ev| Some(fake_sha(&format!("real-merge-of-{}", ev.head_ref))));
    let out = gh
        .merge(pr.number, MergeMethod::Merge, &fake_sha("m2"))
        .await
        .unwrap();
    assert_eq!(
        out,
        MergeOutcome::Merged {
            sha: fake_sha("real-merge-of-moved")
        }
    );

    // Merged already: 405.
    let err = gh
        .merge(pr.number, MergeMethod::Merge, &fake_sha("m2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::NotMergeable { status: 405, .. }),
        "{err:?}"
    );
    let err = gh.merge(404, MergeMethod::Merge, "x").await.unwrap_err();
    assert!(
        matches!(err, ForgeError::NotFound { number: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn close_and_web_url() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    gh.close(pr.number).await.unwrap();
    assert!(!fake.pr(pr.number).unwrap().open);
    assert_eq!(
        gh.find_pr_by_branch(BRANCH).await.unwrap().unwrap().state,
        PrState::Closed
    );
    assert_eq!(gh.web_url(7), "https://github.com/acme/gitops/pull/7");
    let any = AnyForge::GitHub(gh);
    assert_eq!(
        any.find_pr_by_branch(BRANCH).await.unwrap().unwrap().number,
        pr.number
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    fake.fail(2, Fault::ServerError);
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    assert_eq!(pr.number, 1);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 201]);

    // More faults than retries: give up, say how often it tried, exit code 1.
    fake.fail(10, Fault::BadGateway);
    let err = gh.find_pr_by_branch(BRANCH).await.unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::Unavailable {
                attempts: 4,
                status: Some(502),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_bad_input());
    assert_no_token(&err);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let (fake, gh) = setup().await;
    fake.fail(1, Fault::TooManyRequests { retry_after: 1 });
    assert_eq!(gh.find_pr_by_branch(BRANCH).await.unwrap(), None);
    let reqs = fake.requests();
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 200]
    );
    let waited = reqs[1].at.duration_since(reqs[0].at);
    assert!(
        waited >= Duration::from_secs(1),
        "retried after {waited:?}, before retry-after"
    );
}

#[tokio::test]
async fn secondary_rate_limit_is_retried_not_reported_as_permission() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    fake.fail_on(
        "POST",
        "/pulls",
        1,
        Fault::SecondaryRateLimit { retry_after: 1 },
    );
    fake.fail(1, Fault::PrimaryRateLimit { reset_in: 1 });
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    assert_eq!(pr.number, 1);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![403, 403, 201]);

    // A wait longer than the policy allows is not slept through: it fails now.
    fake.fail(1, Fault::SecondaryRateLimit { retry_after: 3600 });
    let err = gh.find_pr_by_branch(BRANCH).await.unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::Unavailable {
                status: Some(403),
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("secondary rate limit"), "{err}");
}

#[tokio::test]
async fn permission_errors_name_the_permission_and_are_not_retried() {
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();

    fake.fail_on("PUT", "/merge", 1, Fault::Forbidden { accepted: None });
    let err = gh
        .merge(pr.number, MergeMethod::Squash, &pr.head_sha)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::Permission { status: 403, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("`contents: write`"), "{err}");
    assert!(err.to_string().contains("acme/gitops: merge #1"), "{err}");
    assert!(err.is_bad_input());
    assert_eq!(
        fake.count("PUT", "/merge"),
        1,
        "a permission error is not retried"
    );
    assert_no_token(&err);

    // GitHub names the permission it wanted; that wins over our table.
    fake.fail_on(
        "POST",
        "/comments",
        1,
        Fault::Forbidden {
            accepted: Some("issues=write; pull_requests=write".into()),
        },
    );
    let err = gh.comment(pr.number, "hi").await.unwrap_err();
    assert!(err.to_string().contains("`issues: write`"), "{err}");

    fake.fail_on("GET", "/check-runs", 1, Fault::Forbidden { accepted: None });
    let err = gh.checks(&pr.head_sha).await.unwrap_err();
    assert!(err.to_string().contains("`checks: read`"), "{err}");

    fake.fail_on("POST", "/pulls", 1, Fault::Forbidden { accepted: None });
    let err = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap_err();
    assert!(err.to_string().contains("`pull-requests: write`"), "{err}");
}

#[tokio::test]
async fn bad_token_is_rejected_without_showing_it() {
    let (fake, _) = setup().await;
    let wrong = "ghp_WRONGsecretTOKEN000000000000000";
    let gh = client(&fake, wrong);
    let err = gh.find_pr_by_branch(BRANCH).await.unwrap_err();
    assert!(
        matches!(err, ForgeError::Permission { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("a valid token"), "{err}");
    for text in [format!("{err}"), format!("{err:?}"), format!("{gh:?}")] {
        assert!(
            !text.contains(wrong) && !text.contains(TOKEN),
            "token leaked: {text}"
        );
    }
    // The fake saw exactly one request: 401 is not retried.
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn config_from_env_requires_repository_and_token() {
    // Config parsing only; no network. Env is process-wide, so one test sets it.
    std::env::remove_var("GITHUB_REPOSITORY");
    let err = GitHubConfig::from_env(Some(Token::new(TOKEN))).unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::Config {
                setting: "GITHUB_REPOSITORY",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_bad_input());
    std::env::set_var("GITHUB_REPOSITORY", "acme/gitops");
    std::env::set_var("GITHUB_API_URL", "http://127.0.0.1:9/api/v3");
    let cfg = GitHubConfig::from_env(Some(Token::new(TOKEN))).unwrap();
    assert_eq!(cfg.api_url, "http://127.0.0.1:9/api/v3");
    assert_eq!(cfg.repo, "acme/gitops");
    assert!(!format!("{cfg:?}").contains(TOKEN));
    let err = GitHub::new(GitHubConfig {
        repo: "not-a-slug".into(),
        ..cfg
    })
    .unwrap_err();
    assert!(matches!(err, ForgeError::Config { .. }), "{err:?}");
}

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn retries_are_logged_without_the_token() {
    let logs = LogBuf::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (fake, gh) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    fake.fail(1, Fault::ServerError);
    fake.fail(1, Fault::SecondaryRateLimit { retry_after: 0 });
    let pr = gh.create_pr(&new_pr(BRANCH, &[])).await.unwrap();
    fake.fail(1, Fault::Forbidden { accepted: None });
    let err = gh
        .merge(pr.number, MergeMethod::Merge, &pr.head_sha)
        .await
        .unwrap_err();
    tracing::error!(error = %err, debug = ?err, client = ?gh, "as the CLI would report it");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("transient failure, retrying"), "{text}");
    assert!(text.contains("secondary rate limit"), "{text}");
    assert!(!text.contains(TOKEN), "token in logs: {text}");
}

/// A server that accepts connections and never answers: every request ends at the request
/// timeout, is retried within the policy, and the call fails with the reason instead of hanging.
#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_retry_policy() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(sock);
        }
    });
    let gh = GitHub::new(GitHubConfig {
        api_url: format!("http://{addr}/api/v3"),
        server_url: "https://github.com".into(),
        repo: "acme/gitops".into(),
        token: Token::new(TOKEN),
        retry: RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
            max_server_wait: Duration::from_secs(1),
            request_timeout: Duration::from_millis(300),
        },
    })
    .unwrap();
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), gh.find_pr_by_branch(BRANCH))
        .await
        .expect("the call must end on its own")
        .expect_err("nothing answers");
    assert!(started.elapsed() < Duration::from_secs(10));
    let shown = format!("{err:#}");
    assert!(shown.contains("no answer within"), "{shown}");
    assert_no_token(&err);
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "1 try + 2 retries"
    );
}
