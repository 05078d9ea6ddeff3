//! `check --gates metrics` against a real Prometheus holding backfilled ingress-nginx traffic
//! of the example's shop canary: healthy traffic passes, a canary answering 5xx fails with the
//! check that missed, and an unknown Prometheus flag combination is a usage error.

use crate::support::e2e;

use e2e::{Metrics, World, WorldOptions};

async fn check(metrics: Metrics) -> Option<(i32, String)> {
    let w = World::start(WorldOptions {
        metrics,
        ..WorldOptions::default()
    })
    .await;
    let url = w.prometheus_url()?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitops-canary"))
        .args([
            "check",
            "--ingress",
            "shop/web-canary",
            "--gates",
            "metrics",
        ])
        .args([
            "--metrics-replay",
            "--metrics-interval",
            "1m",
            "--bake-time",
            "3m",
            "--min-requests",
            "1",
        ])
        .arg("--repo")
        .arg(w.checkout())
        .env("GITOPS_CANARY_PROMETHEUS_URL", url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.code().unwrap_or(-1), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_gate_passes_a_healthy_canary_and_fails_a_failing_one() {
    if !e2e::available() {
        return;
    }
    let Some((code, text)) = check(Metrics::Healthy).await else {
        assert!(
            std::env::var_os("GITOPS_CANARY_REQUIRE_TOOLS").is_none(),
            "prometheus not installed; GITOPS_CANARY_REQUIRE_TOOLS is set"
        );
        eprintln!("SKIP: prometheus not installed");
        return;
    };
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("PASS metrics"), "{text}");
    let (code, text) = check(Metrics::Failing).await.expect("prometheus");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL metrics"), "{text}");
    assert!(text.contains("success_rate"), "{text}");
}

#[test]
fn metrics_gate_without_prometheus_is_a_usage_error() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gitops-repo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitops-canary"))
        .args([
            "check",
            "--ingress",
            "shop/web-canary",
            "--gates",
            "metrics",
            "--repo",
            repo,
        ])
        .env_remove("GITOPS_CANARY_PROMETHEUS_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prometheus-url"));
}
