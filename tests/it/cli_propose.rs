//! `gitops-canary propose` end to end: a real Git server (`git http-backend` with token auth),
//! the fake GitHub/GitLab reading branches from that repository, and the built binary. A stage
//! is pushed as a branch, its request opened once, and a re-run prints the same request.

use crate::support::fake_github;
use crate::support::fake_gitlab;
use crate::support::git_server;

use std::path::Path;

use assert_cmd::Command;
use fake_github::FakeGitHub;
use fake_gitlab::FakeGitLab;
use git_server::{
    canary_with_weight, fixture_dir, git, git_available, rev, show, GitServer, CANARY_PATH,
};
use serde_json::Value;

const TOKEN: &str = "ghp_PROPOSEsecretTOKEN000000000000";
/// 25% is stage 2 of the default stages, and the rollout id comes from the Ingress: the
/// branch the rollout itself would use for that stage.
const BRANCH: &str = "gitops-canary/shop-web-canary/stage-2-weight-25";

/// A checkout of the server's `gitops` repository (cloned from the bare path, pushed to over HTTP).
fn checkout(bare: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), "."]);
    dir
}

fn propose(work: &Path, remote: &str, extra: &[&str], envs: &[(&str, String)]) -> (Value, String) {
    let mut cmd = Command::cargo_bin("gitops-canary").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["propose", "--repo"])
        .arg(work)
        .args([
            "--ingress",
            "shop/web-canary",
            "--weight",
            "25",
            "--remote",
            remote,
            "--output",
            "json",
        ])
        .args(extra);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "token leaked:\n{stdout}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "propose failed ({:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    (
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")),
        stderr,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_branch_and_pull_request_once() {
    if !git_available() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = GitServer::start("x-access-token", TOKEN);
    let fixture = fixture_dir();
    let bare = server.create_repo("gitops", fixture.path());
    let fake = FakeGitHub::start("acme", "gitops", TOKEN).await;
    let b2 = bare.clone();
    fake.branches_from(move |b| rev(&b2, &format!("refs/heads/{b}")));
    let work = checkout(&bare);
    let envs = [
        ("GITHUB_API_URL", fake.api_url()),
        ("GITHUB_REPOSITORY", "acme/gitops".to_string()),
        ("GITHUB_TOKEN", TOKEN.to_string()),
    ];
    let remote = server.url("gitops");
    let (out, _) = propose(work.path(), &remote, &["--forge", "github"], &envs);
    assert_eq!(out["branch"], BRANCH);
    assert_eq!(out["number"], 1);
    assert_eq!(out["url"], "https://github.com/acme/gitops/pull/1");
    let head = rev(&bare, &format!("refs/heads/{BRANCH}")).expect("branch pushed");
    assert_eq!(out["head_sha"], head.as_str());
    assert_eq!(
        show(&bare, &format!("{BRANCH}:{CANARY_PATH}")),
        canary_with_weight(25).trim_end()
    );
    let pr = fake.pr(1).unwrap();
    assert_eq!(
        (
            pr.head_ref.as_str(),
            pr.base_ref.as_str(),
            pr.head_sha.as_str()
        ),
        (BRANCH, "main", head.as_str())
    );
    assert_eq!(pr.labels, vec!["gitops-canary", "gitops-canary:stage"]);
    assert_eq!(pr.title, "canary shop-web-canary: stage 2/4, weight 25%");
    assert_eq!(
        show(
            &bare,
            &format!("{BRANCH}:.gitops-canary/state/shop-web-canary.state")
        )
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>(),
        [
            "rollout: shop-web-canary",
            "action: stage",
            "status: progressing",
            "stage: 2",
            "weight: 25"
        ],
        "the state record rides in the same commit"
    );

    // A re-run (same flags, token by flag this time) finds the same branch and request.
    let envs2 = [
        ("GITHUB_API_URL", fake.api_url()),
        ("GITHUB_REPOSITORY", "acme/gitops".to_string()),
    ];
    let (again, _) = propose(
        work.path(),
        &remote,
        &["--forge", "github", "--token", TOKEN],
        &envs2,
    );
    assert_eq!(again["number"], 1);
    assert_eq!(again["head_sha"], head.as_str());
    assert_eq!(fake.prs().len(), 1, "no duplicate pull request");
    assert_eq!(
        rev(&bare, &format!("refs/heads/{BRANCH}")).unwrap(),
        head,
        "branch not rewritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_merge_request_and_direct_gate() {
    if !git_available() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = GitServer::start("oauth2", TOKEN);
    let fixture = fixture_dir();
    let bare = server.create_repo("gitops", fixture.path());
    let fake = FakeGitLab::start(42, "acme/gitops", TOKEN).await;
    let b2 = bare.clone();
    fake.branches_from(move |b| rev(&b2, &format!("refs/heads/{b}")));
    let work = checkout(&bare);
    let envs = [
        ("CI_SERVER_URL", fake.server_url()),
        ("CI_PROJECT_ID", "42".to_string()),
        (
            "CI_PROJECT_URL",
            format!("{}/acme/gitops", fake.server_url()),
        ),
        ("GITLAB_TOKEN", TOKEN.to_string()),
    ];
    let remote = server.url("gitops");
    let (out, _) = propose(work.path(), &remote, &["--forge", "gitlab"], &envs);
    assert_eq!(out["number"], 1);
    assert_eq!(out["branch"], BRANCH);
    assert_eq!(fake.mr(1).unwrap().source_branch, BRANCH);

    // Gate `direct`: no request, the commit lands on main.
    let before = rev(&bare, "refs/heads/main").unwrap();
    let mut cmd_extra = vec!["--forge", "gitlab", "--gate", "direct"];
    cmd_extra.extend(["--base", "main"]);
    let (direct, _) = propose(work.path(), &remote, &cmd_extra, &envs);
    let after = rev(&bare, "refs/heads/main").unwrap();
    assert_ne!(before, after);
    assert_eq!(direct["head_sha"], after.as_str());
    assert_eq!(direct["number"], Value::Null);
    assert_eq!(fake.mrs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forge_settings_fail_before_anything_is_pushed() {
    if !git_available() {
        return;
    }
    let server = GitServer::start("x-access-token", TOKEN);
    let fixture = fixture_dir();
    let bare = server.create_repo("gitops", fixture.path());
    let work = checkout(&bare);
    let out = Command::cargo_bin("gitops-canary")
        .unwrap()
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["propose", "--repo"])
        .arg(work.path())
        .args([
            "--ingress",
            "shop/web-canary",
            "--weight",
            "25",
            "--forge",
            "github",
        ])
        .args(["--remote", &server.url("gitops"), "--token", TOKEN])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("GITHUB_REPOSITORY"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
    assert_eq!(
        rev(&bare, &format!("refs/heads/{BRANCH}")),
        None,
        "nothing pushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_forge_failure_reuses_the_pushed_branch() {
    if !git_available() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = GitServer::start("x-access-token", TOKEN);
    let fixture = fixture_dir();
    let bare = server.create_repo("gitops", fixture.path());
    let fake = FakeGitHub::start("acme", "gitops", TOKEN).await;
    let b2 = bare.clone();
    fake.branches_from(move |b| rev(&b2, &format!("refs/heads/{b}")));
    fake.fail_on(
        "POST",
        "/pulls",
        1,
        fake_github::Fault::Forbidden {
            accepted: Some("pull_requests=write".into()),
        },
    );
    let work = checkout(&bare);
    let remote = server.url("gitops");
    let run = || {
        Command::cargo_bin("gitops-canary")
            .unwrap()
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_API_URL", fake.api_url())
            .env("GITHUB_REPOSITORY", "acme/gitops")
            .env("GITOPS_CANARY_TOKEN", TOKEN)
            .env("GITOPS_CANARY_INGRESS", "shop/web-canary")
            .env("GITOPS_CANARY_WEIGHT", "25")
            .env("GITOPS_CANARY_FORGE", "github")
            .env("GITOPS_CANARY_REMOTE", &remote)
            .env("GITOPS_CANARY_OUTPUT", "json")
            .args(["propose", "--repo"])
            .arg(work.path())
            .output()
            .unwrap()
    };
    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success());
    assert!(stderr.contains("pull-requests: write"), "{stderr}");
    assert!(!stderr.contains(TOKEN));
    let head =
        rev(&bare, &format!("refs/heads/{BRANCH}")).expect("branch pushed before the failure");
    assert!(fake.prs().is_empty());

    let second = run();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let out: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(out["reused"], true, "{out}");
    assert_eq!(out["head_sha"], head.as_str());
    assert_eq!(out["number"], 1);
    assert_eq!(fake.prs().len(), 1);
}
