//! The metrics analysis per built-in provider against a real Prometheus holding backfilled
//! traffic in that implementation's own metric and label names: a healthy canary passes, a
//! canary answering 10% 5xx fails, a canary with too little traffic is inconclusive. Every
//! canary sits next to decoys (its stable, another namespace, another reporter or cluster)
//! that would change the verdict if a filter were missing. And `check --metrics-provider`
//! wires the same queries end to end.

use crate::support::prometheus::{self, Latency, Names, Series};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gitops_canary::gate::metrics::{
    queries, render, AnalysisConfig, Provider, QueryTemplates, Vars,
};
use gitops_canary::gate::Verdict;
use gitops_canary::metrics::{run_analysis_with, AnalysisReport, ManualClock, PrometheusClient};

const ENVOY: Names = Names {
    requests: "envoy_cluster_upstream_rq",
    code_label: "envoy_response_code",
    ok: "200",
    error: "503",
    latency: Latency::Histogram {
        name: "envoy_cluster_upstream_rq_time",
        unit: 1000.0,
    },
};

const ISTIO: Names = Names {
    requests: "istio_requests_total",
    code_label: "response_code",
    ok: "200",
    error: "500",
    latency: Latency::Histogram {
        name: "istio_request_duration_milliseconds",
        unit: 1000.0,
    },
};

const NGF: Names = Names {
    requests: "nginx_http_upstream_peer_responses_total",
    code_label: "nginx_status_range",
    ok: "2xx",
    error: "5xx",
    latency: Latency::AverageGauge {
        name: "nginx_http_upstream_peer_response_time_milliseconds",
        unit: 1000.0,
    },
};

/// One canary (or decoy) as the implementation labels it, for a route and its Service.
fn labels(p: Provider, ns: &str, route: &str, service: &str, canary: bool) -> Vec<String> {
    match p {
        // The canary's own cluster is backend 1; backend 0 is the stable, and the rule-level
        // cluster (no backend filters) mixes both.
        Provider::EnvoyGateway => vec![format!(
            r#"envoy_cluster_name="httproute/{ns}/{route}/rule/0/backend/{}""#,
            if canary { 1 } else { 0 }
        )],
        Provider::Istio => vec![format!(
            r#"reporter="source",source_workload="gw-istio",destination_service_namespace="{ns}",destination_service_name="{service}",destination_workload="{service}""#
        )],
        Provider::NginxGatewayFabric => vec![format!(
            r#"nginx_upstream_name="{ns}_{service}_80",nginx_peer_address="10.0.0.{}:8080",nginx_peer_name="10.0.0.{}:8080",nginx_zone_name="{ns}_{service}_80""#,
            route.len(),
            route.len()
        )],
        _ => unreachable!(),
    }
}

fn series(p: Provider, route: &str, canary: bool, rps: f64, err: f64, slow: f64) -> Series {
    let service = if canary {
        format!("{route}-canary")
    } else {
        route.to_string()
    };
    Series {
        labels: labels(p, "shop", route, &service, canary).remove(0),
        rps,
        error_ratio: err,
        slow_ratio: slow,
    }
}

fn names(p: Provider) -> Names {
    match p {
        Provider::EnvoyGateway => ENVOY,
        Provider::Istio => ISTIO,
        Provider::NginxGatewayFabric => NGF,
        _ => unreachable!(),
    }
}

/// Decoys only one provider has: traffic its filters must leave out.
fn decoys(p: Provider) -> Vec<Series> {
    let bad = |labels: String| Series {
        labels,
        rps: 4.0,
        error_ratio: 0.5,
        slow_ratio: 0.5,
    };
    match p {
        Provider::EnvoyGateway => vec![
            bad(r#"envoy_cluster_name="httproute/shop/web/rule/0""#.into()),
            bad(r#"envoy_cluster_name="httproute/other/web/rule/0/backend/1""#.into()),
            bad(r#"envoy_cluster_name="httproute/shop/web-admin/rule/0/backend/1""#.into()),
        ],
        Provider::Istio => vec![
            // The canary's own sidecar reports the same requests again.
            bad(r#"reporter="destination",source_workload="gw-istio",destination_service_namespace="shop",destination_service_name="web-canary",destination_workload="web-canary""#.into()),
            bad(r#"reporter="source",source_workload="gw-istio",destination_service_namespace="other",destination_service_name="web-canary",destination_workload="web-canary""#.into()),
        ],
        Provider::NginxGatewayFabric => vec![
            bad(r#"nginx_upstream_name="other_web-canary_80",nginx_peer_address="10.1.0.1:8080",nginx_peer_name="10.1.0.1:8080",nginx_zone_name="other_web-canary_80""#.into()),
            bad(r#"nginx_upstream_name="shop_web-canary-old_80",nginx_peer_address="10.1.0.2:8080",nginx_peer_name="10.1.0.2:8080",nginx_zone_name="shop_web-canary-old_80""#.into()),
        ],
        _ => unreachable!(),
    }
}

/// One hour of traffic, two hours ago, in `p`'s names: `web` healthy, `api` 10% errors,
/// `quiet` 3 requests a minute; every stable errs 20% and is slow.
fn scenario(p: Provider) -> (String, f64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = (now - 2 * 3600) / 60 * 60;
    let mut all = vec![
        series(p, "web", true, 2.0, 0.0, 0.0),
        series(p, "web", false, 8.0, 0.2, 0.1),
        series(p, "api", true, 2.0, 0.1, 0.0),
        series(p, "api", false, 8.0, 0.2, 0.1),
        series(p, "quiet", true, 0.05, 0.0, 0.0),
        series(p, "quiet", false, 5.0, 0.2, 0.1),
    ];
    all.extend(decoys(p));
    let text = prometheus::openmetrics_as(&names(p), start, 3600, 15, &all);
    (text, (start + 600) as f64)
}

fn config() -> AnalysisConfig {
    AnalysisConfig {
        interval: Duration::from_secs(60),
        bake_time: Duration::from_secs(300),
        failure_limit: 1,
        min_requests: 20.0,
        min_passing_runs: 3,
    }
}

async fn analyse(
    p: Provider,
    prom: &prometheus::Prometheus,
    route: &str,
    at: f64,
) -> AnalysisReport {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = PrometheusClient::new(&prom.url, None)
        .unwrap()
        .with_retries(2, Duration::from_millis(20));
    let q = queries(p, &QueryTemplates::default(), 0.99, 0.5).unwrap();
    let vars = Vars::new(
        "shop",
        route,
        format!("{route}-canary"),
        Duration::from_secs(60),
    );
    run_analysis_with(
        &client,
        &q.requests,
        &q.checks,
        &vars,
        &config(),
        &ManualClock::starting_at(at),
    )
    .await
    .unwrap_or_else(|e| panic!("{p}: analysis failed: {e}\n{}", prom.log()))
}

fn value(report: &AnalysisReport, run: usize, check: &str) -> Option<f64> {
    report.analysis.runs[run]
        .checks
        .iter()
        .find(|c| c.name == check)
        .unwrap_or_else(|| panic!("no check {check}: {report:#?}"))
        .value
}

/// Healthy passes, 10% errors fail on the success rate, a trickle is inconclusive.
async fn provider_scenarios(p: Provider, latency: &str) {
    let (om, at) = scenario(p);
    let Some(prom) = prometheus::start(&om).await else {
        return;
    };

    let report = analyse(p, &prom, "web", at).await;
    assert_eq!(report.verdict(), &Verdict::Pass, "{p}: {report:#?}");
    assert_eq!(report.analysis.passed, 5, "{p}");
    for (i, run) in report.analysis.runs.iter().enumerate() {
        // 2 requests per second over 60 s, the decoys left out.
        assert!((100.0..=140.0).contains(&run.requests), "{p}: {run:?}");
        assert_eq!(value(&report, i, "success_rate"), Some(1.0), "{p}");
        let l = value(&report, i, latency).unwrap();
        assert!(l > 0.0 && l <= 0.05, "{p}: {latency} {l}");
    }

    let report = analyse(p, &prom, "api", at).await;
    let Verdict::Fail(reason) = report.verdict() else {
        panic!("{p}: expected a failure: {report:#?}");
    };
    assert!(reason.contains("success_rate"), "{p}: {reason}");
    assert!(reason.contains("below the minimum 0.99"), "{p}: {reason}");
    assert_eq!(report.analysis.runs.len(), 2, "{p}");
    let rate = value(&report, 0, "success_rate").unwrap();
    assert!((0.88..=0.92).contains(&rate), "{p}: success rate {rate}");
    assert_eq!(
        report.analysis.runs[0].checks[1].verdict,
        Verdict::Pass,
        "{p}"
    );

    let report = analyse(p, &prom, "quiet", at).await;
    let Verdict::Inconclusive(reason) = report.verdict() else {
        panic!("{p}: expected inconclusive: {report:#?}");
    };
    assert!(reason.contains("0 of 5 runs passed"), "{p}: {reason}");
    for run in &report.analysis.runs {
        assert!(run.requests > 0.0 && run.requests < 20.0, "{p}: {run:?}");
        assert!(
            matches!(&run.verdict, Verdict::Inconclusive(r) if r.contains("need 20")),
            "{p}: {run:?}"
        );
    }

    // A route the provider has no canary metrics for: no data, inconclusive, never a pass.
    let report = analyse(p, &prom, "nope", at).await;
    assert!(
        matches!(report.verdict(), Verdict::Inconclusive(_)),
        "{p}: {report:#?}"
    );
}

#[tokio::test]
async fn envoy_gateway_healthy_failing_and_quiet_canaries() {
    provider_scenarios(Provider::EnvoyGateway, "latency_p99").await;
}

#[tokio::test]
async fn istio_healthy_failing_and_quiet_canaries() {
    provider_scenarios(Provider::Istio, "latency_p99").await;
}

#[tokio::test]
async fn nginx_gateway_fabric_healthy_failing_and_quiet_canaries() {
    provider_scenarios(Provider::NginxGatewayFabric, "latency_avg").await;
}

/// A slow canary (5% of requests at 0.8 s) fails the p99 bound with Envoy's and Istio's
/// millisecond histograms read as seconds; NGINX Gateway Fabric's average stays under it.
#[tokio::test]
async fn latency_is_read_in_seconds() {
    for (p, fails) in [
        (Provider::EnvoyGateway, true),
        (Provider::Istio, true),
        (Provider::NginxGatewayFabric, false),
    ] {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let start = (now - 2 * 3600) / 60 * 60;
        let om = prometheus::openmetrics_as(
            &names(p),
            start,
            3600,
            15,
            &[series(p, "slow", true, 2.0, 0.0, 0.05)],
        );
        let Some(prom) = prometheus::start(&om).await else {
            return;
        };
        let report = analyse(p, &prom, "slow", (start + 600) as f64).await;
        let name = &report.analysis.runs[0].checks[1].name;
        let l = report.analysis.runs[0].checks[1].value.unwrap();
        if fails {
            assert!(l > 0.5 && l <= 1.0, "{p}: {name} {l}");
            assert!(
                matches!(report.verdict(), Verdict::Fail(r) if r.contains("above the maximum 0.5")),
                "{p}: {report:#?}"
            );
        } else {
            // 0.95 * 40 ms + 0.05 * 800 ms = 78 ms on average.
            assert!((0.07..=0.09).contains(&l), "{p}: {name} {l}");
            assert_eq!(report.verdict(), &Verdict::Pass, "{p}: {report:#?}");
        }
    }
}

#[test]
fn rendered_provider_queries_snapshot() {
    let v = Vars::new("shop", "web", "web-canary", Duration::from_secs(60));
    let mut out = String::new();
    for p in [
        Provider::IngressNginx,
        Provider::EnvoyGateway,
        Provider::Istio,
        Provider::NginxGatewayFabric,
    ] {
        let q = queries(p, &QueryTemplates::default(), 0.99, 0.5).unwrap();
        out.push_str(&format!(
            "== {p}\nrequests:\n{}\n",
            render(&q.requests, &v).unwrap()
        ));
        for c in &q.checks {
            out.push_str(&format!(
                "{} (min {:?}, max {:?}):\n{}\n",
                c.name,
                c.min,
                c.max,
                render(&c.query, &v).unwrap()
            ));
        }
        out.push('\n');
    }
    insta::assert_snapshot!(out);
}

/// `check --metrics-provider istio` over Istio series of the example's shop canary: the flag
/// picks Istio's queries (ingress-nginx's would find no data and be inconclusive), and a
/// `--metrics-query-success` template replaces the built-in success rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_cli_reads_the_chosen_provider() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let canary = Series {
        labels: labels(Provider::Istio, "shop", "web", "web-canary", true).remove(0),
        rps: 10.0,
        error_ratio: 0.001,
        slow_ratio: 0.0,
    };
    let om = prometheus::openmetrics_as(&ISTIO, now - 1800, 3600, 15, &[canary]);
    let Some(prom) = prometheus::start(&om).await else {
        return;
    };
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gitops-repo");
    let run = |extra: &[&str]| {
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
                "2m",
            ])
            .args(["--min-requests", "1", "--repo", repo])
            .args(extra)
            .env("GITOPS_CANARY_PROMETHEUS_URL", &prom.url)
            .env_remove("GITOPS_CANARY_METRICS_PROVIDER")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = run(&["--metrics-provider", "istio"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("PASS metrics"), "{text}");
    assert!(text.contains("istio"), "{text}");

    let (code, text) = run(&[]);
    assert_ne!(
        code, 0,
        "ingress-nginx's queries find no Istio series: {text}"
    );
    assert!(!text.contains("PASS metrics"), "{text}");

    // A template asking for more than the canary's share of 2xx fails the check.
    let (code, text) = run(&[
        "--metrics-provider",
        "istio",
        "--metrics-query-success",
        r#"sum(rate(istio_requests_total{destination_service_name="{{service}}",response_code="200"}[{{interval}}])) / sum(rate(istio_requests_total{destination_service_name="{{service}}"}[{{interval}}])) - 0.5"#,
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAIL metrics"), "{text}");
    assert!(text.contains("success_rate"), "{text}");

    let (code, text) = run(&["--metrics-provider", "custom"]);
    assert_eq!(code, 2, "custom without templates is a usage error: {text}");
    assert!(text.contains("--metrics-query-"), "{text}");
}
