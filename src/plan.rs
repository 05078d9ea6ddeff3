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

use crate::gate::Verdict;
pub use merge::{ApprovalGate, Comment, MergeDecision, PrState};

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
    pub fn is_waiting(&self) -> bool {
        matches!(
            self,
            Step::WaitForApproval { .. }
                | Step::WaitForGates { .. }
                | Step::WaitForRollback { .. }
                | Step::WaitForPromote { .. }
                | Step::WaitForFinish { .. }
        )
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Step::Done | Step::Failed { .. })
    }
}

/// How long one pass may wait for `synced`/`rolled-out`, and what a timeout then means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateBudget {
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
pub fn gate_budget(since: i64, now: i64, timeout: Duration, slice: Option<Duration>) -> GateBudget {
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
pub fn judge_timeout(verdict: Verdict, timed_out: bool, budget: &GateBudget) -> Verdict {
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
pub fn next_step(o: &Observed) -> Step {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(approval: Approval) -> Vec<Stage> {
        [10, 25, 50, 100]
            .iter()
            .map(|w| Stage {
                weight: *w,
                approval,
            })
            .collect()
    }

    fn observed(base_weight: u32) -> Observed {
        Observed {
            stages: stages(Approval::PullRequest),
            base_weight,
            stage_prs: vec![None; 4],
            rollback_pr: None,
            rolled_back_on_base: false,
            gates: None,
            stable_promoted: false,
            promote_pr: None,
            finish_pr: None,
            promote: true,
            manual_pr: None,
        }
    }

    fn pr(number: u64, state: PrState, merge: MergeDecision) -> Option<PrView> {
        Some(PrView {
            number,
            url: format!("https://example/pr/{number}"),
            branch: String::new(),
            labels: Vec::new(),
            head_sha: "h".into(),
            state,
            merge,
        })
    }

    #[test]
    fn a_fresh_rollout_proposes_stage_one() {
        assert_eq!(
            next_step(&observed(0)),
            Step::Propose {
                stage: 1,
                weight: 10
            }
        );
    }

    #[test]
    fn an_open_pr_waits_for_a_person_under_the_pull_request_gate() {
        let mut o = observed(0);
        o.stage_prs[0] = pr(
            7,
            PrState::Open,
            MergeDecision::Wait("waiting for a maintainer".into()),
        );
        assert!(matches!(
            next_step(&o),
            Step::WaitForApproval {
                stage: 1,
                pr: 7,
                ..
            }
        ));
        o.stage_prs[0] = pr(7, PrState::Open, MergeDecision::Merge);
        assert_eq!(next_step(&o), Step::Merge { stage: 1, pr: 7 });
        o.stage_prs[0] = pr(
            7,
            PrState::Open,
            MergeDecision::Wait("1 of 2 approvals".into()),
        );
        assert_eq!(
            next_step(&o),
            Step::WaitForApproval {
                stage: 1,
                pr: 7,
                reason: "1 of 2 approvals".into()
            }
        );
    }

    #[test]
    fn a_merged_stage_runs_gates_then_moves_on() {
        let mut o = observed(25);
        o.stage_prs[0] = pr(
            1,
            PrState::Merged {
                merge_sha: "a".into(),
            },
            MergeDecision::Merge,
        );
        o.stage_prs[1] = pr(
            2,
            PrState::Merged {
                merge_sha: "b".into(),
            },
            MergeDecision::Merge,
        );
        assert_eq!(
            next_step(&o),
            Step::RunGates {
                stage: 2,
                weight: 25
            }
        );
        o.gates = Some(Verdict::Wait("Argo CD is syncing".into()));
        assert!(matches!(next_step(&o), Step::WaitForGates { stage: 2, .. }));
        o.gates = Some(Verdict::Pass);
        assert_eq!(
            next_step(&o),
            Step::Propose {
                stage: 3,
                weight: 50
            }
        );
        o.gates = Some(Verdict::Fail("success rate 0.90 < 0.99".into()));
        assert!(matches!(next_step(&o), Step::Rollback { .. }));
    }

    #[test]
    fn rollback_then_failed() {
        let mut o = observed(50);
        o.rollback_pr = pr(9, PrState::Open, MergeDecision::Merge);
        assert_eq!(next_step(&o), Step::MergeRollback { pr: 9 });
        o.rollback_pr = pr(
            9,
            PrState::Open,
            MergeDecision::Wait("a person merges".into()),
        );
        assert_eq!(next_step(&o), Step::WaitForRollback { pr: 9 });
        let mut o = observed(0);
        o.rollback_pr = pr(
            9,
            PrState::Merged {
                merge_sha: "x".into(),
            },
            MergeDecision::Merge,
        );
        assert!(matches!(next_step(&o), Step::Failed { .. }));
        let mut o = observed(0);
        o.rolled_back_on_base = true;
        assert!(matches!(next_step(&o), Step::Failed { .. }));
    }

    #[test]
    fn the_last_stage_promotes_then_finishes() {
        let mut o = observed(100);
        o.gates = Some(Verdict::Pass);
        assert_eq!(next_step(&o), Step::Promote);
        o.promote_pr = pr(11, PrState::Open, MergeDecision::Merge);
        assert_eq!(next_step(&o), Step::MergePromote { pr: 11 });
        o.stable_promoted = true;
        // The promotion must be live and healthy before the weight goes back to 0.
        o.gates = None;
        assert_eq!(
            next_step(&o),
            Step::RunGates {
                stage: 4,
                weight: 100
            }
        );
        o.gates = Some(Verdict::Wait("stable rolling out".into()));
        assert!(matches!(next_step(&o), Step::WaitForGates { stage: 4, .. }));
        o.gates = Some(Verdict::Fail("CrashLoopBackOff".into()));
        assert!(matches!(
            next_step(&o),
            Step::Failed {
                rolled_back: false,
                ..
            }
        ));
        o.gates = Some(Verdict::Pass);
        assert_eq!(next_step(&o), Step::Finish);
        o.finish_pr = pr(
            12,
            PrState::Open,
            MergeDecision::Wait("checks pending".into()),
        );
        assert!(matches!(next_step(&o), Step::WaitForFinish { pr: 12, .. }));
        // Weight 0 on the base: done only once the cluster shows it.
        o.base_weight = 0;
        o.gates = None;
        assert!(matches!(next_step(&o), Step::RunGates { weight: 0, .. }));
        o.gates = Some(Verdict::Pass);
        assert_eq!(next_step(&o), Step::Done);
        let mut o = observed(100);
        o.gates = Some(Verdict::Pass);
        o.promote = false;
        assert_eq!(next_step(&o), Step::Done);
    }

    #[test]
    fn a_closed_stage_pr_is_a_rejection() {
        let mut o = observed(0);
        o.stage_prs[0] = pr(3, PrState::Closed, MergeDecision::Merge);
        assert!(matches!(next_step(&o), Step::Failed { .. }));
        let mut o = observed(10);
        o.gates = Some(Verdict::Pass);
        o.stage_prs[1] = pr(4, PrState::Closed, MergeDecision::Merge);
        assert!(matches!(next_step(&o), Step::Rollback { .. }));
    }

    #[test]
    fn merged_but_not_yet_on_base_waits() {
        let mut o = observed(0);
        o.stage_prs[0] = pr(
            3,
            PrState::Merged {
                merge_sha: "m".into(),
            },
            MergeDecision::Merge,
        );
        assert!(matches!(next_step(&o), Step::WaitForApproval { .. }));
    }

    #[test]
    fn an_open_off_stage_proposal_holds_the_next_stage_back() {
        let mut o = observed(10);
        o.gates = Some(Verdict::Pass);
        o.manual_pr = pr(5, PrState::Open, MergeDecision::Merge);
        assert!(matches!(
            next_step(&o),
            Step::WaitForApproval {
                stage: 2,
                pr: 5,
                ..
            }
        ));
        o.manual_pr = pr(5, PrState::Closed, MergeDecision::Merge);
        assert_eq!(
            next_step(&o),
            Step::Propose {
                stage: 2,
                weight: 25
            }
        );
    }

    #[test]
    fn position_counts_stages_the_base_carries() {
        assert_eq!(position(&observed(0)).applied, 0);
        assert_eq!(position(&observed(10)).applied, 1);
        assert_eq!(position(&observed(30)).applied, 2);
        assert_eq!(position(&observed(100)).applied, 4);
    }
}

/// The kinds of change a rollout makes, each on its own branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Stage {
        stage: usize,
        weight: u32,
    },
    Rollback,
    Promote,
    Finish,
    /// A weight that is no configured stage, proposed by hand (`propose --weight N`).
    Weight {
        weight: u32,
    },
}

impl ChangeKind {
    /// The action name in commit trailers and labels.
    pub fn action(&self) -> &'static str {
        match self {
            ChangeKind::Stage { .. } => "stage",
            ChangeKind::Rollback => "rollback",
            ChangeKind::Promote => "promote",
            ChangeKind::Finish => "finish",
            ChangeKind::Weight { .. } => "weight",
        }
    }
}

/// The rollout id when none is configured: the first Ingress, `NS/NAME` as `ns-name`.
pub fn default_rollout_id(ingress: &str) -> String {
    sanitize(&ingress.replace('/', "-"))
}

/// What proposing `weight` for a rollout with `stages` is: the stage with that weight, so that
/// `propose` and the rollout share one branch, title and trailers (and `reconcile` finds the
/// request `propose` opened); weight 0 is the rollback; any other weight is a change of its
/// own (`.../weight-N`), which `reconcile` recognises by its branch and waits for.
pub fn change_for_weight(stages: &[Stage], weight: u32) -> ChangeKind {
    if weight == 0 {
        return ChangeKind::Rollback;
    }
    match stages.iter().position(|s| s.weight == weight) {
        Some(i) => ChangeKind::Stage {
            stage: i + 1,
            weight,
        },
        None => ChangeKind::Weight { weight },
    }
}

/// The branch prefix every change of rollout `rollout` lives under.
pub fn branch_prefix(rollout: &str) -> String {
    format!("gitops-canary/{}/", sanitize(rollout))
}

/// A branch name that says what it does and is the same on every run (how PRs are found again).
pub fn branch(rollout: &str, change: ChangeKind) -> String {
    let prefix = branch_prefix(rollout);
    match change {
        ChangeKind::Stage { stage, weight } => format!("{prefix}stage-{stage}-weight-{weight}"),
        ChangeKind::Rollback => format!("{prefix}rollback"),
        ChangeKind::Promote => format!("{prefix}promote"),
        ChangeKind::Finish => format!("{prefix}finish"),
        ChangeKind::Weight { weight } => format!("{prefix}weight-{weight}"),
    }
}

/// The change a branch of rollout `rollout` carries (the inverse of [`branch`]).
pub fn parse_branch(rollout: &str, branch: &str) -> Option<ChangeKind> {
    let rest = branch.strip_prefix(&branch_prefix(rollout))?;
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
    };
    match rest {
        "rollback" => Some(ChangeKind::Rollback),
        "promote" => Some(ChangeKind::Promote),
        "finish" => Some(ChangeKind::Finish),
        _ => {
            if let Some(w) = rest.strip_prefix("weight-") {
                return num(w).map(|weight| ChangeKind::Weight { weight });
            }
            let (stage, weight) = rest.strip_prefix("stage-")?.split_once("-weight-")?;
            Some(ChangeKind::Stage {
                stage: num(stage)? as usize,
                weight: num(weight)?,
            })
        }
    }
}

/// A rollout id as one component of a ref name and a file name: lower-case ASCII letters,
/// digits, `-`, `_` and `.` (anything else becomes `-`, runs of `-` one), no `..`, no leading
/// or trailing `.`/`-`, no `.lock` suffix (git refuses all of these), never empty (`_`).
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() || "-_.".contains(c) {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if (c == '-' || c == '.') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    loop {
        let before = out.len();
        out = out.trim_matches(['-', '.']).to_string();
        if let Some(stripped) = out.strip_suffix(".lock") {
            out = stripped.to_string();
        }
        if out.len() == before {
            break;
        }
    }
    if out.is_empty() {
        "_".to_string()
    } else {
        out
    }
}

/// Commit trailers that make a commit findable and self-describing.
pub fn trailers(rollout: &str, change: ChangeKind) -> Vec<(String, String)> {
    let mut t = vec![
        ("Gitops-Canary-Rollout".to_string(), one_line(rollout)),
        (
            "Gitops-Canary-Action".to_string(),
            change.action().to_string(),
        ),
    ];
    if let ChangeKind::Stage { stage, .. } = change {
        t.push(("Gitops-Canary-Stage".into(), stage.to_string()));
    }
    if let Some(w) = change_weight(change) {
        t.push(("Gitops-Canary-Weight".into(), w.to_string()));
    }
    t
}

/// The canary weight a change sets, if it sets one (promotion changes images only).
pub fn change_weight(change: ChangeKind) -> Option<u32> {
    match change {
        ChangeKind::Stage { weight, .. } | ChangeKind::Weight { weight } => Some(weight),
        ChangeKind::Rollback | ChangeKind::Finish => Some(0),
        ChangeKind::Promote => None,
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The labels of a change's pull request: the configured ones (`gitops-canary` when none)
/// plus `gitops-canary:<action>`.
pub fn labels(configured: &[String], change: ChangeKind) -> Vec<String> {
    let mut l: Vec<String> = if configured.is_empty() {
        vec!["gitops-canary".into()]
    } else {
        configured.to_vec()
    };
    let own = format!("gitops-canary:{}", change.action());
    if !l.contains(&own) {
        l.push(own);
    }
    l
}

/// The labels of `wanted` a request lacks (to add to a request found again).
pub fn missing_labels(wanted: &[String], have: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|l| !have.contains(l))
        .cloned()
        .collect()
}

/// The hidden marker that finds a stage's gate-results comment again, so a re-run edits it
/// instead of posting another.
pub fn gate_comment_marker(rollout: &str, stage: usize) -> String {
    format!(
        "<!-- gitops-canary:gates rollout={} stage={stage} -->",
        sanitize(rollout)
    )
}

/// The line a gate comment carries to record its verdict for one base revision, so a later
/// pass (another process: the `reconcile` timer) reads it back instead of baking again.
pub fn verdict_record(passed: bool, revision: &str) -> String {
    format!(
        "<!-- gitops-canary:verdict {} revision={revision} -->",
        if passed { "pass" } else { "no-pass" }
    )
}

/// Does `body` record a pass of the gates at `revision`?
pub fn records_pass(body: &str, revision: &str) -> bool {
    !revision.is_empty()
        && body
            .lines()
            .any(|l| l.trim() == verdict_record(true, revision))
}

/// Which of `comments` (id, body) carries `marker`: the first one, as the one to edit.
pub fn find_marked(comments: &[Comment], marker: &str) -> Option<u64> {
    comments
        .iter()
        .find(|c| c.body.contains(marker))
        .map(|c| c.id)
}

// ---------------------------------------------------------------------------------------------
// The state record

/// Where the state records live in the repository. Deliberately not `*.yaml`: Argo CD directory
/// applications and Flux's generated kustomization take every `*.yaml` for a manifest.
pub const STATE_DIR: &str = ".gitops-canary/state";

/// The state record of rollout `rollout`, relative to the repository root.
pub fn state_path(rollout: &str) -> String {
    format!("{STATE_DIR}/{}.state", sanitize(rollout))
}

/// Where a rollout stands, as its last change left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    Progressing,
    RolledBack,
    Promoting,
    Promoted,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Progressing => "progressing",
            RecordStatus::RolledBack => "rolled-back",
            RecordStatus::Promoting => "promoting",
            RecordStatus::Promoted => "promoted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            RecordStatus::Progressing,
            RecordStatus::RolledBack,
            RecordStatus::Promoting,
            RecordStatus::Promoted,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The small file the tool writes in the same commit as each change it makes, so that where
/// a rollout stands is readable from the base branch's tree alone (a shallow checkout, a
/// squash merge that drops trailers, a rollback hundreds of commits back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateRecord {
    pub rollout: String,
    pub action: String,
    pub status: RecordStatus,
    /// The stage the change applies (a stage), or the stage the rollout had reached.
    pub stage: Option<usize>,
    /// The canary weight after the change.
    pub weight: u32,
}

impl StateRecord {
    /// The record a change leaves: `stage` is the stage reached before it (for changes that
    /// are no stage), `weight` the canary weight after it.
    pub fn for_change(
        rollout: &str,
        change: ChangeKind,
        stage: Option<usize>,
        weight: u32,
    ) -> Self {
        let (status, stage) = match change {
            ChangeKind::Stage { stage, .. } => (RecordStatus::Progressing, Some(stage)),
            ChangeKind::Weight { .. } => (RecordStatus::Progressing, stage),
            ChangeKind::Rollback => (RecordStatus::RolledBack, stage),
            ChangeKind::Promote => (RecordStatus::Promoting, stage),
            ChangeKind::Finish => (RecordStatus::Promoted, stage),
        };
        StateRecord {
            rollout: one_line(rollout),
            action: change.action().to_string(),
            status,
            stage,
            weight: change_weight(change).unwrap_or(weight),
        }
    }

    /// The file's bytes: a comment, then one `key: value` per line, always in this order (so
    /// the same state is the same bytes and a diff shows only what changed).
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# gitops-canary rollout state, written by gitops-canary in the same commit as each\n\
             # change it makes to this rollout and read back by every run. Not a manifest.\n",
        );
        s.push_str(&format!("rollout: {}\n", self.rollout));
        s.push_str(&format!("action: {}\n", self.action));
        s.push_str(&format!("status: {}\n", self.status.as_str()));
        if let Some(stage) = self.stage {
            s.push_str(&format!("stage: {stage}\n"));
        }
        s.push_str(&format!("weight: {}\n", self.weight));
        s
    }

    /// Read a record back; `None` when it is not one (then the trailers decide).
    pub fn parse(text: &str) -> Option<Self> {
        let mut rollout = None;
        let mut action = None;
        let mut status = None;
        let mut stage = None;
        let mut weight = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (k, v) = line.split_once(':')?;
            let v = v.trim();
            match k.trim() {
                "rollout" => rollout = Some(v.to_string()),
                "action" => action = Some(v.to_string()),
                "status" => status = Some(RecordStatus::parse(v)?),
                "stage" => stage = Some(v.parse().ok()?),
                "weight" => weight = Some(v.parse().ok()?),
                _ => {}
            }
        }
        Some(StateRecord {
            rollout: rollout?,
            action: action?,
            status: status?,
            stage,
            weight: weight?,
        })
    }
}

/// The title of a change's commit and pull request.
pub fn title(rollout: &str, change: ChangeKind, total: usize) -> String {
    match change {
        ChangeKind::Stage { stage, weight } => {
            format!("canary {rollout}: stage {stage}/{total}, weight {weight}%")
        }
        ChangeKind::Rollback => format!("canary {rollout}: roll back to weight 0"),
        ChangeKind::Promote => format!("canary {rollout}: promote the canary to stable"),
        ChangeKind::Finish => format!("canary {rollout}: finish, canary weight back to 0"),
        ChangeKind::Weight { weight } => {
            format!("canary {rollout}: weight {weight}% (no configured stage)")
        }
    }
}

/// Commit message: title, body, blank line, trailers.
pub fn commit_message(rollout: &str, change: ChangeKind, total: usize, body: &str) -> String {
    let mut m = title(rollout, change, total);
    if !body.is_empty() {
        m.push_str("\n\n");
        m.push_str(body.trim_end());
    }
    m.push_str("\n\n");
    for (k, v) in trailers(rollout, change) {
        m.push_str(&format!("{k}: {v}\n"));
    }
    m
}

/// The stage table shown in every PR body and job summary (Markdown).
pub fn stage_table(stages: &[Stage], applied: usize, current: Option<usize>) -> String {
    let mut t = String::from("| stage | weight | approval | state |\n| --- | --- | --- | --- |\n");
    for (i, s) in stages.iter().enumerate() {
        let n = i + 1;
        let state = if n <= applied {
            "done"
        } else if Some(n) == current {
            "**this change**"
        } else {
            "next"
        };
        let approval = match s.approval {
            Approval::PullRequest => "merge by a person",
            Approval::Approved => "approvals, then merged by the tool",
            Approval::Auto => "merged when checks pass",
            Approval::Direct => "direct commit",
        };
        t.push_str(&format!("| {n} | {}% | {approval} | {state} |\n", s.weight));
    }
    t
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn branches_and_trailers_are_stable() {
        let c = ChangeKind::Stage {
            stage: 2,
            weight: 25,
        };
        assert_eq!(
            branch("Shop/Web Canary", c),
            "gitops-canary/shop-web-canary/stage-2-weight-25"
        );
        assert_eq!(
            branch("x", ChangeKind::Rollback),
            "gitops-canary/x/rollback"
        );
        let m = commit_message("shop-web", c, 4, "");
        assert_eq!(
            m,
            "canary shop-web: stage 2/4, weight 25%\n\nGitops-Canary-Rollout: shop-web\nGitops-Canary-Action: stage\nGitops-Canary-Stage: 2\nGitops-Canary-Weight: 25\n"
        );
    }

    #[test]
    fn sanitize_gives_a_valid_ref_component_for_any_id() {
        let cases = [
            ("shop-web", "shop-web"),
            ("Shop/Web Canary", "shop-web-canary"),
            ("web.lock", "web"),
            ("web.lock.lock", "web"),
            ("web.lock.", "web"),
            ("a..b", "a.b"),
            ("a...b", "a.b"),
            ("", "_"),
            ("...", "_"),
            ("/", "_"),
            ("-.x.-", "x"),
            (".hidden", "hidden"),
            ("trailing/", "trailing"),
            ("ünïcode", "n-code"),
            ("日本", "_"),
            ("@{-1}", "1"),
            ("x~y^z:w?*[", "x-y-z-w"),
            ("a b\tc\n", "a-b-c"),
            ("web_1.2", "web_1.2"),
        ];
        for (id, want) in cases {
            let got = sanitize(id);
            assert_eq!(got, want, "sanitize({id:?})");
            for change in [
                ChangeKind::Stage {
                    stage: 1,
                    weight: 10,
                },
                ChangeKind::Rollback,
                ChangeKind::Weight { weight: 30 },
            ] {
                let b = branch(id, change);
                assert!(
                    git2::Reference::is_valid_name(&format!("refs/heads/{b}")),
                    "{b:?} from {id:?} is not a valid ref"
                );
                assert_eq!(b.matches('/').count(), 2, "{b:?}");
                assert_eq!(parse_branch(id, &b), Some(change), "{b:?}");
            }
            assert!(!state_path(id).contains(".."), "{id:?}");
        }
    }

    #[test]
    fn a_proposed_weight_is_the_stage_with_that_weight() {
        let stages: Vec<Stage> = [10, 25, 50, 100]
            .iter()
            .map(|w| Stage {
                weight: *w,
                approval: Approval::PullRequest,
            })
            .collect();
        let stage2 = ChangeKind::Stage {
            stage: 2,
            weight: 25,
        };
        assert_eq!(change_for_weight(&stages, 25), stage2);
        assert_eq!(
            branch(&default_rollout_id("shop/web-canary"), stage2),
            "gitops-canary/shop-web-canary/stage-2-weight-25"
        );
        assert_eq!(change_for_weight(&stages, 0), ChangeKind::Rollback);
        let off = change_for_weight(&stages, 30);
        assert_eq!(off, ChangeKind::Weight { weight: 30 });
        assert_eq!(branch("shop-web", off), "gitops-canary/shop-web/weight-30");
        assert_eq!(
            trailers("shop-web", off),
            vec![
                ("Gitops-Canary-Rollout".to_string(), "shop-web".to_string()),
                ("Gitops-Canary-Action".to_string(), "weight".to_string()),
                ("Gitops-Canary-Weight".to_string(), "30".to_string()),
            ]
        );
        assert_eq!(
            parse_branch("shop-web", "gitops-canary/other/weight-30"),
            None
        );
        assert_eq!(
            parse_branch("shop-web", "gitops-canary/shop-web/weight-030"),
            None
        );
        assert_eq!(
            labels(&[], off),
            vec![
                "gitops-canary".to_string(),
                "gitops-canary:weight".to_string()
            ]
        );
    }

    #[test]
    fn the_state_record_is_byte_stable_and_reads_back() {
        let r = StateRecord::for_change("shop-web", ChangeKind::Rollback, Some(2), 50);
        assert_eq!(
            r.render(),
            "# gitops-canary rollout state, written by gitops-canary in the same commit as each\n\
             # change it makes to this rollout and read back by every run. Not a manifest.\n\
             rollout: shop-web\naction: rollback\nstatus: rolled-back\nstage: 2\nweight: 0\n"
        );
        assert_eq!(StateRecord::parse(&r.render()), Some(r.clone()));
        assert_eq!(
            StateRecord::parse(&r.render().replace('\n', "\r\n")),
            Some(r)
        );
        let s = StateRecord::for_change(
            "shop-web",
            ChangeKind::Stage {
                stage: 1,
                weight: 10,
            },
            None,
            0,
        );
        assert_eq!(s.status, RecordStatus::Progressing);
        assert_eq!((s.stage, s.weight), (Some(1), 10));
        assert_eq!(
            state_path("Shop/Web"),
            ".gitops-canary/state/shop-web.state"
        );
        assert_eq!(StateRecord::parse("status: nonsense\n"), None);
        assert_eq!(StateRecord::parse("not a record"), None);
    }

    #[test]
    fn gate_comments_are_found_by_their_marker() {
        let m = gate_comment_marker("shop-web", 2);
        assert_eq!(m, "<!-- gitops-canary:gates rollout=shop-web stage=2 -->");
        let c = |id, body: String| Comment { id, body };
        let comments = vec![
            c(1, "hello".to_string()),
            c(
                2,
                format!("stage 1\n{}", gate_comment_marker("shop-web", 1)),
            ),
            c(3, format!("stage 2\n{m}")),
        ];
        assert_eq!(find_marked(&comments, &m), Some(3));
        assert_eq!(find_marked(&comments[..2], &m), None);
    }

    #[test]
    fn stage_table_marks_done_and_current() {
        let stages = vec![
            Stage {
                weight: 10,
                approval: Approval::Auto,
            },
            Stage {
                weight: 100,
                approval: Approval::PullRequest,
            },
        ];
        let t = stage_table(&stages, 1, Some(2));
        assert!(t.contains("| 1 | 10% | merged when checks pass | done |"));
        assert!(t.contains("| 2 | 100% | merge by a person | **this change** |"));
    }

    #[test]
    fn a_gate_comment_records_its_verdict_for_one_revision() {
        let body = format!("| gate | ... |\n\n{}\n", verdict_record(true, "abc123"));
        assert!(records_pass(&body, "abc123"));
        assert!(
            !records_pass(&body, "def456"),
            "another revision: run again"
        );
        assert!(!records_pass(&verdict_record(false, "abc123"), "abc123"));
        assert!(!records_pass(
            "<!-- gitops-canary:verdict pass revision= -->",
            ""
        ));
    }

    #[test]
    fn a_stage_timeout_counts_from_when_it_reached_the_base() {
        let ten_min = Duration::from_secs(600);
        let slice = Some(Duration::from_secs(30));
        // `run`: the whole budget, a timeout is final.
        let b = gate_budget(1_000, 1_000, ten_min, None);
        assert_eq!((b.wait, b.window_open), (ten_min, false));
        // `reconcile` two minutes after the merge: wait a slice; a timeout is a wait.
        let b = gate_budget(1_000, 1_120, ten_min, slice);
        assert_eq!((b.wait, b.window_open), (Duration::from_secs(30), true));
        let v = judge_timeout(
            Verdict::Fail("timed out after 30s: OutOfSync".into()),
            true,
            &b,
        );
        assert!(
            matches!(v, Verdict::Wait(ref r) if r.contains("8m")),
            "{v:?}"
        );
        // A state that failed is a failure inside the window too.
        let v = judge_timeout(Verdict::Fail("Degraded".into()), false, &b);
        assert!(matches!(v, Verdict::Fail(_)));
        // The window ends within this pass: its timeout is final.
        let b = gate_budget(1_000, 1_590, ten_min, slice);
        assert_eq!((b.wait, b.window_open), (Duration::from_secs(10), false));
        // Past the window: one short look, and a timeout fails.
        let b = gate_budget(1_000, 5_000, ten_min, slice);
        assert!(!b.window_open);
        let v = judge_timeout(Verdict::Fail("timed out after 1s".into()), true, &b);
        assert!(matches!(v, Verdict::Fail(_)));
    }
}
