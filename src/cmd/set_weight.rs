//! `set-weight`.
use crate::cli::RepoArgs;
#[derive(Debug, clap::Args)]
pub struct SetWeightArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}
pub fn run(_args: SetWeightArgs) -> anyhow::Result<u8> {
    Ok(0)
}
