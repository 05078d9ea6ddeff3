//! `propose` and `check` with `--route`: a Gateway API HTTPRoute canary goes through the same
//! settings and connection as an Ingress one. `propose` pushes the stage branch with both
//! weights of the split and opens its request on the fake GitHub; `check` gates the live
//! HTTPRoute the fake API server serves (its split and its Gateway's conditions) and the
//! Deployments behind its backendRefs.

use crate::support::{fake_github, fake_kube, git_server};

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use fake_kube::{objects, FakeKube};
use git_server::{git, git_available, rev, show, GitServer};
use serde_json::{json, Value};

const TOKEN: &str = "ghp_ROUTEsecretTOKEN00000000000000000";
const ROUTE_FILE: &str = "apps/shop/route.yaml";

/// The HTTPRoute repository of the rollout scenarios (web 100 / web-canary 0).
fn route_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/rollout-repos/httproute")
}

/// `(stable, canary)` weights of the one split in an HTTPRoute's YAML.
fn split(text: &str) -> (u64, u64) {
    let doc: Value = serde_saphyr::from_str(text).expect("HTTPRoute YAML");
    let refs = doc["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .clone();
    let weight = |name: &str| {
        refs.iter()
            .find(|b| b["name"] == name)
            .and_then(|b| b["weight"].as_u64())
            .unwrap()
    };
    (weight("web"), weight("web-canary"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propose_route_opens_the_stage_request_with_both_weights() {
    if !git_available() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = GitServer::start("x-access-token", TOKEN);
    let bare = server.create_repo("gitops", &route_repo());
    let fake = fake_github::FakeGitHub::start("acme", "gitops", TOKEN).await;
    let b2 = bare.clone();
    fake.branches_from(move |b| rev(&b2, &format!("refs/heads/{b}")));
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["clone", "-q", bare.to_str().unwrap(), "."]);
    let run = || {
        Command::cargo_bin("gitops-canary")
            .unwrap()
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GITHUB_API_URL", fake.api_url())
            .env("GITHUB_REPOSITORY", "acme/gitops")
            .env("GITHUB_TOKEN", TOKEN)
            .args(["propose", "--repo"])
            .arg(work.path())
            .args(["--route", "shop/web", "--weight", "25", "--forge", "github"])
            .args(["--remote", &server.url("gitops"), "--output", "json"])
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The rollout id comes from the route, as the rollout would derive it; 25% is stage 2.
    let branch = "gitops-canary/shop-web/stage-2-weight-25";
    assert_eq!(doc["branch"], branch, "{doc}");
    assert_eq!(doc["number"], 1);
    assert_eq!(
        split(&show(&bare, &format!("{branch}:{ROUTE_FILE}"))),
        (75, 25)
    );
    assert_eq!(
        split(&show(&bare, &format!("main:{ROUTE_FILE}"))),
        (100, 0),
        "the base is only changed by a merge"
    );
    let pr = fake.pr(1).unwrap();
    assert_eq!(pr.title, "canary shop-web: stage 2/4, weight 25%");
    assert_eq!(pr.labels, ["gitops-canary", "gitops-canary:stage"]);
    assert!(
        pr.body
            .as_deref()
            .unwrap_or_default()
            .contains("`shop/web`"),
        "{:?}",
        pr.body
    );
    // A re-run finds the same branch and request.
    let again = run();
    assert!(again.status.success());
    let doc: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(doc["number"], 1);
    assert_eq!(fake.prs().len(), 1);
}

/// A copy of the HTTPRoute repository whose route sends 25% to the canary.
fn repo_at_25() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["apps/shop/canary.yaml", "apps/shop/stable.yaml", ROUTE_FILE] {
        let text = std::fs::read_to_string(route_repo().join(file)).unwrap();
        let text = if file == ROUTE_FILE {
            text.replace("weight: 100", "weight: 75")
                .replace("weight: 0", "weight: 25")
        } else {
            text
        };
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

async fn check(fake: &FakeKube, repo: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::cargo_bin("gitops-canary").unwrap();
    cmd.env_clear()
        .env("KUBECONFIG", fake.kubeconfig())
        .env("HOME", fake.kubeconfig().parent().unwrap())
        .args(["check", "--repo"])
        .arg(repo)
        .args(["--route", "shop/web"])
        .args(extra);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_route_gates_the_live_split_and_the_deployments_behind_it() {
    let repo = repo_at_25();
    let fake = FakeKube::start().await;
    let mut route = fake.upsert(objects::http_route("shop", "web", "web", 25, 75));
    objects::route_status(&mut route, ("True", "Accepted"), ("True", "ResolvedRefs"));
    fake.upsert(route);
    fake.upsert(objects::deployment(
        "shop",
        "web-canary",
        1,
        "web",
        "canary",
    ));
    fake.upsert(objects::deployment("shop", "web", 3, "web", "stable"));

    let (code, stdout, stderr) = check(
        &fake,
        repo.path(),
        &["--gates", "synced,rolled-out", "--timeout", "10s"],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("PASS synced") && lines[0].contains("HTTPRoute shop/web"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("PASS rolled-out") && lines[1].contains("Deployment shop/web-canary"),
        "{stdout}"
    );

    // The live route still splits 10/90: not synced, and the reason says what it waits for.
    fake.modify(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "shop",
        "web",
        |r| {
            r["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(90);
            r["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(10);
        },
    );
    let (code, stdout, stderr) = check(
        &fake,
        repo.path(),
        &["--gates", "synced", "--timeout", "1s", "--output", "json"],
    )
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["failedGate"], "synced", "{report}");
    assert_eq!(report["route"], "shop/web", "{report}");
    assert_eq!(report["ingress"], "", "{report}");
    assert_eq!(report["weight"], 25);
    assert!(stderr.contains("error: gate synced failed"), "{stderr}");
}
