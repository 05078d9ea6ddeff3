//! `set-weight`: change one canary weight in the manifests, byte-exactly: an ingress-nginx
//! canary Ingress's annotation, both weights of an HTTPRoute's stable/canary split, or a Helm
//! chart value (`--weight-from`, or `weightFrom` in the config file).

use super::args::{CanaryArgs, ConfigArg, DryRunArg, RepoArgs, WeightArg};
use crate::config::Config;
use crate::exit::UsageError;
use crate::report::console;
use crate::report::Output;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct SetWeightArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub canary: CanaryArgs,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub weight: WeightArg,
    #[command(flatten)]
    pub dry_run: DryRunArg,
}

/// The one value of a flag that names one canary here (the rollout moves several together).
fn one<'a>(flag: &'static str, values: &'a [String]) -> Result<Option<&'a String>, UsageError> {
    match values {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(UsageError::flag(flag, "set-weight sets one canary")
            .help("run it once per canary, or let the rollout move them together")),
    }
}

pub fn run(args: SetWeightArgs) -> anyhow::Result<u8> {
    let weight = args.weight.required()?;
    let dry_run = args.dry_run.dry_run;
    let dir = &args.repo.repo;
    let c = &args.canary;
    let ingress = one("--ingress", &c.ingress.ingress)?;
    let route = one("--route", &c.route.route)?;
    let canary_service = c.canary_service.canary_service.as_deref();
    let given = [
        ingress.map(|_| "--ingress"),
        route.map(|_| "--route"),
        c.weight_from.weight_from.as_ref().map(|_| "--weight-from"),
    ];
    let given: Vec<&str> = given.into_iter().flatten().collect();
    if given.len() > 1 {
        return Err(
            UsageError::new(format!("{} name different canaries", given.join(" and ")))
                .help("give one of --ingress, --route and --weight-from")
                .into(),
        );
    }
    let weight_from = match (&c.weight_from.weight_from, route, ingress) {
        (Some(w), _, _) => Some(w.clone()),
        (None, None, None) => Config::load(&dir.join(&args.config.config))?.weight_from,
        _ => None,
    };
    if weight_from.is_some() && (c.overlay.is_some() || canary_service.is_some()) {
        return Err(UsageError::new(
            "--overlay and --canary-service do not apply to a Helm value (--weight-from)",
        )
        .into());
    }
    let outcome = match (&weight_from, route, ingress) {
        (Some(wf), _, _) => crate::router::helm::set_weight(dir, wf, weight, dry_run)?,
        (None, Some(route), _) => crate::router::kustomize::route_set::set_weight(
            dir,
            route,
            c.overlay.as_deref(),
            canary_service,
            weight,
            dry_run,
        )?,
        (None, None, Some(ingress)) => {
            if canary_service.is_some() {
                return Err(UsageError::flag(
                    "--canary-service",
                    "applies to --route (an HTTPRoute)",
                )
                .into());
            }
            crate::router::kustomize::set::set_weight(
                dir,
                ingress,
                c.overlay.as_deref(),
                weight,
                dry_run,
            )?
        }
        (None, None, None) => {
            return Err(UsageError::new(
                "give --ingress, --route or --weight-from (or weightFrom in the config file)",
            )
            .into())
        }
    };
    match args.repo.output {
        Output::Json => {
            let doc = serde_json::json!({
                "schemaVersion": 1,
                "dryRun": dry_run,
                "changed": !outcome.changed.is_empty(),
                "edits": outcome.edits,
                "files": outcome.changed_files(),
                "diff": outcome.diff,
            });
            console::json(&doc)?;
        }
        Output::Human => {
            if dry_run {
                console::out(&outcome.diff);
            }
            for e in &outcome.edits {
                let verb = match (outcome.changed.is_empty(), dry_run) {
                    (true, _) => "unchanged",
                    (false, true) => "would set",
                    (false, false) => "set",
                };
                // Integers (HTTPRoute weights) print bare, strings (annotations) quoted.
                let show = |v: &str| match e.kind {
                    manifest::ScalarKind::Int => v.to_string(),
                    _ => format!("{v:?}"),
                };
                console::err(&format!(
                    "{verb} {} (document {}) {} = {} (was {})",
                    e.file.display(),
                    e.document,
                    e.field(),
                    show(&e.new),
                    e.old.as_deref().map_or("absent".to_string(), show)
                ));
            }
        }
    }
    Ok(exit::OK)
}
