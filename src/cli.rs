//! The command line: clap derive types and nothing else.
//!
//! Every flag has an environment variable `GITOPS_CANARY_<FLAG>` and an input of the same
//! name in `action.yml` (a test holds the two together), so the same tool reads flags on a
//! laptop, `with:` inputs in a GitHub Action and variables in a GitLab job.

use clap::{Parser, Subcommand};

use crate::cmd;

#[derive(Debug, Parser)]
#[command(name = "gitops-canary", version, about = "Canary releases through Git", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More detail on stderr: retries, requests, decisions (`GITOPS_CANARY_LOG` takes a
    /// tracing filter such as `gitops_canary=debug`).
    #[arg(long, short, global = true, env = "GITOPS_CANARY_VERBOSE")]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find canary Ingresses and their stable partners; report weights and problems.
    Plan(cmd::plan::PlanArgs),
    /// Publish one weight change on a branch and open (or find) its pull/merge request.
    Propose(cmd::propose::ProposeArgs),
    /// Set the canary weight of one Ingress, changing that value and nothing else.
    SetWeight(cmd::set_weight::SetWeightArgs),
    /// Write a canary Ingress derived from a stable one.
    InitCanary(cmd::init_canary::InitCanaryArgs),
    /// Drive the rollout to the end in one process (fully automatic pipelines).
    Run(cmd::rollout::RolloutArgs),
    /// Take at most one step of the rollout and exit (for workflow events).
    Reconcile(cmd::rollout::RolloutArgs),
    /// Where the rollout stands, from Git, the forge and the cluster.
    Status(cmd::rollout::RolloutArgs),
    /// Set the canary weight to 0 through the same PR machinery.
    Rollback(cmd::rollout::RollbackArgs),
    /// At the last stage: give the stable the canary's version, then the canary weight 0.
    Promote(cmd::rollout::RolloutArgs),
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Run the gates for one canary once (synced, rolled-out, steady, metrics).
    Check(cmd::check::CheckArgs),
}

pub use crate::report::Output;

/// Run the parsed command line; the error's type decides the exit code in `main`.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Plan(args) => cmd::plan::run(args),
        Command::Propose(args) => cmd::propose::run(args).await,
        Command::SetWeight(args) => cmd::set_weight::run(args),
        Command::InitCanary(args) => cmd::init_canary::run(args),
        Command::Run(args) => cmd::rollout::run(cmd::rollout::Mode::Run, args, None).await,
        Command::Reconcile(args) => {
            cmd::rollout::run(cmd::rollout::Mode::Reconcile, args, None).await
        }
        Command::Status(args) => cmd::rollout::run(cmd::rollout::Mode::Status, args, None).await,
        Command::Rollback(args) => {
            cmd::rollout::run(
                cmd::rollout::Mode::Rollback,
                args.rollout,
                Some(args.reason),
            )
            .await
        }
        Command::Promote(args) => cmd::rollout::run(cmd::rollout::Mode::Promote, args, None).await,
        Command::Schema => {
            crate::report::console::json(&crate::config::schema())?;
            Ok(crate::exit::OK)
        }
        Command::Check(args) => cmd::check::run(args).await,
    }
}
