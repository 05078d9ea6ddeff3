//! Running the metrics analysis of one stage: where the values come from ([`MetricSource`]),
//! where the time comes from ([`Clock`]), and [`run_analysis`], which asks for every check at
//! every interval of the bake time and feeds the pure `gate::metrics::Analysis`.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::MetricsError;
use crate::gate::metrics::{
    judge, render, Analysis, AnalysisConfig, CheckResult, MetricCheck, Vars, REQUESTS_QUERY,
};
use crate::gate::Verdict;

/// Where analysis values come from: Prometheus in production, anything in tests.
pub trait MetricSource {
    /// The single value of `promql` at `at` (unix seconds); `None` when it has no data.
    fn value(
        &self,
        promql: &str,
        at: f64,
    ) -> impl Future<Output = Result<Option<f64>, MetricsError>> + Send;
}

/// Where the analysis gets the time and how it waits.
pub trait Clock {
    /// Now, in unix seconds.
    fn now(&self) -> f64;
    /// Return once `now() >= at`.
    fn sleep_until(&self, at: f64) -> impl Future<Output = ()> + Send;
}

/// The wall clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        crate::clock::since_epoch().as_secs_f64()
    }

    fn sleep_until(&self, at: f64) -> impl Future<Output = ()> + Send {
        let wait = (at - self.now()).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(wait))
    }
}

/// A clock that jumps to the requested time instead of waiting: for evaluating an analysis
/// over data that is already stored (backfilled tests, dry runs over the past).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<f64>,
}

impl ManualClock {
    pub fn starting_at(unix_seconds: f64) -> Self {
        ManualClock {
            now: Mutex::new(unix_seconds),
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, at: f64) -> impl Future<Output = ()> + Send {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        if at > *now {
            *now = at;
        }
        std::future::ready(())
    }
}

/// What an analysis concluded, with every run, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisReport {
    /// Unix seconds at which the analysis started; run times are offsets from it.
    pub started_at: f64,
    #[serde(flatten)]
    pub analysis: Analysis,
}

impl AnalysisReport {
    pub fn verdict(&self) -> &Verdict {
        &self.analysis.verdict
    }
}

/// Run the metrics analysis: every `config.interval` until `config.bake_time` (or until the
/// failure limit is exceeded), query the canary's request count and each check, and judge.
/// Templates are rendered before the first wait, so a bad one fails at once. Query faults
/// that outlast the client's retries end the analysis with the error.
pub async fn run_analysis<S: MetricSource, C: Clock>(
    source: &S,
    checks: &[MetricCheck],
    vars: &Vars,
    config: &AnalysisConfig,
    clock: &C,
) -> Result<AnalysisReport, MetricsError> {
    run_analysis_with(source, REQUESTS_QUERY, checks, vars, config, clock).await
}

/// [`run_analysis`] with the canary's request count from `requests_template` (another
/// provider's metric, or a user's template) instead of ingress-nginx's.
pub async fn run_analysis_with<S: MetricSource, C: Clock>(
    source: &S,
    requests_template: &str,
    checks: &[MetricCheck],
    vars: &Vars,
    config: &AnalysisConfig,
    clock: &C,
) -> Result<AnalysisReport, MetricsError> {
    config
        .validate()
        .map_err(|reason| MetricsError::InvalidConfig { reason })?;
    let requests_query =
        render(requests_template, vars).map_err(|source| MetricsError::Template {
            check: "requests".into(),
            source,
        })?;
    let rendered = checks
        .iter()
        .map(|c| {
            render(&c.query, vars)
                .map(|q| (c, q))
                .map_err(|source| MetricsError::Template {
                    check: c.name.clone(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let started_at = clock.now();
    let mut analysis = Analysis::new(config.clone());
    while let Some(offset) = analysis.next_run_at() {
        let at = started_at + offset.as_secs_f64();
        clock.sleep_until(at).await;
        let requests = source.value(&requests_query, at).await?.unwrap_or(0.0);
        let mut results = Vec::with_capacity(rendered.len());
        for (check, query) in &rendered {
            let value = source.value(query, at).await?;
            results.push(CheckResult {
                name: check.name.clone(),
                query: query.clone(),
                value,
                verdict: judge(check, value, requests, config.min_requests),
            });
        }
        let verdict = analysis.record(offset, requests, results);
        tracing::info!(
            run = analysis.runs.len(),
            requests,
            verdict = ?verdict,
            "metrics analysis run"
        );
    }
    Ok(AnalysisReport {
        started_at,
        analysis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A source answering from a table keyed by (query, time).
    struct Table(HashMap<(String, i64), Option<f64>>);

    impl MetricSource for Table {
        fn value(
            &self,
            q: &str,
            at: f64,
        ) -> impl Future<Output = Result<Option<f64>, MetricsError>> + Send {
            std::future::ready(Ok(self
                .0
                .get(&(q.to_string(), at as i64))
                .copied()
                .flatten()))
        }
    }

    #[tokio::test]
    async fn run_analysis_drives_the_state_machine_on_schedule() {
        let vars = Vars::new("ns", "web", "web-canary", Duration::from_secs(60));
        let check = MetricCheck {
            name: "custom".into(),
            query: "up{namespace=\"{{namespace}}\"}".into(),
            min: Some(1.0),
            max: None,
        };
        let req = render(REQUESTS_QUERY, &vars).unwrap();
        let mut t = HashMap::new();
        for (i, v) in [(1, 1.0), (2, 0.0), (3, 1.0)] {
            t.insert((req.clone(), 1000 + 60 * i), Some(100.0));
            t.insert(("up{namespace=\"ns\"}".to_string(), 1000 + 60 * i), Some(v));
        }
        let config = AnalysisConfig {
            interval: Duration::from_secs(60),
            bake_time: Duration::from_secs(180),
            failure_limit: 1,
            min_requests: 10.0,
            min_passing_runs: 2,
        };
        let clock = ManualClock::starting_at(1000.0);
        let report = run_analysis(&Table(t), &[check], &vars, &config, &clock)
            .await
            .unwrap();
        assert_eq!(report.verdict(), &Verdict::Pass);
        assert_eq!(report.analysis.runs.len(), 3);
        assert_eq!(report.analysis.failed, 1);
        assert_eq!(clock.now(), 1180.0);
    }

    #[tokio::test]
    async fn run_analysis_rejects_bad_template_before_waiting() {
        let vars = Vars::new("ns", "web", "svc", Duration::from_secs(60));
        let check = MetricCheck {
            name: "bad".into(),
            query: "x{a=\"{{pod}}\"}".into(),
            min: None,
            max: None,
        };
        let config = AnalysisConfig {
            interval: Duration::from_secs(60),
            bake_time: Duration::from_secs(600),
            failure_limit: 0,
            min_requests: 1.0,
            min_passing_runs: 1,
        };
        let clock = ManualClock::starting_at(0.0);
        let err = run_analysis(&Table(HashMap::new()), &[check], &vars, &config, &clock)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("{{pod}}"), "{err}");
        assert_eq!(clock.now(), 0.0);

        let short = AnalysisConfig {
            bake_time: Duration::from_secs(10),
            ..config
        };
        let err = run_analysis(&Table(HashMap::new()), &[], &vars, &short, &clock)
            .await
            .unwrap_err();
        assert!(matches!(err, MetricsError::InvalidConfig { .. }), "{err:?}");
        use crate::fault::Classify;
        assert!(err.is_bad_input());
    }
}
