//! Gate latency: time from the fake API server changing an object to the gate reporting its
//! verdict, over N runs (`GATE_LATENCY_RUNS`, default 40). Prints median and p95 per scenario.
//!
//! Run: `cargo bench --bench gate_latency`. The timed tests only assert generous bounds; the
//! real numbers live here.

// The bench drives a part of the fake API server the integration tests share.
#[allow(dead_code)]
#[path = "../tests/it/support/fake_kube.rs"]
mod fake_kube;

use std::time::{Duration, Instant};

use fake_kube::{objects, FakeKube};
use gitops_canary::cluster::{self, ObjectRef, SyncSource};
use gitops_canary::gate::Verdict;
use serde_json::json;

const NS: &str = "shop";

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<40} n={:<4} median {:>8.2} ms   p95 {:>8.2} ms   max {:>8.2} ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}

fn set_weight(fake: &FakeKube, weight: u32) {
    fake.modify("networking.k8s.io/v1", "Ingress", NS, "web-canary", |o| {
        o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] =
            json!(weight.to_string());
    });
}

async fn ingress_pass(
    fake: &FakeKube,
    client: &kube::Client,
    runs: usize,
    cut_first: bool,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let weight = 2 + i as u32;
        set_weight(fake, weight - 1);
        let starts = fake.watch_starts("ingresses");
        let (c, source) = (
            client.clone(),
            SyncSource::Ingress {
                ingress: ObjectRef::new(NS, "web-canary"),
                weight,
            },
        );
        let gate = tokio::spawn(async move {
            cluster::synced(&c, &source, false, Duration::from_secs(30)).await
        });
        fake.wait_watch_starts("ingresses", starts + 1).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        if cut_first {
            // The change lands while no watch is open: the resumed watch must replay it.
            fake.cut_watches(false);
        }
        let t0 = Instant::now();
        set_weight(fake, weight);
        let outcome = gate.await.expect("join").expect("gate");
        samples.push(t0.elapsed());
        assert_eq!(outcome.verdict, Verdict::Pass);
    }
    samples
}

async fn crash_detection(fake: &FakeKube, client: &kube::Client, runs: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        fake.upsert(objects::pod(NS, "web-canary-5d8f7-a", "web", "canary"));
        let starts = fake.watch_starts("pods");
        let c = client.clone();
        let gate = tokio::spawn(async move {
            cluster::steady(
                &c,
                &ObjectRef::new(NS, "web-canary"),
                &ObjectRef::new(NS, "web"),
                Duration::from_secs(60),
                3,
            )
            .await
        });
        fake.wait_watch_starts("pods", starts + 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        fake.modify("v1", "Pod", NS, "web-canary-5d8f7-a", |p| {
            objects::crash_loop(p, 1)
        });
        let outcome = gate.await.expect("join").expect("gate");
        samples.push(t0.elapsed());
        assert!(matches!(outcome.verdict, Verdict::Fail(_)));
    }
    samples
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runs: usize = std::env::var("GATE_LATENCY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            40
        } else {
            // `cargo test --all-targets`: a quick smoke run.
            3
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fake = FakeKube::start().await;
        fake.upsert(objects::ingress(NS, "web-canary", 1));
        fake.upsert(objects::deployment(NS, "web-canary", 1, "web", "canary"));
        fake.upsert(objects::deployment(NS, "web", 3, "web", "stable"));
        let client = fake.client().await;
        println!("gate latency: object changed on the fake API server -> verdict ({runs} runs)");
        report(
            "synced (live Ingress)",
            ingress_pass(&fake, &client, runs, false).await,
        );
        report(
            "synced after a cut watch (resume)",
            ingress_pass(&fake, &client, runs, true).await,
        );
        report(
            "steady: crash loop detected",
            crash_detection(&fake, &client, runs).await,
        );
    });
}
