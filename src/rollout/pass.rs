//! One pass: observe, decide (`plan::next_step`), run the gates a step needs (once per
//! revision), act, then read the base again; and `run`, which loops passes to the end.

use super::*;

impl Rollout<'_> {
    /// One pass: observe, decide, run the gates if the decision is to, act once.
    pub async fn reconcile(&self) -> anyhow::Result<PassReport> {
        let obs = self.observe().await?;
        self.decide_and_act(obs).await
    }

    pub(super) async fn decide_and_act(&self, mut obs: Observation) -> anyhow::Result<PassReport> {
        let mut step = plan::next_step(&obs.observed);
        let mut gates = None;
        if let (Step::RunGates { stage, .. }, false) = (&step, self.run_gates) {
            // Without running them (`status`): the next stage's PR exists only because these
            // gates passed when it was opened, so show where the rollout stands past them.
            if obs
                .observed
                .stage_prs
                .get(*stage)
                .is_some_and(Option::is_some)
            {
                let mut assumed = obs.observed.clone();
                assumed.gates = Some(Verdict::Pass);
                step = plan::next_step(&assumed);
            }
        }
        if let (Step::RunGates { stage, weight }, true) = (step.clone(), self.run_gates) {
            let known = self
                .passed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(rev, _)| *rev == obs.tip)
                .map(|(_, r)| r.clone());
            // Another process (the `reconcile` timer) may have run them for this revision: the
            // gate comment is the record.
            let known = match (known, self.forge(), obs.current_stage_pr) {
                (None, Some(forge), Some(pr)) => {
                    let marker = plan::gate_comment_marker(&self.settings.rollout, stage);
                    forge
                        .list_comments(pr)
                        .await?
                        .iter()
                        .find(|c| c.body.contains(&marker) && plan::records_pass(&c.body, &obs.tip))
                        .map(|_| GateReport {
                            verdict: Verdict::Pass,
                            gates: vec![GateLine {
                                gate: "recorded".into(),
                                verdict: Verdict::Pass,
                                detail: format!(
                                    "passed at {} (recorded in the gate comment on #{pr})",
                                    obs.tip
                                ),
                                timed_out: false,
                            }],
                        })
                }
                (known, _, _) => known,
            };
            let fresh = known.is_none();
            let report = match known {
                Some(r) => r,
                None => {
                    let budget = plan::gate_budget(
                        obs.tip_time,
                        crate::clock::since_epoch().as_secs() as i64,
                        self.settings.gate_timeout,
                        self.wait_slice,
                    );
                    let mut ctx = obs.gate_context.clone();
                    ctx.timeout = Some(budget.wait);
                    let mut r = self.gates.run(&ctx).await?;
                    let timed_out = r.gates.iter().any(|g| g.timed_out);
                    r.verdict = plan::judge_timeout(r.verdict, timed_out, &budget);
                    r
                }
            };
            obs.observed.gates = Some(report.verdict.clone());
            if report.verdict == Verdict::Pass && fresh {
                self.passed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((obs.tip.clone(), report.clone()));
            }
            if let (Some(forge), Some(pr), false, true) =
                (self.forge(), obs.current_stage_pr, self.dry_run, fresh)
            {
                // Found again by its marker: a re-run edits it, never posts a second one.
                crate::forge::upsert_comment(
                    forge,
                    pr,
                    &plan::gate_comment_marker(&self.settings.rollout, stage),
                    &gate_comment(&self.settings.rollout, stage, weight, &obs.tip, &report),
                )
                .await?;
                failpoint("comment");
            }
            gates = Some(report);
            step = plan::next_step(&obs.observed);
        }
        let pos = plan::position(&obs.observed);
        let mut report = PassReport {
            rollout: self.settings.rollout.clone(),
            base: self.settings.base.clone(),
            tip: obs.tip.clone(),
            weight: obs.observed.base_weight,
            stage: pos.applied,
            stages: pos.total,
            step: step.clone(),
            action: String::new(),
            pull_request: None,
            gates,
            diff: String::new(),
            pushed: None,
        };
        self.act_step(&step, &obs, &mut report).await?;
        self.settle(&mut report).await?;
        Ok(report)
    }

    /// After a step that changed the base branch (a direct commit, a merge), read the base
    /// again, so the report (and the CI outputs) describe the state after the step.
    pub(crate) async fn settle(&self, report: &mut PassReport) -> anyhow::Result<()> {
        let merged = report
            .pull_request
            .as_ref()
            .is_some_and(|p| p.operation == PrOperation::Merged);
        if self.dry_run || (report.pushed.is_none() && !merged) {
            return Ok(());
        }
        let after = self.observe().await?;
        let pos = plan::position(&after.observed);
        report.tip = after.tip;
        report.weight = after.observed.base_weight;
        report.stage = pos.applied;
        Ok(())
    }

    /// `run`: reconcile until the rollout is done or failed, waiting in between.
    pub async fn run(&self, on_pass: &mut dyn FnMut(&PassReport)) -> anyhow::Result<PassReport> {
        let started = std::time::Instant::now();
        loop {
            let report = self.reconcile().await?;
            on_pass(&report);
            match &report.step {
                Step::Done => return Ok(report),
                Step::Failed { reason, .. } => {
                    return Err(AppError::Failed {
                        rollout: self.settings.rollout.clone(),
                        reason: reason.clone(),
                    }
                    .into())
                }
                Step::Rollback { reason } => {
                    return Err(AppError::Failed {
                        rollout: self.settings.rollout.clone(),
                        reason: format!("rolled back: {reason}"),
                    }
                    .into())
                }
                step if step.is_waiting() => {
                    if started.elapsed() >= self.settings.max_wait {
                        return Err(AppError::TimedOut {
                            rollout: self.settings.rollout.clone(),
                            waited: started.elapsed(),
                            reason: report.action.clone(),
                        }
                        .into());
                    }
                    tokio::time::sleep(self.settings.poll).await;
                }
                _ if self.dry_run => return Ok(report),
                _ => {}
            }
        }
    }
}
