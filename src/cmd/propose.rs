//! `propose`: publish one weight change as a branch and open (or find) its PR/MR.
//!
//! Idempotent by construction: the branch name comes from the Ingress and the weight, `publish`
//! reuses a remote branch that already carries the same tree, and the forge is asked for the
//! request of that branch before one is created (and `create_pr` itself returns the existing
//! one on "already exists"). So a re-run after any failure prints the same request.

use crate::app::PrOperation;
use crate::report::{self, console, OutputKey};
use std::path::PathBuf;

use crate::cli::{Output, RepoArgs};
use crate::config::ForgeKind;
use crate::forge::github::GitHub;
use crate::forge::gitlab::GitLab;
use crate::forge::{AnyForge, Forge, NewPullRequest, PrState};
use crate::git::{self, Author, ChangeRequest, Remote, Target, Workspace};
use crate::plan::Approval;
use crate::secret::Token;
use crate::{exit, manifest};

#[derive(Debug, clap::Args)]
pub struct ProposeArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The canary Ingress: NAME or NAMESPACE/NAME.
    #[arg(long, env = "GITOPS_CANARY_INGRESS")]
    pub ingress: String,
    /// The new weight.
    #[arg(long, env = "GITOPS_CANARY_WEIGHT")]
    pub weight: u32,
    /// The forge to open the request on; detected from GITHUB_ACTIONS / GITLAB_CI when absent.
    #[arg(long, env = "GITOPS_CANARY_FORGE", value_enum)]
    pub forge: Option<ForgeKind>,
    /// Who merges: a human (pull-request), the tool after approvals or checks, or no request.
    #[arg(long, env = "GITOPS_CANARY_GATE", value_enum, default_value_t = Approval::PullRequest)]
    pub gate: Approval,
    /// The branch the change goes into.
    #[arg(long, env = "GITOPS_CANARY_BASE", default_value = "main")]
    pub base: String,
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

pub async fn run(args: ProposeArgs) -> anyhow::Result<u8> {
    let selector = manifest::Selector::parse(&args.ingress)?;
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

    let branch = git::branch_name(selector.namespace.as_deref(), &selector.name, args.weight);
    let target = if args.gate == Approval::Direct {
        Target::Direct
    } else {
        Target::Branch(branch.clone())
    };
    let title = format!("canary: {} to {}%", args.ingress, args.weight);
    let message = format!(
        "{title}\n\nSet the canary weight of {} to {}.\n\nGitops-Canary-Ingress: {}\nGitops-Canary-Weight: {}\n",
        args.ingress, args.weight, args.ingress, args.weight
    );
    let author = match forge_kind {
        ForgeKind::Github => Author::github_actions_bot(),
        _ => Author::new("gitops-canary", "gitops-canary@users.noreply.gitlab.com"),
    };
    let req = ChangeRequest {
        base: args.base.clone(),
        target,
        message,
        author,
    };
    let ws = Workspace::open(&dir, Remote::new(url, auth))?;
    let (ingress, weight) = (args.ingress.clone(), args.weight);
    let published = ws.publish(&req, &mut |d| {
        let outcome = manifest::set_weight(d, &ingress, weight, false)?;
        Ok(outcome.changed_files())
    })?;
    let head_sha = published.commit.map(|c| c.to_string());

    let mut operation = match (&head_sha, published.reused) {
        (Some(_), false) => PrOperation::Updated,
        _ => PrOperation::None,
    };
    let pr = match &forge {
        Some(f) if head_sha.is_some() => {
            let found = f.find_pr_by_branch(&published.branch).await?;
            match found {
                Some(p) if p.state == PrState::Open => Some(p),
                _ => Some({
                    operation = PrOperation::Created;
                    f.create_pr(&NewPullRequest {
                        title: title.clone(),
                        body: format!(
                            "Sets the canary weight of `{}` to **{}%**.\n\nOpened by gitops-canary; re-runs reuse this request.",
                            args.ingress, args.weight
                        ),
                        head: published.branch.clone(),
                        base: args.base.clone(),
                        labels: vec!["gitops-canary".into()],
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
                "base": args.base,
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
                args.ingress, args.weight, args.base
            )),
        },
    }
    Ok(exit::OK)
}
