//! Act: carry out one decided step (propose, merge, roll back, promote, finish) and record what
//! was done in the pass report.

use super::*;

impl Rollout<'_> {
    /// Carry out one decided step.
    pub(crate) async fn act_step(
        &self,
        step: &Step,
        obs: &Observation,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let s = &self.settings;
        self.relabel(step, obs).await?;
        match step {
            Step::Propose { stage, weight } => {
                let change = ChangeKind::Stage {
                    stage: *stage,
                    weight: *weight,
                };
                self.change(change, s.stage_approval(*stage), *weight, obs, report)
                    .await?;
            }
            Step::Merge { pr, .. }
            | Step::MergePromote { pr }
            | Step::MergeFinish { pr }
            | Step::MergeRollback { pr } => {
                // The head that was judged, never "whatever is there now".
                let (Some(view), Some((_, change))) = (obs.pr(*pr), step_pr(step, s)) else {
                    return Err(AppError::Unobserved {
                        rollout: s.rollout.clone(),
                        number: *pr,
                    }
                    .into());
                };
                let branch = plan::branch(&s.rollout, change);
                self.merge(*pr, &view.head_sha, &branch, report).await?;
            }
            Step::RunGates { .. } => report.action = "the gates of this stage are due".into(),
            Step::Rollback { reason } => {
                if s.rollback == RollbackPolicy::None {
                    report.action = format!("rollback policy is none; not rolling back: {reason}");
                } else {
                    self.rollback(reason, obs, report).await?;
                }
            }
            Step::Promote => {
                self.change(ChangeKind::Promote, s.final_approval(), 0, obs, report)
                    .await?
            }
            Step::Finish => {
                self.change(ChangeKind::Finish, s.final_approval(), 0, obs, report)
                    .await?
            }
            Step::WaitForApproval { reason, .. }
            | Step::WaitForGates { reason, .. }
            | Step::WaitForPromote { reason, .. }
            | Step::WaitForFinish { reason, .. } => report.action = format!("waiting: {reason}"),
            Step::WaitForRollback { pr } => {
                report.action = format!("waiting for the rollback #{pr} to be merged")
            }
            Step::Done => report.action = "the rollout is complete".into(),
            Step::Failed {
                reason,
                rolled_back,
            } => {
                // A re-run after a crash between the rollback and the closing finishes it.
                if *rolled_back {
                    self.close_stale_stages(obs, reason).await?;
                }
                report.action = format!("failed: {reason}");
            }
        }
        // A step about an existing request (waiting on it, merging it) reports that request.
        if report.pull_request.is_none() {
            if let Some((number, change)) = step_pr(step, s) {
                if let Some(p) = obs.pr(number) {
                    let merged = matches!(
                        step,
                        Step::Merge { .. }
                            | Step::MergePromote { .. }
                            | Step::MergeFinish { .. }
                            | Step::MergeRollback { .. }
                    ) && !self.dry_run;
                    report.pull_request = Some(PrRef {
                        number,
                        url: p.url.clone(),
                        branch: plan::branch(&s.rollout, change),
                        head_sha: p.head_sha.clone(),
                        operation: if merged {
                            PrOperation::Merged
                        } else {
                            PrOperation::None
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// A request found again gets the labels it lacks (a crash between opening and labelling).
    pub(super) async fn relabel(&self, step: &Step, obs: &Observation) -> anyhow::Result<()> {
        let (Some(forge), Some((number, _)), false) =
            (self.forge(), step_pr(step, &self.settings), self.dry_run)
        else {
            return Ok(());
        };
        let Some(pr) = obs.pr(number).filter(|p| p.state == PrState::Open) else {
            return Ok(());
        };
        let Some(change) = plan::parse_branch(&self.settings.rollout, &pr.branch) else {
            return Ok(());
        };
        let missing =
            plan::missing_labels(&plan::labels(&self.settings.labels, change), &pr.labels);
        if !missing.is_empty() {
            forge.add_labels(number, &missing).await?;
        }
        Ok(())
    }

    /// Open (or find) the rollback and merge it at once where the policy allows.
    pub async fn rollback(
        &self,
        reason: &str,
        obs: &Observation,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let approval = self.settings.rollback_approval();
        self.change(ChangeKind::Rollback, approval, 0, obs, report)
            .await?;
        if let (Some(forge), Some(pr), false) = (self.forge(), &report.pull_request, self.dry_run) {
            let body = format!(
                "gitops-canary is rolling back rollout `{}` to weight 0:\n\n> {reason}\n",
                self.settings.rollout
            );
            forge.comment(pr.number, &body).await?;
            failpoint("comment");
            if let Some(stage_pr) = obs.current_stage_pr {
                forge
                    .comment(
                        stage_pr,
                        &format!("Rolled back in #{}: {reason}", pr.number),
                    )
                    .await?;
                failpoint("comment");
            }
            if approval == Approval::Auto {
                let number = pr.number;
                let view = self.pr_view(forge, &pr.branch, ApprovalGate::Auto).await?;
                if let Some(v) = view.filter(|v| v.merge == MergeDecision::Merge) {
                    let branch = pr.branch.clone();
                    self.merge(number, &v.head_sha, &branch, report).await?;
                    self.close_stale_stages(obs, reason).await?;
                    report.action = format!("rolled back (merged #{}): {reason}", v.number);
                    return Ok(());
                }
            }
        }
        self.close_stale_stages(obs, reason).await?;
        report.action = format!("{}; reason: {reason}", report.action);
        Ok(())
    }

    /// After a rollback no stage may merge: close every open stage request, saying why, so
    /// nobody merges a stale stage by hand. Idempotent: only open ones are touched.
    pub(super) async fn close_stale_stages(
        &self,
        obs: &Observation,
        reason: &str,
    ) -> anyhow::Result<()> {
        let (Some(forge), false) = (self.forge(), self.dry_run) else {
            return Ok(());
        };
        for pr in obs
            .observed
            .stage_prs
            .iter()
            .flatten()
            .filter(|p| p.state == PrState::Open)
        {
            forge
                .comment(
                    pr.number,
                    &format!(
                        "Closed by gitops-canary: rollout `{}` was rolled back ({reason}), so this stage must not be merged.",
                        self.settings.rollout
                    ),
                )
                .await?;
            forge.close(pr.number).await?;
            failpoint("close a stale stage");
        }
        Ok(())
    }

    /// Merge only the head that was judged: if someone pushed since, the forge refuses. A merge
    /// that took effect but was answered with an error (a 502 after the merge, then "not
    /// mergeable" on the retry) is read back: merged at the expected head is success.
    pub(super) async fn merge(
        &self,
        number: u64,
        head: &str,
        branch: &str,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let Some(forge) = self.forge() else {
            return Ok(());
        };
        if self.dry_run {
            report.action = format!("would merge #{number}");
            return Ok(());
        }
        let merged = match forge.merge(number, self.settings.merge_method, head).await {
            Ok(m) => m,
            Err(e) => match forge.find_pr_by_branch(branch).await {
                Ok(Some(PullRequest {
                    number: n,
                    head_sha,
                    state: PrState::Merged { merge_sha },
                    ..
                })) if n == number && head_sha == head => {
                    tracing::warn!(number, error = %e, "the merge was answered with an error but took effect");
                    MergeOutcome::Merged { sha: merge_sha }
                }
                _ => return Err(e.into()),
            },
        };
        failpoint("merge");
        match merged {
            MergeOutcome::Merged { sha } => {
                report.action = format!("merged #{number} as {sha}");
                if let Some(p) = report.pull_request.as_mut().filter(|p| p.number == number) {
                    p.operation = PrOperation::Merged;
                }
            }
            MergeOutcome::Scheduled => {
                report.action = format!("#{number} will merge when its pipeline succeeds")
            }
        }
        Ok(())
    }

    /// Publish one change (a stage weight, the rollback, promotion, finish) on its branch or
    /// directly, and find or open its PR.
    pub(super) async fn change(
        &self,
        change: ChangeKind,
        approval: Approval,
        weight: u32,
        obs: &Observation,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        let s = &self.settings;
        let branch = plan::branch(&s.rollout, change);
        let direct = s.direct(approval) || self.forge().is_none();
        let mut diff = String::new();
        let selection = s.selection.clone();
        let dry_run = self.dry_run;
        let gate_ctx = obs.gate_context.clone();
        let rollout_id = s.rollout.clone();
        let record = plan::StateRecord::for_change(
            &s.rollout,
            change,
            Some(plan::position(&obs.observed).applied),
            obs.observed.base_weight,
        );
        let mut edit = |dir: &Path| -> anyhow::Result<Vec<PathBuf>> {
            diff.clear();
            let mut changed = Vec::new();
            match change {
                ChangeKind::Promote => {
                    let repo = Repo::load_filtered(dir, &needs_parse)?;
                    let mut edits = Vec::new();
                    for st in &gate_ctx.stable_workloads {
                        for c in &gate_ctx.canary_workloads {
                            edits.extend(workload::image_edits(st, c));
                        }
                    }
                    if gate_ctx.canary_workloads.is_empty() || gate_ctx.stable_workloads.is_empty()
                    {
                        return Err(AppError::Promote {
                            canary: selection.names().join(", "),
                            reason: "no Deployment found behind the canary's or the stable's Service in the manifests; set `promote: false` and promote by hand".into(),
                        }
                        .into());
                    }
                    let mut by_file: std::collections::BTreeMap<PathBuf, Vec<manifest::Edit>> =
                        Default::default();
                    for e in edits {
                        by_file.entry(e.file.clone()).or_default().push(e);
                    }
                    let layout = crate::router::kustomize::Layout::discover(dir)?;
                    for (file, edits) in by_file {
                        // In a Kustomize layout the image lives in a file every root that
                        // reads it renders: promoting there would change the other ones too.
                        let readers: Vec<String> = layout
                            .roots
                            .iter()
                            .filter(|r| layout.reads(r, &file))
                            .map(|r| crate::router::kustomize::display_dir(r))
                            .collect();
                        if readers.len() > 1 {
                            return Err(AppError::Promote {
                                canary: selection.names().join(", "),
                                reason: format!(
                                    "the stable's image is set in {}, which the roots {} all render; give the target overlay its own image (a patch or `images:`) and promote by hand, or set `promote: false`",
                                    file.display(),
                                    readers.join(", ")
                                ),
                            }
                            .into());
                        }
                        let Some(src) = repo.file(&file) else {
                            continue;
                        };
                        let out = manifest::edit::apply(src, &edits)?;
                        diff.push_str(&out.diff);
                        if !dry_run {
                            out.write(dir)?;
                        }
                        changed.extend(out.changed_files());
                    }
                }
                _ => {
                    for out in selection.set_weight(dir, weight, dry_run)? {
                        diff.push_str(&out.diff);
                        changed.extend(out.changed_files());
                    }
                }
            }
            // The state record goes in the same commit as the change it describes.
            if !changed.is_empty() && !dry_run {
                changed.push(write_record(dir, &rollout_id, &record)?);
            }
            Ok(changed)
        };
        let total = s.stages.len();
        if self.dry_run {
            edit(self.ws.dir())?;
            report.diff = diff;
            report.action = format!(
                "would {} {}",
                if direct {
                    "commit to"
                } else {
                    "open a pull request from"
                },
                if direct { s.base.clone() } else { branch }
            );
            return Ok(());
        }
        let req = ChangeRequest {
            base: s.base.clone(),
            target: if direct {
                Target::Direct
            } else {
                Target::Branch(branch.clone())
            },
            message: plan::commit_message(&s.rollout, change, total, ""),
            author: s.author.clone(),
        };
        let published = self.ws.publish(&req, &mut edit)?;
        if published.commit.is_some() && !published.reused {
            failpoint("push");
        }
        let body = pr_body(s, change, obs, &diff);
        report.diff = diff;
        let Some(commit) = published.commit else {
            report.action = format!("nothing to change: {} already has it", s.base);
            return Ok(());
        };
        if direct {
            report.action = format!("committed {commit} to {}", s.base);
            report.pushed = Some(commit.to_string());
            return Ok(());
        }
        let Some(forge) = self.forge() else {
            return Ok(());
        };
        let existing = forge
            .find_pr_by_branch(&branch)
            .await?
            .filter(|p| p.state == PrState::Open);
        let mut operation = if published.reused {
            PrOperation::None
        } else {
            PrOperation::Updated
        };
        let labels = plan::labels(&s.labels, change);
        let pr = match existing {
            Some(pr) => {
                // A request found again gets the labels a crash may have kept from it.
                let pr = crate::forge::ensure_labels(forge, pr, &labels).await?;
                if pr.body != body {
                    forge.update_pr_body(pr.number, &body).await?;
                    failpoint("update the PR body");
                    operation = PrOperation::Updated;
                }
                pr
            }
            None => {
                let pr = forge
                    .create_pr(&NewPullRequest {
                        title: plan::title(&s.rollout, change, total),
                        body,
                        head: branch.clone(),
                        base: s.base.clone(),
                        labels,
                    })
                    .await?;
                failpoint("open the PR");
                operation = PrOperation::Created;
                pr
            }
        };
        report.action = format!(
            "{} #{} {}",
            if published.reused { "found" } else { "opened" },
            pr.number,
            pr.url
        );
        report.pull_request = Some(PrRef {
            number: pr.number,
            url: pr.url,
            branch,
            head_sha: commit.to_string(),
            operation,
        });
        Ok(())
    }
}

/// Write the state record under `dir`; returns its path (for the commit).
pub(crate) fn write_record(
    dir: &Path,
    rollout: &str,
    record: &plan::StateRecord,
) -> anyhow::Result<PathBuf> {
    let rel = PathBuf::from(plan::state_path(rollout));
    let path = dir.join(&rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, record.render())?;
    Ok(rel)
}

/// The request a step is about, and which change it carries.
pub(super) fn step_pr(step: &Step, s: &Settings) -> Option<(u64, ChangeKind)> {
    let stage = |stage: usize| ChangeKind::Stage {
        stage,
        weight: s
            .stages
            .get(stage.saturating_sub(1))
            .map_or(0, |st| st.weight),
    };
    match step {
        Step::WaitForApproval { stage: n, pr, .. } | Step::Merge { stage: n, pr } => {
            Some((*pr, stage(*n)))
        }
        Step::WaitForRollback { pr } | Step::MergeRollback { pr } => {
            Some((*pr, ChangeKind::Rollback))
        }
        Step::WaitForPromote { pr, .. } | Step::MergePromote { pr } => {
            Some((*pr, ChangeKind::Promote))
        }
        Step::WaitForFinish { pr, .. } | Step::MergeFinish { pr } => {
            Some((*pr, ChangeKind::Finish))
        }
        _ => None,
    }
}
