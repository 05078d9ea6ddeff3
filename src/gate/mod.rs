//! Gates: pure verdicts over what the cluster and Prometheus show.
//!
//! A gate never does I/O. It is handed objects or metric values and answers with a `Verdict`;
//! the async waiters in `cluster` and `metrics` feed it observations as they arrive.

use std::fmt;
use std::str::FromStr;

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
    /// Git's change reached the cluster (the live Ingress or HTTPRoute weights, Argo CD or
    /// Flux).
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
    pub(crate) fn is_cluster(self) -> bool {
        self != Gate::Metrics
    }

    /// Gates that need the Deployments behind the routes.
    pub(crate) fn needs_deployments(self) -> bool {
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

pub mod httproute;
pub mod k8s;
pub mod metrics;
pub mod target;

/// What shows that Git's change reached the cluster.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    clap::ValueEnum,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyncSourceKind {
    /// The live canary Ingress carries the weight Git has (an HTTPRoute canary: the live
    /// HTTPRoute carries Git's weights and its Gateways accepted it).
    #[default]
    Ingress,
    /// The Argo CD Application is Synced and Healthy at the merged revision.
    Argocd,
    /// The Flux Kustomization is Ready at the merged revision.
    Flux,
}

/// `[NS/]NAME` of a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parse `[NS/]NAME`, taking `default_namespace` when no namespace is given.
    pub fn parse(s: &str, default_namespace: &str) -> Result<Self, String> {
        let (ns, name) = match s.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (default_namespace, s),
        };
        if ns.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!("{s:?} is not [NAMESPACE/]NAME"));
        }
        Ok(ObjectRef::new(ns, name))
    }
}

impl FromStr for ObjectRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectRef::parse(s, "default")
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs_parse() {
        assert_eq!(
            ObjectRef::parse("shop/web", "default").unwrap(),
            ObjectRef::new("shop", "web")
        );
        assert_eq!(
            ObjectRef::parse("web", "apps").unwrap(),
            ObjectRef::new("apps", "web")
        );
        assert!(ObjectRef::parse("a/b/c", "x").is_err());
        assert!(ObjectRef::parse("/b", "x").is_err());
    }
}
