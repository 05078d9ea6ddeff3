//! `check`: run the cluster gates for one canary and say which one failed, with what the
//! cluster showed last and why.
//!
//! What Git says (namespace, name, weight, the Deployments behind the Services) comes from the
//! manifests; flags override it. The gates run in order (synced, rolled-out, steady,
//! metrics) and stop at the first that does not pass.

use crate::report::console;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;

use super::gates::SyncSourceKind;
use crate::cli::{Output, RepoArgs};
use crate::cluster::{self, ClusterGate, GateOutcome, GateSettings, ObjectRef, Subject, SyncVia};
use crate::exit::{self, Usage};
use crate::gate::Verdict;
use crate::manifest::{self, workload};
use crate::router::Route;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    Synced,
    RolledOut,
    Steady,
    Metrics,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The canary Ingress: NAME or NAMESPACE/NAME, as in the manifests.
    #[arg(long, env = "GITOPS_CANARY_INGRESS")]
    pub ingress: String,
    /// Gates to run, in order.
    #[arg(
        long,
        env = "GITOPS_CANARY_GATES",
        value_enum,
        value_delimiter = ',',
        default_value = "synced,rolled-out,steady"
    )]
    pub gates: Vec<Gate>,
    /// How long synced and rolled-out may take together.
    #[arg(long, env = "GITOPS_CANARY_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How long the canary must stay steady.
    #[arg(long, env = "GITOPS_CANARY_BAKE_TIME", default_value = "5m", value_parser = humantime::parse_duration)]
    pub bake_time: Duration,
    /// Kubeconfig context (default: the current context, or in-cluster config).
    #[arg(long, env = "GITOPS_CANARY_CONTEXT")]
    pub context: Option<String>,
    /// What shows that Git's change reached the cluster.
    #[arg(long, env = "GITOPS_CANARY_SYNC_SOURCE", value_enum, default_value_t = SyncSourceKind::Ingress)]
    pub sync_source: SyncSourceKind,
    /// The Argo CD Application (NAMESPACE/NAME; namespace defaults to argocd).
    #[arg(long, env = "GITOPS_CANARY_ARGOCD_APP")]
    pub argocd_app: Option<String>,
    /// The Flux Kustomization (NAMESPACE/NAME; namespace defaults to flux-system).
    #[arg(long, env = "GITOPS_CANARY_FLUX_KUSTOMIZATION")]
    pub flux_kustomization: Option<String>,
    /// The merged commit Argo CD / Flux must have applied (default: HEAD of --repo).
    #[arg(long, env = "GITOPS_CANARY_REVISION")]
    pub revision: Option<String>,
    /// Ask Argo CD / Flux to reconcile now instead of waiting for their poll interval.
    #[arg(long, env = "GITOPS_CANARY_SYNC_NOW")]
    pub sync_now: bool,
    /// The canary Deployment (default: the one behind the canary Ingress's Service).
    #[arg(long, env = "GITOPS_CANARY_CANARY_DEPLOYMENT")]
    pub canary_deployment: Option<String>,
    /// The stable Deployment (default: the one behind the stable Ingress's Service).
    #[arg(long, env = "GITOPS_CANARY_STABLE_DEPLOYMENT")]
    pub stable_deployment: Option<String>,
    /// Container restarts during the bake that count as unsteady.
    #[arg(long, env = "GITOPS_CANARY_RESTART_THRESHOLD", default_value_t = cluster::DEFAULT_RESTART_THRESHOLD)]
    pub restart_threshold: i32,
    #[command(flatten)]
    pub metrics: super::gates::MetricsArgs,
}

/// What the manifests say about the canary.
struct Resolved {
    ingress: ObjectRef,
    weight: u32,
    /// The labels ingress-nginx puts on canary requests: the stable Ingress (namespace, name)
    /// whose location the canary joins, and the canary's Service.
    metrics_labels: (String, String, String),
    canary_deployment: Option<ObjectRef>,
    stable_deployment: Option<ObjectRef>,
    notes: Vec<String>,
}

fn resolve(args: &CheckArgs) -> anyhow::Result<Resolved> {
    let repo = manifest::Repo::load_filtered(&args.repo.repo, &crate::app::needs_parse)?;
    let discovery = repo.discover();
    let selector = manifest::Selector::parse(&args.ingress)?;
    let canaries: Vec<Route> = discovery.pairs.iter().map(|p| p.canary.clone()).collect();
    let route = manifest::select(&canaries, &selector)?;
    let pair = discovery
        .pairs
        .iter()
        .find(|p| p.canary == *route)
        .context("discovered canary without its pair")?;
    let namespace = route
        .namespace
        .clone()
        .or(selector.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let weight = pair.weight.ok_or_else(|| {
        Usage(format!(
            "the canary-weight of {} in {} is not an integer",
            route.name,
            route.file.display()
        ))
    })?;

    let workloads = workload::workloads(&repo.files);
    let services = workload::services(&repo.files);
    let mut notes = Vec::new();
    let mut behind = |which: &str, routes: &[&Route]| -> Option<ObjectRef> {
        let mut found: Vec<ObjectRef> = workload::behind_routes(&workloads, &services, routes)
            .into_iter()
            .map(|w| {
                ObjectRef::new(
                    w.namespace.clone().unwrap_or_else(|| namespace.clone()),
                    w.name.clone(),
                )
            })
            .collect();
        match found.len() {
            1 => found.pop(),
            0 => {
                notes.push(format!(
                    "no Deployment behind the {which} Services in the manifests"
                ));
                None
            }
            _ => {
                let names: Vec<String> = found.iter().map(ToString::to_string).collect();
                notes.push(format!("several {which} Deployments: {}", names.join(", ")));
                None
            }
        }
    };
    let canary_deployment = behind("canary", &[route]);
    let stable_routes: Vec<&Route> = pair.stable.iter().collect();
    let stable_deployment = behind("stable", &stable_routes);
    let stable_route = pair.stable.first().unwrap_or(route);
    let metrics_labels = (
        stable_route
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone()),
        stable_route.name.clone(),
        route.services().first().cloned().unwrap_or_default(),
    );
    Ok(Resolved {
        metrics_labels,
        ingress: ObjectRef::new(namespace, route.name.clone()),
        weight,
        canary_deployment,
        stable_deployment,
        notes,
    })
}

fn head_revision(repo: &std::path::Path) -> anyhow::Result<String> {
    let git = git2::Repository::discover(repo).with_context(|| {
        format!(
            "--revision not given and {} is not a Git checkout",
            repo.display()
        )
    })?;
    let commit = git
        .head()
        .and_then(|h| h.peel_to_commit())
        .context("cannot read HEAD of the GitOps repository")?;
    Ok(commit.id().to_string())
}

fn deployment(
    flag: &Option<String>,
    found: &Option<ObjectRef>,
    ns: &str,
    which: &str,
    notes: &[String],
) -> anyhow::Result<ObjectRef> {
    match (flag, found) {
        (Some(f), _) => {
            ObjectRef::parse(f, ns).map_err(|e| Usage(format!("--{which}-deployment: {e}")).into())
        }
        (None, Some(d)) => Ok(d.clone()),
        (None, None) => {
            Err(Usage(format!(
            "cannot tell the {which} Deployment from the manifests ({}); pass --{which}-deployment",
            if notes.is_empty() { "no match".to_string() } else { notes.join("; ") }
        ))
            .into())
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    passed: bool,
    ingress: String,
    weight: u32,
    #[serde(rename = "failedGate", skip_serializing_if = "Option::is_none")]
    failed_gate: Option<&'a str>,
    gates: &'a [GateOutcome],
}

pub async fn run(args: CheckArgs) -> anyhow::Result<u8> {
    let metrics = if args.gates.contains(&Gate::Metrics) {
        Some(
            super::gates::MetricsGate::new(&args.metrics, args.bake_time)?.ok_or_else(|| {
                Usage(
                    "the metrics gate needs --prometheus-url (GITOPS_CANARY_PROMETHEUS_URL)".into(),
                )
            })?,
        )
    } else {
        None
    };
    let resolved = resolve(&args)?;
    let ns = resolved.ingress.namespace.clone();
    let needs_deployments = args
        .gates
        .iter()
        .any(|g| matches!(g, Gate::RolledOut | Gate::Steady));
    let (canary, stable) = if needs_deployments {
        (
            Some(deployment(
                &args.canary_deployment,
                &resolved.canary_deployment,
                &ns,
                "canary",
                &resolved.notes,
            )?),
            Some(deployment(
                &args.stable_deployment,
                &resolved.stable_deployment,
                &ns,
                "stable",
                &resolved.notes,
            )?),
        )
    } else {
        (None, None)
    };
    let sync_via = super::gates::sync_via(
        args.sync_source,
        args.argocd_app.as_deref(),
        args.flux_kustomization.as_deref(),
    )?;
    let revision = match (&sync_via, &args.revision) {
        (_, Some(r)) => Some(r.clone()),
        (SyncVia::Ingress, None) => None,
        (_, None) => Some(head_revision(&args.repo.repo)?),
    };
    let settings = GateSettings {
        gates: args
            .gates
            .iter()
            .filter_map(|g| match g {
                Gate::Synced => Some(ClusterGate::Synced),
                Gate::RolledOut => Some(ClusterGate::RolledOut),
                Gate::Steady => Some(ClusterGate::Steady),
                Gate::Metrics => None,
            })
            .collect(),
        sync_via,
        sync_now: args.sync_now,
        timeout: args.timeout,
        bake: args.bake_time,
        restart_threshold: args.restart_threshold,
    };
    let subject = Subject {
        ingress: resolved.ingress.clone(),
        weight: resolved.weight,
        revision,
        canary,
        stable,
    };

    let human = args.repo.output == Output::Human;
    let mut outcomes = if settings.gates.is_empty() {
        Vec::new()
    } else {
        let client = cluster::connect(args.context.as_deref()).await?;
        cluster::run_gates(&client, &settings, &subject, |o| {
            if human {
                print_outcome(o);
            }
        })
        .await?
    };
    if let (Some(m), true) = (&metrics, outcomes.iter().all(GateOutcome::passed)) {
        let started = std::time::Instant::now();
        let (ns, ingress, service) = resolved.metrics_labels.clone();
        let line = m
            .analyse_vars(crate::gate::metrics::Vars::new(
                ns,
                ingress,
                service,
                args.metrics.metrics_interval,
            ))
            .await?;
        let o = GateOutcome {
            gate: line.gate,
            verdict: line.verdict,
            last_state: line.detail,
            elapsed: started.elapsed(),
        };
        if human {
            print_outcome(&o);
        }
        outcomes.push(o);
    }
    let failed = outcomes.iter().find(|o| !o.passed());
    if args.repo.output == Output::Json {
        let report = Report {
            schema_version: 1,
            passed: failed.is_none(),
            ingress: resolved.ingress.to_string(),
            weight: resolved.weight,
            failed_gate: failed.map(|o| o.gate.as_str()),
            gates: &outcomes,
        };
        console::json(&report)?;
    }
    // The reason goes to stderr in every output mode, as `kubectl rollout status` does.
    Ok(match failed {
        Some(o) => {
            let reason = match &o.verdict {
                Verdict::Fail(r) | Verdict::Wait(r) | Verdict::Inconclusive(r) => r.as_str(),
                Verdict::Pass => "",
            };
            console::err(&format!("error: gate {} failed: {reason}", o.gate));
            exit::FAILED
        }
        None => exit::OK,
    })
}

fn print_outcome(o: &GateOutcome) {
    let secs = o.elapsed.as_secs_f64();
    match &o.verdict {
        Verdict::Pass => console::out(&format!("PASS {} ({secs:.1}s): {}", o.gate, o.last_state)),
        Verdict::Fail(reason) | Verdict::Wait(reason) | Verdict::Inconclusive(reason) => {
            console::out(&format!("FAIL {} ({secs:.1}s): {reason}", o.gate));
            console::out(&format!("  last observed: {}", o.last_state));
        }
    }
}
