//! The `gitops-canary` binary: mask secrets, parse flags, run, map the error to an exit code.
//!
//! The order matters: secrets are found in the raw arguments and environment and masked
//! before the first line of output (clap's own usage errors included); the tracing subscriber
//! writes through the same scrubbing as every other line; SIGINT/SIGTERM are answered by a
//! task of their own, because a blocking libgit2 call can hold the command's thread.

use std::process::ExitCode;

use clap::Parser;
use gitops_canary::report::console;
use gitops_canary::{cli::Cli, exit, secret};

fn main() -> ExitCode {
    // One TLS stack for kube, octocrab and reqwest: a second provider would panic at run time.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A blank action input arrives as an empty variable; it means "not given".
    gitops_canary::report::unset_empty_inputs();
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let github = var("GITHUB_ACTIONS") == Some("true");
    console::mask_first(&secret::find(&args, &env), github);
    let cli = Cli::parse();
    gitops_canary::report::logging::install(cli.verbose, var("GITOPS_CANARY_LOG"));
    let in_ci = github || var("GITLAB_CI") == Some("true");
    if in_ci {
        // A CI runner mounts the checkout owned by another uid than the job's container user
        // (GitHub: /github/workspace is the runner's, the action runs as root); libgit2 would
        // refuse it as "not owned by the current user". The tool only reads that checkout (it
        // works in a private clone), and the path is the job's own.
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
            console::err(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::FAILED);
        }
    };
    runtime.spawn(gitops_canary::cmd::on_cancel());
    match runtime.block_on(gitops_canary::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            console::err(&format!("error: {}", exit::render(&err)));
            for help in exit::help(&err) {
                console::err(&format!("help: {help}"));
            }
            ExitCode::from(exit::code_for(&err))
        }
    }
}
