//! The rollout decision: given what Git, the forge and the cluster show, the one next step.
//!
//! The state of a rollout is not kept anywhere but where it already is: the weight on the
//! base branch (a stage is applied when the base carries its weight), the stage's pull request
//! (open, merged, closed), a rollback marker (a merged rollback PR or a commit trailer on the
//! base), and whether the stable workload already runs the canary's version (promotion). So a
//! re-run after a crash, or from a later workflow event, observes the same things and takes the
//! same step, and never opens a second PR for a stage. This module does no I/O: `next_step`
//! is a function from `Observed` to `Step`, tested with plain values.

use std::time::Duration;

use serde::Serialize;

pub mod merge;
mod scheme;
mod state;
#[cfg(test)]
mod tests;

pub use scheme::*;
pub(crate) use state::*;

use crate::gate::Verdict;
pub(crate) use merge::Comment;
pub use merge::{ApprovalGate, MergeDecision, PrState};

/// How a stage's change is approved.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// Wait until a person merges the pull request.
    PullRequest,
    /// The tool merges once the required approvals and green checks are there.
    Approved,
    /// The tool merges when checks pass.
    Auto,
    /// No pull request: commit to the base branch.
    Direct,
}

impl Approval {
    /// The forge's merge rule for this approval.
    pub fn gate(self, min_approvals: u32) -> ApprovalGate {
        match self {
            Approval::PullRequest => ApprovalGate::PullRequest,
            Approval::Approved => ApprovalGate::Approved { min: min_approvals },
            Approval::Auto => ApprovalGate::Auto,
            Approval::Direct => ApprovalGate::Direct,
        }
    }
}

/// One stage as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub weight: u32,
    pub approval: Approval,
}

/// A pull request as the plan needs to see it: its state, and what the approval rules
/// (`forge::decide_merge`) say about merging it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrView {
    pub number: u64,
    pub url: String,
    /// Its head branch (which says the change, see [`parse_branch`]).
    pub branch: String,
    /// The labels it carries now.
    pub labels: Vec<String>,
    pub head_sha: String,
    pub state: PrState,
    pub merge: MergeDecision,
}

/// Everything observed about one rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub stages: Vec<Stage>,
    /// The canary weight on the tip of the base branch.
    pub base_weight: u32,
    /// The pull request of each stage's branch, if one exists (same order as `stages`).
    pub stage_prs: Vec<Option<PrView>>,
    /// The rollback PR, if one exists.
    pub rollback_pr: Option<PrView>,
    /// The base carries a rollback commit for this rollout (direct mode, or after a merge).
    pub rolled_back_on_base: bool,
    /// The cluster gates' verdict for the stage the base is at, if they were run.
    pub gates: Option<Verdict>,
    /// Promotion: does the stable workload on the base already run the canary's version?
    pub stable_promoted: bool,
    /// The promotion PR (stable gets the canary's version), if one exists.
    pub promote_pr: Option<PrView>,
    /// The finishing PR (canary weight back to 0 after promotion), if one exists.
    pub finish_pr: Option<PrView>,
    /// Promote after the last stage (else the rollout is done when the last stage is healthy).
    pub promote: bool,
    /// An open request for a weight that is no configured stage (`propose --weight N`,
    /// branch `.../weight-N`): the rollout proposes nothing while it is open.
    pub manual_pr: Option<PrView>,
}

/// What to do next. Every variant names the stage (1-based) where one applies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Open (or find) the pull request for a stage, or commit it in direct mode.
    Propose {
        stage: usize,
        weight: u32,
    },
    /// The stage's PR waits for a person (or for checks).
    WaitForApproval {
        stage: usize,
        pr: u64,
        reason: String,
    },
    /// The tool merges the stage's PR.
    Merge {
        stage: usize,
        pr: u64,
    },
    /// The stage is merged: check the cluster.
    RunGates {
        stage: usize,
        weight: u32,
    },
    /// The gates have not decided yet.
    WaitForGates {
        stage: usize,
        reason: String,
    },
    /// Open the rollback to weight 0 (or merge it where allowed).
    Rollback {
        reason: String,
    },
    /// The rollback PR waits for a person.
    WaitForRollback {
        pr: u64,
    },
    /// Merge the rollback PR.
    MergeRollback {
        pr: u64,
    },
    /// Give the stable workload the canary's version.
    Promote,
    WaitForPromote {
        pr: u64,
        reason: String,
    },
    MergePromote {
        pr: u64,
    },
    /// After promotion: canary weight back to 0.
    Finish,
    WaitForFinish {
        pr: u64,
        reason: String,
    },
    MergeFinish {
        pr: u64,
    },
    /// The rollout is complete.
    Done,
    /// The rollout failed and was rolled back (or must be by hand).
    Failed {
        reason: String,
        /// The canary was set back to weight 0 (as opposed to a rollout stuck on a closed
        /// request, which needs a person).
        rolled_back: bool,
    },
}

impl Step {
    /// Steps that wait for the world (a reviewer, a sync); `reconcile` exits 0 on these.
    pub(crate) fn is_waiting(&self) -> bool {
        matches!(
            self,
            Step::WaitForApproval { .. }
                | Step::WaitForGates { .. }
                | Step::WaitForRollback { .. }
                | Step::WaitForPromote { .. }
                | Step::WaitForFinish { .. }
        )
    }
}

/// How long one pass may wait for `synced`/`rolled-out`, and what a timeout then means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GateBudget {
    pub wait: Duration,
    /// The stage's window (its timeout, counted from when it reached the base) outlasts this
    /// pass: a timeout now only means "not yet".
    pub window_open: bool,
    /// What is left of the window.
    pub left: Duration,
}

/// The gate budget of one pass. `run` (`slice: None`) waits the whole timeout in the process.
/// `reconcile` waits at most `slice`, and while the window (`since` + `timeout`) is open a
/// timeout is a wait, not a failure; past the window it fails.
pub(crate) fn gate_budget(
    since: i64,
    now: i64,
    timeout: Duration,
    slice: Option<Duration>,
) -> GateBudget {
    let Some(slice) = slice else {
        return GateBudget {
            wait: timeout,
            window_open: false,
            left: timeout,
        };
    };
    let end = since.saturating_add(timeout.as_secs() as i64);
    let left = Duration::from_secs(end.saturating_sub(now).max(0) as u64);
    let wait = slice.min(left).max(Duration::from_secs(1));
    GateBudget {
        wait,
        window_open: left > wait,
        left,
    }
}

/// A gate verdict in the light of the budget: a timeout inside an open window is a wait.
pub(crate) fn judge_timeout(verdict: Verdict, timed_out: bool, budget: &GateBudget) -> Verdict {
    match verdict {
        Verdict::Fail(reason) if timed_out && budget.window_open => Verdict::Wait(format!(
            "{reason}; the stage may take {} more",
            humantime::format_duration(budget.left)
        )),
        v => v,
    }
}

/// Where a rollout stands, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Position {
    /// Stages whose weight the base branch carries (1-based count).
    pub applied: usize,
    pub total: usize,
    pub weight: u32,
}

/// Count the applied stages: those whose weight the base carries (weights only rise).
pub fn position(o: &Observed) -> Position {
    let applied = o
        .stages
        .iter()
        .take_while(|s| s.weight <= o.base_weight && !(s.weight == 0 && o.base_weight == 0))
        .count();
    let applied = if o.base_weight == 0 { 0 } else { applied };
    Position {
        applied,
        total: o.stages.len(),
        weight: o.base_weight,
    }
}

fn pr_step(pr: &PrView, wait: impl Fn(String) -> Step, merge: impl Fn() -> Step) -> Option<Step> {
    match (&pr.state, &pr.merge) {
        (PrState::Open, MergeDecision::Merge) => Some(merge()),
        (PrState::Open, MergeDecision::Wait(r) | MergeDecision::Blocked(r)) => {
            Some(wait(r.clone()))
        }
        // Merged but the base does not show it yet (observed before the fetch): wait.
        (PrState::Merged { .. }, _) => Some(wait(format!(
            "#{} is merged; waiting for the base branch to show it",
            pr.number
        ))),
        (PrState::Closed, _) => None,
    }
}

/// The next step of a rollout.
pub(crate) fn next_step(o: &Observed) -> Step {
    // A rollback, once started, wins over everything else.
    let rollback_merged = matches!(
        o.rollback_pr.as_ref().map(|p| &p.state),
        Some(PrState::Merged { .. })
    );
    if o.rolled_back_on_base || rollback_merged {
        return match (&o.rollback_pr, o.rolled_back_on_base || o.base_weight == 0) {
            (Some(pr), false) => Step::WaitForRollback { pr: pr.number },
            _ => Step::Failed {
                reason: "rolled back: the canary weight was set to 0".into(),
                rolled_back: true,
            },
        };
    }
    if let Some(pr) = o.rollback_pr.as_ref().filter(|p| p.state == PrState::Open) {
        return match &pr.merge {
            MergeDecision::Merge => Step::MergeRollback { pr: pr.number },
            _ => Step::WaitForRollback { pr: pr.number },
        };
    }

    let pos = position(o);
    let n = o.stages.len();

    // Promotion has started: the stable runs the canary's version. Nothing goes on until the
    // cluster shows it (the stable rolled out on the canary's images, steady): weight 0 before
    // that would send users back to the old version; and the rollout is done only once the
    // cluster shows weight 0. A failure here is not rolled back by weight (the stable itself
    // runs the new version): it needs a person.
    if o.stable_promoted {
        let what = if o.base_weight == 0 {
            "the finish (weight 0)"
        } else {
            "the promotion"
        };
        match &o.gates {
            None => {
                return Step::RunGates {
                    stage: n,
                    weight: o.base_weight,
                }
            }
            Some(Verdict::Fail(reason)) => {
                return Step::Failed {
                    reason: format!(
                        "{what} is live but unhealthy: {reason}; the stable runs the canary's version, so revert the promotion commit by hand"
                    ),
                    rolled_back: false,
                }
            }
            Some(Verdict::Wait(reason)) | Some(Verdict::Inconclusive(reason)) => {
                return Step::WaitForGates {
                    stage: n,
                    reason: format!("{what}: {reason}"),
                }
            }
            Some(Verdict::Pass) => {}
        }
        if o.base_weight == 0 {
            return Step::Done;
        }
        return match &o.finish_pr {
            Some(pr) => pr_step(
                pr,
                |reason| Step::WaitForFinish {
                    pr: pr.number,
                    reason,
                },
                || Step::MergeFinish { pr: pr.number },
            )
            .unwrap_or(Step::Finish),
            None => Step::Finish,
        };
    }

    // The stage the base is at must pass its gates before anything moves forward.
    if pos.applied > 0 {
        let stage = pos.applied;
        match &o.gates {
            None => {
                return Step::RunGates {
                    stage,
                    weight: o.base_weight,
                }
            }
            Some(Verdict::Fail(reason)) => {
                return Step::Rollback {
                    reason: format!("stage {stage} ({}%): {reason}", o.base_weight),
                }
            }
            Some(Verdict::Wait(reason)) | Some(Verdict::Inconclusive(reason)) => {
                return Step::WaitForGates {
                    stage,
                    reason: reason.clone(),
                }
            }
            Some(Verdict::Pass) => {}
        }
    }

    if pos.applied >= n {
        if !o.promote {
            return Step::Done;
        }
        // Last stage healthy: promote.
        return match &o.promote_pr {
            Some(pr) => pr_step(
                pr,
                |reason| Step::WaitForPromote {
                    pr: pr.number,
                    reason,
                },
                || Step::MergePromote { pr: pr.number },
            )
            .unwrap_or(Step::Failed {
                reason: "the promotion pull request was closed without merging".into(),
                rolled_back: false,
            }),
            None => Step::Promote,
        };
    }

    let next = pos.applied; // 0-based index of the next stage
    let weight = o.stages[next].weight;
    match o.stage_prs.get(next).and_then(|p| p.as_ref()) {
        None => match o.manual_pr.as_ref().filter(|p| p.state == PrState::Open) {
            Some(pr) => Step::WaitForApproval {
                stage: next + 1,
                pr: pr.number,
                reason: format!(
                    "#{} proposes a weight that is no stage; merge or close it first",
                    pr.number
                ),
            },
            None => Step::Propose {
                stage: next + 1,
                weight,
            },
        },
        Some(pr) => pr_step(
            pr,
            |reason| Step::WaitForApproval {
                stage: next + 1,
                pr: pr.number,
                reason,
            },
            || Step::Merge {
                stage: next + 1,
                pr: pr.number,
            },
        )
        .unwrap_or_else(|| {
            if pos.applied == 0 {
                Step::Failed {
                    reason: format!(
                        "the stage {} pull request #{} was closed without merging",
                        next + 1,
                        pr.number
                    ),
                    rolled_back: false,
                }
            } else {
                Step::Rollback {
                    reason: format!(
                        "the stage {} pull request #{} was closed without merging",
                        next + 1,
                        pr.number
                    ),
                }
            }
        }),
    }
}
