//! `run`, `reconcile`, `status`, `rollback`, `promote`: the rollout commands over `rollout`.
//!
//! They share one set of flags (`RolloutArgs`), each also read from the config file in the
//! repository; a flag wins over the file. They differ only in how far they go: `status`
//! decides and reports, `reconcile` takes one step, `run` loops to the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::gates::{self, MetricsArgs, RunnerSettings, SyncSourceKind};
use super::RepoArgs;
use crate::config::{self, ClusterMode, Config, ForgeKind, RollbackPolicy};
use crate::exit::{self, Usage};
use crate::forge::{AnyForge, GitHub, GitLab, MergeMethod};
use crate::gate::Gate;
use crate::git::{Auth, Author, Remote, Workspace};
use crate::plan::{self, Approval, Step};
use crate::report::Output;
use crate::report::{self, console, OutputKey, Report, RunStatus, Table};
use crate::rollout::{self, GateRunner, NoGates, PassReport, PrOperation, Rollout, Settings};
use crate::secret::Token;

/// Flags shared by the rollout commands; each overrides the same field of the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The rollout configuration file, relative to --repo.
    #[arg(long, env = "GITOPS_CANARY_CONFIG", default_value = config::DEFAULT_FILE)]
    pub config: PathBuf,
    /// The canary Ingress(es), [NAMESPACE/]NAME, comma-separated; moved together.
    #[arg(long, env = "GITOPS_CANARY_INGRESS", value_delimiter = ',')]
    pub ingress: Vec<String>,
    /// The Gateway API HTTPRoute(s), [NAMESPACE/]NAME, comma-separated, whose stable/canary
    /// split moves (the weight is the canary's percentage); with --ingress, all move together.
    #[arg(long, env = "GITOPS_CANARY_ROUTE", value_delimiter = ',')]
    pub route: Vec<String>,
    /// The HTTPRoute backendRef that is the canary; default, the only one whose Service name
    /// ends in -canary or selects a Deployment whose name does.
    #[arg(long, env = "GITOPS_CANARY_CANARY_SERVICE")]
    pub canary_service: Option<String>,
    /// With Kustomize overlays: the root kustomization (directory, relative to --repo) whose
    /// rendering the rollout moves, when the Ingress name alone is ambiguous.
    #[arg(long, env = "GITOPS_CANARY_OVERLAY")]
    pub overlay: Option<PathBuf>,
    /// Rollout id for branch names and commit trailers (default: from the first Ingress).
    #[arg(long, env = "GITOPS_CANARY_ROLLOUT_ID")]
    pub rollout_id: Option<String>,
    /// Stage weights, comma-separated (default 10,25,50,100).
    #[arg(long, env = "GITOPS_CANARY_STAGES", value_delimiter = ',')]
    pub stages: Vec<u32>,
    /// How each stage is approved.
    #[arg(long, env = "GITOPS_CANARY_APPROVAL", value_enum)]
    pub approval: Option<Approval>,
    /// Approvals required by `--approval approved`.
    #[arg(long, env = "GITOPS_CANARY_MIN_APPROVALS")]
    pub min_approvals: Option<u32>,
    /// Where pull requests live.
    #[arg(long, env = "GITOPS_CANARY_FORGE", value_enum)]
    pub forge: Option<ForgeKind>,
    /// The branch Argo CD / Flux deploy from.
    #[arg(long, env = "GITOPS_CANARY_BASE")]
    pub base: Option<String>,
    /// The Git remote to push to (default: the checkout's `origin`).
    #[arg(long, env = "GITOPS_CANARY_REMOTE")]
    pub remote: Option<String>,
    /// Forge and Git token (default: GITHUB_TOKEN or GITLAB_TOKEN).
    #[arg(long, env = "GITOPS_CANARY_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,
    /// SSH private key for an SSH remote: its content (as actions/checkout's `ssh-key`), or a
    /// path to it. The host must be in ~/.ssh/known_hosts.
    #[arg(long, env = "GITOPS_CANARY_SSH_KEY", hide_env_values = true)]
    pub ssh_key: Option<String>,
    /// How the tool merges a pull request it may merge.
    #[arg(long, env = "GITOPS_CANARY_MERGE_METHOD", value_enum)]
    pub merge_method: Option<MergeMethod>,
    /// Labels put on every pull request (comma-separated).
    #[arg(long, env = "GITOPS_CANARY_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Cluster gates: `kube` (KUBECONFIG / in-cluster) or `none` (explicitly off).
    #[arg(long, env = "GITOPS_CANARY_CLUSTER", value_enum)]
    pub cluster: Option<ClusterMode>,
    /// Gates after each merge, comma-separated (default synced,rolled-out).
    #[arg(long, env = "GITOPS_CANARY_GATES", value_enum, value_delimiter = ',')]
    pub gates: Vec<Gate>,
    /// How long `synced` and `rolled-out` may take together after a merge (default 10m).
    #[arg(long, env = "GITOPS_CANARY_TIMEOUT", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// How long the canary must stay steady after each stage (default 5m).
    #[arg(long, env = "GITOPS_CANARY_BAKE_TIME", value_parser = humantime::parse_duration)]
    pub bake_time: Option<Duration>,
    /// Kubeconfig context (default: the current context, or in-cluster config).
    #[arg(long, env = "GITOPS_CANARY_CONTEXT")]
    pub context: Option<String>,
    /// What shows that Git's change reached the cluster.
    #[arg(long, env = "GITOPS_CANARY_SYNC_SOURCE", value_enum)]
    pub sync_source: Option<SyncSourceKind>,
    /// The Argo CD Application (NAMESPACE/NAME; namespace defaults to argocd).
    #[arg(long, env = "GITOPS_CANARY_ARGOCD_APP")]
    pub argocd_app: Option<String>,
    /// The Flux Kustomization (NAMESPACE/NAME; namespace defaults to flux-system).
    #[arg(long, env = "GITOPS_CANARY_FLUX_KUSTOMIZATION")]
    pub flux_kustomization: Option<String>,
    /// Ask Argo CD / Flux to reconcile now instead of waiting for their poll interval.
    #[arg(long, env = "GITOPS_CANARY_SYNC_NOW")]
    pub sync_now: bool,
    /// Container restarts during the bake that count as unsteady.
    #[arg(long, env = "GITOPS_CANARY_RESTART_THRESHOLD", default_value_t = crate::cluster::DEFAULT_RESTART_THRESHOLD)]
    pub restart_threshold: i32,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// What to do when a gate fails.
    #[arg(long, env = "GITOPS_CANARY_ROLLBACK", value_enum)]
    pub rollback: Option<RollbackPolicy>,
    /// Promote the canary to stable after the last stage.
    #[arg(long, env = "GITOPS_CANARY_PROMOTE")]
    pub promote: Option<bool>,
    /// `reconcile`: how long one pass waits for a sync before it reports waiting (exit 0); a
    /// stage's `--timeout` counts from when it reached the base, across passes.
    #[arg(long, env = "GITOPS_CANARY_RECONCILE_WAIT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub reconcile_wait: Duration,
    /// `run`: how often to look again while waiting.
    #[arg(long, env = "GITOPS_CANARY_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "15s")]
    pub poll_interval: Duration,
    /// `run`: give up after waiting this long in all.
    #[arg(long, env = "GITOPS_CANARY_MAX_WAIT", value_parser = humantime::parse_duration, default_value = "24h")]
    pub max_wait: Duration,
    /// Commit author name (default: the GitHub Actions bot on GitHub, the GitLab user on GitLab).
    #[arg(long, env = "GITOPS_CANARY_AUTHOR_NAME")]
    pub author_name: Option<String>,
    /// Commit author e-mail.
    #[arg(long, env = "GITOPS_CANARY_AUTHOR_EMAIL")]
    pub author_email: Option<String>,
    /// Decide and show the change; push nothing, merge nothing.
    #[arg(long, env = "GITOPS_CANARY_DRY_RUN")]
    pub dry_run: bool,
}

/// `rollback` also takes a reason.
#[derive(Debug, Clone, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// Why (shown in the rollback PR).
    #[arg(
        long,
        env = "GITOPS_CANARY_REASON",
        default_value = "requested by hand"
    )]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Reconcile,
    Status,
    Rollback,
    Promote,
}

/// Everything resolved: settings, the workspace, the forge, the token.
struct Resolved {
    settings: Settings,
    ws: Workspace,
    forge: Option<AnyForge>,
    token: Option<Token>,
    cluster: ClusterMode,
    runner: RunnerSettings,
    metrics: MetricsArgs,
}

fn env_token(forge: ForgeKind) -> Option<Token> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match forge {
        ForgeKind::Github => var("GITHUB_TOKEN"),
        // Not CI_JOB_TOKEN: a job token cannot read or open merge requests (see `git_auth`).
        ForgeKind::Gitlab => var("GITLAB_TOKEN"),
        ForgeKind::None => None,
    }
    .map(Token::new)
}

fn default_author(forge: ForgeKind, dir: &std::path::Path) -> Author {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if var("GITHUB_ACTIONS").as_deref() == Some("true") || forge == ForgeKind::Github {
        return Author::github_actions_bot();
    }
    if let (Some(name), Some(email)) = (var("GITLAB_USER_NAME"), var("GITLAB_USER_EMAIL")) {
        return Author::new(name, email);
    }
    // Elsewhere: the checkout's own identity, as `git commit` would use it.
    if let Ok(cfg) = git2::Repository::open(dir).and_then(|r| r.config()) {
        if let (Ok(name), Ok(email)) = (cfg.get_string("user.name"), cfg.get_string("user.email")) {
            return Author::new(name, email);
        }
    }
    Author::new("gitops-canary", "gitops-canary@users.noreply.invalid")
}

/// The canaries the rollout moves: flags win over the file, field by field.
fn selection(args: &RolloutArgs, cfg: &Config) -> anyhow::Result<rollout::Selection> {
    let pick = |flag: &Vec<String>, file: &Vec<String>| {
        if flag.is_empty() {
            file.clone()
        } else {
            flag.clone()
        }
    };
    // A flag that names canaries replaces the file's canaries of both kinds.
    let (ingresses, routes) = if args.ingress.is_empty() && args.route.is_empty() {
        (cfg.ingresses.clone(), cfg.routes.clone())
    } else {
        (
            pick(&args.ingress, &Vec::new()),
            pick(&args.route, &Vec::new()),
        )
    };
    let sel = rollout::Selection {
        ingresses,
        routes,
        canary_service: args.canary_service.clone().or(cfg.canary_service.clone()),
        overlay: args.overlay.clone().or(cfg.overlay.clone()),
    };
    if sel.is_empty() {
        return Err(Usage(format!(
            "no canary: pass --ingress or --route, or set `ingresses:` or `routes:` in {}",
            args.config.display()
        ))
        .into());
    }
    if sel.canary_service.is_some() && sel.routes.is_empty() {
        return Err(Usage("--canary-service applies to --route (an HTTPRoute)".into()).into());
    }
    Ok(sel)
}

fn resolve(args: &RolloutArgs) -> anyhow::Result<Resolved> {
    let dir = &args.repo.repo;
    let cfg = Config::load(&dir.join(&args.config))?;
    let selection = selection(args, &cfg)?;
    let mut cfg = cfg;
    if !args.stages.is_empty() {
        config::check_stages(&args.stages).map_err(|m| Usage(format!("--stages: {m}")))?;
        cfg.stages = args
            .stages
            .iter()
            .map(|w| config::StageConfig::Weight(*w))
            .collect();
    }
    if args.approval.is_some() {
        cfg.approval = args.approval;
    }
    // The file's or the CI's forge; GitHub (the config default) when nothing tells.
    let forge_kind = args
        .forge
        .or(cfg.forge)
        .or_else(ForgeKind::from_ci_env)
        .unwrap_or_default();
    let stages = cfg.stages(if forge_kind == ForgeKind::None {
        Approval::Direct
    } else {
        Approval::PullRequest
    });
    let cluster = args.cluster.or(cfg.cluster).unwrap_or_default();
    let gate_list = if cluster == ClusterMode::None {
        Vec::new()
    } else if !args.gates.is_empty() {
        args.gates.clone()
    } else if !cfg.gates.is_empty() {
        cfg.gates.clone()
    } else {
        vec![Gate::Synced, Gate::RolledOut]
    };
    let gate_names = gate_list.iter().map(|g| g.as_str().to_string()).collect();
    let merge_method = match (args.merge_method, cfg.merge_method.as_deref()) {
        (Some(m), _) => m,
        (None, Some("squash")) => MergeMethod::Squash,
        (None, Some("rebase")) => MergeMethod::Rebase,
        _ => MergeMethod::Merge,
    };
    let token = args
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| env_token(forge_kind));
    let url = match &args.remote {
        Some(u) => u.clone(),
        None => crate::git::origin_url(dir)?,
    };
    let auth = match &args.ssh_key {
        Some(key) => Auth::ssh_key(key),
        None => crate::git::token_auth(
            token.as_ref(),
            forge_kind == ForgeKind::Gitlab,
            std::env::var("CI_JOB_TOKEN").ok(),
        ),
    };
    let ws = Workspace::open(dir, Remote::new(url, auth))?;
    let forge = match forge_kind {
        ForgeKind::Github => Some(AnyForge::GitHub(GitHub::from_env(token.clone())?)),
        ForgeKind::Gitlab => Some(AnyForge::GitLab(GitLab::from_env(token.clone())?)),
        ForgeKind::None => None,
    };
    let rollout = args
        .rollout_id
        .clone()
        .or(cfg.id.clone())
        .unwrap_or_else(|| plan::default_rollout_id(&selection.names()[0]));
    let mut labels = if args.labels.is_empty() {
        cfg.labels.clone()
    } else {
        args.labels.clone()
    };
    if labels.is_empty() {
        labels.push("gitops-canary".into());
    }
    let author = match (&args.author_name, &args.author_email) {
        (Some(n), Some(e)) => Author::new(n.clone(), e.clone()),
        _ => default_author(forge_kind, dir),
    };
    let settings = Settings {
        rollout,
        selection: selection.clone(),
        stages,
        min_approvals: args.min_approvals.or(cfg.min_approvals).unwrap_or(1),
        base: args
            .base
            .clone()
            .or(cfg.base.clone())
            .unwrap_or_else(|| "main".into()),
        forge: forge_kind,
        merge_method,
        labels,
        rollback: args.rollback.or(cfg.rollback).unwrap_or_default(),
        promote: args.promote.or(cfg.promote).unwrap_or(true),
        author,
        poll: args.poll_interval,
        max_wait: args.max_wait,
        gate_names,
        gate_timeout: Duration::ZERO,
    };
    let duration = |flag: Option<Duration>,
                    file: &Option<String>,
                    default: &str|
     -> anyhow::Result<Duration> {
        match (flag, file) {
            (Some(d), _) => Ok(d),
            (None, Some(f)) => Ok(config::parse_duration(f).map_err(Usage)?),
            (None, None) => Ok(config::parse_duration(default).map_err(Usage)?),
        }
    };
    let sync_source = args.sync_source.or(cfg.sync_source).unwrap_or_default();
    let argocd_app = args.argocd_app.clone().or(cfg.argocd_app.clone());
    let flux = args
        .flux_kustomization
        .clone()
        .or(cfg.flux_kustomization.clone());
    // A stage's own bakeTime wins, as its own approval does; then the flag, then the file.
    let stage_bakes = cfg.stage_bakes();
    let gate_timeout = duration(args.timeout, &cfg.timeout, "10m")?;
    let mut settings = settings;
    settings.gate_timeout = gate_timeout;
    let runner = RunnerSettings {
        gates: gate_list,
        context: args.context.clone(),
        sync_via: gates::sync_via(sync_source, argocd_app.as_deref(), flux.as_deref())?,
        sync_now: args.sync_now,
        timeout: gate_timeout,
        bake: duration(args.bake_time, &cfg.bake_time, "5m")?,
        stage_bakes,
        restart_threshold: args.restart_threshold,
    };
    let mut metrics = args.metrics.clone();
    if metrics.prometheus_url.is_none() {
        metrics.prometheus_url = cfg.prometheus_url.clone();
    }
    if metrics.metrics_provider.is_none() {
        metrics.metrics_provider = cfg.metrics_provider;
    }
    Ok(Resolved {
        settings,
        ws,
        forge,
        token,
        cluster,
        runner,
        metrics,
    })
}

async fn gate_runner(r: Resolved) -> anyhow::Result<(Box<dyn GateRunner>, Resolved)> {
    match r.cluster {
        ClusterMode::None => Ok((Box::new(NoGates), r)),
        ClusterMode::Kube => {
            let runner = gates::runner(r.runner.clone(), &r.metrics).await?;
            Ok((Box::new(runner), r))
        }
    }
}

/// The stage list people read: what is done, what it waits for, for how long.
pub fn render_stage_list(s: &Settings, r: &PassReport, waited: Duration) -> String {
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
fn run_status(step: &Step, s: &Settings) -> RunStatus {
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

fn status_word(step: &Step, s: &Settings) -> &'static str {
    run_status(step, s).as_str()
}

fn publish_outputs(rep: &mut dyn Report, r: &PassReport, s: &Settings) -> anyhow::Result<()> {
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

pub async fn run(mode: Mode, args: RolloutArgs, reason: Option<String>) -> anyhow::Result<u8> {
    let output = args.repo.output;
    let mut ci = report::ci();
    let resolved = resolve(&args)?;
    if let (Some(rep), Some(t)) = (ci.as_mut(), &resolved.token) {
        rep.mask(t)?;
    }
    let (gates, resolved) = gate_runner(resolved).await?;
    let rollout = Rollout {
        settings: resolved.settings.clone(),
        ws: &resolved.ws,
        forge: resolved.forge.as_ref(),
        gates: gates.as_ref(),
        dry_run: args.dry_run || mode == Mode::Status,
        run_gates: mode != Mode::Status,
        passed: Default::default(),
        wait_slice: (mode != Mode::Run).then_some(args.reconcile_wait),
    };
    let s = &resolved.settings;
    let started = Instant::now();
    let mut passes: Vec<PassReport> = Vec::new();
    let result: anyhow::Result<PassReport> = match mode {
        Mode::Run => {
            let mut show = |r: &PassReport| {
                let text = render_stage_list(s, r, started.elapsed());
                if let Some(rep) = ci.as_mut() {
                    // One collapsible group per pass keeps a long run readable in the CI log.
                    let title = format!(
                        "gitops-canary: stage {}/{} ({}%): {}",
                        r.stage, r.stages, r.weight, r.action
                    );
                    let _ = rep.group(&title);
                    for line in text.lines() {
                        let _ = rep.progress(line);
                    }
                    let _ = rep.end_group();
                } else if output == Output::Human {
                    console::out(&text);
                }
                passes.push(r.clone());
            };
            rollout.run(&mut show).await
        }
        Mode::Reconcile | Mode::Status => rollout.reconcile().await,
        Mode::Rollback => {
            let obs = rollout.observe().await?;
            let mut r = empty_report(s, &obs);
            r.step = Step::Rollback {
                reason: reason.clone().unwrap_or_default(),
            };
            match rollout
                .rollback(reason.as_deref().unwrap_or("requested"), &obs, &mut r)
                .await
            {
                Ok(()) => rollout.settle(&mut r).await.map(|()| r),
                Err(e) => Err(e),
            }
        }
        Mode::Promote => {
            let obs = rollout.observe().await?;
            let last = s.stages.last().map_or(100, |st| st.weight);
            if obs.observed.base_weight < last && !obs.observed.stable_promoted {
                return Err(Usage(format!(
                    "rollout {}: the canary is at {}%, not at the last stage ({last}%); promote after the last stage",
                    s.rollout, obs.observed.base_weight
                ))
                .into());
            }
            let mut o = obs.observed.clone();
            o.gates = Some(crate::gate::Verdict::Pass);
            let step = plan::next_step(&o);
            let mut r = empty_report(s, &obs);
            r.step = step.clone();
            match rollout.act_step(&step, &obs, &mut r).await {
                Ok(()) => rollout.settle(&mut r).await.map(|()| r),
                Err(e) => Err(e),
            }
        }
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if output == Output::Json {
                let doc = serde_json::json!({
                    "schemaVersion": 1,
                    "status": "failed",
                    "error": exit::render(&e),
                    "passes": passes,
                });
                console::json(&doc)?;
            }
            if let Some(rep) = ci.as_mut() {
                let written = (|| {
                    if let Some(last) = passes.last() {
                        publish_outputs(rep.as_mut(), last, s)?;
                    }
                    let status = match passes.last().map(|p| run_status(&p.step, s)) {
                        Some(RunStatus::RolledBack) => RunStatus::RolledBack,
                        _ => RunStatus::Failed,
                    };
                    rep.output(OutputKey::Status, status.as_str())?;
                    rep.finish()?;
                    Ok::<(), anyhow::Error>(())
                })();
                // The run's own error is the one that matters; a report that could not be
                // written is said as well, never instead.
                if let Err(re) = written {
                    console::err(&format!("error: the CI report was not written: {re}"));
                }
            }
            return Err(e);
        }
    };
    if let Some(rep) = ci.as_mut() {
        publish_outputs(rep.as_mut(), &report, s)?;
        rep.finish()?;
    }
    match output {
        Output::Json => {
            let doc = serde_json::json!({
                "schemaVersion": 1,
                "status": status_word(&report.step, s),
                "result": report,
                "passes": passes,
            });
            console::json(&doc)?;
        }
        Output::Human => {
            if mode != Mode::Run {
                console::out(&render_stage_list(s, &report, started.elapsed()));
            }
            if !report.diff.is_empty() && args.dry_run {
                console::out(&report.diff);
            }
        }
    }
    // A non-zero exit always says why on stderr, whatever the output mode.
    Ok(match (&report.step, mode) {
        (Step::Failed { reason, .. }, _) => {
            console::err(&format!("error: rollout {} failed: {reason}", s.rollout));
            exit::FAILED
        }
        (Step::Rollback { reason }, Mode::Reconcile | Mode::Run) => {
            console::err(&format!(
                "error: rollout {} is rolled back: {reason}",
                s.rollout
            ));
            exit::FAILED
        }
        _ => exit::OK,
    })
}

fn empty_report(s: &Settings, obs: &rollout::Observation) -> PassReport {
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
