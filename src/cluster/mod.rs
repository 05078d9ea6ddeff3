//! The cluster adapter: watch Kubernetes objects and feed them to the pure gates in `gate::k8s`.
//!
//! Everything here is I/O and timing: connecting as `kubectl` does (this file), the waiter that
//! watches objects and the fault rules of every request (`watch`), and the gates built on it:
//! `synced` (`sync`: the live Ingress or HTTPRoute, Argo CD, Flux), `rolled_out` and `steady`
//! (`deployments`), and the runner that takes a stage through them in order (`gates`). Each gate
//! returns a [`GateOutcome`] with the last observed state so a failure can say what the cluster
//! looked like.

mod deployments;
mod gates;
mod sync;
mod watch;

pub use deployments::{rolled_out, steady};
pub use gates::{run_gates, GateSettings, Subject, SyncVia};
pub use sync::{flux_kustomization, http_route, synced, SyncSource};
pub use watch::wait_for;

pub use crate::gate::{Gate, ObjectRef};

use std::fmt;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Serialize;

use crate::fault::Classify;
use crate::gate::Verdict;

/// Restarts a container may accumulate before `steady` calls it unstable.
pub const DEFAULT_RESTART_THRESHOLD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the Kubernetes client configuration{}: {message}", context_suffix(.context))]
    Config {
        context: Option<String>,
        message: String,
    },
    #[error("forbidden: cannot {} {} in namespace {} (needed for {} {}): {}", .0.verb, .0.resource, .0.namespace, .0.kind, .0.name, .0.message)]
    Forbidden(Box<Denial>),
    #[error("unauthorized: the API server rejected the credentials to {} {} in namespace {} (for {} {}): {}", .0.verb, .0.resource, .0.namespace, .0.kind, .0.name, .0.message)]
    Unauthorized(Box<Denial>),
    #[error("the API server does not serve {resource} (needed for {kind} {namespace}/{name}): is the CRD installed and the version right?")]
    NotServed {
        resource: String,
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("{kind} {namespace}/{name}: {detail}")]
    Invalid {
        kind: String,
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("cannot {verb} {kind} {namespace}/{name}: {message}")]
    Api {
        verb: String,
        kind: String,
        namespace: String,
        name: String,
        message: String,
    },
}

/// What the API server refused (401/403): the verb and `plural.group` an RBAC rule needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub verb: String,
    pub resource: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

fn context_suffix(context: &Option<String>) -> String {
    context
        .as_ref()
        .map(|c| format!(" (context {c})"))
        .unwrap_or_default()
}

impl Classify for ClusterError {
    /// Configuration, RBAC, a missing CRD or object, a selector we cannot use: the user must
    /// change something. A plain API failure after retries is the world's state.
    fn is_bad_input(&self) -> bool {
        !matches!(self, ClusterError::Api { .. })
    }
}

/// What a gate concluded, with what the cluster showed last (for the failure message).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    pub gate: String,
    pub verdict: Verdict,
    pub last_state: String,
    #[serde(rename = "elapsed_ms", serialize_with = "ser_millis")]
    pub elapsed: Duration,
    /// The verdict is a timeout (the budget ran out before the state decided), not a state
    /// that failed: `reconcile` waits again while the stage's window is open.
    #[serde(skip)]
    pub timed_out: bool,
}

fn ser_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl GateOutcome {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Connect the way `kubectl` does: `KUBECONFIG` or `~/.kube/config`, else the in-cluster
/// service account; with a context, that context of the kubeconfig.
fn client_from(mut config: Config, context: Option<&str>) -> Result<Client, ClusterError> {
    // kube's built-in retry layer retries 429/503/504 up to 15 times with delays growing to
    // 1000 s, invisibly: the watch loop's own bounded backoff must see every fault so a gate
    // can report it and time out on schedule.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| config_error(context, e))
}

pub async fn connect(context: Option<&str>) -> Result<Client, ClusterError> {
    let config = match context {
        Some(ctx) => {
            let options = KubeConfigOptions {
                context: Some(ctx.to_string()),
                ..Default::default()
            };
            Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_error(context, e))?
        }
        None => Config::infer()
            .await
            .map_err(|e| config_error(context, e))?,
    };
    client_from(config, context)
}

/// Connect with an explicit kubeconfig file (tests, and `--kubeconfig`-style callers).
pub async fn connect_kubeconfig(
    path: &std::path::Path,
    context: Option<&str>,
) -> Result<Client, ClusterError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| config_error(context, e))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| config_error(context, e))?;
    client_from(config, context)
}

fn config_error(context: Option<&str>, e: impl fmt::Display) -> ClusterError {
    ClusterError::Config {
        context: context.map(str::to_string),
        message: e.to_string(),
    }
}
