//! `set-weight`: change one canary weight in the manifests, byte-exactly.

use crate::cli::{Output, RepoArgs};
use crate::report::console;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct SetWeightArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The canary Ingress: NAME or NAMESPACE/NAME.
    #[arg(long, env = "GITOPS_CANARY_INGRESS")]
    pub ingress: String,
    /// With Kustomize overlays: the root kustomization (directory, relative to --repo) whose
    /// rendering to change, when the Ingress name alone is ambiguous.
    #[arg(long, env = "GITOPS_CANARY_OVERLAY")]
    pub overlay: Option<std::path::PathBuf>,
    /// The new weight (0..=canary-weight-total, 100 by default).
    #[arg(long, env = "GITOPS_CANARY_WEIGHT")]
    pub weight: u32,
    /// Print the diff and write nothing.
    #[arg(long, env = "GITOPS_CANARY_DRY_RUN")]
    pub dry_run: bool,
}

pub fn run(args: SetWeightArgs) -> anyhow::Result<u8> {
    let outcome = manifest::kustomize::set::set_weight(
        &args.repo.repo,
        &args.ingress,
        args.overlay.as_deref(),
        args.weight,
        args.dry_run,
    )?;
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
                console::err(&format!(
                    "{verb} {} (document {}) {} = {:?} (was {})",
                    e.file.display(),
                    e.document,
                    e.field(),
                    e.new,
                    e.old
                        .as_deref()
                        .map_or("absent".to_string(), |o| format!("{o:?}"))
                ));
            }
        }
    }
    Ok(exit::OK)
}
