//! The metrics analysis against a real Prometheus holding backfilled ingress-nginx traffic, and
//! the client's fault handling against a small HTTP fake.

use crate::support::prometheus;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gitops_canary::exit::Classify;
use gitops_canary::gate::metrics::{
    builtin_checks, latency_p99, render, success_rate, AnalysisConfig, MetricCheck, Vars,
    REQUESTS_QUERY,
};
use gitops_canary::gate::Verdict;
use gitops_canary::metrics::{
    run_analysis, AnalysisReport, ManualClock, MetricsError, PrometheusClient,
};
use gitops_canary::secret::Token;
use prometheus::Traffic;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NS: &str = "shop";

fn canary(ingress: &'static str, upstream: &'static str, rps: f64, err: f64, slow: f64) -> Traffic {
    Traffic {
        namespace: NS,
        ingress,
        service: ingress,
        canary: Some(upstream),
        rps,
        error_ratio: err,
        slow_ratio: slow,
    }
}

fn stable(ingress: &'static str, rps: f64, err: f64, slow: f64) -> Traffic {
    Traffic {
        namespace: NS,
        ingress,
        service: ingress,
        canary: None,
        rps,
        error_ratio: err,
        slow_ratio: slow,
    }
}

/// One hour of traffic, two hours ago. Every canary sits next to decoys that would change its
/// verdict if a filter were missing: `web`'s stable upstream errors 20% and is slow, and the
/// `other` namespace has an Ingress `web` whose canary errors 50%.
fn scenario() -> (String, f64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = (now - 2 * 3600) / 60 * 60;
    let traffic = vec![
        canary("web", "shop-web-canary-80", 2.0, 0.0, 0.0),
        stable("web", 8.0, 0.2, 0.1),
        canary("api", "shop-api-canary-80", 2.0, 0.1, 0.0),
        stable("api", 8.0, 0.0, 0.0),
        canary("quiet", "shop-quiet-canary-80", 0.05, 0.0, 0.0),
        stable("quiet", 5.0, 0.0, 0.0),
        canary("slow", "shop-slow-canary-80", 2.0, 0.0, 0.05),
        stable("slow", 8.0, 0.0, 0.0),
        Traffic {
            namespace: "other",
            ..canary("web", "other-web-canary-80", 2.0, 0.5, 0.5)
        },
    ];
    let text = prometheus::openmetrics(start, 3600, 15, &traffic);
    // Analyse from ten minutes into the data.
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

fn vars(ingress: &str, service: &str) -> Vars {
    Vars::new(NS, ingress, service, Duration::from_secs(60))
}

fn client(p: &prometheus::Prometheus) -> PrometheusClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    PrometheusClient::new(&p.url, None)
        .unwrap()
        .with_retries(2, Duration::from_millis(20))
}

async fn analyse(
    p: &prometheus::Prometheus,
    checks: &[MetricCheck],
    vars: &Vars,
    at: f64,
) -> AnalysisReport {
    let clock = ManualClock::starting_at(at);
    run_analysis(&client(p), checks, vars, &config(), &clock)
        .await
        .unwrap_or_else(|e| panic!("analysis failed: {e}\n{}", p.log()))
}

fn value_of(report: &AnalysisReport, run: usize, check: &str) -> Option<f64> {
    report.analysis.runs[run]
        .checks
        .iter()
        .find(|c| c.name == check)
        .unwrap()
        .value
}

#[tokio::test]
async fn healthy_canary_passes() {
    let (om, at) = scenario();
    let Some(p) = prometheus::start(&om).await else {
        return;
    };
    let report = analyse(
        &p,
        &builtin_checks(0.99, 0.5),
        &vars("web", "web-canary"),
        at,
    )
    .await;
    assert_eq!(report.verdict(), &Verdict::Pass, "{report:#?}");
    assert_eq!(report.analysis.runs.len(), 5);
    assert_eq!(report.analysis.passed, 5);
    for (i, run) in report.analysis.runs.iter().enumerate() {
        assert_eq!(run.at, Duration::from_secs(60 * (i as u64 + 1)));
        // 2 requests per second over 60 s.
        assert!((100.0..=140.0).contains(&run.requests), "{run:?}");
        assert_eq!(value_of(&report, i, "success_rate"), Some(1.0));
        let p99 = value_of(&report, i, "latency_p99").unwrap();
        assert!(p99 > 0.0 && p99 <= 0.05, "p99 {p99}");
    }
}

#[tokio::test]
async fn canary_with_ten_percent_errors_fails() {
    let (om, at) = scenario();
    let Some(p) = prometheus::start(&om).await else {
        return;
    };
    let report = analyse(
        &p,
        &builtin_checks(0.99, 0.5),
        &vars("api", "api-canary"),
        at,
    )
    .await;
    let Verdict::Fail(reason) = report.verdict() else {
        panic!("expected a failure: {report:#?}");
    };
    assert!(reason.contains("success_rate"), "{reason}");
    assert!(reason.contains("below the minimum 0.99"), "{reason}");
    // failure_limit 1: the second failed run ends the analysis early.
    assert_eq!(report.analysis.runs.len(), 2);
    let rate = value_of(&report, 0, "success_rate").unwrap();
    assert!((0.88..=0.92).contains(&rate), "success rate {rate}");
    // The canary's latency is fine; only the errors failed it.
    assert_eq!(report.analysis.runs[0].checks[1].verdict, Verdict::Pass);
}

#[tokio::test]
async fn too_little_canary_traffic_is_inconclusive() {
    let (om, at) = scenario();
    let Some(p) = prometheus::start(&om).await else {
        return;
    };
    let report = analyse(
        &p,
        &builtin_checks(0.99, 0.5),
        &vars("quiet", "quiet-canary"),
        at,
    )
    .await;
    let Verdict::Inconclusive(reason) = report.verdict() else {
        panic!("expected inconclusive: {report:#?}");
    };
    assert!(reason.contains("0 of 5 runs passed"), "{reason}");
    assert_eq!(report.analysis.inconclusive, 5);
    for run in &report.analysis.runs {
        // 3 requests a minute: some were seen, just too few.
        assert!(run.requests > 0.0 && run.requests < 20.0, "{run:?}");
        assert!(
            matches!(&run.verdict, Verdict::Inconclusive(r) if r.contains("need 20")),
            "{run:?}"
        );
    }
}

#[tokio::test]
async fn slow_canary_fails_on_p99_latency() {
    let (om, at) = scenario();
    let Some(p) = prometheus::start(&om).await else {
        return;
    };
    let checks = vec![success_rate(0.99), latency_p99(0.5)];
    let report = analyse(&p, &checks, &vars("slow", "slow-canary"), at).await;
    let Verdict::Fail(reason) = report.verdict() else {
        panic!("expected a failure: {report:#?}");
    };
    assert!(reason.contains("latency_p99"), "{reason}");
    assert!(!reason.contains("success_rate"), "{reason}");
    let p99 = value_of(&report, 0, "latency_p99").unwrap();
    assert!(p99 > 0.5 && p99 <= 1.0, "p99 {p99}");
    // With a looser bound the same data passes.
    let report = analyse(&p, &[latency_p99(1.0)], &vars("slow", "slow-canary"), at).await;
    assert_eq!(report.verdict(), &Verdict::Pass, "{report:#?}");
}

/// The canary's share of the Ingress's requests, selecting the canary upstream by the Service
/// name (`<namespace>-<service>-<port>`).
fn canary_share(min: Option<f64>, max: Option<f64>) -> MetricCheck {
    MetricCheck {
        name: "canary_share".into(),
        query: concat!(
            r#"sum(rate(nginx_ingress_controller_requests{namespace="{{namespace}}",ingress="{{ingress}}",canary=~"{{namespace}}-{{service}}-.+"}[{{interval}}]))"#,
            r#" / sum(rate(nginx_ingress_controller_requests{namespace="{{namespace}}",ingress="{{ingress}}"}[{{interval}}]))"#
        )
        .into(),
        min,
        max,
    }
}

#[tokio::test]
async fn custom_query_with_min_and_max() {
    let (om, at) = scenario();
    let Some(p) = prometheus::start(&om).await else {
        return;
    };
    let v = vars("web", "web-canary");
    // 2 of 10 requests per second go to the canary.
    let report = analyse(&p, &[canary_share(Some(0.15), Some(0.25))], &v, at).await;
    assert_eq!(report.verdict(), &Verdict::Pass, "{report:#?}");
    let share = value_of(&report, 0, "canary_share").unwrap();
    assert!((0.19..=0.21).contains(&share), "share {share}");

    let report = analyse(&p, &[canary_share(None, Some(0.1))], &v, at).await;
    assert!(
        matches!(report.verdict(), Verdict::Fail(r) if r.contains("above the maximum 0.1")),
        "{report:#?}"
    );
    let report = analyse(&p, &[canary_share(Some(0.3), None)], &v, at).await;
    assert!(
        matches!(report.verdict(), Verdict::Fail(r) if r.contains("below the minimum 0.3")),
        "{report:#?}"
    );

    // A service name that matches no canary upstream: no data, so inconclusive, never a pass.
    let report = analyse(
        &p,
        &[canary_share(Some(0.0), None)],
        &vars("web", "nope"),
        at,
    )
    .await;
    assert!(
        matches!(report.verdict(), Verdict::Inconclusive(_)),
        "{report:#?}"
    );
}

/// Dropping any one label filter from a rendered built-in changes its answer over the scenario's
/// decoys: so each filter is in the query Prometheus receives, and each one matters.
#[tokio::test]
async fn builtin_queries_filter_on_namespace_ingress_and_canary() {
    let (om, at) = scenario();
    let Some(p) = prometheus::start(&om).await else {
        return;
    };
    let c = client(&p);
    let v = vars("web", "web-canary");
    let t = Some(at + 300.0);
    for check in builtin_checks(0.99, 0.5) {
        let q = render(&check.query, &v).unwrap();
        let full = c.query_value(&q, t).await.unwrap().unwrap();
        for filter in [
            r#"namespace="shop","#,
            r#"ingress="web","#,
            r#",canary!="""#,
        ] {
            assert!(q.contains(filter), "{} lacks {filter}: {q}", check.name);
            let loose = q.replace(filter, "");
            let other = c.query_value(&loose, t).await.unwrap().unwrap();
            assert_ne!(
                full, other,
                "{}: dropping {filter} changed nothing ({loose})",
                check.name
            );
        }
    }
    let r = render(REQUESTS_QUERY, &v).unwrap();
    let requests = c.query_value(&r, t).await.unwrap().unwrap();
    assert!((100.0..=140.0).contains(&requests), "{requests}");
}

#[tokio::test]
async fn prometheus_rejections_are_classified() {
    let (om, at) = scenario();
    let Some(p) = prometheus::start(&om).await else {
        return;
    };
    let v = vars("web", "web-canary");
    let clock = ManualClock::starting_at(at);
    let broken = MetricCheck {
        name: "broken".into(),
        query: "sum(rate(nginx_ingress_controller_requests[{{interval}}]".into(),
        min: None,
        max: None,
    };
    let err = run_analysis(&client(&p), &[broken], &v, &config(), &clock)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MetricsError::Api { error_type, status: 400, .. } if error_type == "bad_data"),
        "{err:?}"
    );
    assert!(err.is_bad_input());

    let per_status = MetricCheck {
        name: "per_status".into(),
        query: r#"sum by (status) (rate(nginx_ingress_controller_requests{namespace="{{namespace}}",ingress="{{ingress}}"}[{{interval}}]))"#.into(),
        min: None,
        max: None,
    };
    let err = run_analysis(&client(&p), &[per_status], &v, &config(), &clock)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MetricsError::Shape { found, .. } if found == "2 series"),
        "{err:?}"
    );
    assert!(err.is_bad_input());
}

#[test]
fn rendered_builtin_queries_snapshot() {
    let v = vars("web", "web-canary");
    let mut out = String::new();
    for c in builtin_checks(0.99, 0.5) {
        out.push_str(&format!(
            "{} (min {:?}, max {:?}):\n{}\n\n",
            c.name,
            c.min,
            c.max,
            render(&c.query, &v).unwrap()
        ));
    }
    out.push_str(&format!(
        "requests:\n{}\n",
        render(REQUESTS_QUERY, &v).unwrap()
    ));
    insta::assert_snapshot!(out);
}

// ---- fault handling against a fake (real Prometheus cannot be made to fail on cue) ----

fn vector(value: &str) -> serde_json::Value {
    serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1700000000.0, value]}]}
    })
}

fn fake_client(server: &MockServer, token: Option<&str>) -> PrometheusClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    PrometheusClient::new(&server.uri(), token.map(Token::new))
        .unwrap()
        .with_retries(2, Duration::from_millis(10))
}

#[tokio::test]
async fn retries_server_errors_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(503).set_body_json(serde_json::json!({
            "status": "error", "errorType": "unavailable", "error": "tsdb not ready"
        })))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", "up"))
        .and(query_param("time", "1700000000.500"))
        .respond_with(ResponseTemplate::new(200).set_body_json(vector("0.75")))
        .expect(1)
        .mount(&server)
        .await;
    let v = fake_client(&server, None)
        .query_value("up", Some(1_700_000_000.5))
        .await
        .unwrap();
    assert_eq!(v, Some(0.75));
}

#[tokio::test]
async fn persistent_server_errors_stop_after_bounded_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .expect(3)
        .mount(&server)
        .await;
    let err = fake_client(&server, None)
        .query_value("up", Some(1.0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MetricsError::Status { status: 502, body, .. } if body.contains("bad gateway")),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(!err.is_bad_input());
}

#[tokio::test]
async fn garbage_body_is_a_decode_error_without_retry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json at all"))
        .expect(1)
        .mount(&server)
        .await;
    let err = fake_client(&server, None)
        .query_value("up", Some(1.0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MetricsError::Decode { reason, .. } if reason.contains("not json at all")),
        "{err:?}"
    );
    assert!(!err.is_bad_input());
}

#[tokio::test]
async fn empty_vector_is_no_data_and_scalar_is_a_value() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("query", "absent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": "success", "data": {"resultType": "vector", "result": []}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("query", "scalar(1)"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": "success", "data": {"resultType": "scalar", "result": [1700000000.0, "1"]}
        })))
        .mount(&server)
        .await;
    let c = fake_client(&server, None);
    assert_eq!(c.query_value("absent", None).await.unwrap(), None);
    assert_eq!(c.query_value("scalar(1)", None).await.unwrap(), Some(1.0));
}

#[tokio::test]
async fn token_is_sent_as_bearer_and_never_shown() {
    let secret = "prom-token-7f3a9c1e55";
    let server = MockServer::start().await;
    // A misbehaving proxy that echoes the Authorization header into its error page.
    Mock::given(method("GET"))
        .and(header("authorization", format!("Bearer {secret}").as_str()))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string(format!("upstream failed for Bearer {secret}")),
        )
        .expect(3)
        .mount(&server)
        .await;
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let c = fake_client(&server, Some(secret));
    assert!(!format!("{c:?}").contains(secret));
    let err = c.query_value("up", Some(1.0)).await.unwrap_err();
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("Bearer ***"), "{shown}");
    let logged = logs.text();
    // The retries were logged, with the redacted error.
    assert!(logged.contains("retrying"), "{logged}");
    assert!(logged.contains("Bearer ***"), "{logged}");
    assert!(!logged.contains(secret), "{logged}");
}

/// Captures tracing output for assertions.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn unreachable_prometheus_is_a_transport_error_without_credentials() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = PrometheusClient::new(
        &format!("http://admin:pa55-w0rd-secret@127.0.0.1:{port}/"),
        None,
    )
    .unwrap()
    .with_retries(1, Duration::from_millis(10));
    let err = c.query_value("up", Some(1.0)).await.unwrap_err();
    assert!(matches!(err, MetricsError::Transport { .. }), "{err:?}");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains("pa55-w0rd-secret"), "{shown}");
    assert!(
        shown.contains(&format!("http://127.0.0.1:{port}")),
        "{shown}"
    );
    assert!(err.is_transient());
}
