//! The gate runner: a stage's settings and subject, and [`run_gates`], which runs the cluster
//! gates in order and stops at the first that does not pass.

use std::time::{Duration, Instant};

use kube::Client;

use super::deployments::{rolled_out_all, steady_all};
use super::sync::{synced, SyncSource};
use super::{ClusterError, GateOutcome, ObjectRef};
use crate::gate::Gate;

/// Where `synced` looks, before the stage's revision or weight is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncVia {
    Ingress,
    ArgoCd(ObjectRef),
    Flux(ObjectRef),
}

/// How the gates run: which, in what order, against what, for how long.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// The gates, in order; `run_gates` runs the cluster ones and skips `metrics`.
    pub gates: Vec<Gate>,
    pub sync_via: SyncVia,
    pub sync_now: bool,
    /// Budget for `synced` and `rolled-out` together.
    pub timeout: Duration,
    pub bake: Duration,
    pub restart_threshold: i32,
}

/// What one stage's gates judge: the objects resolved from the manifests, the weight the
/// canaries carry and the merged commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub targets: crate::gate::target::Targets,
    pub weight: u32,
    /// The merged commit Argo CD / Flux must show (required for those sources).
    pub revision: Option<String>,
}

/// Run the cluster gates in order, stopping at the first that does not pass. `each` sees
/// every outcome as it is decided (for progress output). Errors are setup problems (RBAC, a
/// missing CRD or Deployment name), not gate failures.
pub async fn run_gates(
    client: &Client,
    settings: &GateSettings,
    subject: &Subject,
    mut each: impl FnMut(&GateOutcome),
) -> Result<Vec<GateOutcome>, ClusterError> {
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for gate in settings.gates.iter().filter(|g| g.is_cluster()) {
        let remaining = settings.timeout.saturating_sub(start.elapsed());
        let gate_start = Instant::now();
        let outcome = match gate {
            Gate::Synced => {
                let mut seen = Vec::new();
                let mut last = None;
                for source in sync_sources(&settings.sync_via, subject)? {
                    let left = remaining.saturating_sub(gate_start.elapsed());
                    let o = synced(client, &source, settings.sync_now, left).await?;
                    seen.push(o.last_state.clone());
                    let passed = o.passed();
                    last = Some(o);
                    if !passed {
                        break;
                    }
                }
                let mut o = last.ok_or_else(|| missing(subject, "canary Ingress or HTTPRoute"))?;
                o.last_state = seen.join("; ");
                o.elapsed = gate_start.elapsed();
                o
            }
            Gate::RolledOut => {
                let (c, s) = deployments(subject)?;
                rolled_out_all(client, c, s, remaining).await?
            }
            Gate::Steady => {
                let (c, s) = deployments(subject)?;
                steady_all(client, c, s, settings.bake, settings.restart_threshold).await?
            }
            Gate::Metrics => continue,
        };
        each(&outcome);
        let passed = outcome.passed();
        outcomes.push(outcome);
        if !passed {
            break;
        }
    }
    Ok(outcomes)
}

fn missing(subject: &Subject, what: &str) -> ClusterError {
    let first = subject.targets.ingresses.first();
    ClusterError::Invalid {
        kind: "Ingress".into(),
        namespace: first.map(|i| i.namespace.clone()).unwrap_or_default(),
        name: first.map(|i| i.name.clone()).unwrap_or_default(),
        detail: if subject.targets.notes.is_empty() {
            format!("no {what} known (none found in the manifests)")
        } else {
            format!("no {what} known ({})", subject.targets.notes.join("; "))
        },
    }
}

/// Where `synced` looks: every canary Ingress and HTTPRoute, or the one Argo CD / Flux object.
fn sync_sources(via: &SyncVia, subject: &Subject) -> Result<Vec<SyncSource>, ClusterError> {
    let revision = |kind: &str, obj: &ObjectRef| {
        subject
            .revision
            .clone()
            .ok_or_else(|| ClusterError::Invalid {
                kind: kind.into(),
                namespace: obj.namespace.clone(),
                name: obj.name.clone(),
                detail: "no revision to wait for".into(),
            })
    };
    Ok(match via {
        SyncVia::Ingress => subject
            .targets
            .ingresses
            .iter()
            .map(|i| SyncSource::Ingress {
                ingress: i.clone(),
                weight: subject.weight,
            })
            .chain(
                subject
                    .targets
                    .routes
                    .iter()
                    .map(|r| SyncSource::HttpRoute {
                        route: r.route.clone(),
                        weights: r.weights.clone(),
                    }),
            )
            .collect(),
        SyncVia::ArgoCd(app) => vec![SyncSource::ArgoCd {
            app: app.clone(),
            revision: revision("Application", app)?,
        }],
        SyncVia::Flux(ks) => vec![SyncSource::Flux {
            kustomization: ks.clone(),
            revision: revision("Kustomization", ks)?,
        }],
    })
}

fn deployments(subject: &Subject) -> Result<(&[ObjectRef], &[ObjectRef]), ClusterError> {
    let t = &subject.targets;
    if t.canary.is_empty() {
        return Err(missing(subject, "canary Deployment"));
    }
    if t.stable.is_empty() {
        return Err(missing(subject, "stable Deployment"));
    }
    Ok((&t.canary, &t.stable))
}
