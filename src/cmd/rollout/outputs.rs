//! What the rollout commands print and publish: the stage list people read, the one status
//! vocabulary, and the CI outputs and summary table of a pass.

use std::time::Duration;

use crate::plan::{self, Step};
use crate::report::{OutputKey, Report, RunStatus, Table};
use crate::rollout::{self, PassReport, PrOperation, Settings};

/// The stage list people read: what is done, what it waits for, for how long.
pub(crate) fn render_stage_list(s: &Settings, r: &PassReport, waited: Duration) -> String {
    let mut out = format!(
        "rollout {} on {} @ {} (canary weight {}%)\n",
        r.rollout,
        r.base,
        &r.tip[..r.tip.len().min(12)],
        r.weight
    );
    let current = match &r.step {
        Step::Propose { stage, .. }
        | Step::WaitForApproval { stage, .. }
        | Step::Merge { stage, .. } => Some(*stage),
        Step::RunGates { stage, .. } | Step::WaitForGates { stage, .. } => Some(*stage),
        _ => None,
    };
    for (i, st) in s.stages.iter().enumerate() {
        let n = i + 1;
        let mark = if r.step == Step::Done || (n <= r.stage && current != Some(n)) {
            "[x]"
        } else if current == Some(n) {
            "[>]"
        } else {
            "[ ]"
        };
        let mut line = format!("  {mark} stage {n}  {:>3}%", st.weight);
        if current == Some(n) {
            line.push_str(&format!("  {}", r.action));
            if r.step.is_waiting() {
                line.push_str(&format!(
                    " (for {})",
                    humantime::format_duration(Duration::from_secs(waited.as_secs()))
                ));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    if s.promote {
        let mark = match &r.step {
            Step::Done => "[x]",
            Step::Promote
            | Step::WaitForPromote { .. }
            | Step::MergePromote { .. }
            | Step::Finish
            | Step::WaitForFinish { .. }
            | Step::MergeFinish { .. } => "[>]",
            _ => "[ ]",
        };
        let detail = if mark == "[>]" {
            format!("  {}", r.action)
        } else {
            String::new()
        };
        out.push_str(&format!("  {mark} promote{detail}\n"));
    }
    match &r.step {
        Step::Done => out.push_str("  done: the rollout is complete\n"),
        Step::Failed { reason, .. } => out.push_str(&format!("  FAILED: {reason}\n")),
        Step::Rollback { .. } | Step::WaitForRollback { .. } | Step::MergeRollback { .. } => {
            out.push_str(&format!("  ROLLBACK: {}\n", r.action))
        }
        _ => {}
    }
    if let Some(g) = &r.gates {
        for line in &g.gates {
            out.push_str(&format!(
                "      gate {}: {} {}\n",
                line.gate,
                rollout::verdict_word(&line.verdict),
                line.detail
            ));
        }
    }
    out
}

/// Where the rollout stands after a pass, in the one vocabulary of the `status` output.
pub(super) fn run_status(step: &Step, s: &Settings) -> RunStatus {
    match step {
        Step::Done if s.promote => RunStatus::Promoted,
        Step::Done => RunStatus::Complete,
        Step::Failed {
            rolled_back: true, ..
        }
        | Step::Rollback { .. }
        | Step::WaitForRollback { .. }
        | Step::MergeRollback { .. } => RunStatus::RolledBack,
        Step::Failed { .. } => RunStatus::Failed,
        step if step.is_waiting() => RunStatus::Waiting,
        _ => RunStatus::Progressing,
    }
}

pub(super) fn status_word(step: &Step, s: &Settings) -> &'static str {
    run_status(step, s).as_str()
}

pub(super) fn publish_outputs(
    rep: &mut dyn Report,
    r: &PassReport,
    s: &Settings,
) -> anyhow::Result<()> {
    // A finished rollout has applied every stage (its weight is back to 0 after promotion).
    let stage = if r.step == Step::Done {
        r.stages
    } else {
        r.stage
    };
    rep.output(OutputKey::Stage, &format!("{stage}/{}", r.stages))?;
    rep.output(OutputKey::Weight, &r.weight.to_string())?;
    rep.output(OutputKey::Status, status_word(&r.step, s))?;
    let pr = r.pull_request.as_ref();
    rep.output(OutputKey::PullRequestUrl, pr.map_or("", |p| p.url.as_str()))?;
    rep.output(
        OutputKey::PullRequestNumber,
        &pr.map_or(String::new(), |p| p.number.to_string()),
    )?;
    rep.output(
        OutputKey::PullRequestOperation,
        pr.map_or(PrOperation::None, |p| p.operation).as_str(),
    )?;
    rep.output(OutputKey::Branch, pr.map_or("", |p| p.branch.as_str()))?;
    let head = pr.map(|p| p.head_sha.clone()).or_else(|| r.pushed.clone());
    rep.output(OutputKey::HeadSha, head.as_deref().unwrap_or(""))?;
    let mut t = Table::new(
        format!("gitops-canary rollout `{}`", r.rollout),
        &["stage", "weight", "state"],
    );
    for (i, st) in s.stages.iter().enumerate() {
        let state = if r.step == Step::Done || i < r.stage {
            "done"
        } else if i == r.stage {
            "next"
        } else {
            ""
        };
        t = t.row([
            (i + 1).to_string(),
            format!("{}%", st.weight),
            state.to_string(),
        ]);
    }
    t = t.row([
        "".to_string(),
        "".to_string(),
        format!("{}: {}", status_word(&r.step, s), r.action),
    ]);
    rep.summary_table(&t)?;
    Ok(())
}

pub(super) fn empty_report(s: &Settings, obs: &rollout::Observation) -> PassReport {
    let pos = plan::position(&obs.observed);
    PassReport {
        rollout: s.rollout.clone(),
        base: s.base.clone(),
        tip: obs.tip.clone(),
        weight: obs.observed.base_weight,
        stage: pos.applied,
        stages: pos.total,
        step: Step::Done,
        action: String::new(),
        pull_request: None,
        gates: None,
        diff: String::new(),
        pushed: None,
    }
}
