//! One file per subcommand: parse nothing, decide nothing; call the library and print. The flags
//! several commands share are declared once (`args`); what they resolve to with the config file
//! and the environment is decided once (`settings`), and opened once (`connect`).

pub mod args;
pub mod check;
pub(crate) mod connect;
pub mod gates;
pub mod init_canary;
pub mod plan;
pub mod propose;
pub mod rollout;
pub mod set_weight;
pub(crate) mod settings;

/// Wait for SIGINT or SIGTERM (CI cancels a job with SIGTERM, then SIGKILL ~7.5 s later) and
/// end the process cleanly: say so on stderr, write `status=cancelled` to the CI outputs and
/// summary, exit 130 or 143. Every remote step the tool takes is atomic on the server (a push
/// updates its ref whole or not at all; a request is made or not), and a re-run adopts what a
/// step left (the pushed branch, the opened request), so stopping between or inside steps
/// never leaves a state a re-run cannot pick up. Runs as its own task: the command's thread
/// may be inside a blocking libgit2 call.
pub async fn on_cancel() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let (name, code) = tokio::select! {
        _ = term.recv() => ("SIGTERM", crate::exit::TERMINATED),
        _ = int.recv() => ("SIGINT", crate::exit::INTERRUPTED),
    };
    crate::report::console::err(&format!(
        "error: cancelled by {name}; nothing is left half-done, a re-run picks up from here"
    ));
    if let Some(mut rep) = crate::report::ci() {
        let _ = rep.output(
            crate::report::OutputKey::Status,
            crate::report::RunStatus::Cancelled.as_str(),
        );
        let _ = rep.summary_table(
            &crate::report::Table::new("gitops-canary", &["status", "why"])
                .row(["cancelled".to_string(), format!("{name} received")]),
        );
        let _ = rep.finish();
    }
    std::process::exit(i32::from(code));
}
