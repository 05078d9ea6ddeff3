//! The words the rollout leaves on the forge: pull-request bodies and the gate-results comment.

use super::*;

/// The PR body: what this change is, the stage table, what is checked after merge, the diff.
pub(crate) fn pr_body(s: &Settings, change: ChangeKind, obs: &Observation, diff: &str) -> String {
    let pos = plan::position(&obs.observed);
    let current = match change {
        ChangeKind::Stage { stage, .. } => Some(stage),
        _ => None,
    };
    let what = match change {
        ChangeKind::Stage { stage, weight } => format!(
            "Stage {stage} of {}: canary weight **{}% → {weight}%** for {}.",
            s.stages.len(),
            obs.observed.base_weight,
            s.selection.describe()
        ),
        ChangeKind::Rollback => format!(
            "Rollback: canary weight **{}% → 0%** for {}.",
            obs.observed.base_weight,
            s.selection.describe()
        ),
        ChangeKind::Promote => "Promotion: the stable Deployments get the canary's images (the canary keeps its weight until this is live).".into(),
        ChangeKind::Finish => "Finish: the stable runs the canary's version; canary weight back to 0%.".into(),
        ChangeKind::Weight { weight } => format!(
            "Canary weight **{}% → {weight}%** for {} (no configured stage).",
            obs.observed.base_weight,
            s.selection.describe()
        ),
    };
    let checks = if s.gate_names.is_empty() {
        "nothing (cluster gates are off)".to_string()
    } else {
        s.gate_names.join(", ")
    };
    format!(
        "{what}\n\nRollout `{}` on `{}`:\n\n{}\nAfter the merge gitops-canary waits for: {checks}.\n\n<details><summary>Diff</summary>\n\n```diff\n{}```\n\n</details>\n\n<!-- gitops-canary rollout={} action={} -->\n",
        s.rollout,
        s.base,
        plan::stage_table(&s.stages, pos.applied, current),
        diff,
        s.rollout,
        change.action()
    )
}

/// The comment left on a stage's PR after its gates ran.
pub(crate) fn gate_comment(
    rollout: &str,
    stage: usize,
    weight: u32,
    revision: &str,
    r: &GateReport,
) -> String {
    let mut c = format!(
        "gitops-canary `{rollout}` stage {stage} ({weight}%): **{}**\n\n| gate | verdict | detail |\n| --- | --- | --- |\n",
        verdict_word(&r.verdict)
    );
    for g in &r.gates {
        c.push_str(&format!(
            "| {} | {} | {} |\n",
            g.gate,
            verdict_word(&g.verdict),
            g.detail.replace('|', "\\|")
        ));
    }
    c.push('\n');
    c.push_str(&plan::gate_comment_marker(rollout, stage));
    c.push('\n');
    c.push_str(&plan::verdict_record(r.verdict == Verdict::Pass, revision));
    c.push('\n');
    c
}

pub(crate) fn verdict_word(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "pass".into(),
        Verdict::Wait(r) => format!("wait ({r})"),
        Verdict::Fail(r) => format!("fail ({r})"),
        Verdict::Inconclusive(r) => format!("inconclusive ({r})"),
    }
}
