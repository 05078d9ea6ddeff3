//! GitHub pull requests through octocrab.
//!
//! Requests go through octocrab's raw `_get/_post/_patch/_put` so the adapter sees status codes
//! and headers: the typed builders hide `retry-after` and `x-ratelimit-*`, which decide between
//! a secondary rate limit (retry) and a missing permission (stop and say which). Bodies are
//! still read into octocrab's own models, so what the fake serves is what octocrab accepts.
//! octocrab's own retry layer is switched off: retries, scrubbing, paging and what an answer
//! means are the shared `Rest` layer's. This module says how one attempt goes over octocrab
//! and what each operation asks; `answers` reads what GitHub sends back.

mod answers;

use std::collections::BTreeMap;
use std::fmt;

use octocrab::models::{self, pulls};
use octocrab::service::middleware::retry::RetryConfig;
use octocrab::Octocrab;
use serde_json::json;

use super::approval::{self, GitHubReview};
use super::rest::{Endpoint, Rest};
use super::{
    Checks, Comment, Forge, ForgeError, MergeMethod, MergeOutcome, Mergeable, NewPullRequest,
    PullRequest, RawResponse, RetryPolicy, Reviews, StateFilter,
};
use crate::secret::Token;

/// Where and as whom to talk to GitHub.
/// `Debug` is derived: `Token` prints redacted.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    /// REST root: `https://api.github.com`, or `https://HOST/api/v3` on GitHub Enterprise Server.
    pub api_url: String,
    /// Web root for links: `https://github.com`.
    pub server_url: String,
    /// `owner/name`.
    pub repo: String,
    pub token: Token,
    pub retry: RetryPolicy,
}

impl GitHubConfig {
    /// From the variables GitHub Actions sets: `GITHUB_API_URL`, `GITHUB_SERVER_URL`,
    /// `GITHUB_REPOSITORY`, and `GITHUB_TOKEN` unless `token` is given.
    pub fn from_env(token: Option<Token>) -> Result<Self, ForgeError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let repo = var("GITHUB_REPOSITORY").ok_or(ForgeError::Config {
            setting: "GITHUB_REPOSITORY",
            message: "not set; expected owner/name".into(),
        })?;
        let token = match token {
            Some(t) if !t.is_empty() => t,
            _ => Token::new(var("GITHUB_TOKEN").ok_or(ForgeError::Config {
                setting: "GITHUB_TOKEN",
                message: "no token given (flag --token or GITHUB_TOKEN)".into(),
            })?),
        };
        Ok(GitHubConfig {
            api_url: var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            server_url: var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
            repo,
            token,
            retry: RetryPolicy::default(),
        })
    }
}

/// A GitHub repository's pull requests.
#[derive(Clone)]
pub struct GitHub {
    client: Octocrab,
    cfg: GitHubConfig,
    owner: String,
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub").field("cfg", &self.cfg).finish()
    }
}

impl GitHub {
    pub fn new(cfg: GitHubConfig) -> Result<Self, ForgeError> {
        let (owner, name) = cfg.repo.split_once('/').ok_or_else(|| ForgeError::Config {
            setting: "GITHUB_REPOSITORY",
            message: format!("`{}` is not owner/name", cfg.repo),
        })?;
        if owner.is_empty() || name.is_empty() || name.contains('/') {
            return Err(ForgeError::Config {
                setting: "GITHUB_REPOSITORY",
                message: format!("`{}` is not owner/name", cfg.repo),
            });
        }
        let owner = owner.to_string();
        let client = Octocrab::builder()
            .base_uri(cfg.api_url.trim_end_matches('/'))
            .map_err(|e| ForgeError::Config {
                setting: "GITHUB_API_URL",
                message: format!("`{}`: {e}", cfg.api_url),
            })?
            .personal_token(cfg.token.expose().to_string())
            .add_retry_config(RetryConfig::None)
            .build()
            .map_err(|e| ForgeError::Config {
                setting: "GITHUB_API_URL",
                message: e.to_string(),
            })?;
        Ok(GitHub { client, cfg, owner })
    }

    pub fn from_env(token: Option<Token>) -> Result<Self, ForgeError> {
        Self::new(GitHubConfig::from_env(token)?)
    }

    pub fn repo(&self) -> &str {
        &self.cfg.repo
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.cfg.repo)
    }

    async fn get_pr(&self, number: u64) -> Result<pulls::PullRequest, ForgeError> {
        let ctx = self.ctx("get pull request", Some(number));
        self.get(&ctx, &self.path(&format!("/pulls/{number}")))
            .await
    }

    /// Pulls in `state`, newest update first, following pages up to a bound.
    async fn list_pulls(
        &self,
        op: &'static str,
        query: &str,
    ) -> Result<Vec<pulls::PullRequest>, ForgeError> {
        let ctx = self.ctx(op, None);
        self.pages(&ctx, |paging| {
            self.path(&format!(
                "/pulls?{query}&sort=updated&direction=desc&{paging}"
            ))
        })
        .await
    }

    /// A pull request's reviews in the order they were submitted, following pages up to a bound.
    async fn list_reviews(&self, number: u64) -> Result<Vec<GitHubReview>, ForgeError> {
        let ctx = self.ctx("reviews", Some(number));
        let mut all: Vec<pulls::Review> = self
            .pages(&ctx, |paging| {
                self.path(&format!("/pulls/{number}/reviews?{paging}"))
            })
            .await?;
        // GitHub lists them chronologically; sorting (stably) keeps that true across pages.
        all.sort_by_key(|r| r.submitted_at);
        Ok(all.into_iter().map(answers::review).collect())
    }

    /// `permission` of `login` on the repository (`none` when GitHub does not know them).
    async fn permission_of(&self, number: u64, login: &str) -> Result<String, ForgeError> {
        #[derive(serde::Deserialize)]
        struct Permission {
            permission: String,
        }
        let ctx = self.ctx("reviewer permission", Some(number));
        let path = self.path(&format!(
            "/collaborators/{}/permission",
            super::encode_segment(login)
        ));
        let found: Option<Permission> = self.get_if_found(&ctx, &path).await?;
        Ok(found.map_or_else(|| "none".into(), |p| p.permission))
    }
}

impl Rest for GitHub {
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            repo: &self.cfg.repo,
            token: &self.cfg.token,
            retry: &self.cfg.retry,
        }
    }

    async fn attempt(
        &self,
        method: &http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<RawResponse, String> {
        let res = match *method {
            http::Method::GET => self.client._get(path).await,
            http::Method::POST => self.client._post(path, body).await,
            http::Method::PATCH => self.client._patch(path, body).await,
            http::Method::PUT => self.client._put(path, body).await,
            _ => self.client._delete(path, body).await,
        };
        let res = res.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = self
            .client
            .body_to_string(res)
            .await
            .map_err(|e| e.to_string())?;
        Ok(RawResponse {
            status,
            headers,
            body: text.into_bytes(),
        })
    }

    fn lacks(&self, op: &str, raw: &RawResponse) -> String {
        answers::missing_permission(op, raw)
    }
}

impl Forge for GitHub {
    async fn find_pr_by_branch(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError> {
        let head = super::encode_segment(&format!("{}:{branch}", self.owner));
        let prs = self
            .list_pulls("find pull request", &format!("state=all&head={head}"))
            .await?
            .into_iter()
            .map(answers::pull_request)
            .filter(|p| p.branch == branch)
            .collect();
        Ok(super::pick_for_branch(prs))
    }

    async fn list_prs_by_label(
        &self,
        label: &str,
        state: StateFilter,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        // The pulls API cannot filter by label; pulls carry their labels, so filter here.
        let s = match state {
            StateFilter::Open => "open",
            StateFilter::Closed => "closed",
            StateFilter::All => "all",
        };
        Ok(self
            .list_pulls("list pull requests", &format!("state={s}"))
            .await?
            .into_iter()
            .map(answers::pull_request)
            .filter(|p| p.labels.iter().any(|l| l == label))
            .collect())
    }

    async fn create_pr(&self, new: &NewPullRequest) -> Result<PullRequest, ForgeError> {
        let ctx = self.ctx("create pull request", None);
        let body =
            json!({"title": new.title, "body": new.body, "head": new.head, "base": new.base});
        let raw = self
            .call(&ctx, http::Method::POST, &self.path("/pulls"), Some(body))
            .await?;
        let pr = match raw.status {
            201 | 200 => answers::pull_request(ctx.parse(&raw)?),
            422 if raw.message().contains("already exists") => {
                super::existing_open(self, &self.cfg.repo, &new.head, raw.status, raw.message())
                    .await?
            }
            _ => return Err(ctx.api(&raw)),
        };
        super::ensure_labels(self, pr, &new.labels).await
    }

    async fn update_pr_body(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("update body", Some(number));
        let path = self.path(&format!("/pulls/{number}"));
        self.send_ok(&ctx, http::Method::PATCH, &path, json!({"body": body}))
            .await
            .map(drop)
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        let ctx = self.ctx("add labels", Some(number));
        let path = self.path(&format!("/issues/{number}/labels"));
        let raw = self
            .send_ok(&ctx, http::Method::POST, &path, json!({"labels": labels}))
            .await?;
        let _: Vec<models::Label> = ctx.parse(&raw)?;
        Ok(())
    }

    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("comment", Some(number));
        let path = self.path(&format!("/issues/{number}/comments"));
        let raw = self
            .send_ok(&ctx, http::Method::POST, &path, json!({"body": body}))
            .await?;
        let _: models::issues::Comment = ctx.parse(&raw)?;
        Ok(())
    }

    async fn list_comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        let ctx = self.ctx("list comments", Some(number));
        let all: Vec<models::issues::Comment> = self
            .pages(&ctx, |paging| {
                self.path(&format!("/issues/{number}/comments?{paging}"))
            })
            .await?;
        Ok(all
            .into_iter()
            .map(|c| Comment {
                id: c.id.0,
                body: c.body.unwrap_or_default(),
            })
            .collect())
    }

    async fn update_comment(&self, number: u64, id: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("update comment", Some(number));
        let path = self.path(&format!("/issues/comments/{id}"));
        let raw = self
            .send_ok(&ctx, http::Method::PATCH, &path, json!({"body": body}))
            .await?;
        let _: models::issues::Comment = ctx.parse(&raw)?;
        Ok(())
    }

    async fn reviews(&self, pr: &PullRequest) -> Result<Reviews, ForgeError> {
        let reviews = self.list_reviews(pr.number).await?;
        let mut permissions = BTreeMap::new();
        for login in approval::github_reviewers_to_check(&reviews, &pr.head_sha, &pr.author) {
            let p = self.permission_of(pr.number, &login).await?;
            permissions.insert(login, p);
        }
        Ok(approval::summarize_github(
            &reviews,
            &pr.head_sha,
            &pr.author,
            &permissions,
        ))
    }

    async fn checks(&self, sha: &str) -> Result<Checks, ForgeError> {
        let ctx = self.ctx("checks", None);
        let combined: models::CombinedStatus = self
            .get(&ctx, &self.path(&format!("/commits/{sha}/status")))
            .await?;
        let path = self.path(&format!("/commits/{sha}/check-runs?per_page=100"));
        let runs: models::checks::ListCheckRuns = self.get(&ctx, &path).await?;
        Ok(answers::checks(&combined, &runs))
    }

    async fn mergeable(&self, number: u64) -> Result<Mergeable, ForgeError> {
        let pr = self.get_pr(number).await?;
        Ok(match pr.mergeable {
            Some(true) => Mergeable::Yes,
            Some(false) => Mergeable::No,
            None => Mergeable::Unknown,
        })
    }

    async fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> Result<MergeOutcome, ForgeError> {
        let ctx = self.ctx("merge", Some(number));
        let path = self.path(&format!("/pulls/{number}/merge"));
        let body = json!({"merge_method": method.as_str(), "sha": expected_head_sha});
        let raw = self
            .call(&ctx, http::Method::PUT, &path, Some(body))
            .await?;
        if raw.status != 200 {
            return Err(ctx.merge_refused(&raw, expected_head_sha));
        }
        let m: pulls::Merge = ctx.parse(&raw)?;
        match m.sha {
            Some(sha) if m.merged => Ok(MergeOutcome::Merged { sha }),
            _ => Err(ctx.not_mergeable(
                raw.status,
                m.message
                    .unwrap_or_else(|| "merge reported merged: false".into()),
            )),
        }
    }

    async fn close(&self, number: u64) -> Result<(), ForgeError> {
        let ctx = self.ctx("close", Some(number));
        let path = self.path(&format!("/pulls/{number}"));
        self.send_ok(&ctx, http::Method::PATCH, &path, json!({"state": "closed"}))
            .await
            .map(drop)
    }

    fn web_url(&self, number: u64) -> String {
        format!(
            "{}/{}/pull/{number}",
            self.cfg.server_url.trim_end_matches('/'),
            self.cfg.repo
        )
    }
}
