//! `propose`: publish one weight change as a branch and open (or find) its PR/MR.
//!
//! It speaks the rollout's scheme (`plan::change_for_weight`): a weight that is a configured
//! stage of the Ingress's rollout is that stage's change (same branch, title, trailers, labels
//! and state record as `run`/`reconcile` would make, so `reconcile` takes over the request);
//! weight 0 is the rollback; any other weight is `gitops-canary/<id>/weight-N`, which
//! `reconcile` recognises and waits for. The rollout is the one in the config file when it
//! lists the Ingress (then all its Ingresses move together), else one of its own, with the id
//! the rollout would derive from the Ingress.
//!
//! Idempotent by construction: the branch name comes from the rollout and the weight, `publish`
//! reuses a remote branch that already carries the same tree, and the forge is asked for the
//! request of that branch before one is created (and `create_pr` itself returns the existing
//! one on "already exists"). So a re-run after any failure prints the same request.

use crate::report::{self, console, OutputKey};
use crate::rollout::PrOperation;
use std::path::PathBuf;

use super::RepoArgs;
use crate::config::{self, Config, ForgeKind};
use crate::exit::Usage;
use crate::forge::github::GitHub;
use crate::forge::gitlab::GitLab;
use crate::forge::{AnyForge, Forge, NewPullRequest, PrState};
use crate::git::{self, Author, ChangeRequest, Remote, Target, Workspace};
use crate::plan::{self, Approval, ChangeKind};
use crate::report::Output;
use crate::secret::Token;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct ProposeArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The canary Ingress: NAME or NAMESPACE/NAME.
    #[arg(
        long,
        env = "GITOPS_CANARY_INGRESS",
        required_unless_present = "route",
        conflicts_with = "route"
    )]
    pub ingress: Option<String>,
    /// The Gateway API HTTPRoute whose stable/canary split to set (the weight is the canary's
    /// percentage): NAME or NAMESPACE/NAME.
    #[arg(long, env = "GITOPS_CANARY_ROUTE")]
    pub route: Option<String>,
    /// The HTTPRoute backendRef that is the canary; default, the only one whose Service name
    /// ends in -canary or selects a Deployment whose name does.
    #[arg(long, env = "GITOPS_CANARY_CANARY_SERVICE", requires = "route")]
    pub canary_service: Option<String>,
    /// With Kustomize overlays: the root kustomization (directory, relative to --repo) whose
    /// rendering to change, when the Ingress name alone is ambiguous.
    #[arg(long, env = "GITOPS_CANARY_OVERLAY")]
    pub overlay: Option<PathBuf>,
    /// The new weight.
    #[arg(long, env = "GITOPS_CANARY_WEIGHT")]
    pub weight: u32,
    /// The forge to open the request on; detected from GITHUB_ACTIONS / GITLAB_CI when absent.
    #[arg(long, env = "GITOPS_CANARY_FORGE", value_enum)]
    pub forge: Option<ForgeKind>,
    /// Who merges: a human (pull-request), the tool after approvals or checks, or no request.
    #[arg(long, env = "GITOPS_CANARY_GATE", value_enum, default_value_t = Approval::PullRequest)]
    pub gate: Approval,
    /// The branch the change goes into (default: the config file's `base`, else main).
    #[arg(long, env = "GITOPS_CANARY_BASE")]
    pub base: Option<String>,
    /// The rollout configuration file, relative to --repo (its id, stages and labels apply
    /// when it lists the Ingress, or lists none).
    #[arg(long, env = "GITOPS_CANARY_CONFIG", default_value = config::DEFAULT_FILE)]
    pub config: PathBuf,
    /// Rollout id for the branch name and commit trailers (default: the config file's, else
    /// derived from the Ingress as the rollout does).
    #[arg(long, env = "GITOPS_CANARY_ROLLOUT_ID")]
    pub rollout_id: Option<String>,
    /// Stage weights, comma-separated (default: the config file's, else 10,25,50,100).
    #[arg(long, env = "GITOPS_CANARY_STAGES", value_delimiter = ',')]
    pub stages: Vec<u32>,
    /// The Git remote to push to; the checkout's `origin` when absent.
    #[arg(long, env = "GITOPS_CANARY_REMOTE")]
    pub remote: Option<String>,
    /// Forge and push token; GITHUB_TOKEN / GITLAB_TOKEN when absent.
    #[arg(long, env = "GITOPS_CANARY_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,
}

fn env_token(var: &str) -> Option<Token> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Token::new)
}

/// The rollout a proposal belongs to: its id, its Ingresses, its stages and labels.
struct Scheme {
    rollout: String,
    selection: crate::rollout::Selection,
    change: ChangeKind,
    total: usize,
    labels: Vec<String>,
    base: String,
}

impl ProposeArgs {
    /// The one canary named by the flags.
    fn target(&self) -> &str {
        self.ingress
            .as_deref()
            .or(self.route.as_deref())
            .unwrap_or_default()
    }
}

fn scheme(args: &ProposeArgs) -> anyhow::Result<Scheme> {
    let cfg = Config::load(&args.repo.repo.join(&args.config))?;
    let same = |a: &str, b: &str| a.trim() == b.trim();
    let listed = |list: &[String], flag: &Option<String>| {
        flag.as_deref()
            .is_some_and(|f| list.iter().any(|i| same(i, f)))
    };
    let lists_none = cfg.ingresses.is_empty() && cfg.routes.is_empty();
    let applies =
        lists_none || listed(&cfg.ingresses, &args.ingress) || listed(&cfg.routes, &args.route);
    let cfg = if applies { cfg } else { Config::empty() };
    let mut weights: Vec<u32> = cfg
        .stages(Approval::PullRequest)
        .iter()
        .map(|s| s.weight)
        .collect();
    if !args.stages.is_empty() {
        config::check_stages(&args.stages).map_err(|m| Usage(format!("--stages: {m}")))?;
        weights = args.stages.clone();
    }
    let stages: Vec<plan::Stage> = weights
        .iter()
        .map(|w| plan::Stage {
            weight: *w,
            approval: args.gate,
        })
        .collect();
    let selection = if cfg.ingresses.is_empty() && cfg.routes.is_empty() {
        crate::rollout::Selection {
            ingresses: args.ingress.iter().cloned().collect(),
            routes: args.route.iter().cloned().collect(),
            canary_service: args.canary_service.clone(),
            overlay: args.overlay.clone().or(cfg.overlay.clone()),
        }
    } else {
        crate::rollout::Selection {
            ingresses: cfg.ingresses.clone(),
            routes: cfg.routes.clone(),
            canary_service: args.canary_service.clone().or(cfg.canary_service.clone()),
            overlay: args.overlay.clone().or(cfg.overlay.clone()),
        }
    };
    let rollout = args
        .rollout_id
        .clone()
        .filter(|s| !s.is_empty())
        .or(cfg.id.clone())
        .unwrap_or_else(|| plan::default_rollout_id(&selection.names()[0]));
    Ok(Scheme {
        rollout,
        change: plan::change_for_weight(&stages, args.weight),
        total: stages.len(),
        selection,
        labels: cfg.labels.clone(),
        base: args
            .base
            .clone()
            .or(cfg.base.clone())
            .unwrap_or_else(|| "main".into()),
    })
}

pub async fn run(args: ProposeArgs) -> anyhow::Result<u8> {
    manifest::Selector::parse(args.target())?;
    let sc = scheme(&args)?;
    // Without a flag: the CI's forge, else no forge (a direct commit).
    let forge_kind = args
        .forge
        .or_else(ForgeKind::from_ci_env)
        .unwrap_or(ForgeKind::None);
    let token = args.token.clone().or_else(|| match forge_kind {
        ForgeKind::Github => env_token("GITHUB_TOKEN"),
        ForgeKind::Gitlab => env_token("GITLAB_TOKEN"),
        ForgeKind::None => None,
    });
    let dir: PathBuf = args.repo.repo.clone();
    let url = match &args.remote {
        Some(u) => u.clone(),
        None => git::origin_url(&dir)?,
    };
    let auth = git::token_auth(
        token.as_ref(),
        forge_kind == ForgeKind::Gitlab,
        std::env::var("CI_JOB_TOKEN").ok(),
    );
    // Build the forge client before pushing so a missing setting fails before any side effect.
    let forge = match (forge_kind, args.gate) {
        (_, Approval::Direct) | (ForgeKind::None, _) => None,
        (ForgeKind::Github, _) => Some(AnyForge::GitHub(GitHub::from_env(token.clone())?)),
        (ForgeKind::Gitlab, _) => Some(AnyForge::GitLab(GitLab::from_env(token.clone())?)),
    };

    let branch = plan::branch(&sc.rollout, sc.change);
    let target = if args.gate == Approval::Direct {
        Target::Direct
    } else {
        Target::Branch(branch.clone())
    };
    let title = plan::title(&sc.rollout, sc.change, sc.total);
    let body = format!(
        "Set the canary weight of {} to {}%.",
        sc.selection.describe(),
        args.weight
    );
    let message = plan::commit_message(&sc.rollout, sc.change, sc.total, &body);
    let author = match forge_kind {
        ForgeKind::Github => Author::github_actions_bot(),
        _ => Author::new("gitops-canary", "gitops-canary@users.noreply.gitlab.com"),
    };
    let req = ChangeRequest {
        base: sc.base.clone(),
        target,
        message,
        author,
    };
    let ws = Workspace::open(&dir, Remote::new(url, auth))?;
    let weight = args.weight;
    let record = plan::StateRecord::for_change(&sc.rollout, sc.change, None, weight);
    let published = ws.publish(&req, &mut |d| {
        let mut changed = Vec::new();
        for out in sc.selection.set_weight(d, weight, false)? {
            changed.extend(out.changed_files());
        }
        // The rollout's state record goes in the same commit, as the rollout's own changes do.
        if !changed.is_empty() {
            changed.push(crate::rollout::write_record(d, &sc.rollout, &record)?);
        }
        Ok(changed)
    })?;
    let head_sha = published.commit.map(|c| c.to_string());

    let mut operation = match (&head_sha, published.reused) {
        (Some(_), false) => PrOperation::Updated,
        _ => PrOperation::None,
    };
    let pr = match &forge {
        Some(f) if head_sha.is_some() => {
            let found = f.find_pr_by_branch(&published.branch).await?;
            let labels = plan::labels(&sc.labels, sc.change);
            match found {
                // Found again: only the labels a crash may have kept from it are added.
                Some(p) if p.state == PrState::Open => {
                    Some(crate::forge::ensure_labels(f, p, &labels).await?)
                }
                _ => Some({
                    operation = PrOperation::Created;
                    f.create_pr(&NewPullRequest {
                        title: title.clone(),
                        body: format!(
                            "Sets the canary weight of `{}` to **{}%**.\n\nOpened by gitops-canary; re-runs reuse this request.",
                            args.target(), args.weight
                        ),
                        head: published.branch.clone(),
                        base: sc.base.clone(),
                        labels,
                    })
                    .await?
                }),
            }
        }
        _ => None,
    };
    if let Some(mut rep) = report::ci() {
        let head = head_sha
            .clone()
            .or_else(|| pr.as_ref().map(|p| p.head_sha.clone()))
            .unwrap_or_default();
        let outputs = [
            (OutputKey::Weight, args.weight.to_string()),
            (
                OutputKey::PullRequestUrl,
                pr.as_ref().map(|p| p.url.clone()).unwrap_or_default(),
            ),
            (
                OutputKey::PullRequestNumber,
                pr.as_ref()
                    .map(|p| p.number.to_string())
                    .unwrap_or_default(),
            ),
            (
                OutputKey::PullRequestOperation,
                operation.as_str().to_string(),
            ),
            (OutputKey::Branch, published.branch.clone()),
            (OutputKey::HeadSha, head),
        ];
        for (key, value) in outputs {
            rep.output(key, &value)?;
        }
        rep.finish()?;
    }

    match args.repo.output {
        Output::Json => {
            let doc = serde_json::json!({
                "schemaVersion": 1,
                "branch": published.branch,
                "base": sc.base,
                "rollout": sc.rollout,
                "head_sha": head_sha.clone().or_else(|| pr.as_ref().map(|p| p.head_sha.clone())),
                "changed": head_sha.is_some(),
                "reused": published.reused,
                "number": pr.as_ref().map(|p| p.number),
                "url": pr.as_ref().map(|p| p.url.clone()),
            });
            console::json(&doc)?;
        }
        Output::Human => match (&pr, &head_sha) {
            (Some(p), _) => console::out(&p.url),
            (None, Some(sha)) => console::out(&format!("{} {sha}", published.branch)),
            (None, None) => console::err(&format!(
                "{} is already at weight {} on {}; nothing to propose",
                args.target(),
                args.weight,
                sc.base
            )),
        },
    }
    Ok(exit::OK)
}
