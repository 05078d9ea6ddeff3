//! `init-canary`: write a canary Ingress derived from a stable one, or add the canary
//! backendRef beside the stable one in an HTTPRoute.

use super::RepoArgs;
use crate::report::console;
use crate::report::Output;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct InitCanaryArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The stable Ingress: NAME or NAMESPACE/NAME.
    #[arg(
        long,
        env = "GITOPS_CANARY_INGRESS",
        required_unless_present = "route",
        conflicts_with = "route"
    )]
    pub ingress: Option<String>,
    /// The Gateway API HTTPRoute to add the canary backendRef to (at the weight given, the
    /// stable's written as the rest of 100): NAME or NAMESPACE/NAME.
    #[arg(long, env = "GITOPS_CANARY_ROUTE", conflicts_with = "namespace")]
    pub route: Option<String>,
    /// The Service that serves the canary.
    #[arg(long, env = "GITOPS_CANARY_SERVICE")]
    pub service: String,
    /// Namespace of the canary (the second-namespace layout); default: the stable's.
    #[arg(long, env = "GITOPS_CANARY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Initial weight; for --route, the canary's percentage.
    #[arg(long, env = "GITOPS_CANARY_WEIGHT", default_value_t = 0)]
    pub weight: u32,
    /// Print the file and write nothing.
    #[arg(long, env = "GITOPS_CANARY_DRY_RUN")]
    pub dry_run: bool,
}

pub fn run(args: InitCanaryArgs) -> anyhow::Result<u8> {
    let dir = &args.repo.repo;
    let Some(ingress) = &args.ingress else {
        return run_route(&args);
    };
    let new = crate::router::init_canary(
        dir,
        ingress,
        &args.service,
        args.namespace.as_deref(),
        args.weight,
    )?;
    if !args.dry_run {
        std::fs::write(dir.join(&new.path), &new.text).map_err(|source| {
            manifest::ManifestError::Write {
                file: new.path.clone(),
                source,
            }
        })?;
    }
    match args.repo.output {
        Output::Json => console::json(&new)?,
        Output::Human if args.dry_run => console::out(&new.text),
        Output::Human => console::err(&format!("wrote {}", new.path.display())),
    }
    Ok(exit::OK)
}

/// `init-canary --route`: an edit of the HTTPRoute's file, printed like `set-weight`'s.
fn run_route(args: &InitCanaryArgs) -> anyhow::Result<u8> {
    let dir = &args.repo.repo;
    let route = args
        .route
        .as_deref()
        .ok_or_else(|| exit::Usage("give --ingress or --route".into()))?;
    let outcome = crate::router::gateway::init_canary(dir, route, &args.service, args.weight)?;
    if !args.dry_run {
        outcome.write(dir)?;
    }
    match args.repo.output {
        Output::Json => console::json(&serde_json::json!({
            "schemaVersion": 1,
            "dryRun": args.dry_run,
            "changed": !outcome.changed.is_empty(),
            "edits": outcome.edits,
            "files": outcome.changed_files(),
            "diff": outcome.diff,
        }))?,
        Output::Human if args.dry_run => console::out(&outcome.diff),
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
