//! `init-canary`: write a canary Ingress derived from a stable one.

use crate::cli::{Output, RepoArgs};
use crate::report::console;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct InitCanaryArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The stable Ingress: NAME or NAMESPACE/NAME.
    #[arg(long, env = "GITOPS_CANARY_INGRESS")]
    pub ingress: String,
    /// The Service that serves the canary.
    #[arg(long, env = "GITOPS_CANARY_SERVICE")]
    pub service: String,
    /// Namespace of the canary (the second-namespace layout); default: the stable's.
    #[arg(long, env = "GITOPS_CANARY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Initial weight.
    #[arg(long, env = "GITOPS_CANARY_WEIGHT", default_value_t = 0)]
    pub weight: u32,
    /// Print the file and write nothing.
    #[arg(long, env = "GITOPS_CANARY_DRY_RUN")]
    pub dry_run: bool,
}

pub fn run(args: InitCanaryArgs) -> anyhow::Result<u8> {
    let dir = &args.repo.repo;
    let new = manifest::init_canary(
        dir,
        &args.ingress,
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
