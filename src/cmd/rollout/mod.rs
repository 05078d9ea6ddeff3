//! `run`, `reconcile`, `status`, `rollback`, `promote`: the rollout commands over `rollout`.
//!
//! They share one set of flags (`RolloutArgs`), resolved with the config file and the
//! environment by `settings` and opened by `connect`. They differ only in how far they go:
//! `status` decides and reports, `reconcile` takes one step, `run` loops to the end. What they
//! print and publish is in `outputs`.

mod outputs;

use std::time::{Duration, Instant};

use super::args::{CanaryArgs, ConfigArg, DryRunArg, GateArgs, PublishArgs, RepoArgs};
use super::connect::connect;
use super::settings::{self, Cmd};
use crate::config::{ClusterMode, RollbackPolicy};
use crate::exit::{self, UsageError};
use crate::forge::MergeMethod;
use crate::plan::{self, Approval, Step};
use crate::report::Output;
use crate::report::{self, console, OutputKey, RunStatus};
use crate::rollout::{GateRunner, NoGates, PassReport, Rollout};
pub(crate) use outputs::render_stage_list;
use outputs::{empty_report, publish_outputs, run_status, status_word};

/// Flags shared by the rollout commands; each overrides the same field of the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub canary: CanaryArgs,
    #[command(flatten)]
    pub publish: PublishArgs,
    /// How each stage is approved.
    #[arg(long, env = "GITOPS_CANARY_APPROVAL", value_enum)]
    pub approval: Option<Approval>,
    /// Approvals required by `--approval approved`.
    #[arg(long, env = "GITOPS_CANARY_MIN_APPROVALS")]
    pub min_approvals: Option<u32>,
    /// How the tool merges a pull request it may merge.
    #[arg(long, env = "GITOPS_CANARY_MERGE_METHOD", value_enum)]
    pub merge_method: Option<MergeMethod>,
    /// Cluster gates: `kube` (KUBECONFIG / in-cluster) or `none` (explicitly off).
    #[arg(long, env = "GITOPS_CANARY_CLUSTER", value_enum)]
    pub cluster: Option<ClusterMode>,
    #[command(flatten)]
    pub gates: GateArgs,
    /// What to do when a gate fails.
    #[arg(long, env = "GITOPS_CANARY_ROLLBACK", value_enum)]
    pub rollback: Option<RollbackPolicy>,
    /// Promote the canary to stable after the last stage.
    #[arg(long, env = "GITOPS_CANARY_PROMOTE")]
    pub promote: Option<bool>,
    /// `reconcile`: how long one pass waits for a sync before it reports waiting (exit 0); a
    /// stage's `--timeout` counts from when it reached the base, across passes.
    #[arg(long, env = "GITOPS_CANARY_RECONCILE_WAIT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub reconcile_wait: Duration,
    /// `run`: how often to look again while waiting.
    #[arg(long, env = "GITOPS_CANARY_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "15s")]
    pub poll_interval: Duration,
    /// `run`: give up after waiting this long in all.
    #[arg(long, env = "GITOPS_CANARY_MAX_WAIT", value_parser = humantime::parse_duration, default_value = "24h")]
    pub max_wait: Duration,
    #[command(flatten)]
    pub dry_run: DryRunArg,
}

/// `rollback` also takes a reason.
#[derive(Debug, Clone, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// Why (shown in the rollback PR).
    #[arg(
        long,
        env = "GITOPS_CANARY_REASON",
        default_value = "requested by hand"
    )]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Reconcile,
    Status,
    Rollback,
    Promote,
}

pub async fn run(mode: Mode, args: RolloutArgs, reason: Option<String>) -> anyhow::Result<u8> {
    let output = args.repo.output;
    let dry_run = args.dry_run.dry_run;
    let mut ci = report::ci();
    let settings = settings::load(Cmd::Rollout(&args))?;
    if let (Some(rep), Some(t)) = (
        ci.as_mut(),
        settings.git.as_ref().and_then(|g| g.token.as_ref()),
    ) {
        rep.mask(t)?;
    }
    let conn = connect(&settings).await?;
    let ws = conn
        .ws
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the rollout commands publish: no workspace was opened"))?;
    let gates: &dyn GateRunner = match &conn.runner {
        Some(r) => r,
        None => &NoGates,
    };
    let rollout = Rollout {
        settings: settings.rollout.clone(),
        ws,
        forge: conn.forge.as_ref(),
        gates,
        dry_run: dry_run || mode == Mode::Status,
        run_gates: mode != Mode::Status,
        passed: Default::default(),
        wait_slice: (mode != Mode::Run).then_some(args.reconcile_wait),
    };
    let s = &settings.rollout;
    let started = Instant::now();
    let mut passes: Vec<PassReport> = Vec::new();
    let result: anyhow::Result<PassReport> = match mode {
        Mode::Run => {
            let mut show = |r: &PassReport| {
                let text = render_stage_list(s, r, started.elapsed());
                if let Some(rep) = ci.as_mut() {
                    // One collapsible group per pass keeps a long run readable in the CI log.
                    let title = format!(
                        "gitops-canary: stage {}/{} ({}%): {}",
                        r.stage, r.stages, r.weight, r.action
                    );
                    let _ = rep.group(&title);
                    for line in text.lines() {
                        let _ = rep.progress(line);
                    }
                    let _ = rep.end_group();
                } else if output == Output::Human {
                    console::out(&text);
                }
                passes.push(r.clone());
            };
            rollout.run(&mut show).await
        }
        Mode::Reconcile | Mode::Status => rollout.reconcile().await,
        Mode::Rollback => {
            let obs = rollout.observe().await?;
            let mut r = empty_report(s, &obs);
            r.step = Step::Rollback {
                reason: reason.clone().unwrap_or_default(),
            };
            match rollout
                .rollback(reason.as_deref().unwrap_or("requested"), &obs, &mut r)
                .await
            {
                Ok(()) => rollout.settle(&mut r).await.map(|()| r),
                Err(e) => Err(e),
            }
        }
        Mode::Promote => {
            let obs = rollout.observe().await?;
            let last = s.stages.last().map_or(100, |st| st.weight);
            if obs.observed.base_weight < last && !obs.observed.stable_promoted {
                return Err(UsageError::new(format!(
                    "rollout {}: the canary is at {}%, not at the last stage ({last}%); promote after the last stage",
                    s.rollout, obs.observed.base_weight
                ))
                .help("run `reconcile` (or `run`) until the last stage is applied, then promote")
                .into());
            }
            let mut o = obs.observed.clone();
            o.gates = Some(crate::gate::Verdict::Pass);
            let step = plan::next_step(&o);
            let mut r = empty_report(s, &obs);
            r.step = step.clone();
            match rollout.act_step(&step, &obs, &mut r).await {
                Ok(()) => rollout.settle(&mut r).await.map(|()| r),
                Err(e) => Err(e),
            }
        }
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if output == Output::Json {
                let doc = serde_json::json!({
                    "schemaVersion": 1,
                    "status": "failed",
                    "error": exit::render(&e),
                    "passes": passes,
                });
                console::json(&doc)?;
            }
            if let Some(rep) = ci.as_mut() {
                let written = (|| {
                    if let Some(last) = passes.last() {
                        publish_outputs(rep.as_mut(), last, s)?;
                    }
                    let status = match passes.last().map(|p| run_status(&p.step, s)) {
                        Some(RunStatus::RolledBack) => RunStatus::RolledBack,
                        _ => RunStatus::Failed,
                    };
                    rep.output(OutputKey::Status, status.as_str())?;
                    rep.finish()?;
                    Ok::<(), anyhow::Error>(())
                })();
                // The run's own error is the one that matters; a report that could not be
                // written is said as well, never instead.
                if let Err(re) = written {
                    console::err(&format!("error: the CI report was not written: {re}"));
                }
            }
            return Err(e);
        }
    };
    if let Some(rep) = ci.as_mut() {
        publish_outputs(rep.as_mut(), &report, s)?;
        rep.finish()?;
    }
    match output {
        Output::Json => {
            let doc = serde_json::json!({
                "schemaVersion": 1,
                "status": status_word(&report.step, s),
                "result": report,
                "passes": passes,
            });
            console::json(&doc)?;
        }
        Output::Human => {
            if mode != Mode::Run {
                console::out(&render_stage_list(s, &report, started.elapsed()));
            }
            if !report.diff.is_empty() && dry_run {
                console::out(&report.diff);
            }
        }
    }
    // A non-zero exit always says why on stderr, whatever the output mode.
    Ok(match (&report.step, mode) {
        (Step::Failed { reason, .. }, _) => {
            console::err(&format!("error: rollout {} failed: {reason}", s.rollout));
            exit::FAILED
        }
        (Step::Rollback { reason }, Mode::Reconcile | Mode::Run) => {
            console::err(&format!(
                "error: rollout {} is rolled back: {reason}",
                s.rollout
            ));
            exit::FAILED
        }
        _ => exit::OK,
    })
}
