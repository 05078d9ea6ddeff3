//! The one gate runner (`cmd::gates::Runner`) as the rollout loop's `GateRunner`: the gate
//! context the loop builds from the example repository, judged against the fake API server.

use crate::support::fake_kube;

use std::path::PathBuf;
use std::time::Duration;

use fake_kube::{objects, FakeKube};
use gitops_canary::cluster::{GateSettings, ObjectRef, SyncVia};
use gitops_canary::cmd::gates::Runner;
use gitops_canary::gate::target::{self, RoutePair};
use gitops_canary::gate::{Gate, Verdict};
use gitops_canary::manifest::{self, workload, Repo};
use gitops_canary::rollout::{GateContext, GateRunner};
use serde_json::json;

fn context(weight: u32) -> GateContext {
    context_of(&["web-canary"], weight)
}

/// The loop's context for the canaries named, moving together.
fn context_of(names: &[&str], weight: u32) -> GateContext {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/gitops-repo");
    let repo = Repo::load_filtered(&dir, &|b| {
        ["Ingress", "Deployment", "Service"]
            .iter()
            .any(|k| manifest::contains(b, k.as_bytes()))
    })
    .unwrap();
    let pairs: Vec<_> = names
        .iter()
        .map(|n| {
            gitops_canary::router::discover(&repo)
                .pairs
                .into_iter()
                .find(|p| p.canary.name == *n)
                .unwrap()
        })
        .collect();
    let workloads = workload::workloads(&repo.files);
    let services = workload::services(&repo.files);
    let behind = |routes: &[gitops_canary::router::Route]| {
        let mut out = Vec::new();
        for r in routes {
            for s in r.services() {
                out.extend(
                    workload::backing(&workloads, &services, r.namespace.as_deref(), &s)
                        .into_iter()
                        .cloned(),
                );
            }
        }
        out
    };
    let canaries: Vec<_> = pairs.iter().map(|p| p.canary.clone()).collect();
    let stables: Vec<_> = pairs.iter().flat_map(|p| p.stable.clone()).collect();
    let route_pairs: Vec<RoutePair> = pairs
        .iter()
        .map(|p| RoutePair {
            canary: p.canary.clone(),
            stables: p.stable.clone(),
        })
        .collect();
    GateContext {
        rollout: "shop".into(),
        stage: 1,
        weight,
        revision: "abcdef0123456789".into(),
        canary_workloads: behind(&canaries),
        stable_workloads: behind(&stables),
        targets: target::resolve(&route_pairs, &workloads, &services, "default"),
        canaries,
        stables,
        timeout: None,
    }
}

fn runner(client: kube::Client, bake: Duration) -> Runner {
    Runner {
        client: Some(client),
        settings: settings(bake),
        stage_bakes: Vec::new(),
        metrics: None,
    }
}

fn settings(bake: Duration) -> GateSettings {
    GateSettings {
        gates: vec![Gate::Synced, Gate::RolledOut, Gate::Steady],
        sync_via: SyncVia::Ingress,
        sync_now: false,
        timeout: Duration::from_secs(2),
        bake,
        restart_threshold: 3,
    }
}

async fn cluster() -> FakeKube {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeKube::start().await;
    fake.upsert(objects::ingress("shop", "web-canary", 25));
    fake.upsert(objects::deployment(
        "shop",
        "web-canary",
        1,
        "web",
        "canary",
    ));
    fake.upsert(objects::deployment("shop", "web", 3, "web", "stable"));
    fake.upsert(objects::pod("shop", "web-canary-5d8f7-a", "web", "canary"));
    fake
}

#[tokio::test]
async fn targets_come_from_the_loop_context() {
    let t = context(25).targets;
    assert_eq!(t.ingresses, [ObjectRef::new("shop", "web-canary")]);
    assert_eq!(t.canary, [ObjectRef::new("shop", "web-canary")]);
    assert_eq!(t.stable, [ObjectRef::new("shop", "web")]);
}

#[tokio::test]
async fn all_gates_pass_for_the_stage() {
    let fake = cluster().await;
    let gates = runner(fake.client().await, Duration::from_millis(500));
    let report = gates.run(&context(25)).await.unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    let names: Vec<&str> = report.gates.iter().map(|g| g.gate.as_str()).collect();
    assert_eq!(names, ["synced", "rolled-out", "steady"]);
}

#[tokio::test]
async fn a_failing_gate_stops_the_stage_with_its_state() {
    let fake = cluster().await;
    fake.modify("apps/v1", "Deployment", "shop", "web-canary", |d| {
        d["status"]["conditions"][1] = json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "stuck"});
    });
    let gates = runner(fake.client().await, Duration::from_millis(500));
    let report = gates.run(&context(25)).await.unwrap();
    assert!(
        matches!(&report.verdict, Verdict::Fail(r) if r.contains("progress deadline")),
        "{report:?}"
    );
    assert_eq!(
        report.gates.len(),
        2,
        "steady must not run after rolled-out failed"
    );
    assert!(
        report.gates[1]
            .detail
            .contains("Deployment shop/web-canary at resourceVersion"),
        "{:?}",
        report.gates[1]
    );

    // The wrong weight in the cluster: synced times out naming what it saw.
    let report = gates.run(&context(50)).await.unwrap();
    assert!(
        matches!(&report.verdict, Verdict::Fail(r) if r.contains("canary-weight is 25, waiting for 50")),
        "{report:?}"
    );
}

/// Two ingresses moving together (shop and api): the api canary as healthy as the shop one.
async fn two_canaries() -> FakeKube {
    let fake = cluster().await;
    fake.upsert(objects::ingress("api-canary", "api", 25));
    fake.upsert(objects::deployment("api-canary", "api", 1, "api", "canary"));
    fake.upsert(objects::deployment("api", "api", 3, "api", "stable"));
    fake.upsert(objects::pod("api-canary", "api-7c9d-a", "api", "canary"));
    fake
}

#[tokio::test]
async fn two_ingresses_moving_together_pass_together() {
    let fake = two_canaries().await;
    let gates = runner(fake.client().await, Duration::from_millis(500));
    let ctx = context_of(&["web-canary", "api"], 25);
    assert_eq!(ctx.targets.ingresses.len(), 2, "{:?}", ctx.targets);
    let report = gates.run(&ctx).await.unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    for g in &report.gates[1..] {
        assert!(
            g.detail.contains("shop/web-canary") && g.detail.contains("api-canary/api"),
            "{g:?}"
        );
    }
}

/// A fault on the second ingress's Deployment fails the stage (the old runner gated only the
/// first route and the first Deployment on each side).
#[tokio::test]
async fn a_fault_on_the_second_ingress_deployment_fails_the_gate() {
    let fake = two_canaries().await;
    fake.modify("apps/v1", "Deployment", "api-canary", "api", |d| {
        d["status"]["conditions"][1] = json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "stuck"});
    });
    let gates = runner(fake.client().await, Duration::from_millis(500));
    let report = gates
        .run(&context_of(&["web-canary", "api"], 25))
        .await
        .unwrap();
    assert!(
        matches!(&report.verdict, Verdict::Fail(r) if r.contains("progress deadline")),
        "{report:?}"
    );
    assert_eq!(report.gates[1].gate, "rolled-out");
    assert!(
        report.gates[1].detail.contains("Deployment api-canary/api"),
        "{:?}",
        report.gates[1]
    );

    // A crash loop in the second canary's pods fails steady.
    let fake = two_canaries().await;
    fake.modify("v1", "Pod", "api-canary", "api-7c9d-a", |p| {
        objects::crash_loop(p, 5)
    });
    let gates = runner(fake.client().await, Duration::from_secs(5));
    let report = gates
        .run(&context_of(&["web-canary", "api"], 25))
        .await
        .unwrap();
    assert!(
        matches!(&report.verdict, Verdict::Fail(r) if r.contains("api-7c9d-a")),
        "{report:?}"
    );
    assert_eq!(report.gates.last().unwrap().gate, "steady");

    // The second ingress not yet at the weight: synced waits for it.
    let fake = two_canaries().await;
    fake.upsert(objects::ingress("api-canary", "api", 10));
    let gates = runner(fake.client().await, Duration::from_millis(500));
    let report = gates
        .run(&context_of(&["web-canary", "api"], 25))
        .await
        .unwrap();
    assert!(
        matches!(&report.verdict, Verdict::Fail(r) if r.contains("waiting for 25")),
        "{report:?}"
    );
    assert_eq!(report.gates[0].gate, "synced");
}

/// A stage's own bake time is the one the runner bakes for.
#[tokio::test]
async fn each_stage_bakes_for_its_own_time() {
    let fake = cluster().await;
    let mut gates = runner(fake.client().await, Duration::from_millis(200));
    gates.stage_bakes = vec![None, Some(Duration::from_millis(1500))];
    assert_eq!(gates.bake(1), Duration::from_millis(200));
    assert_eq!(gates.bake(2), Duration::from_millis(1500));
    assert_eq!(gates.bake(3), Duration::from_millis(200));
    let mut ctx = context(25);
    ctx.stage = 2;
    let started = std::time::Instant::now();
    let report = gates.run(&ctx).await.unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let steady = report.gates.iter().find(|g| g.gate == "steady").unwrap();
    assert!(steady.detail.ends_with("; bake 1s 500ms"), "{steady:?}");
}
