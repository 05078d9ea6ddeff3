//! Gates: pure verdicts over what the cluster and Prometheus show.
//!
//! A gate never does I/O. It is handed objects or metric values and answers with a `Verdict`;
//! the async waiters in `cluster` and `metrics` feed it observations as they arrive.

use serde::Serialize;

/// What a gate concludes from one observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "kebab-case")]
pub enum Verdict {
    /// The condition holds.
    Pass,
    /// Not yet: the reason says what it waits for.
    Wait(String),
    /// The condition can no longer hold (a crash loop, a failed metric): stop now.
    Fail(String),
    /// Not enough data to judge (no canary traffic yet).
    Inconclusive(String),
}

pub mod k8s;
pub mod metrics;
