//! The metrics analysis gate: which PromQL to ask, how to read one answer, and how a series of
//! answers over the bake time becomes one verdict.
//!
//! Everything here is pure. `metrics::run_analysis` does the querying and the waiting and feeds
//! this module plain numbers; the tests feed it the same numbers by hand. The built-in checks
//! follow ingress-nginx's request metrics: the controller labels every request with the
//! `namespace`, `ingress` and `service` of the location that served it, and sets `canary` to the
//! canary upstream (`<namespace>-<service>-<port>`) only when the request was routed to the
//! canary backend. A canary Ingress is merged into its primary's location, so canary requests
//! carry the primary (stable) Ingress name in `ingress`: `Vars::ingress` is that name, and
//! `canary!=""` is what singles out the canary's share.
//!
//! Other implementations export other names: [`Provider`] holds the built-in queries for the
//! Gateway API implementations users run most (Envoy Gateway, Istio, NGINX Gateway Fabric),
//! each with what its metrics really carry, and [`queries`] replaces any of them by a user's
//! template (`--metrics-query-*`), or takes only templates (`custom`). Whatever the source,
//! the same rules judge the numbers.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::Verdict;

/// One metric the canary must satisfy: a PromQL template and its bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricCheck {
    pub name: String,
    /// PromQL with `{{namespace}}`, `{{ingress}}` (or `{{route}}`), `{{service}}`, `{{interval}}`
    /// placeholders.
    pub query: String,
    /// The value must be at least this (a success rate).
    pub min: Option<f64>,
    /// The value must be at most this (a latency).
    pub max: Option<f64>,
}

/// What the placeholders stand for in one analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vars {
    /// Namespace of the Ingresses.
    pub namespace: String,
    /// The primary (stable) Ingress: ingress-nginx reports canary traffic under its name. For an
    /// HTTPRoute canary, the HTTPRoute (`{{route}}` is the same value).
    pub ingress: String,
    /// The canary's backend Service (for custom queries).
    pub service: String,
    /// The PromQL range of one run, e.g. `60s`.
    pub interval: String,
}

impl Vars {
    pub fn new(
        namespace: impl Into<String>,
        ingress: impl Into<String>,
        service: impl Into<String>,
        interval: Duration,
    ) -> Self {
        Vars {
            namespace: namespace.into(),
            ingress: ingress.into(),
            service: service.into(),
            interval: prom_duration(interval),
        }
    }
}

/// A PromQL duration for `d`: whole seconds (`90s`), or milliseconds below a second's precision.
pub fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Canary requests seen in the last interval: the minimum-traffic rule is judged on it.
pub const REQUESTS_QUERY: &str = r#"sum(increase(nginx_ingress_controller_requests{namespace="{{namespace}}",ingress="{{ingress}}",canary!=""}[{{interval}}]))"#;

/// Default lower bound of `success_rate`.
pub const DEFAULT_MIN_SUCCESS_RATE: f64 = 0.99;
/// Default upper bound of `latency_p99`, in seconds.
pub const DEFAULT_MAX_P99_SECONDS: f64 = 0.5;

/// Share of canary requests that did not answer 5xx. `status!~"5.."` also matches the `5xx`
/// classes the controller reports with `--report-status-classes`.
pub fn success_rate(min: f64) -> MetricCheck {
    MetricCheck {
        name: "success_rate".into(),
        query: INGRESS_NGINX_SUCCESS.into(),
        min: Some(min),
        max: None,
    }
}

/// 99th percentile of the canary's request duration (seconds), from the controller's histogram.
pub fn latency_p99(max_seconds: f64) -> MetricCheck {
    MetricCheck {
        name: "latency_p99".into(),
        query: INGRESS_NGINX_P99.into(),
        min: None,
        max: Some(max_seconds),
    }
}

/// The two built-in checks with their bounds.
pub fn builtin_checks(min_success_rate: f64, max_p99_seconds: f64) -> Vec<MetricCheck> {
    vec![success_rate(min_success_rate), latency_p99(max_p99_seconds)]
}

/// Whose metrics the built-in queries read: the implementation that routes the canary's traffic.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// ingress-nginx's request metrics (`nginx_ingress_controller_*`).
    #[default]
    IngressNginx,
    /// Envoy Gateway's Envoy cluster statistics (`envoy_cluster_upstream_rq*`).
    EnvoyGateway,
    /// Istio's standard metrics (`istio_requests_total`, `istio_request_duration_milliseconds`).
    Istio,
    /// NGINX Gateway Fabric's NGINX Plus upstream metrics (`nginx_http_upstream_peer_*`).
    NginxGatewayFabric,
    /// No built-in queries: every query is a `--metrics-query-*` template.
    Custom,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::IngressNginx => "ingress-nginx",
            Provider::EnvoyGateway => "envoy-gateway",
            Provider::Istio => "istio",
            Provider::NginxGatewayFabric => "nginx-gateway-fabric",
            Provider::Custom => "custom",
        }
    }

    /// The built-in queries: canary requests in the interval, the success rate, and the latency
    /// check's name and query (seconds). `None` for `custom`.
    pub fn builtin(self) -> Option<Builtin> {
        Some(match self {
            Provider::IngressNginx => Builtin {
                requests: REQUESTS_QUERY,
                success: INGRESS_NGINX_SUCCESS,
                latency_name: "latency_p99",
                latency: INGRESS_NGINX_P99,
            },
            Provider::EnvoyGateway => Builtin {
                requests: ENVOY_GATEWAY_REQUESTS,
                success: ENVOY_GATEWAY_SUCCESS,
                latency_name: "latency_p99",
                latency: ENVOY_GATEWAY_P99,
            },
            Provider::Istio => Builtin {
                requests: ISTIO_REQUESTS,
                success: ISTIO_SUCCESS,
                latency_name: "latency_p99",
                latency: ISTIO_P99,
            },
            Provider::NginxGatewayFabric => Builtin {
                requests: NGF_REQUESTS,
                success: NGF_SUCCESS,
                latency_name: "latency_avg",
                latency: NGF_LATENCY_AVG,
            },
            Provider::Custom => return None,
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One provider's built-in query templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub requests: &'static str,
    pub success: &'static str,
    pub latency_name: &'static str,
    pub latency: &'static str,
}

const INGRESS_NGINX_SUCCESS: &str = concat!(
    r#"sum(rate(nginx_ingress_controller_requests{namespace="{{namespace}}",ingress="{{ingress}}",canary!="",status!~"5.."}[{{interval}}]))"#,
    " / ",
    r#"sum(rate(nginx_ingress_controller_requests{namespace="{{namespace}}",ingress="{{ingress}}",canary!=""}[{{interval}}]))"#,
);

const INGRESS_NGINX_P99: &str = r#"histogram_quantile(0.99, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{namespace="{{namespace}}",ingress="{{ingress}}",canary!=""}[{{interval}}])))"#;

// Envoy Gateway. Envoy's cluster statistics as its Prometheus endpoint writes them:
// `envoy_cluster_upstream_rq{envoy_cluster_name, envoy_response_code}` (the `upstream_rq_<code>`
// counters with the code extracted as a tag) and the `envoy_cluster_upstream_rq_time` histogram
// in milliseconds. Envoy Gateway names a cluster after the route rule,
// `httproute/<namespace>/<route>/rule/<n>`, holding every backendRef of the rule, so the
// canary has no statistics of its own there. It gets its own cluster,
// `httproute/<namespace>/<route>/rule/<n>/backend/<i>`, when a backendRef of the rule has
// `filters` (envoyproxy/gateway#7008 and #7017 describe both namings). The built-ins select
// those per-backend clusters other than the first (`backend/0`, the stable in the order
// `init-canary` writes). A route without per-backend clusters yields no data: inconclusive,
// never a pass.
const ENVOY_GATEWAY_REQUESTS: &str = r#"sum(increase(envoy_cluster_upstream_rq{envoy_cluster_name=~"httproute/{{namespace}}/{{route}}/rule/[0-9]+/backend/[1-9][0-9]*"}[{{interval}}]))"#;

const ENVOY_GATEWAY_SUCCESS: &str = concat!(
    r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"httproute/{{namespace}}/{{route}}/rule/[0-9]+/backend/[1-9][0-9]*",envoy_response_code!~"5.."}[{{interval}}]))"#,
    " / ",
    r#"sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"httproute/{{namespace}}/{{route}}/rule/[0-9]+/backend/[1-9][0-9]*"}[{{interval}}]))"#,
);

const ENVOY_GATEWAY_P99: &str = r#"histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"httproute/{{namespace}}/{{route}}/rule/[0-9]+/backend/[1-9][0-9]*"}[{{interval}}]))) / 1000"#;

// Istio's standard metrics (istio.io/latest/docs/reference/config/metrics):
// `istio_requests_total` and the `istio_request_duration_milliseconds` histogram, labelled with
// `reporter`, `destination_service_name`, `destination_service_namespace` and `response_code`.
// Every request is reported by the client proxy (`reporter="source"`: the gateway serving the
// HTTPRoute) and again by the server's sidecar (`reporter="destination"`, when there is one):
// counting one reporter keeps each request once, and the source side needs no sidecar in the
// canary's pods.
const ISTIO_REQUESTS: &str = r#"sum(increase(istio_requests_total{reporter="source",destination_service_namespace="{{namespace}}",destination_service_name="{{service}}"}[{{interval}}]))"#;

const ISTIO_SUCCESS: &str = concat!(
    r#"sum(rate(istio_requests_total{reporter="source",destination_service_namespace="{{namespace}}",destination_service_name="{{service}}",response_code!~"5.."}[{{interval}}]))"#,
    " / ",
    r#"sum(rate(istio_requests_total{reporter="source",destination_service_namespace="{{namespace}}",destination_service_name="{{service}}"}[{{interval}}]))"#,
);

const ISTIO_P99: &str = r#"histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="source",destination_service_namespace="{{namespace}}",destination_service_name="{{service}}"}[{{interval}}]))) / 1000"#;

// NGINX Gateway Fabric (2.x): NGINX Agent exports the NGINX Plus upstream metrics its
// documentation lists (docs.nginx.com, "Prometheus metrics"; attribute names from
// nginx/agent's nginxplusreceiver metadata.yaml), with OpenTelemetry attributes as labels:
// `nginx_http_upstream_peer_responses_total{nginx_upstream_name, nginx_status_range}` and
// `nginx_http_upstream_peer_response_time_milliseconds`, a gauge holding each peer's *average*
// response time. NGF names an upstream `<namespace>_<service>_<port>`. NGINX Open Source
// exports no upstream metrics at all, and no latency histogram exists: the latency check is
// `latency_avg`, the highest average of the canary's peers over the interval, held to the p99
// bound (a looser test than a p99; `--metrics-query-p99` replaces it with a real one).
const NGF_REQUESTS: &str = r#"sum(increase(nginx_http_upstream_peer_responses_total{nginx_upstream_name=~"{{namespace}}_{{service}}_[0-9]+"}[{{interval}}]))"#;

const NGF_SUCCESS: &str = concat!(
    r#"sum(rate(nginx_http_upstream_peer_responses_total{nginx_upstream_name=~"{{namespace}}_{{service}}_[0-9]+",nginx_status_range!="5xx"}[{{interval}}]))"#,
    " / ",
    r#"sum(rate(nginx_http_upstream_peer_responses_total{nginx_upstream_name=~"{{namespace}}_{{service}}_[0-9]+"}[{{interval}}]))"#,
);

const NGF_LATENCY_AVG: &str = r#"max(max_over_time(nginx_http_upstream_peer_response_time_milliseconds{nginx_upstream_name=~"{{namespace}}_{{service}}_[0-9]+"}[{{interval}}])) / 1000"#;

/// User templates replacing the built-in queries (all three for `custom`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryTemplates {
    /// The canary's request count in the interval (the minimum-traffic rule).
    pub requests: Option<String>,
    /// The canary's success rate (0..1), held to the minimum success rate.
    pub success: Option<String>,
    /// The canary's p99 latency in seconds, held to the maximum.
    pub p99: Option<String>,
}

/// What one analysis asks: the request count template and the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Queries {
    pub provider: Provider,
    pub requests: String,
    pub checks: Vec<MetricCheck>,
}

/// The queries for `provider`, each replaced by the user's template when one is given. Every
/// template is rendered against sample values so an unknown placeholder is refused here, before
/// any waiting. `custom` needs all three templates.
pub fn queries(
    provider: Provider,
    templates: &QueryTemplates,
    min_success_rate: f64,
    max_p99_seconds: f64,
) -> Result<Queries, String> {
    let builtin = provider.builtin();
    let pick = |given: &Option<String>, flag: &str, default: Option<&str>| match (
        given.as_deref().map(str::trim),
        default,
    ) {
        (Some(t), _) if !t.is_empty() => Ok(t.to_string()),
        (_, Some(d)) => Ok(d.to_string()),
        (_, None) => Err(format!(
            "--metrics-provider {provider} needs {flag} (a PromQL template)"
        )),
    };
    let requests = pick(
        &templates.requests,
        "--metrics-query-requests",
        builtin.map(|b| b.requests),
    )?;
    let success = pick(
        &templates.success,
        "--metrics-query-success",
        builtin.map(|b| b.success),
    )?;
    let latency = pick(
        &templates.p99,
        "--metrics-query-p99",
        builtin.map(|b| b.latency),
    )?;
    let latency_name = match (&templates.p99, builtin) {
        (Some(t), _) if !t.trim().is_empty() => "latency_p99",
        (_, Some(b)) => b.latency_name,
        (_, None) => "latency_p99",
    };
    let probe = Vars::new("ns", "route", "svc", Duration::from_secs(60));
    for (flag, t) in [
        ("--metrics-query-requests", &requests),
        ("--metrics-query-success", &success),
        ("--metrics-query-p99", &latency),
    ] {
        render(t, &probe).map_err(|e| format!("{flag}: {e}"))?;
    }
    Ok(Queries {
        provider,
        requests,
        checks: vec![
            MetricCheck {
                name: "success_rate".into(),
                query: success,
                min: Some(min_success_rate),
                max: None,
            },
            MetricCheck {
                name: latency_name.into(),
                query: latency,
                min: None,
                max: Some(max_p99_seconds),
            },
        ],
    })
}

/// A template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder(s) {} in query template {template:?} (known: {{{{namespace}}}} {{{{ingress}}}} {{{{route}}}} {{{{service}}}} {{{{interval}}}})", names.iter().map(|n| format!("{{{{{n}}}}}")).collect::<Vec<_>>().join(" "))]
    Unknown {
        template: String,
        names: Vec<String>,
    },
    #[error("unclosed '{{{{' at byte {at} in query template {template:?}")]
    Unclosed { template: String, at: usize },
}

/// Substitute the placeholders (`{{ name }}`, spaces allowed). All unknown names are reported at
/// once so a user fixes a template in one go.
pub fn render(template: &str, vars: &Vars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut unknown = BTreeSet::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::Unclosed {
                template: template.to_string(),
                at: offset + open,
            });
        };
        let name = after[..close].trim();
        match name {
            "namespace" => out.push_str(&vars.namespace),
            "ingress" | "route" => out.push_str(&vars.ingress),
            "service" => out.push_str(&vars.service),
            "interval" => out.push_str(&vars.interval),
            other => {
                unknown.insert(other.to_string());
            }
        }
        let consumed = open + 2 + close + 2;
        rest = &rest[consumed..];
        offset += consumed;
    }
    out.push_str(rest);
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(TemplateError::Unknown {
            template: template.to_string(),
            names: unknown.into_iter().collect(),
        })
    }
}

/// Judge one check's value from one run. `Fail` here is one miss, not the end of the analysis:
/// `Analysis` counts misses against the failure limit.
pub fn judge(
    check: &MetricCheck,
    value: Option<f64>,
    requests_seen: f64,
    min_requests: f64,
) -> Verdict {
    if requests_seen.is_nan() || requests_seen < min_requests {
        return Verdict::Inconclusive(format!(
            "{}: {} canary requests in the interval, need {}",
            check.name,
            fmt_num(requests_seen),
            fmt_num(min_requests)
        ));
    }
    let Some(v) = value else {
        return Verdict::Inconclusive(format!("{}: query returned no data", check.name));
    };
    if v.is_nan() {
        // 0/0 from a rate over a window without matching requests.
        return Verdict::Inconclusive(format!("{}: value is NaN", check.name));
    }
    if let Some(min) = check.min {
        if v < min {
            return Verdict::Fail(format!(
                "{}: {} is below the minimum {}",
                check.name,
                fmt_num(v),
                fmt_num(min)
            ));
        }
    }
    if let Some(max) = check.max {
        if v > max {
            return Verdict::Fail(format!(
                "{}: {} is above the maximum {}",
                check.name,
                fmt_num(v),
                fmt_num(max)
            ));
        }
    }
    Verdict::Pass
}

fn fmt_num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.is_finite() {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v}")
    }
}

/// How long and how strictly to analyse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisConfig {
    /// Time between runs; also the PromQL range of each run.
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Total analysis time; runs happen at `interval`, `2*interval`, ... up to it.
    #[serde(with = "serde_duration")]
    pub bake_time: Duration,
    /// Failed runs tolerated; one more fails the analysis at once.
    pub failure_limit: u32,
    /// Canary requests a run needs in its interval to count.
    pub min_requests: f64,
    /// Passing runs needed at the end for `Pass` (else `Inconclusive`).
    pub min_passing_runs: u32,
}

mod serde_duration {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl AnalysisConfig {
    /// Reject settings that cannot make a meaningful analysis (bad input, named in the message).
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) {
            return Err(format!(
                "analysis interval {} is below 1s",
                humantime::format_duration(self.interval)
            ));
        }
        if self.bake_time < self.interval {
            return Err(format!(
                "bake time {} is shorter than the analysis interval {}",
                humantime::format_duration(self.bake_time),
                humantime::format_duration(self.interval)
            ));
        }
        if !(self.min_requests >= 0.0 && self.min_requests.is_finite()) {
            return Err(format!(
                "minimum requests {} is not a non-negative number",
                self.min_requests
            ));
        }
        Ok(())
    }

    /// Number of runs: one per whole interval in the bake time, at least one.
    pub fn planned_runs(&self) -> u32 {
        if self.interval.is_zero() {
            return 1;
        }
        let n = self.bake_time.as_millis() / self.interval.as_millis().max(1);
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }
}

/// One check's outcome in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub query: String,
    pub value: Option<f64>,
    pub verdict: Verdict,
}

/// One run: when (from the analysis start), the canary traffic seen, and each check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    #[serde(with = "serde_duration")]
    pub at: Duration,
    pub requests: f64,
    pub checks: Vec<CheckResult>,
    pub verdict: Verdict,
}

/// The state of one analysis over successive runs. Feed it runs with `record`; ask it when the
/// next run is due with `next_run_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub config: AnalysisConfig,
    pub runs: Vec<RunRecord>,
    pub passed: u32,
    pub failed: u32,
    pub inconclusive: u32,
    pub verdict: Verdict,
}

/// Combine the checks of one run: any miss fails the run, then any doubt makes it inconclusive.
pub fn run_verdict(checks: &[CheckResult]) -> Verdict {
    let fails: Vec<&str> = checks
        .iter()
        .filter_map(|c| match &c.verdict {
            Verdict::Fail(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    if !fails.is_empty() {
        return Verdict::Fail(fails.join("; "));
    }
    let doubts: Vec<&str> = checks
        .iter()
        .filter_map(|c| match &c.verdict {
            Verdict::Inconclusive(r) | Verdict::Wait(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    if !doubts.is_empty() {
        return Verdict::Inconclusive(doubts.join("; "));
    }
    Verdict::Pass
}

impl Analysis {
    pub fn new(config: AnalysisConfig) -> Self {
        let verdict = Verdict::Wait(format!("0 of {} runs done", config.planned_runs()));
        Analysis {
            config,
            runs: Vec::new(),
            passed: 0,
            failed: 0,
            inconclusive: 0,
            verdict,
        }
    }

    /// Whether the analysis has concluded (no more runs wanted).
    pub fn is_done(&self) -> bool {
        !matches!(self.verdict, Verdict::Wait(_))
    }

    /// When the next run is due, measured from the analysis start; `None` once concluded.
    pub fn next_run_at(&self) -> Option<Duration> {
        if self.is_done() {
            return None;
        }
        let k = u32::try_from(self.runs.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        Some(self.config.interval.saturating_mul(k))
    }

    /// Record the outcome of one run and return the analysis verdict after it: `Wait` while runs
    /// remain, `Fail` as soon as the failed runs exceed the limit, and at the last run `Pass`
    /// with enough passing runs or `Inconclusive` without.
    pub fn record(&mut self, at: Duration, requests: f64, checks: Vec<CheckResult>) -> Verdict {
        if self.is_done() {
            return self.verdict.clone();
        }
        let verdict = run_verdict(&checks);
        match verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::Inconclusive(_) | Verdict::Wait(_) => self.inconclusive += 1,
        }
        self.runs.push(RunRecord {
            at,
            requests,
            checks,
            verdict: verdict.clone(),
        });
        let planned = self.config.planned_runs();
        let done = u32::try_from(self.runs.len()).unwrap_or(u32::MAX);
        self.verdict = if self.failed > self.config.failure_limit {
            let last = match verdict {
                Verdict::Fail(r) => r,
                _ => String::new(),
            };
            Verdict::Fail(format!(
                "{} failed runs exceed the limit of {} (last: {last})",
                self.failed, self.config.failure_limit
            ))
        } else if done >= planned {
            if self.passed >= self.config.min_passing_runs.max(1) {
                Verdict::Pass
            } else {
                Verdict::Inconclusive(format!(
                    "{} of {planned} runs passed, need {} ({} inconclusive, {} failed)",
                    self.passed,
                    self.config.min_passing_runs.max(1),
                    self.inconclusive,
                    self.failed
                ))
            }
        } else {
            Verdict::Wait(format!(
                "{done} of {planned} runs done: {} passed, {} failed, {} inconclusive",
                self.passed, self.failed, self.inconclusive
            ))
        };
        self.verdict.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::new("shop", "web", "web-canary", Duration::from_secs(60))
    }

    fn check(min: Option<f64>, max: Option<f64>) -> MetricCheck {
        MetricCheck {
            name: "c".into(),
            query: "q".into(),
            min,
            max,
        }
    }

    fn cfg(runs: u64, failure_limit: u32, min_passing_runs: u32) -> AnalysisConfig {
        AnalysisConfig {
            interval: Duration::from_secs(60),
            bake_time: Duration::from_secs(60 * runs),
            failure_limit,
            min_requests: 10.0,
            min_passing_runs,
        }
    }

    fn result(verdict: Verdict) -> Vec<CheckResult> {
        vec![CheckResult {
            name: "c".into(),
            query: "q".into(),
            value: Some(1.0),
            verdict,
        }]
    }

    #[test]
    fn render_substitutes_all_placeholders() {
        let s = render(
            "a{{namespace}}b{{ ingress }}c{{service}}d[{{interval}}]",
            &vars(),
        );
        assert_eq!(s.as_deref(), Ok("ashopbwebcweb-canaryd[60s]"));
    }

    #[test]
    fn render_names_every_unknown_placeholder() {
        let err = render("{{namespace}} {{pod}} {{ version }} {{pod}}", &vars()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Unknown {
                template: "{{namespace}} {{pod}} {{ version }} {{pod}}".into(),
                names: vec!["pod".into(), "version".into()],
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("{{pod}} {{version}}"), "{msg}");
    }

    #[test]
    fn render_rejects_unclosed() {
        let err = render("up{x=\"{{namespace\"}", &vars()).unwrap_err();
        assert!(
            matches!(err, TemplateError::Unclosed { at: 6, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn ingress_nginx_is_the_default_and_unchanged() {
        assert_eq!(Provider::default(), Provider::IngressNginx);
        let q = queries(Provider::default(), &QueryTemplates::default(), 0.99, 0.5).unwrap();
        assert_eq!(q.requests, REQUESTS_QUERY);
        assert_eq!(q.checks, builtin_checks(0.99, 0.5));
    }

    #[test]
    fn each_provider_filters_on_its_own_labels() {
        let v = vars();
        let expect: [(Provider, &str, &[&str]); 3] = [
            (
                Provider::EnvoyGateway,
                "envoy_cluster_upstream_rq",
                &[r#"envoy_cluster_name=~"httproute/shop/web/rule/[0-9]+/backend/[1-9][0-9]*""#],
            ),
            (
                Provider::Istio,
                "istio_requests_total",
                &[
                    r#"reporter="source""#,
                    r#"destination_service_namespace="shop""#,
                    r#"destination_service_name="web-canary""#,
                ],
            ),
            (
                Provider::NginxGatewayFabric,
                "nginx_http_upstream_peer_responses_total",
                &[r#"nginx_upstream_name=~"shop_web-canary_[0-9]+""#],
            ),
        ];
        for (p, metric, filters) in expect {
            let q = queries(p, &QueryTemplates::default(), 0.99, 0.5).unwrap();
            let mut all = vec![render(&q.requests, &v).unwrap()];
            all.extend(q.checks.iter().map(|c| render(&c.query, &v).unwrap()));
            assert!(all[0].contains(metric), "{p}: {}", all[0]);
            for rendered in &all {
                for f in filters {
                    assert!(rendered.contains(f), "{p}: {rendered} lacks {f}");
                }
                assert!(rendered.contains("[60s]"), "{rendered}");
            }
            assert_eq!(q.checks[0].min, Some(0.99));
            assert_eq!(q.checks[1].max, Some(0.5));
        }
    }

    #[test]
    fn templates_replace_builtins_and_custom_needs_all_three() {
        let t = QueryTemplates {
            requests: None,
            success: Some("my_success{ns=\"{{namespace}}\",svc=\"{{service}}\"}".into()),
            p99: None,
        };
        let q = queries(Provider::Istio, &t, 0.9, 1.0).unwrap();
        assert_eq!(q.requests, ISTIO_REQUESTS);
        assert_eq!(q.checks[0].query, t.success.clone().unwrap());
        assert_eq!(q.checks[1].query, ISTIO_P99);

        let err = queries(Provider::Custom, &t, 0.9, 1.0).unwrap_err();
        assert!(err.contains("--metrics-query-requests"), "{err}");
        let all = QueryTemplates {
            requests: Some("r".into()),
            success: Some("s".into()),
            p99: Some("p".into()),
        };
        let q = queries(Provider::Custom, &all, 0.9, 1.0).unwrap();
        assert_eq!(
            (
                q.requests.as_str(),
                q.checks[0].query.as_str(),
                q.checks[1].name.as_str()
            ),
            ("r", "s", "latency_p99")
        );
        // A p99 template on NGINX Gateway Fabric is a real p99 again.
        let q = queries(Provider::NginxGatewayFabric, &all, 0.9, 1.0).unwrap();
        assert_eq!(q.checks[1].name, "latency_p99");
        let q = queries(
            Provider::NginxGatewayFabric,
            &QueryTemplates::default(),
            0.9,
            1.0,
        )
        .unwrap();
        assert_eq!(q.checks[1].name, "latency_avg");

        let bad = QueryTemplates {
            p99: Some("x{pod=\"{{pod}}\"}".into()),
            ..Default::default()
        };
        let err = queries(Provider::IngressNginx, &bad, 0.9, 1.0).unwrap_err();
        assert!(
            err.starts_with("--metrics-query-p99: unknown placeholder"),
            "{err}"
        );
    }

    #[test]
    fn render_keeps_promql_braces() {
        let s = render("sum(x{a=\"b\"}) by (le)", &vars()).unwrap();
        assert_eq!(s, "sum(x{a=\"b\"}) by (le)");
    }

    #[test]
    fn builtins_render_with_filters() {
        for c in builtin_checks(0.99, 0.5) {
            let q = render(&c.query, &vars()).unwrap();
            assert!(q.contains(r#"namespace="shop""#), "{q}");
            assert!(q.contains(r#"ingress="web""#), "{q}");
            assert!(q.contains(r#"canary!="""#), "{q}");
            assert!(q.contains("[60s]"), "{q}");
        }
        let r = render(REQUESTS_QUERY, &vars()).unwrap();
        assert!(r.starts_with("sum(increase(nginx_ingress_controller_requests{"));
    }

    #[test]
    fn prom_duration_formats() {
        assert_eq!(prom_duration(Duration::from_secs(90)), "90s");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn judge_bounds() {
        assert_eq!(
            judge(&check(Some(0.99), None), Some(0.995), 100.0, 10.0),
            Verdict::Pass
        );
        assert_eq!(
            judge(&check(Some(0.99), None), Some(0.99), 100.0, 10.0),
            Verdict::Pass
        );
        let v = judge(&check(Some(0.99), None), Some(0.9), 100.0, 10.0);
        assert_eq!(v, Verdict::Fail("c: 0.9 is below the minimum 0.99".into()));
        let v = judge(&check(None, Some(0.5)), Some(0.75), 100.0, 10.0);
        assert_eq!(v, Verdict::Fail("c: 0.75 is above the maximum 0.5".into()));
        assert_eq!(
            judge(&check(None, Some(0.5)), Some(0.5), 100.0, 10.0),
            Verdict::Pass
        );
        assert_eq!(
            judge(&check(None, None), Some(-3.0), 100.0, 10.0),
            Verdict::Pass
        );
    }

    #[test]
    fn judge_doubts() {
        let c = check(Some(0.99), None);
        assert!(
            matches!(judge(&c, None, 100.0, 10.0), Verdict::Inconclusive(r) if r.contains("no data"))
        );
        assert!(
            matches!(judge(&c, Some(f64::NAN), 100.0, 10.0), Verdict::Inconclusive(r) if r.contains("NaN"))
        );
        // Too little traffic wins over a bad value: a handful of requests proves nothing.
        assert!(
            matches!(judge(&c, Some(0.1), 9.0, 10.0), Verdict::Inconclusive(r) if r.contains("9 canary requests"))
        );
        assert!(matches!(
            judge(&c, Some(1.0), f64::NAN, 10.0),
            Verdict::Inconclusive(_)
        ));
        assert_eq!(
            judge(&check(None, Some(1.0)), Some(f64::INFINITY), 100.0, 0.0),
            Verdict::Fail("c: inf is above the maximum 1".into())
        );
    }

    #[test]
    fn config_validation() {
        assert_eq!(cfg(5, 0, 1).validate(), Ok(()));
        let mut c = cfg(5, 0, 1);
        c.interval = Duration::from_millis(500);
        assert_eq!(
            c.validate(),
            Err("analysis interval 500ms is below 1s".into())
        );
        let mut c = cfg(5, 0, 1);
        c.bake_time = Duration::from_secs(30);
        assert_eq!(
            c.validate(),
            Err("bake time 30s is shorter than the analysis interval 1m".into())
        );
        let mut c = cfg(5, 0, 1);
        c.min_requests = f64::NAN;
        assert!(c.validate().is_err());
    }

    #[test]
    fn planned_runs() {
        assert_eq!(cfg(5, 0, 1).planned_runs(), 5);
        let mut c = cfg(5, 0, 1);
        c.bake_time = Duration::from_secs(30);
        assert_eq!(c.planned_runs(), 1);
        c.bake_time = Duration::from_secs(150);
        assert_eq!(c.planned_runs(), 2);
    }

    #[test]
    fn analysis_passes_after_all_runs() {
        let mut a = Analysis::new(cfg(3, 1, 2));
        assert_eq!(a.next_run_at(), Some(Duration::from_secs(60)));
        assert!(matches!(
            a.record(Duration::from_secs(60), 50.0, result(Verdict::Pass)),
            Verdict::Wait(_)
        ));
        assert_eq!(a.next_run_at(), Some(Duration::from_secs(120)));
        assert!(matches!(
            a.record(
                Duration::from_secs(120),
                50.0,
                result(Verdict::Fail("x".into()))
            ),
            Verdict::Wait(_)
        ));
        assert_eq!(
            a.record(Duration::from_secs(180), 50.0, result(Verdict::Pass)),
            Verdict::Pass
        );
        assert_eq!(a.next_run_at(), None);
        assert_eq!((a.passed, a.failed, a.inconclusive), (2, 1, 0));
    }

    #[test]
    fn analysis_fails_once_limit_exceeded() {
        let mut a = Analysis::new(cfg(10, 1, 1));
        a.record(
            Duration::from_secs(60),
            50.0,
            result(Verdict::Fail("a".into())),
        );
        let v = a.record(
            Duration::from_secs(120),
            50.0,
            result(Verdict::Fail("b".into())),
        );
        assert_eq!(
            v,
            Verdict::Fail("2 failed runs exceed the limit of 1 (last: b)".into())
        );
        assert!(a.is_done());
        // Later runs change nothing.
        assert_eq!(
            a.record(Duration::from_secs(180), 50.0, result(Verdict::Pass)),
            v
        );
        assert_eq!(a.runs.len(), 2);
    }

    #[test]
    fn analysis_zero_limit_fails_on_first_miss() {
        let mut a = Analysis::new(cfg(3, 0, 1));
        assert!(matches!(
            a.record(
                Duration::from_secs(60),
                50.0,
                result(Verdict::Fail("a".into()))
            ),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn analysis_inconclusive_without_traffic() {
        let mut a = Analysis::new(cfg(2, 0, 1));
        a.record(
            Duration::from_secs(60),
            0.0,
            result(Verdict::Inconclusive("quiet".into())),
        );
        let v = a.record(
            Duration::from_secs(120),
            0.0,
            result(Verdict::Inconclusive("quiet".into())),
        );
        assert_eq!(
            v,
            Verdict::Inconclusive("0 of 2 runs passed, need 1 (2 inconclusive, 0 failed)".into())
        );
    }

    #[test]
    fn run_verdict_prefers_fail_then_doubt() {
        let mut checks = result(Verdict::Pass);
        checks.extend(result(Verdict::Inconclusive("i".into())));
        assert_eq!(run_verdict(&checks), Verdict::Inconclusive("i".into()));
        checks.extend(result(Verdict::Fail("f".into())));
        assert_eq!(run_verdict(&checks), Verdict::Fail("f".into()));
        assert_eq!(run_verdict(&result(Verdict::Pass)), Verdict::Pass);
    }
}
