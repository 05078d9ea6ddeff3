//! The Prometheus HTTP API client: one instant query at an explicit time, with bounded retries
//! of transient faults, credentials kept out of every message, and the answer's shapes
//! (vector, scalar, error) read into samples.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{MetricSource, MetricsError};
use crate::secret::{redact, Token};

enum Auth {
    None,
    Bearer(Token),
    Basic { user: String, password: Token },
}

/// A Prometheus HTTP API client for instant queries.
pub struct PrometheusClient {
    http: reqwest::Client,
    /// Base URL without credentials: the only form that appears in messages.
    base: String,
    auth: Auth,
    retries: usize,
    min_delay: Duration,
}

impl std::fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("base", &self.base)
            .field(
                "auth",
                &match self.auth {
                    Auth::None => "none",
                    Auth::Bearer(_) => "bearer ***",
                    Auth::Basic { .. } => "basic ***",
                },
            )
            .finish()
    }
}

/// One series of an instant vector, or the value of a scalar (no labels).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Value,
}

#[derive(Deserialize)]
struct VectorItem {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

/// Prometheus writes sample values as strings, including `NaN`, `+Inf` and `-Inf`.
fn parse_value(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .map_err(|_| format!("sample value {s:?} is not a number"))
}

/// Parse a `/api/v1/query` answer body into samples. Kept apart from the HTTP code so the
/// shapes can be tested on literal bodies.
pub(crate) fn parse_query_response(body: &str) -> Result<Vec<Sample>, ParseError> {
    let env: Envelope =
        serde_json::from_str(body).map_err(|e| ParseError::Decode(e.to_string()))?;
    if env.status != "success" {
        return Err(ParseError::Api {
            error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
            error: env
                .error
                .unwrap_or_else(|| format!("status {:?}", env.status)),
        });
    }
    let data = env
        .data
        .ok_or_else(|| ParseError::Decode("status success without data".into()))?;
    match data.result_type.as_str() {
        "vector" => {
            let items: Vec<VectorItem> = serde_json::from_value(data.result)
                .map_err(|e| ParseError::Decode(format!("vector result: {e}")))?;
            items
                .into_iter()
                .map(|i| {
                    Ok(Sample {
                        labels: i.metric,
                        value: parse_value(&i.value.1).map_err(ParseError::Decode)?,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (_, v): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| ParseError::Decode(format!("scalar result: {e}")))?;
            Ok(vec![Sample {
                labels: Default::default(),
                value: parse_value(&v).map_err(ParseError::Decode)?,
            }])
        }
        other => Err(ParseError::Shape(format!("a {other} result"))),
    }
}

/// Why a body could not be turned into samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Decode(String),
    Api { error_type: String, error: String },
    Shape(String),
}

impl PrometheusClient {
    /// A client for the Prometheus at `url` (e.g. `http://prometheus:9090` or a path prefix
    /// behind a proxy). Credentials in the URL become basic auth; `token` is sent as a bearer.
    pub fn new(url: &str, token: Option<Token>) -> Result<Self, MetricsError> {
        let mut parsed = url::Url::parse(url).map_err(|e| MetricsError::InvalidUrl {
            url: strip_credentials_lossy(url),
            reason: e.to_string(),
        })?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(MetricsError::InvalidUrl {
                url: strip_credentials_lossy(url),
                reason: format!("scheme {:?} is not http or https", parsed.scheme()),
            });
        }
        let user = parsed.username().to_string();
        let password = parsed.password().map(|p| Token::new(p.to_string()));
        // Both setters only fail for cannot-be-a-base URLs, excluded by the scheme check.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_query(None);
        parsed.set_fragment(None);
        let base = parsed.as_str().trim_end_matches('/').to_string();
        let auth = match (token, user.is_empty() && password.is_none()) {
            (Some(t), _) if !t.is_empty() => Auth::Bearer(t),
            (_, false) => Auth::Basic {
                user,
                password: password.unwrap_or_else(|| Token::new("")),
            },
            _ => Auth::None,
        };
        // reqwest is built without a default crypto provider; installing ring twice is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| MetricsError::Client {
                reason: e.without_url().to_string(),
            })?;
        Ok(PrometheusClient {
            http,
            base,
            auth,
            retries: 3,
            min_delay: Duration::from_millis(500),
        })
    }

    /// Retry transient faults up to `times` more times, starting `min_delay` apart (doubling).
    pub fn with_retries(mut self, times: usize, min_delay: Duration) -> Self {
        self.retries = times;
        self.min_delay = min_delay;
        self
    }

    /// The base URL as shown in messages (never with credentials).
    pub fn url(&self) -> &str {
        &self.base
    }

    fn secrets(&self) -> Vec<&Token> {
        match &self.auth {
            Auth::None => vec![],
            Auth::Bearer(t) => vec![t],
            Auth::Basic { password, .. } => vec![password],
        }
    }

    /// All samples of `promql` evaluated at `at` (unix seconds; `None` = Prometheus's now).
    pub async fn query(&self, promql: &str, at: Option<f64>) -> Result<Vec<Sample>, MetricsError> {
        let attempt = || self.query_once(promql, at);
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(self.min_delay)
                    .with_max_delay(self.min_delay.saturating_mul(8))
                    .with_max_times(self.retries)
                    .with_jitter(),
            )
            .when(MetricsError::is_transient)
            .notify(|err, wait| {
                tracing::warn!(error = %err, ?wait, "Prometheus query failed; retrying");
            })
            .await
    }

    /// The single value of `promql` at `at`: `None` for an empty vector, an error when the
    /// query yields several series.
    pub async fn query_value(
        &self,
        promql: &str,
        at: Option<f64>,
    ) -> Result<Option<f64>, MetricsError> {
        let samples = self.query(promql, at).await?;
        match samples.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.value)),
            many => Err(MetricsError::Shape {
                query: promql.to_string(),
                found: format!("{} series", many.len()),
            }),
        }
    }

    async fn query_once(&self, promql: &str, at: Option<f64>) -> Result<Vec<Sample>, MetricsError> {
        let endpoint = format!("{}/api/v1/query", self.base);
        let mut params = vec![("query", promql.to_string())];
        if let Some(t) = at {
            params.push(("time", format!("{t:.3}")));
        }
        let mut req = self.http.get(&endpoint).query(&params);
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
            Auth::Basic { user, password } => req.basic_auth(user, Some(password.expose())),
        };
        let transport = |e: reqwest::Error| MetricsError::Transport {
            url: self.base.clone(),
            query: promql.to_string(),
            source: e.without_url(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(transport)?;
        let ok_status = (200..300).contains(&status);
        match parse_query_response(&body) {
            Ok(samples) if ok_status => Ok(samples),
            Err(ParseError::Api { error_type, error }) => Err(MetricsError::Api {
                url: self.base.clone(),
                query: promql.to_string(),
                status,
                error_type,
                error: redact(&error, &self.secrets()),
            }),
            Err(ParseError::Shape(found)) if ok_status => Err(MetricsError::Shape {
                query: promql.to_string(),
                found,
            }),
            Err(ParseError::Decode(reason)) if ok_status => Err(MetricsError::Decode {
                url: self.base.clone(),
                query: promql.to_string(),
                reason: redact(
                    &format!("{reason}; body starts {:?}", snippet(&body)),
                    &self.secrets(),
                ),
            }),
            // Not 2xx and not Prometheus's error shape: a proxy or a crash answered.
            _ => Err(MetricsError::Status {
                url: self.base.clone(),
                query: promql.to_string(),
                status,
                body: redact(&snippet(&body), &self.secrets()),
            }),
        }
    }
}

impl MetricSource for PrometheusClient {
    fn value(
        &self,
        promql: &str,
        at: f64,
    ) -> impl Future<Output = Result<Option<f64>, MetricsError>> + Send {
        self.query_value(promql, Some(at))
    }
}

/// The first 200 characters of a body, on one line.
fn snippet(body: &str) -> String {
    let one_line: String = body
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.chars().count() > 200 {
        format!("{}...", one_line.trim_end())
    } else {
        one_line.trim_end().to_string()
    }
}

/// For messages about URLs that did not parse: drop anything before an `@` in the authority.
fn strip_credentials_lossy(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vector_scalar_and_specials() {
        let v = parse_query_response(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.5"},"value":[1700000000.5,"0.25"]}]}}"#,
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].value, 0.25);
        assert_eq!(v[0].labels["le"], "0.5");
        let s = parse_query_response(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"NaN"]}}"#,
        )
        .unwrap();
        assert!(s[0].value.is_nan());
        let s = parse_query_response(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#,
        )
        .unwrap();
        assert_eq!(s[0].value, f64::INFINITY);
        let e = parse_query_response(
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .unwrap();
        assert!(e.is_empty());
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse_query_response(
                r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#
            ),
            Err(ParseError::Api {
                error_type: "bad_data".into(),
                error: "parse error at char 3".into()
            })
        );
        assert!(matches!(
            parse_query_response("<html>oops</html>"),
            Err(ParseError::Decode(_))
        ));
        assert!(matches!(
            parse_query_response(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#),
            Err(ParseError::Shape(s)) if s == "a matrix result"
        ));
        assert!(matches!(
            parse_query_response(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#
            ),
            Err(ParseError::Decode(_))
        ));
    }

    #[test]
    fn url_credentials_never_shown() {
        let c = PrometheusClient::new("https://user:hunter2secret@prom.example:9090/prom/", None)
            .unwrap();
        assert_eq!(c.url(), "https://prom.example:9090/prom");
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = PrometheusClient::new("ftp://user:hunter2secret@x/", None).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = PrometheusClient::new("http://user:hunter2secret@[::1/", None).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        use crate::fault::Classify;
        assert!(e.is_bad_input());
    }
}
