//! GitHub pull requests through octocrab.
//!
//! Requests go through octocrab's raw `_get/_post/_patch/_put` so the adapter sees status codes
//! and headers: the typed builders hide `retry-after` and `x-ratelimit-*`, which decide between
//! a secondary rate limit (retry) and a missing permission (stop and say which). Bodies are
//! still read into octocrab's own models, so what the fake serves is what octocrab accepts.
//! octocrab's own retry layer is switched off; [`super::send`] retries with bounded backoff.

use std::collections::BTreeMap;
use std::fmt;

use octocrab::models::{self, pulls};
use octocrab::service::middleware::retry::RetryConfig;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::approval::{self, GitHubReview, ReviewState};
use super::{
    send, Checks, Comment, Ctx, Forge, ForgeError, MergeMethod, MergeOutcome, Mergeable,
    NewPullRequest, PrState, PullRequest, RawResponse, RetryPolicy, Reviews, StateFilter,
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

/// The permission each operation needs, named as in a workflow's `permissions:` block.
fn permission_for(op: &str) -> &'static str {
    match op {
        "merge" => "contents: write",
        "checks" => "checks: read` and `statuses: read",
        "reviewer permission" => "metadata: read",
        "create pull request"
        | "update body"
        | "add labels"
        | "comment"
        | "update comment"
        | "close" => "pull-requests: write",
        _ => "pull-requests: read",
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

    fn ctx(&self, op: &'static str, number: Option<u64>) -> Ctx<'_> {
        Ctx {
            repo: &self.cfg.repo,
            op,
            number,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.cfg.repo)
    }

    /// One call with retries; returns any non-transient answer for the caller to judge, except
    /// 401/403 which always become a permission error naming what the token lacks.
    async fn call(
        &self,
        ctx: &Ctx<'_>,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<RawResponse, ForgeError> {
        let raw = send(&self.cfg.retry, ctx, || {
            let method = method.clone();
            let body = body.clone();
            async move {
                let res = match method {
                    http::Method::GET => self.client._get(path).await,
                    http::Method::POST => self.client._post(path, body.as_ref()).await,
                    http::Method::PATCH => self.client._patch(path, body.as_ref()).await,
                    http::Method::PUT => self.client._put(path, body.as_ref()).await,
                    _ => self.client._delete(path, body.as_ref()).await,
                };
                let res = res.map_err(|e| self.scrub(&e.to_string()))?;
                let status = res.status().as_u16();
                let headers = res.headers().clone();
                let text = self
                    .client
                    .body_to_string(res)
                    .await
                    .map_err(|e| self.scrub(&e.to_string()))?;
                Ok(RawResponse {
                    status,
                    headers,
                    body: self.scrub(&text).into_bytes(),
                })
            }
        })
        .await?;
        if raw.status == 401 {
            return Err(ctx.permission(&raw, "a valid token (it was rejected)".into()));
        }
        if raw.status == 403 {
            return Err(ctx.permission(&raw, self.missing_permission(ctx.op, &raw)));
        }
        Ok(raw)
    }

    fn scrub(&self, text: &str) -> String {
        crate::secret::redact(text, &[&self.cfg.token])
    }

    /// GitHub names what it wanted in `x-accepted-github-permissions` (`pull_requests=write`);
    /// without it, fall back to what the operation needs.
    fn missing_permission(&self, op: &str, raw: &RawResponse) -> String {
        let msg = raw.message();
        if msg.contains("not permitted to create or approve pull requests") {
            return "the repository setting \"Allow GitHub Actions to create and approve pull requests\"".into();
        }
        if let Some(accepted) = raw
            .headers
            .get("x-accepted-github-permissions")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
        {
            // Alternatives are separated by `;`, permissions within one by `,`.
            let first = accepted.split(';').next().unwrap_or(accepted);
            return first
                .split(',')
                .filter_map(|p| p.trim().split_once('='))
                .map(|(k, v)| format!("{}: {v}", k.replace('_', "-")))
                .collect::<Vec<_>>()
                .join("`, `");
        }
        permission_for(op).to_string()
    }

    fn parse<T: DeserializeOwned>(
        &self,
        ctx: &Ctx<'_>,
        raw: &RawResponse,
    ) -> Result<T, ForgeError> {
        serde_json::from_slice(&raw.body).map_err(|e| ctx.decode(e))
    }

    fn expect_ok(&self, ctx: &Ctx<'_>, raw: &RawResponse) -> Result<(), ForgeError> {
        match raw.status {
            s if (200..300).contains(&s) => Ok(()),
            404 if ctx.number.is_some() => Err(ctx.not_found()),
            _ => Err(ctx.api(raw)),
        }
    }

    async fn get_pr(&self, number: u64) -> Result<pulls::PullRequest, ForgeError> {
        let ctx = self.ctx("get pull request", Some(number));
        let raw = self
            .call(
                &ctx,
                http::Method::GET,
                &self.path(&format!("/pulls/{number}")),
                None,
            )
            .await?;
        self.expect_ok(&ctx, &raw)?;
        self.parse(&ctx, &raw)
    }

    /// Pulls in `state`, newest update first, following pages up to a bound.
    async fn list_pulls(
        &self,
        op: &'static str,
        query: &str,
    ) -> Result<Vec<pulls::PullRequest>, ForgeError> {
        const PER_PAGE: usize = 100;
        const MAX_PAGES: usize = 10;
        let ctx = self.ctx(op, None);
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = self.path(&format!(
                "/pulls?{query}&sort=updated&direction=desc&per_page={PER_PAGE}&page={page}"
            ));
            let raw = self.call(&ctx, http::Method::GET, &path, None).await?;
            self.expect_ok(&ctx, &raw)?;
            let batch: Vec<pulls::PullRequest> = self.parse(&ctx, &raw)?;
            let n = batch.len();
            out.extend(batch);
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// A pull request's reviews in the order they were submitted, following pages up to a bound.
    async fn list_reviews(&self, number: u64) -> Result<Vec<GitHubReview>, ForgeError> {
        const PER_PAGE: usize = 100;
        const MAX_PAGES: usize = 10;
        let ctx = self.ctx("reviews", Some(number));
        let mut all: Vec<pulls::Review> = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = self.path(&format!(
                "/pulls/{number}/reviews?per_page={PER_PAGE}&page={page}"
            ));
            let raw = self.call(&ctx, http::Method::GET, &path, None).await?;
            self.expect_ok(&ctx, &raw)?;
            let batch: Vec<pulls::Review> = self.parse(&ctx, &raw)?;
            let n = batch.len();
            all.extend(batch);
            if n < PER_PAGE {
                break;
            }
        }
        // GitHub lists them chronologically; sorting (stably) keeps that true across pages.
        all.sort_by_key(|r| r.submitted_at);
        Ok(all.into_iter().map(Self::convert_review).collect())
    }

    fn convert_review(r: pulls::Review) -> GitHubReview {
        use models::AuthorAssociation as A;
        let state = match r.state {
            Some(pulls::ReviewState::Approved) => ReviewState::Approved,
            Some(pulls::ReviewState::ChangesRequested) => ReviewState::ChangesRequested,
            Some(pulls::ReviewState::Commented) => ReviewState::Commented,
            Some(pulls::ReviewState::Dismissed) => ReviewState::Dismissed,
            _ => ReviewState::Pending,
        };
        let association = match r.author_association {
            Some(A::Owner) => "OWNER".to_string(),
            Some(A::Member) => "MEMBER".to_string(),
            Some(A::Collaborator) => "COLLABORATOR".to_string(),
            Some(A::Other(s)) => s,
            _ => "NONE".to_string(),
        };
        GitHubReview {
            reviewer: r.user.map(|u| u.login).unwrap_or_default(),
            state,
            commit_id: r.commit_id,
            association,
        }
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
        let raw = self.call(&ctx, http::Method::GET, &path, None).await?;
        match raw.status {
            404 => Ok("none".into()),
            s if (200..300).contains(&s) => {
                let p: Permission = self.parse(&ctx, &raw)?;
                Ok(p.permission)
            }
            _ => Err(ctx.api(&raw)),
        }
    }

    fn convert(pr: pulls::PullRequest) -> PullRequest {
        let state = if pr.merged_at.is_some() || pr.merged == Some(true) {
            PrState::Merged {
                merge_sha: pr.merge_commit_sha.clone().unwrap_or_default(),
            }
        } else if pr.state == Some(models::IssueState::Closed) {
            PrState::Closed
        } else {
            PrState::Open
        };
        PullRequest {
            number: pr.number,
            url: pr.html_url.map(|u| u.to_string()).unwrap_or(pr.url),
            branch: pr.head.ref_field,
            base: pr.base.ref_field,
            head_sha: pr.head.sha,
            author: pr.user.map(|u| u.login).unwrap_or_default(),
            title: pr.title.unwrap_or_default(),
            body: pr.body.unwrap_or_default(),
            labels: pr
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.name)
                .collect(),
            state,
        }
    }
}

/// The open one first; else the most recently updated (the list comes newest first).
fn pick_for_branch(prs: Vec<PullRequest>) -> Option<PullRequest> {
    let open = prs.iter().position(|p| p.state == PrState::Open);
    match open {
        Some(i) => prs.into_iter().nth(i),
        None => prs.into_iter().next(),
    }
}

/// Check runs that ended in one of these failed the commit.
const FAILED_CONCLUSIONS: &[&str] = &[
    "failure",
    "timed_out",
    "cancelled",
    "action_required",
    "startup_failure",
    "stale",
];

impl Forge for GitHub {
    async fn find_pr_by_branch(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError> {
        let head = super::encode_segment(&format!("{}:{branch}", self.owner));
        let prs = self
            .list_pulls("find pull request", &format!("state=all&head={head}"))
            .await?
            .into_iter()
            .map(Self::convert)
            .filter(|p| p.branch == branch)
            .collect();
        Ok(pick_for_branch(prs))
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
            .map(Self::convert)
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
            201 | 200 => Self::convert(self.parse(&ctx, &raw)?),
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
        let raw = self
            .call(
                &ctx,
                http::Method::PATCH,
                &self.path(&format!("/pulls/{number}")),
                Some(json!({"body": body})),
            )
            .await?;
        self.expect_ok(&ctx, &raw)
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        let ctx = self.ctx("add labels", Some(number));
        let path = self.path(&format!("/issues/{number}/labels"));
        let raw = self
            .call(
                &ctx,
                http::Method::POST,
                &path,
                Some(json!({"labels": labels})),
            )
            .await?;
        self.expect_ok(&ctx, &raw)?;
        let _: Vec<models::Label> = self.parse(&ctx, &raw)?;
        Ok(())
    }

    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("comment", Some(number));
        let path = self.path(&format!("/issues/{number}/comments"));
        let raw = self
            .call(&ctx, http::Method::POST, &path, Some(json!({"body": body})))
            .await?;
        self.expect_ok(&ctx, &raw)?;
        let _: models::issues::Comment = self.parse(&ctx, &raw)?;
        Ok(())
    }

    async fn list_comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        const PER_PAGE: usize = 100;
        const MAX_PAGES: usize = 10;
        let ctx = self.ctx("list comments", Some(number));
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = self.path(&format!(
                "/issues/{number}/comments?per_page={PER_PAGE}&page={page}"
            ));
            let raw = self.call(&ctx, http::Method::GET, &path, None).await?;
            self.expect_ok(&ctx, &raw)?;
            let batch: Vec<models::issues::Comment> = self.parse(&ctx, &raw)?;
            let n = batch.len();
            out.extend(batch.into_iter().map(|c| Comment {
                id: c.id.0,
                body: c.body.unwrap_or_default(),
            }));
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }

    async fn update_comment(&self, number: u64, id: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("update comment", Some(number));
        let path = self.path(&format!("/issues/comments/{id}"));
        let raw = self
            .call(
                &ctx,
                http::Method::PATCH,
                &path,
                Some(json!({"body": body})),
            )
            .await?;
        self.expect_ok(&ctx, &raw)?;
        let _: models::issues::Comment = self.parse(&ctx, &raw)?;
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
        let raw = self
            .call(
                &ctx,
                http::Method::GET,
                &self.path(&format!("/commits/{sha}/status")),
                None,
            )
            .await?;
        self.expect_ok(&ctx, &raw)?;
        let combined: models::CombinedStatus = self.parse(&ctx, &raw)?;
        let path = self.path(&format!("/commits/{sha}/check-runs?per_page=100"));
        let raw = self.call(&ctx, http::Method::GET, &path, None).await?;
        self.expect_ok(&ctx, &raw)?;
        let runs: models::checks::ListCheckRuns = self.parse(&ctx, &raw)?;
        let statuses = combined.statuses.iter().map(|s| {
            let state = match s.state {
                models::StatusState::Success => CheckState::Success,
                models::StatusState::Pending => CheckState::Pending,
                _ => CheckState::Failed,
            };
            (s.context.clone().unwrap_or_else(|| "status".into()), state)
        });
        let runs = runs.check_runs.iter().map(|r| {
            let state = match r.conclusion.as_deref() {
                None => CheckState::Pending,
                Some(c) if FAILED_CONCLUSIONS.contains(&c) => CheckState::Failed,
                Some(_) => CheckState::Success,
            };
            (r.name.clone(), state)
        });
        Ok(combine_checks(statuses.chain(runs)))
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
        match raw.status {
            200 => {
                let m: pulls::Merge = self.parse(&ctx, &raw)?;
                match m.sha {
                    Some(sha) if m.merged => Ok(MergeOutcome::Merged { sha }),
                    _ => Err(ForgeError::NotMergeable {
                        repo: self.cfg.repo.clone(),
                        number,
                        status: raw.status,
                        message: m
                            .message
                            .unwrap_or_else(|| "merge reported merged: false".into()),
                    }),
                }
            }
            404 => Err(ctx.not_found()),
            405 | 422 => Err(ForgeError::NotMergeable {
                repo: self.cfg.repo.clone(),
                number,
                status: raw.status,
                message: raw.message(),
            }),
            409 => Err(ForgeError::HeadChanged {
                repo: self.cfg.repo.clone(),
                number,
                status: raw.status,
                expected_head_sha: expected_head_sha.to_string(),
                message: raw.message(),
            }),
            _ => Err(ctx.api(&raw)),
        }
    }

    async fn close(&self, number: u64) -> Result<(), ForgeError> {
        let ctx = self.ctx("close", Some(number));
        let raw = self
            .call(
                &ctx,
                http::Method::PATCH,
                &self.path(&format!("/pulls/{number}")),
                Some(json!({"state": "closed"})),
            )
            .await?;
        self.expect_ok(&ctx, &raw)
    }

    fn web_url(&self, number: u64) -> String {
        format!(
            "{}/{}/pull/{number}",
            self.cfg.server_url.trim_end_matches('/'),
            self.cfg.repo
        )
    }
}

/// One check's state, forge-neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckState {
    Success,
    Pending,
    Failed,
}

/// Any failure names the first failing check; else any pending waits; none at all is `None`.
pub(crate) fn combine_checks(items: impl Iterator<Item = (String, CheckState)>) -> Checks {
    let mut any = false;
    let mut pending = false;
    for (name, state) in items {
        any = true;
        match state {
            CheckState::Failed => return Checks::Failure(name),
            CheckState::Pending => pending = true,
            CheckState::Success => {}
        }
    }
    match (any, pending) {
        (false, _) => Checks::None,
        (true, true) => Checks::Pending,
        (true, false) => Checks::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_combine() {
        use CheckState::*;
        let c = |v: Vec<(&str, CheckState)>| {
            combine_checks(v.into_iter().map(|(n, s)| (n.to_string(), s)))
        };
        assert_eq!(c(vec![]), Checks::None);
        assert_eq!(c(vec![("a", Success), ("b", Success)]), Checks::Success);
        assert_eq!(c(vec![("a", Success), ("b", Pending)]), Checks::Pending);
        assert_eq!(
            c(vec![("a", Pending), ("b", Failed)]),
            Checks::Failure("b".into())
        );
    }

    #[test]
    fn picks_open_request_over_newer_closed_one() {
        let mk = |n, state| PullRequest {
            number: n,
            url: String::new(),
            branch: "b".into(),
            base: "main".into(),
            head_sha: String::new(),
            author: String::new(),
            title: String::new(),
            body: String::new(),
            labels: vec![],
            state,
        };
        let got = pick_for_branch(vec![mk(3, PrState::Closed), mk(2, PrState::Open)]);
        assert_eq!(got.map(|p| p.number), Some(2));
        let got = pick_for_branch(vec![
            mk(3, PrState::Closed),
            mk(
                1,
                PrState::Merged {
                    merge_sha: "x".into(),
                },
            ),
        ]);
        assert_eq!(got.map(|p| p.number), Some(3));
        assert_eq!(pick_for_branch(vec![]), None);
    }
}
