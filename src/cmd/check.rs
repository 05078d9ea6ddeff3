//! `check`: run the gates for one stage of canaries and say which one failed, with what the
//! cluster showed last and why.
//!
//! What Git says (namespaces, names, weight, every Deployment behind the Services) comes from
//! the manifests, resolved as the rollout resolves it (`gate::target`); flags override it. The
//! canaries and the gate settings resolve as the rollout's do (flags over the config file over
//! the defaults, in `settings`), with one default of its own: a one-off check also bakes.
//! The gates run through the rollout's own runner (`cmd::gates::Runner`): synced and
//! rolled-out in order, then the bake (steady) and the metrics analysis side by side; the
//! first that does not pass stops it.

use crate::report::console;

use anyhow::Context;
use serde::Serialize;

use super::args::{CanaryArgs, ConfigArg, GateArgs, RepoArgs};
use super::connect::connect;
use super::settings::{self, Cmd};
use crate::cluster::{GateOutcome, ObjectRef, Subject, SyncVia};
use crate::exit::{self, UsageError};
use crate::gate::target::Targets;
use crate::gate::Verdict;
use crate::manifest;
use crate::report::Output;
use crate::rollout::Selection;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub canary: CanaryArgs,
    #[command(flatten)]
    pub gates: GateArgs,
    /// The merged commit Argo CD / Flux must have applied (default: HEAD of --repo).
    #[arg(long, env = "GITOPS_CANARY_REVISION")]
    pub revision: Option<String>,
    /// The canary Deployment (default: the one behind the canary Ingress's Service).
    #[arg(long, env = "GITOPS_CANARY_CANARY_DEPLOYMENT")]
    pub canary_deployment: Option<String>,
    /// The stable Deployment (default: the one behind the stable Ingress's Service).
    #[arg(long, env = "GITOPS_CANARY_STABLE_DEPLOYMENT")]
    pub stable_deployment: Option<String>,
}

/// What the manifests say about the canaries: what their gates watch, and their weight.
struct Resolved {
    targets: Targets,
    weight: u32,
}

fn resolve(repo: &std::path::Path, selection: &Selection) -> anyhow::Result<Resolved> {
    // A route or Ingress named without a namespace is gated in the first selector's.
    let default_namespace = selection
        .names()
        .iter()
        .find_map(|s| manifest::Selector::parse(s).ok().and_then(|s| s.namespace))
        .unwrap_or_else(|| "default".into());
    let r = crate::rollout::resolve_canaries(repo, selection, &default_namespace)?;
    if r.weights.windows(2).any(|w| w[0].1 != w[1].1) {
        let list: Vec<String> = r.weights.iter().map(|(n, w)| format!("{n}={w}")).collect();
        return Err(UsageError::new(format!(
            "the canaries disagree on the weight: {}",
            list.join(", ")
        ))
        .help("check canaries that move together one by one, or set them to one weight first")
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
    let flag_name = if which == "canary" {
        "--canary-deployment"
    } else {
        "--stable-deployment"
    };
    match flag {
        Some(f) => {
            *found =
                vec![ObjectRef::parse(f, ns)
                    .map_err(|e| UsageError::flag(flag_name, e.to_string()))?];
            Ok(())
        }
        None if found.is_empty() => Err(UsageError::new(format!(
            "cannot tell the {which} Deployment from the manifests ({}); pass {flag_name}",
            if notes.is_empty() {
                "no match".to_string()
            } else {
                notes.join("; ")
            }
        ))
        .help(format!(
            "{flag_name} NAMESPACE/NAME names the Deployment to gate"
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
    /// The HTTPRoutes checked (`NS/NAME`, comma-separated), when the canary is a route.
    #[serde(skip_serializing_if = "String::is_empty")]
    route: String,
    weight: u32,
    #[serde(rename = "failedGate", skip_serializing_if = "Option::is_none")]
    failed_gate: Option<&'a str>,
    gates: &'a [GateOutcome],
}

pub async fn run(args: CheckArgs) -> anyhow::Result<u8> {
    let settings = settings::load(Cmd::Check(&args))?;
    let gates = settings
        .gates
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("check runs gates: no gate settings resolved"))?;
    let Resolved {
        mut targets,
        weight,
    } = resolve(&settings.repo, &settings.rollout.selection)?;
    let ns = targets
        .ingresses
        .first()
        .or(targets.routes.first().map(|r| &r.route))
        .map_or_else(|| "default".to_string(), |i| i.namespace.clone());
    if gates.runner.gates.iter().any(|g| g.needs_deployments()) {
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
    let revision = match (&gates.runner.sync_via, &args.revision) {
        (_, Some(r)) => Some(r.clone()),
        (SyncVia::Ingress, None) => None,
        (_, None) => Some(head_revision(&settings.repo)?),
    };
    let runner = connect(&settings)
        .await?
        .runner
        .ok_or_else(|| anyhow::anyhow!("check runs gates: no gate runner was built"))?;
    let ingress = targets
        .ingresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let route = targets
        .routes
        .iter()
        .map(|r| r.route.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let subject = Subject {
        targets,
        weight,
        revision,
    };

    let human = settings.output == Output::Human;
    let outcomes = runner
        .judge(
            &subject,
            gates.runner.bake,
            runner.settings.timeout,
            &mut |o| {
                if human {
                    print_outcome(o);
                }
            },
        )
        .await?;
    let failed = outcomes.iter().find(|o| !o.passed());
    if settings.output == Output::Json {
        let report = Report {
            schema_version: 1,
            passed: failed.is_none(),
            ingress,
            route,
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
