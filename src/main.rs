//! The `gitops-canary` binary: parse flags, run, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser;
use gitops_canary::{cli::Cli, exit};

fn main() -> ExitCode {
    // One TLS stack for kube, octocrab and reqwest: a second provider would panic at run time.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A blank action input arrives as an empty variable; it means "not given".
    gitops_canary::report::unset_empty_inputs();
    let cli = Cli::parse();
    let in_ci = ["GITHUB_ACTIONS", "GITLAB_CI"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| v == "true"));
    if in_ci {
        // A CI runner mounts the checkout owned by another uid than the job's container user
        // (GitHub: /github/workspace is the runner's, the action runs as root); libgit2 would
        // refuse it as "not owned by the current user". The path is the job's own checkout.
        // SAFETY: called once at start-up, before any other libgit2 call or thread.
        unsafe {
            let _ = git2::opts::set_verify_owner_validation(false);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(gitops_canary::cmd::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", exit::render(&err));
            ExitCode::from(exit::code_for(&err))
        }
    }
}
