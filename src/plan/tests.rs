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
