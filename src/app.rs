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
use crate::router::{default_router, Route};

/// Errors of the loop itself; adapter errors pass through as their own types.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
    /// The canaries moved together: Ingresses, HTTPRoutes, the Kustomize root.
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
pub struct NoGates;

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

fn same_route(a: &Route, b: &Route) -> bool {
    a.file == b.file && a.document == b.document && a.item == b.item
}

/// What a rollout moves, as configured: canary Ingresses (flat, or rendered by a Kustomize
/// root), HTTPRoutes, and the root that picks among renderings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `[NS/]NAME` of canary Ingresses, as the manifests (or a root's rendering) name them.
    pub ingresses: Vec<String>,
    /// `[NS/]NAME` of HTTPRoutes whose stable/canary split moves.
    pub routes: Vec<String>,
    /// The HTTPRoute backendRef that is the canary (default: by convention).
    pub canary_service: Option<String>,
    /// The Kustomize root (directory relative to the repository) whose rendering moves.
    pub overlay: Option<PathBuf>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.ingresses.is_empty() && self.routes.is_empty()
    }

    /// Every selector, for messages and the default rollout id.
    pub fn names(&self) -> Vec<String> {
        self.ingresses.iter().chain(&self.routes).cloned().collect()
    }

    /// `shop/web-canary, route shop/web (overlays/prod)`, for PR bodies.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.ingresses.clone();
        parts.extend(self.routes.iter().map(|r| format!("HTTPRoute {r}")));
        let mut out = parts.join(", ");
        if let Some(o) = &self.overlay {
            out.push_str(&format!(" (as {} renders it)", o.display()));
        }
        out
    }

    /// Set every selected canary to `weight` percent in the checkout at `dir`: an Ingress
    /// through its Kustomize root (the edit checked by rendering every root) or its flat file,
    /// an HTTPRoute's split through the Gateway API router.
    pub fn set_weight(
        &self,
        dir: &Path,
        weight: u32,
        dry_run: bool,
    ) -> anyhow::Result<Vec<manifest::EditOutcome>> {
        let mut out = Vec::new();
        for sel in &self.ingresses {
            out.push(crate::router::kustomize::set::set_weight(
                dir,
                sel,
                self.overlay.as_deref(),
                weight,
                dry_run,
            )?);
        }
        for sel in &self.routes {
            out.push(crate::router::gateway::set_weight(
                dir,
                sel,
                self.canary_service.as_deref(),
                weight,
                dry_run,
            )?);
        }
        Ok(out)
    }
}

/// The selected canaries as the base renders them.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub canaries: Vec<Route>,
    pub stables: Vec<Route>,
    /// Each canary's rendered `NS/NAME` and weight (percent), in selection order.
    pub weights: Vec<(String, u32)>,
    pub targets: crate::gate::target::Targets,
    pub canary_workloads: Vec<workload::Workload>,
    pub stable_workloads: Vec<workload::Workload>,
}

/// Canaries with the Deployments and Services they are resolved against (one repository's
/// flat manifests, or one root's rendering).
struct Group {
    pairs: Vec<crate::gate::target::RoutePair>,
    workloads: Vec<workload::Workload>,
    services: Vec<workload::ServiceInfo>,
}

/// Resolve a selection in the checkout at `dir`: each canary by its rendered namespace/name,
/// the stable routes it pairs with, the weight Git has, and the Deployments behind each side
/// (for a rendered canary, the Deployments that same root renders). `check` and the rollout
/// loop both go through here, so the gates watch the same objects.
pub fn resolve_canaries(
    dir: &Path,
    sel: &Selection,
    default_namespace: &str,
) -> anyhow::Result<Resolved> {
    use crate::router::kustomize::{self, set, Layout};
    let target_err = |selector: &str, reason: String| AppError::Target {
        selector: selector.to_string(),
        reason,
    };
    let repo = Repo::load_filtered(dir, &needs_parse)?;
    let router = default_router();
    let discovery = router.discover(&repo.files, &repo.skipped);
    let routes: Vec<Route> = repo.files.iter().flat_map(|f| router.routes(f)).collect();
    let layout = Layout::discover(dir)?;
    let overlay = set::overlay_root(dir, &layout, sel.overlay.as_deref())?;
    let no = std::collections::BTreeMap::new();
    let fs = kustomize::Fs {
        root: dir,
        overrides: &no,
    };
    let before = if layout.is_empty() {
        kustomize::Renders::new()
    } else {
        kustomize::render_roots(fs, &layout)
    };
    let mut flat = Group {
        pairs: Vec::new(),
        workloads: workload::workloads(&repo.files),
        services: workload::services(&repo.files),
    };
    // Per root: what it renders (its canary pairs) and the group of selected canaries.
    let mut rendered: Vec<(PathBuf, Vec<crate::router::CanaryPair>, Group)> = Vec::new();
    let mut out = Resolved::default();
    for text in &sel.ingresses {
        let selector = Selector::parse(text)?;
        let chosen = if layout.is_empty() {
            set::Chosen::Flat(crate::router::select_known(&repo, &routes, &selector)?.clone())
        } else {
            set::choose(dir, &layout, &before, &selector, overlay.as_deref())?
        };
        let route = chosen.route().clone();
        if !route.canary {
            return Err(target_err(
                text,
                format!("{} is not a canary Ingress", route.describe()),
            )
            .into());
        }
        if let (None, Some(raw)) = (route.weight, &route.weight_raw) {
            return Err(target_err(
                text,
                format!(
                    "the canary-weight of {} is not an integer: {raw:?}",
                    route.describe()
                ),
            )
            .into());
        }
        let (stables, group) = match chosen.root() {
            None => {
                let stables = discovery
                    .pairs
                    .iter()
                    .find(|p| same_route(&p.canary, &route))
                    .map(|p| p.stable.clone())
                    .unwrap_or_default();
                (stables, &mut flat)
            }
            Some(root) => {
                let i = match rendered.iter().position(|(r, _, _)| r == root) {
                    Some(i) => i,
                    None => {
                        let objs = kustomize::render_kinds(fs, root, &kustomize::WORKLOAD_KINDS)
                            .map_err(manifest::ManifestError::from)?;
                        let (workloads, services) = kustomize::workloads(&objs);
                        rendered.push((
                            root.to_path_buf(),
                            kustomize::discover(&objs).pairs,
                            Group {
                                pairs: Vec::new(),
                                workloads,
                                services,
                            },
                        ));
                        rendered.len() - 1
                    }
                };
                let (_, pairs, group) = &mut rendered[i];
                // The rendering with the Services and Deployments pairs the same canary.
                let stables = pairs
                    .iter()
                    .find(|p| {
                        p.canary.qualified_name() == route.qualified_name()
                            && same_route(&p.canary, &route)
                    })
                    .map(|p| p.stable.clone())
                    .unwrap_or_default();
                (stables, group)
            }
        };
        out.weights
            .push((route.qualified_name(), route.weight.unwrap_or(0)));
        group.pairs.push(crate::gate::target::RoutePair {
            canary: route,
            stables,
        });
    }
    for text in &sel.routes {
        if overlay.is_some() {
            return Err(target_err(
                text,
                "Kustomize overlays are not resolved for HTTPRoutes yet; select the route in flat manifests".into(),
            )
            .into());
        }
        let sc = crate::router::gateway::select_canary(dir, text, sel.canary_service.as_deref())?;
        if layout.owns(&sc.canary.file) {
            return Err(target_err(
                text,
                format!(
                    "{} is read by a kustomization; HTTPRoutes in Kustomize layouts are not resolved yet (an edit there could change every root that reads it)",
                    sc.canary.file.display()
                ),
            )
            .into());
        }
        let Some(pct) = sc.percent else {
            return Err(target_err(
                text,
                format!(
                    "the canary's share of {} is not a whole percentage; set it with set-weight first",
                    sc.canary.describe()
                ),
            )
            .into());
        };
        out.weights.push((sc.canary.qualified_name(), pct));
        flat.pairs.push(crate::gate::target::RoutePair {
            canary: sc.canary,
            stables: sc.stables,
        });
    }
    let mut groups = vec![flat];
    groups.extend(rendered.into_iter().map(|(_, _, g)| g));
    for g in &groups {
        let t =
            crate::gate::target::resolve(&g.pairs, &g.workloads, &g.services, default_namespace);
        merge_targets(&mut out.targets, t);
        for p in &g.pairs {
            out.canaries.push(p.canary.clone());
            for st in &p.stables {
                if !out
                    .stables
                    .iter()
                    .any(|x| same_route(x, st) && x.name == st.name)
                {
                    out.stables.push(st.clone());
                }
            }
            let behind = |routes: &[&Route]| -> Vec<workload::Workload> {
                crate::router::behind_routes(&g.workloads, &g.services, routes)
                    .into_iter()
                    .cloned()
                    .collect()
            };
            for w in behind(&[&p.canary]) {
                if !out
                    .canary_workloads
                    .iter()
                    .any(|x| x.qualified_name() == w.qualified_name())
                {
                    out.canary_workloads.push(w);
                }
            }
            for w in behind(&p.stables.iter().collect::<Vec<_>>()) {
                if !out
                    .stable_workloads
                    .iter()
                    .any(|x| x.qualified_name() == w.qualified_name())
                {
                    out.stable_workloads.push(w);
                }
            }
        }
    }
    Ok(out)
}

fn merge_targets(into: &mut crate::gate::target::Targets, t: crate::gate::target::Targets) {
    fn add<T: PartialEq>(into: &mut Vec<T>, from: Vec<T>) {
        for x in from {
            if !into.contains(&x) {
                into.push(x);
            }
        }
    }
    add(&mut into.ingresses, t.ingresses);
    add(&mut into.canary, t.canary);
    add(&mut into.stable, t.stable);
    add(&mut into.metrics, t.metrics);
    add(&mut into.notes, t.notes);
}

impl Rollout<'_> {
    fn forge(&self) -> Option<&AnyForge> {
        if self.settings.forge == ForgeKind::None {
            None
        } else {
            self.forge
        }
    }

    /// Read the base branch and the forge.
    pub async fn observe(&self) -> anyhow::Result<Observation> {
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
    async fn manual_pr(&self, forge: &AnyForge) -> anyhow::Result<Option<PrView>> {
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

    async fn pr_view(
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

    /// One pass: observe, decide, run the gates if the decision is to, act once.
    pub async fn reconcile(&self) -> anyhow::Result<PassReport> {
        let obs = self.observe().await?;
        self.decide_and_act(obs).await
    }

    async fn decide_and_act(&self, mut obs: Observation) -> anyhow::Result<PassReport> {
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
                        unix_now(),
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
    pub async fn settle(&self, report: &mut PassReport) -> anyhow::Result<()> {
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

    /// Carry out one decided step.
    pub async fn act_step(
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
    async fn relabel(&self, step: &Step, obs: &Observation) -> anyhow::Result<()> {
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
    async fn close_stale_stages(&self, obs: &Observation, reason: &str) -> anyhow::Result<()> {
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
    async fn merge(
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
    async fn change(
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
                            .filter(|r| layout.reach.get(*r).is_some_and(|f| f.contains(&file)))
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Write the state record under `dir`; returns its path (for the commit).
pub fn write_record(
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
fn step_pr(step: &Step, s: &Settings) -> Option<(u64, ChangeKind)> {
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

/// The PR body: what this change is, the stage table, what is checked after merge, the diff.
pub fn pr_body(s: &Settings, change: ChangeKind, obs: &Observation, diff: &str) -> String {
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
pub fn gate_comment(
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

pub fn verdict_word(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "pass".into(),
        Verdict::Wait(r) => format!("wait ({r})"),
        Verdict::Fail(r) => format!("fail ({r})"),
        Verdict::Inconclusive(r) => format!("inconclusive ({r})"),
    }
}
