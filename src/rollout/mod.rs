//! The rollout loop: observe Git, the forge and the cluster; decide with `plan::next_step`;
//! take at most one step; report.
//!
//! `reconcile` is one pass of this loop and `run` is the loop until the rollout is done or
//! failed. Every observation starts from the remote base branch and the forge, never from
//! local state, so a run that crashed between any two steps is picked up by the next one at the
//! same point: a stage branch is found by its name, its PR by its branch, and the stage itself
//! by the weight the base branch carries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::config::{ForgeKind, RollbackPolicy};
use crate::forge::{
    decide_merge, AnyForge, ApprovalGate, Forge, MergeDecision, MergeMethod, MergeOutcome,
    NewPullRequest, PrState, PullRequest, StateFilter,
};
use crate::gate::Verdict;
use crate::git::{Author, ChangeRequest, Target, Workspace};
use crate::manifest::{self, workload, Repo, Selector};
use crate::plan::{self, Approval, ChangeKind, Observed, PrView, Stage, Step};
use crate::router::helm::WeightFrom;
use crate::router::{default_router, Route};

/// Errors of the loop itself; adapter errors pass through as their own types.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    #[error("{selector}: {reason}")]
    Target { selector: String, reason: String },
    #[error("the canaries of rollout {rollout} disagree on the weight on {base}: {weights}")]
    WeightsDiffer {
        rollout: String,
        base: String,
        weights: String,
    },
    #[error("cannot promote {canary}: {reason}")]
    Promote { canary: String, reason: String },
    #[error("rollout {rollout}: {reason}")]
    Failed { rollout: String, reason: String },
    #[error("rollout {rollout}: #{number} is not among the requests observed in this pass; not merging a head that was not judged")]
    Unobserved { rollout: String, number: u64 },
    #[error("rollout {rollout}: still waiting after {waited:?}: {reason}")]
    TimedOut {
        rollout: String,
        waited: Duration,
        reason: String,
    },
}

impl crate::fault::Classify for AppError {
    fn is_bad_input(&self) -> bool {
        matches!(self, AppError::Target { .. } | AppError::Promote { .. })
    }
}

/// Everything the loop needs to know, resolved from the config file and the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rollout: String,
    /// The canaries moved together: Ingresses, HTTPRoutes, a chart value, the Kustomize root.
    pub selection: Selection,
    pub stages: Vec<Stage>,
    pub min_approvals: u32,
    pub base: String,
    pub forge: ForgeKind,
    pub merge_method: MergeMethod,
    pub labels: Vec<String>,
    pub rollback: RollbackPolicy,
    pub promote: bool,
    pub author: Author,
    /// How often `run` looks again while it waits for a person or a sync.
    pub poll: Duration,
    /// How long `run` waits in all before giving up.
    pub max_wait: Duration,
    /// The gates that run after each merge (for PR bodies and reports).
    pub gate_names: Vec<String>,
    /// How long `synced` and `rolled-out` may take after a stage reaches the base.
    pub gate_timeout: Duration,
}

impl Settings {
    fn direct(&self, approval: Approval) -> bool {
        self.forge == ForgeKind::None || approval == Approval::Direct
    }

    fn stage_approval(&self, stage: usize) -> Approval {
        self.stages
            .get(stage.saturating_sub(1))
            .map_or(Approval::PullRequest, |s| s.approval)
    }

    /// Promotion and the finishing change follow the last stage's approval.
    fn final_approval(&self) -> Approval {
        self.stages
            .last()
            .map_or(Approval::PullRequest, |s| s.approval)
    }

    fn rollback_approval(&self) -> Approval {
        match (self.rollback, self.final_approval()) {
            (_, Approval::Direct) => Approval::Direct,
            (RollbackPolicy::PullRequest, _) => Approval::PullRequest,
            _ => Approval::Auto,
        }
    }
}

/// What the gates are given for one stage.
#[derive(Debug, Clone)]
pub struct GateContext {
    pub rollout: String,
    pub stage: usize,
    pub weight: u32,
    /// The base tip the gates must see applied (Argo CD / Flux revision).
    pub revision: String,
    pub canaries: Vec<Route>,
    pub stables: Vec<Route>,
    pub canary_workloads: Vec<workload::Workload>,
    pub stable_workloads: Vec<workload::Workload>,
    /// What the gates watch: every canary route, every Deployment on each side, the metric
    /// labels, resolved once from the manifests.
    pub targets: crate::gate::target::Targets,
    /// This pass's budget for `synced` and `rolled-out` (else the runner's own timeout).
    pub timeout: Option<Duration>,
}

/// The result of the gates for one stage.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub verdict: Verdict,
    /// One line per gate: name, verdict, what was last seen.
    pub gates: Vec<GateLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateLine {
    pub gate: String,
    pub verdict: Verdict,
    pub detail: String,
    /// The verdict is the budget running out, not a state that failed.
    #[serde(skip)]
    pub timed_out: bool,
}

/// The cluster gates, behind a trait so the loop does not care whether they watch a real
/// cluster or are turned off.
pub trait GateRunner {
    fn run<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, anyhow::Result<GateReport>>;
}

/// `--cluster none`: no gates; every stage passes once merged.
pub(crate) struct NoGates;

impl GateRunner for NoGates {
    fn run<'a>(&'a self, _ctx: &'a GateContext) -> BoxFuture<'a, anyhow::Result<GateReport>> {
        Box::pin(async {
            Ok(GateReport {
                verdict: Verdict::Pass,
                gates: vec![GateLine {
                    gate: "none".into(),
                    verdict: Verdict::Pass,
                    timed_out: false,
                    detail: "cluster gates are off (--cluster none)".into(),
                }],
            })
        })
    }
}

/// One observation of the rollout.
#[derive(Debug, Clone)]
pub struct Observation {
    pub tip: String,
    /// When the base's tip was committed (seconds since the epoch): a stage's timeout counts
    /// from when it reached the base, not from when this process started.
    pub tip_time: i64,
    pub observed: Observed,
    pub gate_context: GateContext,
    /// The PR of the stage the base is at (to comment gate results on).
    pub current_stage_pr: Option<u64>,
}

impl Observation {
    /// A PR seen in this observation, by number.
    pub fn pr(&self, number: u64) -> Option<&PrView> {
        let o = &self.observed;
        o.stage_prs
            .iter()
            .flatten()
            .chain(&o.rollback_pr)
            .chain(&o.promote_pr)
            .chain(&o.finish_pr)
            .chain(&o.manual_pr)
            .find(|p| p.number == number)
    }
}

/// What one pass did, for reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassReport {
    pub rollout: String,
    pub base: String,
    pub tip: String,
    pub weight: u32,
    pub stage: usize,
    pub stages: usize,
    /// The step decided (before acting).
    pub step: Step,
    /// What was done about it, in words.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PrRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gates: Option<GateReport>,
    /// Unified diff of a change made (or, with --dry-run, that would be made).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// The commit pushed straight to the base (direct mode), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrRef {
    pub number: u64,
    pub url: String,
    pub branch: String,
    /// The head commit this pass saw or pushed.
    pub head_sha: String,
    pub operation: PrOperation,
}

/// What this pass did to its pull request, in the words of the create-pull-request action
/// (whose outputs users already script against).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrOperation {
    Created,
    Updated,
    Merged,
    None,
}

impl PrOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            PrOperation::Created => "created",
            PrOperation::Updated => "updated",
            PrOperation::Merged => "merged",
            PrOperation::None => "none",
        }
    }
}

/// The rollout loop over one workspace and forge.
pub struct Rollout<'a> {
    pub settings: Settings,
    pub ws: &'a Workspace,
    pub forge: Option<&'a AnyForge>,
    pub gates: &'a dyn GateRunner,
    pub dry_run: bool,
    /// Run the gates when the plan asks for them (`status` only reports that they are due).
    pub run_gates: bool,
    /// `reconcile`: wait at most this long for `synced`/`rolled-out` in one pass, and report
    /// waiting (exit 0) while the stage's timeout window is still open. `None` (`run`): wait
    /// the whole budget in the process.
    pub wait_slice: Option<Duration>,
    /// Verdicts already reached in this process, by base revision: a stage's gates run once
    /// per merged revision (a `run` pass that waits for the next stage's review must not bake
    /// again).
    pub passed: std::sync::Mutex<Vec<(String, GateReport)>>,
}

/// Crash-test seam: with `GITOPS_CANARY_FAILPOINT=N` the process aborts right after its N-th
/// change to the outside world (a push, a PR, a comment, a merge), as a crash or a killed job
/// would. The end-to-end tests kill the tool at every such boundary and re-run it.
fn failpoint(what: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let at = std::env::var("GITOPS_CANARY_FAILPOINT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if at == Some(n) {
        eprintln!("failpoint {n}: aborting after {what}");
        std::process::abort();
    }
}

pub use crate::manifest::needs_parse;

mod act;
mod observe;
mod pass;
mod select;
mod text;

pub(crate) use act::write_record;
pub use select::*;
pub(crate) use text::*;

impl Rollout<'_> {
    pub(super) fn forge(&self) -> Option<&AnyForge> {
        if self.settings.forge == ForgeKind::None {
            None
        } else {
            self.forge
        }
    }
}
