//! `init-canary`.
use crate::cli::RepoArgs;
#[derive(Debug, clap::Args)]
pub struct InitCanaryArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}
pub fn run(_args: InitCanaryArgs) -> anyhow::Result<u8> {
    Ok(0)
}
