//! `propose`: publish one weight change as a branch and open (or find) its PR/MR.
//!
//! It speaks the rollout's scheme (`plan::change_for_weight`): a weight that is a configured
//! stage of the Ingress's rollout is that stage's change (same branch, title, trailers, labels
//! and state record as `run`/`reconcile` would make, so `reconcile` takes over the request);
//! weight 0 is the rollback; any other weight is `gitops-canary/<id>/weight-N`, which
//! `reconcile` recognises and waits for. The rollout is the one in the config file when it
//! lists the Ingress (then all its Ingresses move together), else one of its own, with the id
//! the rollout would derive from the Ingress. Its settings (forge, token, author, base, stages)
//! resolve as the rollout's do, in `settings`, and `connect` opens the workspace and the forge.
//!
//! Idempotent by construction: the branch name comes from the rollout and the weight, `publish`
//! reuses a remote branch that already carries the same tree, and the forge is asked for the
//! request of that branch before one is created (and `create_pr` itself returns the existing
//! one on "already exists"). So a re-run after any failure prints the same request.

use super::args::{CanaryArgs, ConfigArg, PublishArgs, RepoArgs, WeightArg};
use super::connect::connect;
use super::settings::{self, Cmd};
use crate::exit;
use crate::forge::{Forge, NewPullRequest, PrState};
use crate::git::{ChangeRequest, Target};
use crate::manifest;
use crate::plan::{self, Approval};
use crate::report::Output;
use crate::report::{self, console, OutputKey};
use crate::rollout::{PrOperation, Selection};

#[derive(Debug, clap::Args)]
pub struct ProposeArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub canary: CanaryArgs,
    #[command(flatten)]
    pub weight: WeightArg,
    #[command(flatten)]
    pub publish: PublishArgs,
    /// Who merges: a human (pull-request), the tool after approvals or checks, or no request.
    #[arg(long, env = "GITOPS_CANARY_GATE", value_enum, default_value_t = Approval::PullRequest)]
    pub gate: Approval,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The canaries as people named them, for the request's body and messages.
fn target(sel: &Selection) -> String {
    match &sel.weight_from {
        Some(wf) => wf.to_string(),
        None => sel.names().join(", "),
    }
}

pub async fn run(args: ProposeArgs) -> anyhow::Result<u8> {
    let weight = args.weight.required()?;
    for name in args
        .canary
        .ingress
        .ingress
        .iter()
        .chain(&args.canary.route.route)
    {
        manifest::Selector::parse(name)?;
    }
    let settings = settings::load(Cmd::Propose(&args))?;
    // The forge client is built before pushing, so a missing setting fails before any side effect.
    let conn = connect(&settings).await?;
    let ws = conn
        .ws
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("propose publishes: no workspace was opened"))?;
    let forge = conn.forge.as_ref();
    let sc = &settings.rollout;
    let change = plan::change_for_weight(&sc.stages, weight);
    let total = sc.stages.len();
    let shown = target(&sc.selection);

    let branch = plan::branch(&sc.rollout, change);
    let target = if args.gate == Approval::Direct {
        Target::Direct
    } else {
        Target::Branch(branch.clone())
    };
    let title = plan::title(&sc.rollout, change, total);
    let body = format!(
        "Set the canary weight of {} to {}%.",
        sc.selection.describe(),
        weight
    );
    let message = plan::commit_message(&sc.rollout, change, total, &body);
    let req = ChangeRequest {
        base: sc.base.clone(),
        target,
        message,
        author: sc.author.clone(),
    };
    let record = plan::StateRecord::for_change(&sc.rollout, change, None, weight);
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
    let pr = match forge {
        Some(f) if head_sha.is_some() => {
            let found = f.find_pr_by_branch(&published.branch).await?;
            let labels = plan::labels(&sc.labels, change);
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
                            "Sets the canary weight of `{shown}` to **{weight}%**.\n\nOpened by gitops-canary; re-runs reuse this request.",
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
            (OutputKey::Weight, weight.to_string()),
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
                "{shown} is already at weight {weight} on {}; nothing to propose",
                sc.base
            )),
        },
    }
    Ok(exit::OK)
}
