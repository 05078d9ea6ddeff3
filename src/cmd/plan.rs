//! `plan`: discovery report.
use crate::cli::RepoArgs;
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}
pub fn run(_args: PlanArgs) -> anyhow::Result<u8> {
    Ok(0)
}
