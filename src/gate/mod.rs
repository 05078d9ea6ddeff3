//! Gates: pure verdicts over what the cluster and Prometheus show.
//!
//! A gate never does I/O. It is handed objects or metric values and answers with a `Verdict`;
//! the async waiters in `cluster` and `metrics` feed it observations as they arrive.

use serde::{Deserialize, Serialize};

/// The gates a stage can pass, in the order they run: one list for the `--gates` flag, the
/// `gates:` field of the config file, its JSON Schema and the runner.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// Git's change reached the cluster (the live Ingress weight, Argo CD or Flux).
    Synced,
    /// The canary and stable Deployments finished their rollouts.
    RolledOut,
    /// The canary stays healthy for the bake time.
    Steady,
    /// Prometheus analysis of the canary's traffic over the bake time.
    Metrics,
}

impl Gate {
    pub const ALL: [Gate; 4] = [Gate::Synced, Gate::RolledOut, Gate::Steady, Gate::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Synced => "synced",
            Gate::RolledOut => "rolled-out",
            Gate::Steady => "steady",
            Gate::Metrics => "metrics",
        }
    }

    /// Gates that watch the cluster (everything but the Prometheus analysis).
    pub fn is_cluster(self) -> bool {
        self != Gate::Metrics
    }

    /// Gates that need the Deployments behind the routes.
    pub fn needs_deployments(self) -> bool {
        matches!(self, Gate::RolledOut | Gate::Steady)
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
pub mod target;
