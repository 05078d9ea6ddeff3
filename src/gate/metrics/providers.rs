//! The built-in queries of each metrics provider, and the user's templates that replace them.
//!
//! The ingress-nginx checks follow its request metrics: the controller labels every request with
//! the `namespace`, `ingress` and `service` of the location that served it, and sets `canary` to
//! the canary upstream (`<namespace>-<service>-<port>`) only when the request was routed to the
//! canary backend. A canary Ingress is merged into its primary's location, so canary requests
//! carry the primary (stable) Ingress name in `ingress`: `Vars::ingress` is that name, and
//! `canary!=""` is what singles out the canary's share.
//!
//! Other implementations export other names: [`Provider`] holds the built-in queries for the
//! Gateway API implementations users run most (Envoy Gateway, Istio, NGINX Gateway Fabric),
//! each with what its metrics really carry, and [`queries`] replaces any of them by a user's
//! template (`--metrics-query-*`), or takes only templates (`custom`).

use std::fmt;
use std::time::Duration;

use super::{render, MetricCheck, Vars};

/// Canary requests seen in the last interval: the minimum-traffic rule is judged on it.
pub const REQUESTS_QUERY: &str = r#"sum(increase(nginx_ingress_controller_requests{namespace="{{namespace}}",ingress="{{ingress}}",canary!=""}[{{interval}}]))"#;

/// Default lower bound of `success_rate`.
pub(crate) const DEFAULT_MIN_SUCCESS_RATE: f64 = 0.99;
/// Default upper bound of `latency_p99`, in seconds.
pub(crate) const DEFAULT_MAX_P99_SECONDS: f64 = 0.5;

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
    pub(crate) fn builtin(self) -> Option<Builtin> {
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
pub(crate) struct Builtin {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::new("shop", "web", "web-canary", Duration::from_secs(60))
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
}
