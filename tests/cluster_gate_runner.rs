//! `ClusterGates` as the rollout loop's `GateRunner`: the gate context the loop builds from
//! the example repository, judged against the fake API server.

#[path = "support/fake_kube.rs"]
mod fake_kube;

use std::path::PathBuf;
use std::time::Duration;

use fake_kube::{objects, FakeKube};
use gitops_canary::app::{GateContext, GateRunner};
use gitops_canary::cluster::{ClusterGate, ClusterGates, GateSettings, ObjectRef, SyncVia};
use gitops_canary::gate::Verdict;
use gitops_canary::manifest::{self, workload, Repo};
use serde_json::json;

fn context(weight: u32) -> GateContext {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/gitops-repo");
    let repo = Repo::load_filtered(&dir, &|b| {
        ["Ingress", "Deployment", "Service"]
            .iter()
            .any(|k| manifest::contains(b, k.as_bytes()))
    })
    .unwrap();
    let pair = repo
        .discover()
        .pairs
        .into_iter()
        .find(|p| p.canary.name == "web-canary")
        .unwrap();
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
    GateContext {
        rollout: "shop".into(),
        stage: 1,
        weight,
        revision: "abcdef0123456789".into(),
        canary_workloads: behind(std::slice::from_ref(&pair.canary)),
        stable_workloads: behind(&pair.stable),
        canaries: vec![pair.canary.clone()],
        stables: pair.stable.clone(),
    }
}

fn settings(bake: Duration) -> GateSettings {
    GateSettings {
        gates: vec![
            ClusterGate::Synced,
            ClusterGate::RolledOut,
            ClusterGate::Steady,
        ],
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
async fn subject_comes_from_the_loop_context() {
    let subject = ClusterGates::subject(&context(25)).unwrap();
    assert_eq!(subject.ingress, ObjectRef::new("shop", "web-canary"));
    assert_eq!(subject.canary, Some(ObjectRef::new("shop", "web-canary")));
    assert_eq!(subject.stable, Some(ObjectRef::new("shop", "web")));
    assert_eq!(subject.revision.as_deref(), Some("abcdef0123456789"));
}

#[tokio::test]
async fn all_gates_pass_for_the_stage() {
    let fake = cluster().await;
    let gates = ClusterGates {
        client: fake.client().await,
        settings: settings(Duration::from_millis(500)),
    };
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
    let gates = ClusterGates {
        client: fake.client().await,
        settings: settings(Duration::from_millis(500)),
    };
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
