//! `check`: run the gates for one stage of canaries and say which one failed, with what the
//! cluster showed last and why.
//!
//! What Git says (namespaces, names, weight, every Deployment behind the Services) comes from
//! the manifests, resolved as the rollout resolves it (`gate::target`); flags override it.
//! The gates run through the rollout's own runner (`cmd::gates::Runner`): synced and
//! rolled-out in order, then the bake (steady) and the metrics analysis side by side; the
//! first that does not pass stops it.

use crate::report::console;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::gates::{RunnerSettings, SyncSourceKind};
use super::RepoArgs;
use crate::cluster::{self, GateOutcome, ObjectRef, Subject, SyncVia};
use crate::exit::{self, Usage};
use crate::gate::target::Targets;
use crate::gate::{Gate, Verdict};
use crate::manifest;
use crate::report::Output;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The canary Ingress(es), [NAMESPACE/]NAME as in the manifests, comma-separated; several
    /// are gated together, as a rollout moves them.
    #[arg(
        long,
        env = "GITOPS_CANARY_INGRESS",
        value_delimiter = ',',
        required_unless_present = "route"
    )]
    pub ingress: Vec<String>,
    /// The Gateway API HTTPRoute(s), [NAMESPACE/]NAME, comma-separated, whose canary to gate.
    #[arg(long, env = "GITOPS_CANARY_ROUTE", value_delimiter = ',')]
    pub route: Vec<String>,
    /// The HTTPRoute backendRef that is the canary; default, the only one whose Service name
    /// ends in -canary or selects a Deployment whose name does.
    #[arg(long, env = "GITOPS_CANARY_CANARY_SERVICE", requires = "route")]
    pub canary_service: Option<String>,
    /// With Kustomize overlays: the root kustomization (directory, relative to --repo) whose
    /// rendering names the canary, when the Ingress name alone is ambiguous.
    #[arg(long, env = "GITOPS_CANARY_OVERLAY")]
    pub overlay: Option<std::path::PathBuf>,
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

/// What the manifests say about the canaries: what their gates watch, and their weight.
struct Resolved {
    targets: Targets,
    weight: u32,
}

fn resolve(args: &CheckArgs) -> anyhow::Result<Resolved> {
    let selection = crate::rollout::Selection {
        ingresses: args.ingress.clone(),
        routes: args.route.clone(),
        canary_service: args.canary_service.clone(),
        overlay: args.overlay.clone(),
    };
    // A route or Ingress named without a namespace is gated in the first selector's.
    let default_namespace = selection
        .names()
        .iter()
        .find_map(|s| manifest::Selector::parse(s).ok().and_then(|s| s.namespace))
        .unwrap_or_else(|| "default".into());
    let r = crate::rollout::resolve_canaries(&args.repo.repo, &selection, &default_namespace)?;
    if r.weights.windows(2).any(|w| w[0].1 != w[1].1) {
        let list: Vec<String> = r.weights.iter().map(|(n, w)| format!("{n}={w}")).collect();
        return Err(Usage(format!(
            "the canaries disagree on the weight: {}",
            list.join(", ")
        ))
        .into());
    }
    Ok(Resolved {
        targets: r.targets,
        weight: r.weights.first().map_or(0, |w| w.1),
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

/// A `--canary-deployment` / `--stable-deployment` replaces what the manifests say; with
/// neither, the gates that need Deployments need the manifests to name at least one.
fn deployments(
    flag: &Option<String>,
    found: &mut Vec<ObjectRef>,
    ns: &str,
    which: &str,
    notes: &[String],
) -> anyhow::Result<()> {
    match flag {
        Some(f) => {
            *found =
                vec![ObjectRef::parse(f, ns)
                    .map_err(|e| Usage(format!("--{which}-deployment: {e}")))?];
            Ok(())
        }
        None if found.is_empty() => Err(Usage(format!(
            "cannot tell the {which} Deployment from the manifests ({}); pass --{which}-deployment",
            if notes.is_empty() {
                "no match".to_string()
            } else {
                notes.join("; ")
            }
        ))
        .into()),
        None => Ok(()),
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
    let Resolved {
        mut targets,
        weight,
    } = resolve(&args)?;
    let ns = targets
        .ingresses
        .first()
        .map_or_else(|| "default".to_string(), |i| i.namespace.clone());
    if args.gates.iter().any(|g| g.needs_deployments()) {
        let notes = targets.notes.clone();
        deployments(
            &args.canary_deployment,
            &mut targets.canary,
            &ns,
            "canary",
            &notes,
        )?;
        deployments(
            &args.stable_deployment,
            &mut targets.stable,
            &ns,
            "stable",
            &notes,
        )?;
    }
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
    let runner = super::gates::runner(
        RunnerSettings {
            gates: args.gates.clone(),
            context: args.context.clone(),
            sync_via,
            sync_now: args.sync_now,
            timeout: args.timeout,
            bake: args.bake_time,
            stage_bakes: Vec::new(),
            restart_threshold: args.restart_threshold,
        },
        &args.metrics,
    )
    .await?;
    let ingress = targets
        .ingresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let subject = Subject {
        targets,
        weight,
        revision,
    };

    let human = args.repo.output == Output::Human;
    let outcomes = runner
        .judge(
            &subject,
            args.bake_time,
            runner.settings.timeout,
            &mut |o| {
                if human {
                    print_outcome(o);
                }
            },
        )
        .await?;
    let failed = outcomes.iter().find(|o| !o.passed());
    if args.repo.output == Output::Json {
        let report = Report {
            schema_version: 1,
            passed: failed.is_none(),
            ingress,
            weight,
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
