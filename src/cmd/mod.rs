//! One file per subcommand: parse nothing, decide nothing; call the library and print.

pub mod check;
pub mod gates;
pub mod init_canary;
pub mod plan;
pub mod propose;
pub mod rollout;
pub mod set_weight;

use crate::cli::{Cli, Command};

/// Run the parsed command line; the error's type decides the exit code in `main`.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Propose(args) => propose::run(args).await,
        Command::SetWeight(args) => set_weight::run(args),
        Command::InitCanary(args) => init_canary::run(args),
        Command::Run(args) => rollout::run(rollout::Mode::Run, args, None).await,
        Command::Reconcile(args) => rollout::run(rollout::Mode::Reconcile, args, None).await,
        Command::Status(args) => rollout::run(rollout::Mode::Status, args, None).await,
        Command::Rollback(args) => {
            rollout::run(rollout::Mode::Rollback, args.rollout, Some(args.reason)).await
        }
        Command::Promote(args) => rollout::run(rollout::Mode::Promote, args, None).await,
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::config::schema())?
            );
            Ok(crate::exit::OK)
        }
        Command::Check(args) => check::run(args).await,
    }
}
