//! `set-weight`: change one canary weight in the manifests, byte-exactly: an ingress-nginx
//! canary Ingress's annotation, both weights of an HTTPRoute's stable/canary split, or a Helm
//! chart value (`--weight-from`, or `weightFrom` in the config file).

use super::RepoArgs;
use crate::config::{self, Config};
use crate::report::console;
use crate::report::Output;
use crate::router::helm::WeightFrom;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct SetWeightArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The canary Ingress: NAME or NAMESPACE/NAME.
    #[arg(
        long,
        env = "GITOPS_CANARY_INGRESS",
        conflicts_with_all = ["route", "weight_from"]
    )]
    pub ingress: Option<String>,
    /// The Gateway API HTTPRoute whose stable/canary split to set: NAME or NAMESPACE/NAME.
    #[arg(long, env = "GITOPS_CANARY_ROUTE", conflicts_with = "weight_from")]
    pub route: Option<String>,
    /// A canary whose weight is a Helm chart value: FILE:PATH, FILE a values file, a Flux
    /// HelmRelease or an Argo CD Application (relative to --repo), PATH the value as Helm's
    /// --set writes it, e.g. canary.weight (default: the config file's weightFrom).
    #[arg(long, env = "GITOPS_CANARY_WEIGHT_FROM")]
    pub weight_from: Option<WeightFrom>,
    /// The rollout configuration file, relative to --repo (its weightFrom applies when no
    /// --ingress, --route or --weight-from is given).
    #[arg(long, env = "GITOPS_CANARY_CONFIG", default_value = config::DEFAULT_FILE)]
    pub config: std::path::PathBuf,
    /// The HTTPRoute backendRef that is the canary; default, the only one whose Service name
    /// ends in -canary or selects a Deployment whose name does.
    #[arg(long, env = "GITOPS_CANARY_CANARY_SERVICE")]
    pub canary_service: Option<String>,
    /// With Kustomize overlays: the root kustomization (directory, relative to --repo) whose
    /// rendering to change, when the Ingress name alone is ambiguous.
    #[arg(long, env = "GITOPS_CANARY_OVERLAY", conflicts_with = "route")]
    pub overlay: Option<std::path::PathBuf>,
    /// The new weight (0..=canary-weight-total, 100 by default); for --route, the canary's
    /// percentage, written as both weights of each split.
    #[arg(long, env = "GITOPS_CANARY_WEIGHT")]
    pub weight: u32,
    /// Print the diff and write nothing.
    #[arg(long, env = "GITOPS_CANARY_DRY_RUN")]
    pub dry_run: bool,
}

pub fn run(args: SetWeightArgs) -> anyhow::Result<u8> {
    let weight_from = match (&args.weight_from, &args.route, &args.ingress) {
        (Some(w), _, _) => Some(w.clone()),
        (None, None, None) => Config::load(&args.repo.repo.join(&args.config))?.weight_from,
        _ => None,
    };
    if weight_from.is_some() && (args.overlay.is_some() || args.canary_service.is_some()) {
        return Err(exit::Usage(
            "--overlay and --canary-service do not apply to a Helm value (--weight-from)".into(),
        )
        .into());
    }
    let outcome = match (&weight_from, &args.route, &args.ingress) {
        (Some(wf), _, _) => {
            crate::router::helm::set_weight(&args.repo.repo, wf, args.weight, args.dry_run)?
        }
        (None, Some(route), _) => crate::router::gateway::set_weight(
            &args.repo.repo,
            route,
            args.canary_service.as_deref(),
            args.weight,
            args.dry_run,
        )?,
        (None, None, Some(ingress)) => {
            if args.canary_service.is_some() {
                return Err(exit::Usage(
                    "--canary-service applies to --route (an HTTPRoute)".into(),
                )
                .into());
            }
            crate::router::kustomize::set::set_weight(
                &args.repo.repo,
                ingress,
                args.overlay.as_deref(),
                args.weight,
                args.dry_run,
            )?
        }
        (None, None, None) => {
            return Err(exit::Usage(
                "give --ingress, --route or --weight-from (or weightFrom in the config file)"
                    .into(),
            )
            .into())
        }
    };
    match args.repo.output {
        Output::Json => {
            let doc = serde_json::json!({
                "schemaVersion": 1,
                "dryRun": args.dry_run,
                "changed": !outcome.changed.is_empty(),
                "edits": outcome.edits,
                "files": outcome.changed_files(),
                "diff": outcome.diff,
            });
            console::json(&doc)?;
        }
        Output::Human => {
            if args.dry_run {
                console::out(&outcome.diff);
            }
            for e in &outcome.edits {
                let verb = match (outcome.changed.is_empty(), args.dry_run) {
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
