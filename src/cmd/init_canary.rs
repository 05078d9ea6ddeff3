//! `init-canary`: write a canary Ingress derived from a stable one, or add the canary
//! backendRef beside the stable one in an HTTPRoute.

use super::args::{DryRunArg, IngressArg, RepoArgs, RouteArg, WeightArg};
use crate::exit::UsageError;
use crate::report::console;
use crate::report::Output;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct InitCanaryArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ingress: IngressArg,
    #[command(flatten)]
    pub route: RouteArg,
    /// The Service that serves the canary.
    #[arg(long, env = "GITOPS_CANARY_SERVICE")]
    pub service: String,
    /// Namespace of the canary (the second-namespace layout); default: the stable's.
    #[arg(long, env = "GITOPS_CANARY_NAMESPACE", conflicts_with = "route")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub weight: WeightArg,
    #[command(flatten)]
    pub dry_run: DryRunArg,
}

/// The one stable Ingress or HTTPRoute to derive the canary from.
enum Stable<'a> {
    Ingress(&'a str),
    Route(&'a str),
}

fn stable(args: &InitCanaryArgs) -> Result<Stable<'_>, UsageError> {
    match (args.ingress.ingress.as_slice(), args.route.route.as_slice()) {
        ([one], []) => Ok(Stable::Ingress(one)),
        ([], [one]) => Ok(Stable::Route(one)),
        ([], []) => Err(UsageError::new("give --ingress or --route").help(
            "--ingress names the stable Ingress, --route the HTTPRoute to add the canary to",
        )),
        (_, []) => Err(UsageError::flag(
            "--ingress",
            "init-canary derives from one stable Ingress",
        )),
        ([], _) => Err(UsageError::flag(
            "--route",
            "init-canary adds the canary to one HTTPRoute",
        )),
        _ => Err(UsageError::new(
            "--ingress and --route name different stables; give one",
        )),
    }
}

pub fn run(args: InitCanaryArgs) -> anyhow::Result<u8> {
    let dir = &args.repo.repo;
    let weight = args.weight.weight.unwrap_or(0);
    let ingress = match stable(&args)? {
        Stable::Ingress(i) => i,
        Stable::Route(route) => return run_route(&args, route, weight),
    };
    let new = crate::router::init_canary(
        dir,
        ingress,
        &args.service,
        args.namespace.as_deref(),
        weight,
    )?;
    let dry_run = args.dry_run.dry_run;
    if !dry_run {
        std::fs::write(dir.join(&new.path), &new.text).map_err(|source| {
            manifest::ManifestError::Write {
                file: new.path.clone(),
                source,
            }
        })?;
    }
    match args.repo.output {
        Output::Json => console::json(&new)?,
        Output::Human if dry_run => console::out(&new.text),
        Output::Human => console::err(&format!("wrote {}", new.path.display())),
    }
    Ok(exit::OK)
}

/// `init-canary --route`: an edit of the HTTPRoute's file, printed like `set-weight`'s.
fn run_route(args: &InitCanaryArgs, route: &str, weight: u32) -> anyhow::Result<u8> {
    let dir = &args.repo.repo;
    let dry_run = args.dry_run.dry_run;
    let outcome = crate::router::gateway::init_canary(dir, route, &args.service, weight)?;
    if !dry_run {
        outcome.write(dir)?;
    }
    match args.repo.output {
        Output::Json => console::json(&serde_json::json!({
            "schemaVersion": 1,
            "dryRun": dry_run,
            "changed": !outcome.changed.is_empty(),
            "edits": outcome.edits,
            "files": outcome.changed_files(),
            "diff": outcome.diff,
        }))?,
        Output::Human if dry_run => console::out(&outcome.diff),
        Output::Human => {
            for f in outcome.changed_files() {
                console::err(&format!(
                    "added backendRef {} to {route} in {}",
                    args.service,
                    f.display()
                ));
            }
        }
    }
    Ok(exit::OK)
}
