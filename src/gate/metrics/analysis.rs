//! Judging the numbers: one check's value in one run ([`judge`]), the checks of a run together
//! ([`run_verdict`]), and the runs of a bake time counted against the failure limit and the
//! passing runs needed ([`Analysis`]).

use std::time::Duration;

use serde::Serialize;

use super::MetricCheck;
use crate::gate::Verdict;

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
    pub(crate) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl AnalysisConfig {
    /// Reject settings that cannot make a meaningful analysis (bad input, named in the message).
    pub(crate) fn validate(&self) -> Result<(), String> {
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
    pub(crate) fn planned_runs(&self) -> u32 {
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
pub(crate) fn run_verdict(checks: &[CheckResult]) -> Verdict {
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
    pub(crate) fn is_done(&self) -> bool {
        !matches!(self.verdict, Verdict::Wait(_))
    }

    /// When the next run is due, measured from the analysis start; `None` once concluded.
    pub(crate) fn next_run_at(&self) -> Option<Duration> {
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
