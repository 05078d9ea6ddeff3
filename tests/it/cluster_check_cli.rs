//! `gitops-canary check` end to end: the binary reads the example GitOps repository, connects
//! through a kubeconfig to the fake API server and runs the gates.

use crate::support::fake_kube;

use std::path::PathBuf;

use fake_kube::{objects, FakeKube, TOKEN};
use serde_json::json;

fn example_repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/gitops-repo")
}

/// The cluster as Argo CD would leave it after syncing the example repo (weight 10).
fn synced_cluster(fake: &FakeKube) {
    fake.upsert(objects::ingress("shop", "web-canary", 10));
    fake.upsert(objects::deployment(
        "shop",
        "web-canary",
        1,
        "web",
        "canary",
    ));
    fake.upsert(objects::deployment("shop", "web", 3, "web", "stable"));
    fake.upsert(objects::pod("shop", "web-canary-5d8f7-a", "web", "canary"));
    fake.upsert(objects::pod("shop", "web-6c9d1-a", "web", "stable"));
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn check(fake: &FakeKube, extra: &[&str]) -> Run {
    check_in(fake, &example_repo(), extra).await
}

async fn check_in(fake: &FakeKube, repo: &std::path::Path, extra: &[&str]) -> Run {
    let mut cmd = assert_cmd::Command::cargo_bin("gitops-canary").unwrap();
    cmd.env_clear()
        .env("KUBECONFIG", fake.kubeconfig())
        .env("HOME", fake.kubeconfig().parent().unwrap())
        .args(["check", "--repo"])
        .arg(repo)
        .args(["--ingress", "shop/web-canary"])
        .args(extra);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
        "token leaked"
    );
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_gates_pass_with_deployments_found_in_the_manifests() {
    let fake = FakeKube::start().await;
    synced_cluster(&fake);
    let run = check(&fake, &["--bake-time", "1s", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("PASS synced"), "{}", run.stdout);
    assert!(
        lines[1].starts_with("PASS rolled-out") && lines[1].contains("Deployment shop/web-canary"),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with("PASS steady") && lines[2].contains("web-canary-5d8f7-a"),
        "{}",
        run.stdout
    );
    // The steady gate watched the canary's pods only, by the Deployment's selector.
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.contains("/pods?") && r.contains("canary")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_timeout_names_the_gate_state_and_reason() {
    let fake = FakeKube::start().await;
    synced_cluster(&fake);
    fake.modify(
        "networking.k8s.io/v1",
        "Ingress",
        "shop",
        "web-canary",
        |o| {
            o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = json!("25");
        },
    );
    let run = check(&fake, &["--timeout", "1s"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL synced"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("timed out after 1s: canary-weight is 25, waiting for 10"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("last observed: Ingress shop/web-canary at resourceVersion"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_for_a_crash_looping_canary() {
    let fake = FakeKube::start().await;
    synced_cluster(&fake);
    fake.modify("v1", "Pod", "shop", "web-canary-5d8f7-a", |p| {
        objects::crash_loop(p, 5)
    });
    let run = check(
        &fake,
        &[
            "--gates",
            "synced,steady",
            "--bake-time",
            "30s",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["failedGate"], "steady");
    assert_eq!(report["weight"], 10);
    assert_eq!(report["gates"][0]["verdict"]["verdict"], "pass");
    let reason = report["gates"][1]["verdict"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("web-canary-5d8f7-a") && reason.contains("CrashLoopBackOff"),
        "{reason}"
    );
    assert!(report["gates"][1]["elapsed_ms"].as_u64().unwrap() < 30_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_denial_is_a_clear_error() {
    let fake = FakeKube::start().await;
    synced_cluster(&fake);
    fake.forbid("deployments.apps", Some("list"));
    let run = check(&fake, &["--gates", "rolled-out"]).await;
    // RBAC is the user's setup to fix: bad input, exit 2 (not a failed gate).
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("forbidden: cannot list deployments.apps in namespace shop"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_gate_needs_prometheus_and_explicit_flags_win() {
    let fake = FakeKube::start().await;
    synced_cluster(&fake);
    // The metrics gate itself is tested against real Prometheus in tests/check_metrics_cli.rs.
    let run = check(&fake, &["--gates", "synced,metrics"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("needs --prometheus-url"),
        "{}",
        run.stderr
    );

    // A --stable-deployment that does not exist is reported, not guessed around.
    let run = check(
        &fake,
        &[
            "--gates",
            "rolled-out",
            "--stable-deployment",
            "ghost",
            "--timeout",
            "1s",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("FAIL rolled-out")
            && run.stdout.contains("the stable Deployment does not exist"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_source_with_sync_now_via_the_cli() {
    let fake = FakeKube::start().await;
    synced_cluster(&fake);
    let rev = "abcdef0123456789abcdef0123456789abcdef01";
    fake.upsert(objects::argo_app(
        "argocd", "shop", rev, "Synced", "Healthy",
    ));
    let run = check(
        &fake,
        &[
            "--gates",
            "synced",
            "--sync-source",
            "argocd",
            "--argocd-app",
            "shop",
            "--revision",
            &rev[..10],
            "--sync-now",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(fake.patches().len(), 1);
    let run = check(&fake, &["--gates", "synced", "--sync-source", "argocd"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--argocd-app"), "{}", run.stderr);
}

/// CI cancels a job with SIGTERM: the tool stops at once, says so on stderr, writes
/// `status=cancelled` to the step outputs and exits 143.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_waiting_check_with_status_cancelled() {
    let fake = FakeKube::start().await;
    // Nothing synced yet: `synced` waits for the Ingress for up to a minute.
    let files = tempfile::tempdir().unwrap();
    let output = files.path().join("github_output");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("gitops-canary"))
        .env_clear()
        .env("KUBECONFIG", fake.kubeconfig())
        .env("HOME", fake.kubeconfig().parent().unwrap())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", files.path().join("summary"))
        .args(["check", "--repo"])
        .arg(example_repo())
        .args(["--ingress", "shop/web-canary", "--timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(out.0.code(), Some(143), "{}", out.1);
    assert!(out.1.contains("cancelled by SIGTERM"), "{}", out.1);
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(
        written.lines().any(|l| l == "status=cancelled"),
        "{written}"
    );
}

/// The example repository with the api canary at the shop canary's weight, so both Ingresses
/// move together.
fn two_canaries_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(example_repo().join("apps"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let api = dir.path().join("apps/api/canary/api.yaml");
    let text = std::fs::read_to_string(&api)
        .unwrap()
        .replace("canary-weight: \"0\"", "canary-weight: \"10\"");
    std::fs::write(&api, text).unwrap();
    dir
}

fn api_synced(fake: &FakeKube) {
    fake.upsert(objects::ingress("api-canary", "api", 10));
    fake.upsert(objects::deployment("api-canary", "api", 1, "api", "canary"));
    fake.upsert(objects::deployment("api", "api", 3, "api", "stable"));
    fake.upsert(objects::pod("api-canary", "api-7c9d-a", "api", "canary"));
}

/// `check` gates every Ingress given and every Deployment behind them, as the rollout does:
/// a fault on the second ingress's canary Deployment fails the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingresses_are_checked_together() {
    let repo = two_canaries_repo();
    let fake = FakeKube::start().await;
    synced_cluster(&fake);
    api_synced(&fake);
    let args = [
        "--ingress",
        "api-canary/api",
        "--gates",
        "synced,rolled-out",
        "--timeout",
        "5s",
        "--output",
        "json",
    ];
    let run = check_in(&fake, repo.path(), &args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let seen = report["gates"][1]["last_state"].as_str().unwrap();
    assert!(
        seen.contains("Deployment shop/web-canary") && seen.contains("Deployment api-canary/api"),
        "{seen}"
    );

    fake.modify("apps/v1", "Deployment", "api-canary", "api", |d| {
        d["status"]["conditions"][1] = json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "stuck"});
    });
    let run = check_in(&fake, repo.path(), &args).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["failedGate"], "rolled-out", "{report}");
    assert!(
        report["gates"][1]["last_state"]
            .as_str()
            .unwrap()
            .contains("Deployment api-canary/api"),
        "{report}"
    );
}
