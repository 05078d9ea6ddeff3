//! Observe: read the base branch (its tip, the weight, the state record) and the forge (the
//! requests of every step) into one `Observation`.

use super::*;

impl Rollout<'_> {
    /// Read the base branch and the forge.
    pub(crate) async fn observe(&self) -> anyhow::Result<Observation> {
        let s = &self.settings;
        let tip = self.ws.sync_to_base(&s.base)?;
        let Resolved {
            canaries,
            stables,
            weights,
            targets,
            canary_workloads,
            stable_workloads,
        } = resolve_canaries(self.ws.dir(), &s.selection, "default")?;
        if weights.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(AppError::WeightsDiffer {
                rollout: s.rollout.clone(),
                base: s.base.clone(),
                weights: weights
                    .iter()
                    .map(|(c, w)| format!("{c}={w}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        }
        let base_weight = weights.first().map_or(0, |w| w.1);
        let stable_promoted = !canary_workloads.is_empty()
            && !stable_workloads.is_empty()
            && stable_workloads.iter().all(|st| {
                canary_workloads
                    .iter()
                    .all(|c| workload::image_edits(st, c).is_empty())
            });

        // The state record in the base's tree says it; without one (a repository from before
        // records), a rollback commit's trailers within the history this checkout has.
        let record = self
            .ws
            .read_file_at(tip, Path::new(&plan::state_path(&s.rollout)))?
            .and_then(|b| plan::StateRecord::parse(&String::from_utf8_lossy(&b)));
        let rolled_back_on_base = match &record {
            Some(r) => r.status == plan::RecordStatus::RolledBack,
            None => self
                .ws
                .find_commit_with_trailers(tip, 200, &|t| {
                    let has = |k: &str, v: &str| t.iter().any(|(a, b)| a == k && b == v);
                    has("Gitops-Canary-Rollout", &s.rollout)
                        && has("Gitops-Canary-Action", "rollback")
                })?
                .is_some(),
        };

        let mut observed = Observed {
            stages: s.stages.clone(),
            base_weight,
            stage_prs: vec![None; s.stages.len()],
            rollback_pr: None,
            rolled_back_on_base,
            gates: None,
            stable_promoted,
            promote_pr: None,
            finish_pr: None,
            promote: s.promote,
            manual_pr: None,
        };
        let pos = plan::position(&observed);
        let mut current_stage_pr = None;
        if let Some(forge) = self.forge() {
            let rb_gate = s.rollback_approval().gate(s.min_approvals);
            observed.rollback_pr = self
                .pr_view(
                    forge,
                    &plan::branch(&s.rollout, ChangeKind::Rollback),
                    rb_gate,
                )
                .await?;
            if pos.applied < s.stages.len() {
                let i = pos.applied;
                let st = &s.stages[i];
                if !s.direct(st.approval) {
                    let change = ChangeKind::Stage {
                        stage: i + 1,
                        weight: st.weight,
                    };
                    observed.stage_prs[i] = self
                        .pr_view(
                            forge,
                            &plan::branch(&s.rollout, change),
                            st.approval.gate(s.min_approvals),
                        )
                        .await?;
                    if observed.stage_prs[i].is_none() {
                        observed.manual_pr = self.manual_pr(forge).await?;
                    }
                }
            } else if s.promote && !s.direct(s.final_approval()) {
                let gate = s.final_approval().gate(s.min_approvals);
                observed.promote_pr = self
                    .pr_view(forge, &plan::branch(&s.rollout, ChangeKind::Promote), gate)
                    .await?;
                observed.finish_pr = self
                    .pr_view(forge, &plan::branch(&s.rollout, ChangeKind::Finish), gate)
                    .await?;
            }
            if pos.applied > 0 {
                let st = &s.stages[pos.applied - 1];
                let change = ChangeKind::Stage {
                    stage: pos.applied,
                    weight: st.weight,
                };
                current_stage_pr = forge
                    .find_pr_by_branch(&plan::branch(&s.rollout, change))
                    .await?
                    .map(|p| p.number);
            }
        }
        Ok(Observation {
            tip: tip.to_string(),
            gate_context: GateContext {
                rollout: s.rollout.clone(),
                stage: pos.applied,
                weight: base_weight,
                revision: tip.to_string(),
                canaries,
                stables,
                canary_workloads,
                stable_workloads,
                targets,
                timeout: None,
            },
            tip_time: self.ws.commit_time(tip)?,
            observed,
            current_stage_pr,
        })
    }

    /// An open request of this rollout for a weight that is no stage (`propose --weight N`).
    pub(super) async fn manual_pr(&self, forge: &AnyForge) -> anyhow::Result<Option<PrView>> {
        let label = format!(
            "gitops-canary:{}",
            ChangeKind::Weight { weight: 0 }.action()
        );
        let open = forge.list_prs_by_label(&label, StateFilter::Open).await?;
        let Some(pr) = open.into_iter().find(|p| {
            matches!(
                plan::parse_branch(&self.settings.rollout, &p.branch),
                Some(ChangeKind::Weight { .. })
            )
        }) else {
            return Ok(None);
        };
        self.pr_view(forge, &pr.branch, ApprovalGate::PullRequest)
            .await
    }

    pub(super) async fn pr_view(
        &self,
        forge: &AnyForge,
        branch: &str,
        gate: ApprovalGate,
    ) -> anyhow::Result<Option<PrView>> {
        let Some(pr) = forge.find_pr_by_branch(branch).await? else {
            return Ok(None);
        };
        let merge = match &pr.state {
            PrState::Open => {
                let reviews = forge.reviews(&pr).await?;
                let checks = forge.checks(&pr.head_sha).await?;
                let mergeable = forge.mergeable(pr.number).await?;
                decide_merge(gate, &pr, &reviews, &checks, mergeable)
            }
            _ => MergeDecision::Wait(String::new()),
        };
        Ok(Some(PrView {
            number: pr.number,
            url: pr.url,
            branch: pr.branch,
            labels: pr.labels,
            head_sha: pr.head_sha,
            state: pr.state,
            merge,
        }))
    }
}
