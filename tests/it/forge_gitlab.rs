//! The GitLab adapter against the stateful fake GitLab: merge requests are created once and
//! found again, approvals, pipelines and merges (now or when the pipeline succeeds) behave as
//! GitLab documents, faults are retried within bounds, and a missing permission is named
//! without ever showing the token.

use crate::support::fake_gitlab;

use std::time::Duration;

use fake_gitlab::{fake_sha, FakeGitLab, Fault, DEVELOPER, GUEST, MAINTAINER, REPORTER};
use gitops_canary::exit::Classify;
use gitops_canary::forge::gitlab::{GitLab, GitLabAuth, GitLabConfig};
use gitops_canary::forge::{
    decide_merge, upsert_comment, AnyForge, ApprovalGate, Checks, Forge, ForgeError, MergeDecision,
    MergeMethod, MergeOutcome, Mergeable, NewPullRequest, PrState, PullRequest, RetryPolicy,
    Reviews, StateFilter,
};
use gitops_canary::secret::Token;

const TOKEN: &str = "glpat-FAKEsecretTOKEN1234567890";
const BRANCH: &str = "gitops-canary/default-web-25";

fn cfg(fake: &FakeGitLab, project: &str, token: &str) -> GitLabConfig {
    GitLabConfig {
        server_url: fake.server_url(),
        project: project.into(),
        project_url: None,
        token: Token::new(token),
        auth: GitLabAuth::PrivateToken,
        auto_merge: false,
        retry: RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_server_wait: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        },
    }
}

async fn setup() -> (FakeGitLab, GitLab) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGitLab::start(42, "acme/gitops", TOKEN).await;
    let gl = GitLab::new(cfg(&fake, "42", TOKEN)).unwrap();
    (fake, gl)
}

fn new_mr(branch: &str, labels: &[&str]) -> NewPullRequest {
    NewPullRequest {
        title: "canary: web to 25%".into(),
        body: "Stage 2 of 4".into(),
        head: branch.into(),
        base: "main".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

fn assert_no_token(texts: &[String]) {
    for t in texts {
        assert!(!t.contains(TOKEN), "token leaked: {t}");
    }
}

#[tokio::test]
async fn create_then_find_and_never_duplicate() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let mr = gl
        .create_pr(&new_mr(BRANCH, &["gitops-canary", "canary::web"]))
        .await
        .unwrap();
    assert_eq!(mr.number, 1);
    assert_eq!(mr.branch, BRANCH);
    assert_eq!(mr.head_sha, fake_sha("c1"));
    assert_eq!(mr.labels, vec!["gitops-canary", "canary::web"]);
    assert_eq!(mr.state, PrState::Open);
    assert!(
        mr.url.ends_with("/acme/gitops/-/merge_requests/1"),
        "{}",
        mr.url
    );
    let req = fake.requests().pop().unwrap();
    assert_eq!(req.auth, "PRIVATE-TOKEN");
    assert!(req.request_body.contains("\"remove_source_branch\":true"));

    assert_eq!(
        gl.find_pr_by_branch(BRANCH).await.unwrap(),
        Some(mr.clone())
    );
    // Re-run: GitLab answers 409 "Another open merge request already exists"; we return !1.
    let again = gl
        .create_pr(&new_mr(BRANCH, &["gitops-canary", "canary::web"]))
        .await
        .unwrap();
    assert_eq!(again.number, 1);
    assert_eq!(fake.mrs().len(), 1);
    let creates: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/merge_requests"))
        .map(|r| r.status)
        .collect();
    assert_eq!(creates, vec![201, 409]);
    assert_eq!(gl.find_pr_by_branch("nope").await.unwrap(), None);
}

#[tokio::test]
async fn project_path_is_url_encoded_and_bearer_works() {
    let (fake, _) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let mut c = cfg(&fake, "acme/gitops", TOKEN);
    c.auth = GitLabAuth::Bearer;
    let gl = GitLab::new(c).unwrap();
    let mr = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    let req = fake.requests().pop().unwrap();
    assert!(
        req.path.starts_with("/api/v4/projects/acme%2Fgitops/"),
        "{}",
        req.path
    );
    assert_eq!(req.auth, "Authorization");
    assert_eq!(
        gl.web_url(mr.number),
        format!("{}/acme/gitops/-/merge_requests/1", fake.server_url())
    );
}

#[tokio::test]
async fn find_prefers_open_then_most_recent() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let first = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    gl.close(first.number).await.unwrap();
    let second = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    assert_eq!(second.number, 2);
    gl.update_pr_body(first.number, "touched after #2 was opened")
        .await
        .unwrap();
    assert_eq!(
        gl.find_pr_by_branch(BRANCH).await.unwrap().unwrap().number,
        2
    );
    gl.close(2).await.unwrap();
    gl.update_pr_body(first.number, "touched last")
        .await
        .unwrap();
    let found = gl.find_pr_by_branch(BRANCH).await.unwrap().unwrap();
    assert_eq!((found.number, found.state), (1, PrState::Closed));
}

#[tokio::test]
async fn list_by_label_and_state() {
    let (fake, gl) = setup().await;
    for b in ["a", "b", "c"] {
        fake.set_branch(b, &fake_sha(b));
        let labels: &[&str] = if b == "c" {
            &["other"]
        } else {
            &["gitops-canary"]
        };
        gl.create_pr(&new_mr(b, labels)).await.unwrap();
    }
    gl.close(1).await.unwrap();
    let nums = |v: Vec<gitops_canary::forge::PullRequest>| {
        let mut n: Vec<u64> = v.into_iter().map(|p| p.number).collect();
        n.sort();
        n
    };
    assert_eq!(
        nums(
            gl.list_prs_by_label("gitops-canary", StateFilter::Open)
                .await
                .unwrap()
        ),
        vec![2]
    );
    assert_eq!(
        nums(
            gl.list_prs_by_label("gitops-canary", StateFilter::Closed)
                .await
                .unwrap()
        ),
        vec![1]
    );
    assert_eq!(
        nums(
            gl.list_prs_by_label("gitops-canary", StateFilter::All)
                .await
                .unwrap()
        ),
        vec![1, 2]
    );
}

#[tokio::test]
async fn description_labels_notes() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let mr = gl.create_pr(&new_mr(BRANCH, &["a"])).await.unwrap();
    gl.update_pr_body(mr.number, "new\n\nbody").await.unwrap();
    gl.add_labels(mr.number, &["b".into(), "a".into()])
        .await
        .unwrap();
    gl.comment(mr.number, "Stage healthy").await.unwrap();
    let got = fake.mr(1).unwrap();
    assert_eq!(got.description.as_deref(), Some("new\n\nbody"));
    assert_eq!(got.labels, vec!["a", "b"]);
    assert_eq!(fake.notes(1), vec!["Stage healthy"]);
    let err = gl.comment(9, "x").await.unwrap_err();
    assert!(
        matches!(err, ForgeError::NotFound { number: 9, .. }),
        "{err:?}"
    );
}

/// A note found again by its marker is edited in place (system notes are not comments).
#[tokio::test]
async fn notes_are_listed_and_edited_by_marker() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let mr = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    for i in 0..25 {
        gl.comment(mr.number, &format!("chatter {i}"))
            .await
            .unwrap();
    }
    let marker = "<!-- gitops-canary:gates rollout=web stage=1 -->";
    let body = format!("stage 1: wait\n{marker}\n");
    assert!(upsert_comment(&gl, mr.number, marker, &body).await.unwrap());
    let all = gl.list_comments(mr.number).await.unwrap();
    assert_eq!(all.len(), 26, "every page is read");
    assert_eq!(all[0].body, "chatter 0", "oldest first");
    assert!(!upsert_comment(&gl, mr.number, marker, &body).await.unwrap());
    let passed = format!("stage 1: pass\n{marker}\n");
    assert!(upsert_comment(&gl, mr.number, marker, &passed)
        .await
        .unwrap());
    let notes = fake.notes(mr.number);
    assert_eq!(notes.len(), 26, "edited, not posted again");
    assert_eq!(notes.last().unwrap(), &passed);
    let err = gl
        .update_comment(mr.number, 999_999, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, ForgeError::NotFound { .. }), "{err:?}");
}

/// The merge request as the tool observes it before deciding (its head, its author).
async fn observed(gl: &GitLab) -> PullRequest {
    gl.find_pr_by_branch(BRANCH).await.unwrap().unwrap()
}

fn approvals(n: u32) -> Reviews {
    Reviews {
        approvals: n,
        changes_requested: false,
    }
}

#[tokio::test]
async fn approvals_and_requested_changes() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let mr = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    assert_eq!(mr.author, fake_gitlab::MR_AUTHOR);
    assert_eq!(gl.reviews(&mr).await.unwrap(), Reviews::default());
    fake.add_member("alice", DEVELOPER);
    fake.add_member("bob", MAINTAINER);
    fake.approve(1, "alice");
    fake.approve(1, "bob");
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(2));
    fake.request_changes(1, true);
    assert!(gl.reviews(&mr).await.unwrap().changes_requested);
}

#[tokio::test]
async fn approval_by_a_member_below_developer_or_a_non_member_is_ignored() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let mr = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    fake.add_member("reporter", REPORTER);
    fake.add_member("guest", GUEST);
    fake.approve(1, "reporter");
    fake.approve(1, "guest");
    fake.approve(1, "stranger");
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(0));
    // Each approver's access is looked up once per pass, inherited membership included.
    let lookups = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/members/all/"))
        .count();
    assert_eq!(lookups, 3);
    // Promoted to Developer, the same approval counts.
    fake.add_member("reporter", DEVELOPER);
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(1));
}

#[tokio::test]
async fn approval_given_before_the_last_push_is_ignored() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    fake.add_member("alice", DEVELOPER);
    fake.approve(1, "alice");
    assert_eq!(
        gl.reviews(&observed(&gl).await).await.unwrap(),
        approvals(1)
    );
    // A push after the approval: GitLab (reset on push off) still lists alice as approver.
    fake.push_to_mr(1, &fake_sha("c2"));
    let mr = observed(&gl).await;
    assert_eq!(mr.head_sha, fake_sha("c2"));
    assert_eq!(fake.mr(1).unwrap().approved_by, vec!["alice"]);
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(0));
    // A head observed before GitLab made its diff version cannot carry an approval either.
    let mut ahead = mr.clone();
    ahead.head_sha = fake_sha("c3");
    // GitLab refuses a second approval by the same user: alice revokes and approves again.
    fake.unapprove(1, "alice");
    fake.approve(1, "alice");
    assert_eq!(gl.reviews(&ahead).await.unwrap(), approvals(0));
    // Approving again after the push counts.
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(1));
}

#[tokio::test]
async fn the_authors_own_approval_is_ignored() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    let mr = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    // The token's bot opened it and is a Maintainer, and GitLab let it approve its own request.
    let http = reqwest::Client::new();
    let res = http
        .post(format!(
            "{}/api/v4/projects/42/merge_requests/1/approve",
            fake.server_url()
        ))
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(0));
    fake.add_member("alice", DEVELOPER);
    fake.approve(1, "alice");
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(1));
}

#[tokio::test]
async fn a_developers_approval_on_the_head_counts_and_requested_changes_block() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    fake.push_to_mr(1, &fake_sha("never")); // no such request yet: nothing happens
    let mr = gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    fake.add_member("dev", DEVELOPER);
    fake.approve(1, "dev");
    assert_eq!(gl.reviews(&mr).await.unwrap(), approvals(1));
    let asked = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path.clone())
        .collect::<Vec<_>>();
    assert!(
        asked
            .iter()
            .any(|p| p.ends_with("/merge_requests/1/versions")),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|p| p.contains("/members/all/")),
        "{asked:?}"
    );
    let gate = ApprovalGate::Approved { min: 1 };
    let decide = |r: &Reviews| decide_merge(gate, &mr, r, &Checks::Success, Mergeable::Yes);
    assert_eq!(
        decide(&gl.reviews(&mr).await.unwrap()),
        MergeDecision::Merge
    );
    fake.request_changes(1, true);
    assert!(matches!(
        decide(&gl.reviews(&mr).await.unwrap()),
        MergeDecision::Blocked(_)
    ));
}

#[tokio::test]
async fn pipeline_status_is_the_check() {
    let (fake, gl) = setup().await;
    let sha = fake_sha("c1");
    assert_eq!(gl.checks(&sha).await.unwrap(), Checks::None);
    fake.set_pipeline(&sha, "running");
    assert_eq!(gl.checks(&sha).await.unwrap(), Checks::Pending);
    let id = fake.set_pipeline(&sha, "failed");
    assert_eq!(
        gl.checks(&sha).await.unwrap(),
        Checks::Failure(format!("pipeline {id} failed"))
    );
    // A retry creates a newer pipeline; the newest one counts.
    fake.set_pipeline(&sha, "success");
    assert_eq!(gl.checks(&sha).await.unwrap(), Checks::Success);
}

#[tokio::test]
async fn mergeable_from_detailed_merge_status() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    assert_eq!(gl.mergeable(1).await.unwrap(), Mergeable::Yes);
    fake.with_mr(1, |m| m.checking = true);
    assert_eq!(gl.mergeable(1).await.unwrap(), Mergeable::Unknown);
    fake.with_mr(1, |m| {
        m.checking = false;
        m.has_conflicts = true
    });
    assert_eq!(gl.mergeable(1).await.unwrap(), Mergeable::No);
    let err = gl
        .merge(1, MergeMethod::Merge, &fake_sha("c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::NotMergeable { status: 422, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn merge_squash_head_check_and_hook() {
    let (fake, gl) = setup().await;
    fake.set_branch("m", &fake_sha("m"));
    gl.create_pr(&new_mr("m", &[])).await.unwrap();
    let MergeOutcome::Merged { sha } = gl
        .merge(1, MergeMethod::Merge, &fake_sha("m"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        fake.mr(1).unwrap().merge_commit_sha.as_deref(),
        Some(sha.as_str())
    );
    assert!(!fake.mr(1).unwrap().squash);
    assert_eq!(
        gl.find_pr_by_branch("m").await.unwrap().unwrap().state,
        PrState::Merged { merge_sha: sha }
    );

    fake.set_branch("s", &fake_sha("s"));
    gl.create_pr(&new_mr("s", &[])).await.unwrap();
    fake.push_to_mr(2, &fake_sha("s2"));
    let err = gl
        .merge(2, MergeMethod::Squash, &fake_sha("s"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::HeadChanged { status: 409, .. }),
        "{err:?}"
    );
    fake.on_merge(|ev| Some(fake_sha(&format!("real:{}", ev.source_branch))));
    let out = gl
        .merge(2, MergeMethod::Squash, &fake_sha("s2"))
        .await
        .unwrap();
    assert_eq!(
        out,
        MergeOutcome::Merged {
            sha: fake_sha("real:s")
        }
    );
    assert!(fake.mr(2).unwrap().squash);

    let err = gl
        .merge(2, MergeMethod::Merge, &fake_sha("s2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::NotMergeable { status: 405, .. }),
        "{err:?}"
    );
    let err = gl
        .merge(2, MergeMethod::Rebase, &fake_sha("s2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::Unsupported { .. }) && err.is_bad_input(),
        "{err:?}"
    );
}

#[tokio::test]
async fn merge_when_pipeline_succeeds() {
    let (fake, _) = setup().await;
    let mut c = cfg(&fake, "42", TOKEN);
    c.auto_merge = true;
    let gl = GitLab::new(c).unwrap();
    fake.set_branch(BRANCH, &fake_sha("c1"));
    gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    fake.set_pipeline(&fake_sha("c1"), "running");
    assert_eq!(
        gl.merge(1, MergeMethod::Merge, &fake_sha("c1"))
            .await
            .unwrap(),
        MergeOutcome::Scheduled
    );
    let body = fake.requests().pop().unwrap().request_body;
    assert!(
        body.contains("\"auto_merge\":true")
            && body.contains("\"merge_when_pipeline_succeeds\":true"),
        "{body}"
    );
    assert_eq!(fake.mr(1).unwrap().state, "opened");
    fake.set_pipeline(&fake_sha("c1"), "success");
    let pr = gl.find_pr_by_branch(BRANCH).await.unwrap().unwrap();
    assert!(matches!(pr.state, PrState::Merged { .. }), "{pr:?}");

    // Without auto-merge a running pipeline refuses the merge (the project requires green CI).
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    fake.set_pipeline(&fake_sha("c1"), "running");
    let err = gl
        .merge(1, MergeMethod::Merge, &fake_sha("c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::NotMergeable { status: 405, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn close_and_dispatch() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    let any = AnyForge::GitLab(gl);
    any.close(1).await.unwrap();
    assert_eq!(fake.mr(1).unwrap().state, "closed");
    assert_eq!(
        any.web_url(3),
        format!("{}/projects/42/-/merge_requests/3", fake.server_url())
    );
}

#[tokio::test]
async fn faults_are_retried_within_bounds() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    fake.fail(2, Fault::ServerError);
    gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();
    assert_eq!(
        fake.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 500, 201]
    );

    fake.fail(1, Fault::TooManyRequests { retry_after: 1 });
    gl.comment(1, "after a rate limit").await.unwrap();
    let reqs = fake.requests();
    let (a, b) = (&reqs[reqs.len() - 2], &reqs[reqs.len() - 1]);
    assert_eq!((a.status, b.status), (429, 201));
    assert!(
        b.at.duration_since(a.at) >= Duration::from_secs(1),
        "did not honour Retry-After"
    );

    fake.fail(10, Fault::ServiceUnavailable);
    let err = gl.mergeable(1).await.unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::Unavailable {
                attempts: 4,
                status: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_bad_input());
}

#[tokio::test]
async fn permissions_are_named_and_token_never_shown() {
    let (fake, gl) = setup().await;
    fake.set_branch(BRANCH, &fake_sha("c1"));
    gl.create_pr(&new_mr(BRANCH, &[])).await.unwrap();

    fake.fail_on("PUT", "/merge", 1, Fault::Forbidden);
    let e1 = gl
        .merge(1, MergeMethod::Merge, &fake_sha("c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(e1, ForgeError::Permission { status: 403, .. }) && e1.is_bad_input(),
        "{e1:?}"
    );
    assert!(
        e1.to_string().contains("merge rights on the target branch"),
        "{e1}"
    );
    assert_eq!(fake.count("PUT", "/merge"), 1, "not retried");

    fake.fail(1, Fault::InsufficientScope);
    let e2 = gl.comment(1, "x").await.unwrap_err();
    assert!(e2.to_string().contains("`scope api`"), "{e2}");

    let bad = GitLab::new(cfg(&fake, "42", "glpat-WRONGwrongWRONG")).unwrap();
    let e3 = bad.find_pr_by_branch(BRANCH).await.unwrap_err();
    assert!(
        matches!(e3, ForgeError::Permission { status: 401, .. }),
        "{e3:?}"
    );
    assert!(e3.to_string().contains("a valid token"), "{e3}");

    let texts: Vec<String> = [&e1, &e2, &e3]
        .iter()
        .flat_map(|e| [format!("{e}"), format!("{e:?}")])
        .chain([format!("{gl:?}"), format!("{bad:?}")])
        .collect();
    assert_no_token(&texts);
    assert!(texts.iter().all(|t| !t.contains("glpat-WRONGwrongWRONG")));
}

#[tokio::test]
async fn config_from_env() {
    std::env::set_var("CI_SERVER_URL", "https://gitlab.example.com");
    std::env::remove_var("CI_PROJECT_ID");
    std::env::set_var("CI_PROJECT_PATH", "group/sub/project");
    std::env::set_var(
        "CI_PROJECT_URL",
        "https://gitlab.example.com/group/sub/project",
    );
    std::env::remove_var("GITLAB_TOKEN");
    let err = GitLabConfig::from_env(None).unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::Config {
                setting: "GITLAB_TOKEN",
                ..
            }
        ),
        "{err:?}"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gl = GitLab::from_env(Some(Token::new(TOKEN))).unwrap();
    assert_eq!(gl.project(), "group/sub/project");
    assert_eq!(
        gl.web_url(5),
        "https://gitlab.example.com/group/sub/project/-/merge_requests/5"
    );
    assert!(!format!("{gl:?}").contains(TOKEN));
}
