//! The cluster gates against the fake API server: passes arrive soon after the change, watch
//! faults (cut, 410 Gone, 5xx) are survived, failures (crash loop, stable without endpoints,
//! RBAC, timeout) are reported with the last observed state.

use crate::support::fake_kube;

use std::time::{Duration, Instant};

use fake_kube::{objects, FakeKube, TOKEN};
use gitops_canary::cluster::{self, ClusterError, GateOutcome, ObjectRef, SyncSource};
use gitops_canary::gate::Verdict;
use serde_json::json;

const NS: &str = "shop";
const GENEROUS: Duration = Duration::from_secs(5);

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn ingress_source(weight: u32) -> SyncSource {
    SyncSource::Ingress {
        ingress: ObjectRef::new(NS, "web-canary"),
        weight,
    }
}

fn set_weight(fake: &FakeKube, weight: u32) {
    fake.modify("networking.k8s.io/v1", "Ingress", NS, "web-canary", |o| {
        o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] =
            json!(weight.to_string());
    });
}

fn count(fake: &FakeKube, pred: impl Fn(&str) -> bool) -> usize {
    fake.requests().iter().filter(|r| pred(r)).count()
}

fn is_list(r: &str, plural: &str) -> bool {
    r.starts_with("GET ") && r.contains(&format!("/{plural}?")) && !r.contains("watch=true")
}

fn assert_no_token(outcome_or_err: &str) {
    assert!(
        !outcome_or_err.contains(TOKEN),
        "token leaked: {outcome_or_err}"
    );
}

async fn spawn_synced(
    fake: &FakeKube,
    source: SyncSource,
    sync_now: bool,
    timeout: Duration,
) -> tokio::task::JoinHandle<Result<GateOutcome, ClusterError>> {
    let client = fake.client().await;
    tokio::spawn(async move { cluster::synced(&client, &source, sync_now, timeout).await })
}

#[tokio::test]
async fn ingress_gate_passes_soon_after_the_weight_changes() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    let gate = spawn_synced(&fake, ingress_source(25), false, Duration::from_secs(30)).await;
    fake.wait_watch_starts("ingresses", 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!gate.is_finished(), "must wait while the weight is 10");
    let changed = Instant::now();
    set_weight(&fake, 25);
    let outcome = gate.await.unwrap().unwrap();
    let latency = changed.elapsed();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert_eq!(outcome.gate, "synced");
    assert!(latency < GENEROUS, "pass took {latency:?}");
    assert!(
        outcome.last_state.contains("Ingress shop/web-canary"),
        "{}",
        outcome.last_state
    );
}

#[tokio::test]
async fn cut_watch_is_resumed_from_the_last_resource_version() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    let gate = spawn_synced(&fake, ingress_source(50), false, Duration::from_secs(30)).await;
    fake.wait_watch_starts("ingresses", 1).await;
    // No bookmark: the client must resume from the resourceVersion it saw last; the change made
    // while no watch is open is replayed from history.
    fake.cut_watches(false);
    set_weight(&fake, 50);
    let outcome = gate.await.unwrap().unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert!(fake.watch_starts("ingresses") >= 2, "{:?}", fake.requests());
    assert_eq!(
        count(&fake, |r| is_list(r, "ingresses")),
        1,
        "resumed without relisting: {:?}",
        fake.requests()
    );
    let second_watch = fake
        .requests()
        .into_iter()
        .filter(|r| r.contains("watch=true"))
        .nth(1)
        .unwrap();
    assert!(
        !second_watch.contains("resourceVersion=0&"),
        "{second_watch}"
    );
    assert_eq!(fake.gone_sent(), 0);
}

#[tokio::test]
async fn cut_watch_with_bookmark_resumes_and_sees_later_changes() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    let gate = spawn_synced(&fake, ingress_source(50), false, Duration::from_secs(30)).await;
    fake.wait_watch_starts("ingresses", 1).await;
    fake.cut_watches(true);
    fake.wait_watch_starts("ingresses", 2).await;
    set_weight(&fake, 50);
    let outcome = gate.await.unwrap().unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert_eq!(
        count(&fake, |r| is_list(r, "ingresses")),
        1,
        "{:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn gone_410_makes_the_watcher_relist() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    let gate = spawn_synced(&fake, ingress_source(25), false, Duration::from_secs(30)).await;
    fake.wait_watch_starts("ingresses", 1).await;
    // Move the global resourceVersion past what the client saw, forget history, drop the watch:
    // the resume gets ERROR 410 Expired and only a fresh list can show the new weight.
    fake.upsert(objects::ingress("other", "unrelated", 1));
    fake.compact();
    fake.cut_watches(false);
    set_weight(&fake, 25);
    let outcome = gate.await.unwrap().unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert_eq!(fake.gone_sent(), 1);
    assert!(
        count(&fake, |r| is_list(r, "ingresses")) >= 2,
        "relisted: {:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    fake.fail_next(4, 500);
    let gate = spawn_synced(&fake, ingress_source(25), false, Duration::from_secs(30)).await;
    fake.wait_watch_starts("ingresses", 1).await;
    assert_eq!(fake.pending_failures(), 0);
    // And again in the middle: the resumed watch meets 503s first.
    fake.fail_next(3, 503);
    fake.cut_watches(false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    set_weight(&fake, 25);
    let outcome = gate.await.unwrap().unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert_eq!(fake.pending_failures(), 0);
    assert!(count(&fake, |r| r.contains("/ingresses")) >= 4 + 3 + 2);
}

#[tokio::test]
async fn rbac_denial_fails_fast_with_verb_and_resource() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    fake.forbid("ingresses.networking.k8s.io", Some("watch"));
    let started = Instant::now();
    let err = spawn_synced(&fake, ingress_source(25), false, Duration::from_secs(60))
        .await
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        started.elapsed() < GENEROUS,
        "fail fast, took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("forbidden: cannot watch ingresses.networking.k8s.io in namespace shop"),
        "{msg}"
    );
    assert!(
        msg.contains("system:serviceaccount:ci:gitops-canary"),
        "{msg}"
    );
    assert!(matches!(err, ClusterError::Forbidden(_)));
    assert_no_token(&msg);
    assert_no_token(&format!("{err:?}"));

    let fake = FakeKube::start().await;
    fake.forbid("deployments.apps", None);
    let client = fake.client().await;
    let err = cluster::rolled_out(
        &client,
        &ObjectRef::new(NS, "web-canary"),
        &ObjectRef::new(NS, "web"),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("forbidden: cannot list deployments.apps in namespace shop"),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_not_retried() {
    init();
    let fake = FakeKube::start().await;
    let text = std::fs::read_to_string(fake.kubeconfig())
        .unwrap()
        .replace(TOKEN, "stale-token");
    let path = fake.kubeconfig().with_file_name("stale");
    std::fs::write(&path, text).unwrap();
    let client = cluster::connect_kubeconfig(&path, None).await.unwrap();
    let err = cluster::synced(&client, &ingress_source(1), false, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Unauthorized(_)), "{err}");
    assert!(
        err.to_string().contains("list ingresses.networking.k8s.io"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_context_is_a_config_error() {
    init();
    let fake = FakeKube::start().await;
    let err = match cluster::connect_kubeconfig(&fake.kubeconfig(), Some("nope")).await {
        Ok(_) => panic!("an unknown context must not connect"),
        Err(e) => e,
    };
    assert!(matches!(err, ClusterError::Config { .. }), "{err}");
    assert!(err.to_string().contains("context nope"), "{err}");
    assert!(
        cluster::connect_kubeconfig(&fake.kubeconfig(), Some("other"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn timeout_reports_the_last_observed_state() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    let client = fake.client().await;
    let outcome = cluster::synced(
        &client,
        &ingress_source(25),
        false,
        Duration::from_millis(800),
    )
    .await
    .unwrap();
    match &outcome.verdict {
        Verdict::Fail(r) => assert!(
            r.starts_with("timed out after") && r.contains("canary-weight is 10, waiting for 25"),
            "{r}"
        ),
        other => panic!("expected a timeout failure, got {other:?}"),
    }
    assert!(
        outcome
            .last_state
            .contains("Ingress shop/web-canary at resourceVersion"),
        "{}",
        outcome.last_state
    );
    assert!(outcome.elapsed >= Duration::from_millis(800));

    // A missing object times out too, saying so.
    let outcome = cluster::synced(
        &client,
        &SyncSource::Ingress {
            ingress: ObjectRef::new(NS, "ghost"),
            weight: 1,
        },
        false,
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    assert!(
        outcome.last_state.contains("not found"),
        "{}",
        outcome.last_state
    );
}

/// Regression: `run_gates` hands the first gate what is left of the budget a few microseconds
/// in, and the message truncated it, so `--timeout 5s` said "timed out after 4s".
#[tokio::test]
async fn run_gates_timeout_reports_the_budget_given() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    let client = fake.client().await;
    let settings = cluster::GateSettings {
        gates: vec![cluster::Gate::Synced],
        sync_via: cluster::SyncVia::Ingress,
        sync_now: false,
        timeout: Duration::from_secs(2),
        bake: Duration::ZERO,
        restart_threshold: 3,
    };
    let subject = cluster::Subject {
        targets: gitops_canary::gate::target::Targets {
            ingresses: vec![ObjectRef::new(NS, "web-canary")],
            ..Default::default()
        },
        weight: 25,
        revision: None,
    };
    let outcomes = cluster::run_gates(&client, &settings, &subject, |_| {})
        .await
        .unwrap();
    match &outcomes[0].verdict {
        Verdict::Fail(r) => assert!(r.starts_with("timed out after 2s: "), "{r}"),
        other => panic!("expected a timeout failure, got {other:?}"),
    }
}

#[tokio::test]
async fn argocd_synced_at_the_merged_revision_with_sync_now() {
    init();
    let fake = FakeKube::start().await;
    let old = "1111111111111111111111111111111111111111";
    let new = "abcdef0123456789abcdef0123456789abcdef01";
    fake.upsert(objects::argo_app(
        "argocd", "shop", old, "Synced", "Healthy",
    ));
    let source = SyncSource::ArgoCd {
        app: ObjectRef::new("argocd", "shop"),
        revision: new[..12].to_string(),
    };
    let gate = spawn_synced(&fake, source, true, Duration::from_secs(30)).await;
    fake.wait_watch_starts("applications", 1).await;
    let patches = fake.patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(
        patches[0].1["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
        "normal"
    );
    assert_eq!(
        fake.get("argoproj.io/v1alpha1", "Application", "argocd", "shop")
            .unwrap()["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
        "normal"
    );
    // Argo CD: refresh -> OutOfSync at the new revision -> Synced/Progressing -> Healthy.
    let set = |sync: &str, health: &str| {
        fake.modify("argoproj.io/v1alpha1", "Application", "argocd", "shop", |o| {
            o["status"] = json!({"sync": {"status": sync, "revision": new}, "health": {"status": health}});
        })
    };
    set("OutOfSync", "Healthy");
    set("Synced", "Progressing");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!gate.is_finished());
    set("Synced", "Healthy");
    let outcome = gate.await.unwrap().unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
}

#[tokio::test]
async fn argocd_degraded_at_the_revision_fails() {
    init();
    let fake = FakeKube::start().await;
    let new = "abcdef0123456789abcdef0123456789abcdef01";
    fake.upsert(objects::argo_app(
        "argocd", "shop", "1111111", "Synced", "Healthy",
    ));
    let source = SyncSource::ArgoCd {
        app: ObjectRef::new("argocd", "shop"),
        revision: new.to_string(),
    };
    let gate = spawn_synced(&fake, source, false, Duration::from_secs(30)).await;
    fake.wait_watch_starts("applications", 1).await;
    fake.modify("argoproj.io/v1alpha1", "Application", "argocd", "shop", |o| {
        o["status"] = json!({"sync": {"status": "Synced", "revision": new}, "health": {"status": "Degraded", "message": "Deployment web-canary exceeded its progress deadline"}});
    });
    let outcome = gate.await.unwrap().unwrap();
    assert!(
        matches!(&outcome.verdict, Verdict::Fail(r) if r.contains("Degraded") && r.contains("progress deadline")),
        "{outcome:?}"
    );
    assert!(fake.patches().is_empty(), "no sync-now unless asked");
}

#[tokio::test]
async fn flux_ready_at_the_revision_with_reconcile_request() {
    init();
    let fake = FakeKube::start().await;
    let new = "abcdef0123456789abcdef0123456789abcdef01";
    fake.upsert(objects::flux_kustomization(
        "flux-system",
        "shop",
        "main@sha1:1111111111111111111111111111111111111111",
        "True",
        "ReconciliationSucceeded",
    ));
    let source = SyncSource::Flux {
        kustomization: ObjectRef::new("flux-system", "shop"),
        revision: new.to_string(),
    };
    let gate = spawn_synced(&fake, source, true, Duration::from_secs(30)).await;
    fake.wait_watch_starts("kustomizations", 1).await;
    let patches = fake.patches();
    let requested = patches[0].1["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(humantime::parse_rfc3339(&requested).is_ok(), "{requested}");
    // Flux: Progressing with the new revision attempted, then Ready with it applied.
    fake.modify("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "shop", |o| {
        o["status"]["lastAttemptedRevision"] = json!(format!("main@sha1:{new}"));
        o["status"]["conditions"][0] = json!({"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "Reconciliation in progress"});
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!gate.is_finished());
    fake.modify("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "shop", |o| {
        o["status"]["lastAppliedRevision"] = json!(format!("main@sha1:{new}"));
        o["status"]["lastHandledReconcileAt"] = json!(requested);
        o["status"]["conditions"][0] = json!({"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision"});
    });
    let outcome = gate.await.unwrap().unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
}

#[tokio::test]
async fn flux_health_check_failure_at_the_revision_fails() {
    init();
    let fake = FakeKube::start().await;
    let new = "abcdef0123456789abcdef0123456789abcdef01";
    fake.upsert(objects::flux_kustomization(
        "flux-system",
        "shop",
        "main@sha1:1111111111111111111111111111111111111111",
        "True",
        "ReconciliationSucceeded",
    ));
    let source = SyncSource::Flux {
        kustomization: ObjectRef::new("flux-system", "shop"),
        revision: new[..7].to_string(),
    };
    let gate = spawn_synced(&fake, source, false, Duration::from_secs(30)).await;
    fake.wait_watch_starts("kustomizations", 1).await;
    fake.modify("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "shop", |o| {
        o["status"]["lastAttemptedRevision"] = json!(format!("main@sha1:{new}"));
        o["status"]["conditions"][0] = json!({"type": "Ready", "status": "False", "reason": "HealthCheckFailed", "message": "timeout waiting for: [Deployment/shop/web-canary status: 'InProgress']"});
    });
    let outcome = gate.await.unwrap().unwrap();
    assert!(
        matches!(&outcome.verdict, Verdict::Fail(r) if r.contains("HealthCheckFailed")),
        "{outcome:?}"
    );
}

fn setup_deployments(fake: &FakeKube) {
    fake.upsert(objects::deployment(NS, "web-canary", 2, "web", "canary"));
    fake.upsert(objects::deployment(NS, "web", 3, "web", "stable"));
    fake.upsert(objects::pod(NS, "web-canary-5d8f7-a", "web", "canary"));
    fake.upsert(objects::pod(NS, "web-canary-5d8f7-b", "web", "canary"));
    fake.upsert(objects::pod(NS, "web-6c9d1-a", "web", "stable"));
}

#[tokio::test]
async fn rolled_out_passes_when_the_controller_finishes() {
    init();
    let fake = FakeKube::start().await;
    setup_deployments(&fake);
    // A new image: generation 2, the controller has not caught up.
    fake.modify("apps/v1", "Deployment", NS, "web-canary", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    });
    let client = fake.client().await;
    let (c, s) = (ObjectRef::new(NS, "web-canary"), ObjectRef::new(NS, "web"));
    let gate =
        tokio::spawn(
            async move { cluster::rolled_out(&client, &c, &s, Duration::from_secs(30)).await },
        );
    fake.wait_watch_starts("deployments", 1).await;
    fake.modify("apps/v1", "Deployment", NS, "web-canary", |d| {
        objects::set_rollout(d, 2, 1, 2, 2)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!gate.is_finished());
    let changed = Instant::now();
    fake.modify("apps/v1", "Deployment", NS, "web-canary", |d| {
        objects::set_rollout(d, 2, 2, 2, 2)
    });
    let outcome = gate.await.unwrap().unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert!(changed.elapsed() < GENEROUS);
    assert_eq!(outcome.gate, "rolled-out");
}

#[tokio::test]
async fn progress_deadline_fails_rolled_out() {
    init();
    let fake = FakeKube::start().await;
    setup_deployments(&fake);
    fake.modify("apps/v1", "Deployment", NS, "web-canary", |d| {
        d["status"]["conditions"][1] = json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet \"web-canary-7f\" has timed out progressing."});
    });
    let client = fake.client().await;
    let outcome = cluster::rolled_out(
        &client,
        &ObjectRef::new(NS, "web-canary"),
        &ObjectRef::new(NS, "web"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcome.verdict, Verdict::Fail(r) if r.contains("timed out progressing")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn stable_scaled_to_zero_fails() {
    init();
    let fake = FakeKube::start().await;
    setup_deployments(&fake);
    fake.modify("apps/v1", "Deployment", NS, "web", |d| {
        d["spec"]["replicas"] = json!(0);
        objects::set_rollout(d, 2, 0, 0, 0);
    });
    let client = fake.client().await;
    let outcome = cluster::rolled_out(
        &client,
        &ObjectRef::new(NS, "web-canary"),
        &ObjectRef::new(NS, "web"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcome.verdict, Verdict::Fail(r) if r.contains("stable Deployment web has no ready replicas") && r.contains("503")),
        "{outcome:?}"
    );
    assert!(
        outcome
            .last_state
            .contains("Deployment shop/web at resourceVersion"),
        "{}",
        outcome.last_state
    );
}

#[tokio::test]
async fn steady_passes_a_quiet_bake() {
    init();
    let fake = FakeKube::start().await;
    setup_deployments(&fake);
    let client = fake.client().await;
    let bake = Duration::from_millis(1500);
    let outcome = cluster::steady(
        &client,
        &ObjectRef::new(NS, "web-canary"),
        &ObjectRef::new(NS, "web"),
        bake,
        3,
    )
    .await
    .unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert!(outcome.elapsed >= bake);
    assert!(
        outcome
            .last_state
            .starts_with("2 pods (web-canary-5d8f7-a Running"),
        "{}",
        outcome.last_state
    );
}

#[tokio::test]
async fn crash_loop_mid_bake_fails_before_the_bake_ends() {
    init();
    let fake = FakeKube::start().await;
    setup_deployments(&fake);
    let client = fake.client().await;
    let bake = Duration::from_secs(60);
    let gate = tokio::spawn(async move {
        cluster::steady(
            &client,
            &ObjectRef::new(NS, "web-canary"),
            &ObjectRef::new(NS, "web"),
            bake,
            3,
        )
        .await
    });
    fake.wait_watch_starts("pods", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!gate.is_finished());
    let changed = Instant::now();
    fake.modify("v1", "Pod", NS, "web-canary-5d8f7-b", |p| {
        objects::crash_loop(p, 2)
    });
    let outcome = gate.await.unwrap().unwrap();
    assert!(changed.elapsed() < GENEROUS, "{:?}", changed.elapsed());
    assert!(outcome.elapsed < bake);
    assert!(
        matches!(&outcome.verdict, Verdict::Fail(r) if r.contains("pod web-canary-5d8f7-b") && r.contains("CrashLoopBackOff")),
        "{outcome:?}"
    );
    assert_eq!(outcome.gate, "steady");
    assert!(
        outcome.last_state.contains("restarts 2"),
        "{}",
        outcome.last_state
    );
    // Only the canary's pods were watched: the label selector came from the Deployment.
    let pod_watch = fake
        .requests()
        .into_iter()
        .find(|r| r.contains("/pods?") && r.contains("watch=true"))
        .unwrap();
    assert!(
        pod_watch.contains("track%3Dcanary") || pod_watch.contains("track=canary"),
        "{pod_watch}"
    );
}

#[tokio::test]
async fn stable_losing_endpoints_mid_bake_fails_steady() {
    init();
    let fake = FakeKube::start().await;
    setup_deployments(&fake);
    // A stable pod crash-looping is not the canary's fault and must not fail the gate.
    fake.modify("v1", "Pod", NS, "web-6c9d1-a", |p| {
        objects::crash_loop(p, 7)
    });
    let client = fake.client().await;
    let gate = tokio::spawn(async move {
        cluster::steady(
            &client,
            &ObjectRef::new(NS, "web-canary"),
            &ObjectRef::new(NS, "web"),
            Duration::from_secs(60),
            3,
        )
        .await
    });
    fake.wait_watch_starts("deployments", 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!gate.is_finished());
    fake.modify("apps/v1", "Deployment", NS, "web", |d| {
        d["spec"]["replicas"] = json!(0);
        objects::set_rollout(d, 2, 0, 0, 0);
    });
    let outcome = gate.await.unwrap().unwrap();
    assert!(
        matches!(&outcome.verdict, Verdict::Fail(r) if r.contains("no ready replicas")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_outage_until_the_timeout_reports_the_last_error() {
    init();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress(NS, "web-canary", 10));
    fake.fail_next(10_000, 503);
    let client = fake.client().await;
    let outcome = cluster::synced(
        &client,
        &ingress_source(10),
        false,
        Duration::from_millis(1500),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcome.verdict, Verdict::Fail(r) if r.contains("timed out")),
        "{outcome:?}"
    );
    assert!(
        outcome.last_state.contains("never observed") && outcome.last_state.contains("HTTP 503"),
        "{}",
        outcome.last_state
    );
    // Bounded backoff: retried several times in 1.5 s, but not in a hot loop.
    let attempts = 10_000 - fake.pending_failures();
    assert!((3..200).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn sync_now_patch_is_retried_through_server_errors() {
    init();
    let fake = FakeKube::start().await;
    let rev = "abcdef0123456789abcdef0123456789abcdef01";
    fake.upsert(objects::flux_kustomization(
        "flux-system",
        "shop",
        &format!("main@sha1:{rev}"),
        "True",
        "ReconciliationSucceeded",
    ));
    fake.fail_next(2, 500);
    let source = SyncSource::Flux {
        kustomization: ObjectRef::new("flux-system", "shop"),
        revision: rev.into(),
    };
    let outcome = spawn_synced(&fake, source, true, Duration::from_secs(30))
        .await
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
    assert_eq!(fake.pending_failures(), 0);
    assert_eq!(fake.patches().len(), 1);
    let patches = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PATCH "))
        .count();
    assert_eq!(patches, 3, "two refused, one applied");

    // A Role without `patch` is a clear error, not a retry loop.
    let fake = FakeKube::start().await;
    fake.upsert(objects::argo_app(
        "argocd", "shop", rev, "Synced", "Healthy",
    ));
    fake.forbid("applications.argoproj.io", Some("patch"));
    let source = SyncSource::ArgoCd {
        app: ObjectRef::new("argocd", "shop"),
        revision: rev.into(),
    };
    let err = spawn_synced(&fake, source, true, Duration::from_secs(30))
        .await
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("forbidden: cannot patch applications.argoproj.io in namespace argocd"),
        "{err}"
    );
}

const ROUTES: &str = "gateway.networking.k8s.io/v1";

fn route_subject(canary_weight: u32, stable_weight: u32) -> cluster::Subject {
    use gitops_canary::gate::httproute::RouteWeights;
    use gitops_canary::gate::target::{RouteTarget, Targets};
    cluster::Subject {
        targets: Targets {
            routes: vec![RouteTarget {
                route: ObjectRef::new(NS, "web"),
                weights: RouteWeights {
                    canary: "web-canary".into(),
                    stable: "web".into(),
                    canary_weight: Some(canary_weight),
                    stable_weight: Some(stable_weight),
                },
            }],
            ..Default::default()
        },
        weight: canary_weight,
        revision: None,
    }
}

fn synced_settings(timeout: Duration) -> cluster::GateSettings {
    cluster::GateSettings {
        gates: vec![cluster::Gate::Synced],
        sync_via: cluster::SyncVia::Ingress,
        sync_now: false,
        timeout,
        bake: Duration::ZERO,
        restart_threshold: 3,
    }
}

/// An HTTPRoute stage: Git's new weights reach the live route (its generation moves on), and
/// `synced` waits until the Gateway's controller has accepted that generation, then passes.
#[tokio::test]
async fn httproute_synced_waits_for_the_gateway_to_accept_the_new_generation() {
    init();
    let fake = FakeKube::start().await;
    let mut route = fake.upsert(objects::http_route(NS, "web", "web", 10, 90));
    objects::route_status(&mut route, ("True", "Accepted"), ("True", "ResolvedRefs"));
    fake.upsert(route);
    let client = fake.client().await;
    let subject = route_subject(25, 75);
    let gate = tokio::spawn(async move {
        cluster::run_gates(
            &client,
            &synced_settings(Duration::from_secs(30)),
            &subject,
            |_| {},
        )
        .await
    });
    fake.wait_watch_starts("httproutes", 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !gate.is_finished(),
        "must wait while the route weighs 10/90"
    );

    // Argo CD applies the commit: new weights, generation 2, status still about generation 1.
    let route = fake.modify(ROUTES, "HTTPRoute", NS, "web", |r| {
        r["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(75);
        r["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(25);
    });
    assert_eq!(route["metadata"]["generation"], 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !gate.is_finished(),
        "must wait while the status describes generation 1"
    );

    let accepted = Instant::now();
    fake.modify(ROUTES, "HTTPRoute", NS, "web", |r| {
        objects::route_status(r, ("True", "Accepted"), ("True", "ResolvedRefs"));
    });
    let outcomes = gate.await.unwrap().unwrap();
    assert!(accepted.elapsed() < GENEROUS);
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].gate, "synced");
    assert_eq!(outcomes[0].verdict, Verdict::Pass, "{:?}", outcomes[0]);
    assert!(
        outcomes[0].last_state.contains("HTTPRoute shop/web"),
        "{}",
        outcomes[0].last_state
    );
    // Watched as the dynamic gateway.networking.k8s.io/v1 resource, no Ingress asked for.
    assert!(
        count(&fake, |r| r.contains(
            "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes"
        )) > 0
    );
    assert_eq!(count(&fake, |r| r.contains("/ingresses")), 0);
}

/// A Gateway rejecting the route at its current generation fails `synced` at once with the
/// parent and the reason; a timeout names what the status last said.
#[tokio::test]
async fn httproute_rejected_by_the_gateway_fails_synced() {
    init();
    let fake = FakeKube::start().await;
    let mut route = fake.upsert(objects::http_route(NS, "web", "web", 25, 75));
    objects::route_status(
        &mut route,
        ("False", "NotAllowedByListeners"),
        ("True", "ResolvedRefs"),
    );
    fake.upsert(route);
    let client = fake.client().await;
    let outcomes = cluster::run_gates(
        &client,
        &synced_settings(Duration::from_secs(30)),
        &route_subject(25, 75),
        |_| {},
    )
    .await
    .unwrap();
    match &outcomes[0].verdict {
        Verdict::Fail(r) => {
            assert!(r.contains("Gateway infra/eg section http"), "{r}");
            assert!(r.contains("Accepted=False NotAllowedByListeners"), "{r}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // Never accepted (no status at all): a timeout with the last observed state.
    fake.upsert(objects::http_route(NS, "api", "api", 25, 75));
    let mut subject = route_subject(25, 75);
    subject.targets.routes[0].route = ObjectRef::new(NS, "api");
    subject.targets.routes[0].weights.canary = "api-canary".into();
    subject.targets.routes[0].weights.stable = "api".into();
    let outcomes = cluster::run_gates(
        &client,
        &synced_settings(Duration::from_secs(1)),
        &subject,
        |_| {},
    )
    .await
    .unwrap();
    match &outcomes[0].verdict {
        Verdict::Fail(r) => {
            assert!(r.starts_with("timed out after 1s: "), "{r}");
            assert!(r.contains("status.parents is empty"), "{r}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}
