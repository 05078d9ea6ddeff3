//! GitLab merge requests through the REST API v4 with reqwest.
//!
//! A merge request is addressed by its `iid` (the `!N` users see), which this module calls the
//! request's number. Reviews come from `/approvals` (each approver's access level from
//! `members/all`, and `approved_at` against the newest diff version's time for the head) plus
//! `detailed_merge_status` (`requested_changes`), checks from the newest pipeline of the commit, and merging can be
//! deferred to GitLab with `auto_merge` (GitLab 17+) and its older name
//! `merge_when_pipeline_succeeds`, sent together because GitLab ignores the one it does not know.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::approval::{self, GitLabApproval, HeadSince};
use super::{
    encode_segment, send, Checks, Comment, Ctx, Forge, ForgeError, MergeMethod, MergeOutcome,
    Mergeable, NewPullRequest, PrState, PullRequest, RawResponse, RetryPolicy, Reviews,
    StateFilter,
};
use crate::secret::Token;

/// How the token is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GitLabAuth {
    /// `PRIVATE-TOKEN:` (personal, project and group access tokens).
    #[default]
    PrivateToken,
    /// `Authorization: Bearer` (OAuth tokens).
    Bearer,
}

/// Where and as whom to talk to GitLab.
/// `Debug` is derived: `Token` prints redacted.
#[derive(Clone, Debug)]
pub struct GitLabConfig {
    /// `https://gitlab.example.com` (the API is under `/api/v4`).
    pub server_url: String,
    /// Numeric id or `group/project` path (encoded when used).
    pub project: String,
    /// The project's web page, for links; derived from `server_url` when absent.
    pub project_url: Option<String>,
    pub token: Token,
    pub auth: GitLabAuth,
    /// Let GitLab merge once the pipeline succeeds instead of merging now.
    pub auto_merge: bool,
    pub retry: RetryPolicy,
}

impl GitLabConfig {
    /// From GitLab CI's variables: `CI_SERVER_URL`, `CI_PROJECT_ID` or `CI_PROJECT_PATH`,
    /// `CI_PROJECT_URL`, and `GITLAB_TOKEN` unless `token` is given.
    pub fn from_env(token: Option<Token>) -> Result<Self, ForgeError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let server_url = var("CI_SERVER_URL").ok_or(ForgeError::Config {
            setting: "CI_SERVER_URL",
            message: "not set; expected https://gitlab.example.com".into(),
        })?;
        let project = var("CI_PROJECT_ID")
            .or_else(|| var("CI_PROJECT_PATH"))
            .ok_or(ForgeError::Config {
                setting: "CI_PROJECT_ID",
                message: "neither CI_PROJECT_ID nor CI_PROJECT_PATH is set".into(),
            })?;
        let token = match token {
            Some(t) if !t.is_empty() => t,
            _ => Token::new(var("GITLAB_TOKEN").ok_or_else(|| ForgeError::Config {
                setting: "GITLAB_TOKEN",
                message: if var("CI_JOB_TOKEN").is_some() {
                    "only CI_JOB_TOKEN is set, and a CI job token cannot read or open merge requests: set GITOPS_CANARY_TOKEN or GITLAB_TOKEN to a project or group access token with the `api` scope (Developer role or higher), as a masked, protected CI/CD variable".into()
                } else {
                    "no token given (flag --token, GITOPS_CANARY_TOKEN or GITLAB_TOKEN): a project or group access token with the `api` scope".into()
                },
            })?),
        };
        Ok(GitLabConfig {
            server_url,
            project,
            project_url: var("CI_PROJECT_URL"),
            token,
            auth: GitLabAuth::PrivateToken,
            auto_merge: false,
            retry: RetryPolicy::default(),
        })
    }
}

/// A GitLab project's merge requests.
#[derive(Clone)]
pub struct GitLab {
    http: reqwest::Client,
    cfg: GitLabConfig,
    /// `{server}/api/v4/projects/{encoded id or path}`.
    base: String,
}

impl fmt::Debug for GitLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitLab").field("cfg", &self.cfg).finish()
    }
}

#[derive(Debug, Deserialize)]
struct Mr {
    iid: u64,
    title: String,
    #[serde(default)]
    description: Option<String>,
    state: String,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    #[serde(default)]
    squash_commit_sha: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    web_url: String,
    #[serde(default)]
    detailed_merge_status: Option<String>,
    #[serde(default)]
    merge_status: Option<String>,
    #[serde(default)]
    author: Option<UserRef>,
}

#[derive(Debug, Deserialize)]
struct UserRef {
    id: u64,
    #[serde(default)]
    username: String,
}

#[derive(Debug, Deserialize)]
struct Approvals {
    #[serde(default)]
    approved_by: Vec<ApprovedBy>,
}

#[derive(Debug, Deserialize)]
struct ApprovedBy {
    user: UserRef,
    /// GitLab reports it in newer versions only.
    #[serde(default)]
    approved_at: Option<String>,
}

/// One of `GET /merge_requests/:iid/versions` (newest first): each push makes one.
#[derive(Debug, Deserialize)]
struct DiffVersion {
    head_commit_sha: String,
    created_at: String,
}

#[derive(Debug, Deserialize)]
struct Member {
    access_level: u32,
}

#[derive(Debug, Deserialize)]
struct Pipeline {
    id: u64,
    status: String,
}

fn permission_for(op: &str, status: u16, raw: &RawResponse) -> String {
    if status == 401 {
        return "a valid token (it was rejected)".into();
    }
    let v: serde_json::Value = serde_json::from_slice(&raw.body).unwrap_or_default();
    if v.get("error").and_then(|e| e.as_str()) == Some("insufficient_scope") {
        let scope = v.get("scope").and_then(|s| s.as_str()).unwrap_or("api");
        return format!("scope {scope}");
    }
    match op {
        "merge" => {
            "api scope and merge rights on the target branch (Developer or Maintainer)".into()
        }
        "find merge request"
        | "list merge requests"
        | "reviews"
        | "approver access"
        | "checks"
        | "list comments"
        | "get merge request" => "read_api scope and at least the Reporter role".into(),
        _ => "api scope and at least the Developer role".into(),
    }
}

impl GitLab {
    pub fn new(cfg: GitLabConfig) -> Result<Self, ForgeError> {
        let server = cfg.server_url.trim_end_matches('/');
        url::Url::parse(server).map_err(|e| ForgeError::Config {
            setting: "CI_SERVER_URL",
            message: format!("`{server}`: {e}"),
        })?;
        if cfg.project.trim().is_empty() {
            return Err(ForgeError::Config {
                setting: "CI_PROJECT_ID",
                message: "empty project".into(),
            });
        }
        let base = format!("{server}/api/v4/projects/{}", encode_segment(&cfg.project));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("gitops-canary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeError::Config {
                setting: "CI_SERVER_URL",
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(GitLab { http, cfg, base })
    }

    pub fn from_env(token: Option<Token>) -> Result<Self, ForgeError> {
        Self::new(GitLabConfig::from_env(token)?)
    }

    pub fn project(&self) -> &str {
        &self.cfg.project
    }

    fn ctx(&self, op: &'static str, number: Option<u64>) -> Ctx<'_> {
        Ctx {
            repo: &self.cfg.project,
            op,
            number,
        }
    }

    fn scrub(&self, text: &str) -> String {
        crate::secret::redact(text, &[&self.cfg.token])
    }

    async fn call(
        &self,
        ctx: &Ctx<'_>,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<RawResponse, ForgeError> {
        let url = format!("{}{path}", self.base);
        let raw = send(&self.cfg.retry, ctx, || {
            let mut req = self.http.request(method.clone(), &url);
            req = match self.cfg.auth {
                GitLabAuth::PrivateToken => req.header("PRIVATE-TOKEN", self.cfg.token.expose()),
                GitLabAuth::Bearer => req.bearer_auth(self.cfg.token.expose()),
            };
            if let Some(b) = &body {
                req = req.json(b);
            }
            async move {
                // reqwest errors can carry the URL, never headers; scrub anyway.
                let res = req
                    .send()
                    .await
                    .map_err(|e| self.scrub(&format!("{e:#}")))?;
                let status = res.status().as_u16();
                let headers = res.headers().clone();
                let bytes = res
                    .bytes()
                    .await
                    .map_err(|e| self.scrub(&format!("{e:#}")))?;
                Ok(RawResponse {
                    status,
                    headers,
                    body: self.scrub(&String::from_utf8_lossy(&bytes)).into_bytes(),
                })
            }
        })
        .await?;
        if raw.status == 401 || raw.status == 403 {
            return Err(ctx.permission(&raw, permission_for(ctx.op, raw.status, &raw)));
        }
        Ok(raw)
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

    async fn get_mr(&self, number: u64) -> Result<Mr, ForgeError> {
        let ctx = self.ctx("get merge request", Some(number));
        let raw = self
            .call(
                &ctx,
                reqwest::Method::GET,
                &format!("/merge_requests/{number}"),
                None,
            )
            .await?;
        self.expect_ok(&ctx, &raw)?;
        self.parse(&ctx, &raw)
    }

    async fn list(&self, op: &'static str, query: &str) -> Result<Vec<Mr>, ForgeError> {
        const PER_PAGE: usize = 100;
        const MAX_PAGES: usize = 10;
        let ctx = self.ctx(op, None);
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!("/merge_requests?{query}&order_by=updated_at&sort=desc&per_page={PER_PAGE}&page={page}");
            let raw = self.call(&ctx, reqwest::Method::GET, &path, None).await?;
            self.expect_ok(&ctx, &raw)?;
            let batch: Vec<Mr> = self.parse(&ctx, &raw)?;
            let n = batch.len();
            out.extend(batch);
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }

    async fn put_mr(
        &self,
        op: &'static str,
        number: u64,
        body: serde_json::Value,
    ) -> Result<(), ForgeError> {
        let ctx = self.ctx(op, Some(number));
        let raw = self
            .call(
                &ctx,
                reqwest::Method::PUT,
                &format!("/merge_requests/{number}"),
                Some(body),
            )
            .await?;
        self.expect_ok(&ctx, &raw)
    }

    /// When `head_sha` became the request's head: the creation of the newest diff version, if
    /// that version is of `head_sha`.
    async fn head_since(&self, number: u64, head_sha: &str) -> Result<HeadSince, ForgeError> {
        let ctx = self.ctx("reviews", Some(number));
        let raw = self
            .call(
                &ctx,
                reqwest::Method::GET,
                &format!("/merge_requests/{number}/versions"),
                None,
            )
            .await?;
        self.expect_ok(&ctx, &raw)?;
        let versions: Vec<DiffVersion> = self.parse(&ctx, &raw)?;
        Ok(match versions.into_iter().next() {
            Some(v) if v.head_commit_sha == head_sha => HeadSince::At(v.created_at),
            _ => HeadSince::Unknown,
        })
    }

    /// A user's access level on the project, inherited ones included (0 if not a member).
    async fn access_level(&self, number: u64, user_id: u64) -> Result<u32, ForgeError> {
        let ctx = self.ctx("approver access", Some(number));
        let raw = self
            .call(
                &ctx,
                reqwest::Method::GET,
                &format!("/members/all/{user_id}"),
                None,
            )
            .await?;
        match raw.status {
            404 => Ok(0),
            s if (200..300).contains(&s) => Ok(self.parse::<Member>(&ctx, &raw)?.access_level),
            _ => Err(ctx.api(&raw)),
        }
    }

    fn convert(mr: Mr) -> PullRequest {
        let state = match mr.state.as_str() {
            "merged" => PrState::Merged {
                merge_sha: mr
                    .merge_commit_sha
                    .or(mr.squash_commit_sha)
                    .unwrap_or_default(),
            },
            "closed" | "locked" => PrState::Closed,
            _ => PrState::Open,
        };
        PullRequest {
            number: mr.iid,
            url: mr.web_url,
            branch: mr.source_branch,
            base: mr.target_branch,
            head_sha: mr.sha.unwrap_or_default(),
            author: mr.author.map(|a| a.username).unwrap_or_default(),
            title: mr.title,
            body: mr.description.unwrap_or_default(),
            labels: mr.labels,
            state,
        }
    }
}

/// GitLab's `detailed_merge_status` (and the older `merge_status`) as a yes/no/not-yet.
fn mergeable_from(detailed: Option<&str>, legacy: Option<&str>) -> Mergeable {
    match detailed {
        Some("mergeable") => Mergeable::Yes,
        Some("conflict" | "need_rebase" | "broken_status") => Mergeable::No,
        Some(_) => Mergeable::Unknown,
        None => match legacy {
            Some("can_be_merged") => Mergeable::Yes,
            Some("cannot_be_merged" | "cannot_be_merged_recheck") => Mergeable::No,
            _ => Mergeable::Unknown,
        },
    }
}

fn checks_from(pipeline: Option<&Pipeline>) -> Checks {
    let Some(p) = pipeline else {
        return Checks::None;
    };
    match p.status.as_str() {
        "success" | "skipped" => Checks::Success,
        "failed" | "canceled" | "canceling" => {
            Checks::Failure(format!("pipeline {} {}", p.id, p.status))
        }
        _ => Checks::Pending,
    }
}

impl Forge for GitLab {
    async fn find_pr_by_branch(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError> {
        let q = format!("state=all&source_branch={}", encode_segment(branch));
        let mrs: Vec<PullRequest> = self
            .list("find merge request", &q)
            .await?
            .into_iter()
            .map(Self::convert)
            .filter(|p| p.branch == branch)
            .collect();
        let open = mrs.iter().position(|p| p.state == PrState::Open);
        Ok(match open {
            Some(i) => mrs.into_iter().nth(i),
            None => mrs.into_iter().next(),
        })
    }

    async fn list_prs_by_label(
        &self,
        label: &str,
        state: StateFilter,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        let s = match state {
            StateFilter::Open => "opened",
            StateFilter::Closed | StateFilter::All => "all",
        };
        let q = format!("state={s}&labels={}", encode_segment(label));
        Ok(self
            .list("list merge requests", &q)
            .await?
            .into_iter()
            .map(Self::convert)
            .filter(|p| p.labels.iter().any(|l| l == label))
            .filter(|p| state != StateFilter::Closed || p.state != PrState::Open)
            .collect())
    }

    async fn create_pr(&self, new: &NewPullRequest) -> Result<PullRequest, ForgeError> {
        let ctx = self.ctx("create merge request", None);
        let body = json!({
            "source_branch": new.head,
            "target_branch": new.base,
            "title": new.title,
            "description": new.body,
            "labels": new.labels.join(","),
            "remove_source_branch": true,
        });
        let raw = self
            .call(&ctx, reqwest::Method::POST, "/merge_requests", Some(body))
            .await?;
        let pr = match raw.status {
            200 | 201 => Self::convert(self.parse(&ctx, &raw)?),
            // "Another open merge request already exists for this source branch: !N"
            409 | 422 if raw.message().contains("already exists") => {
                super::existing_open(
                    self,
                    &self.cfg.project,
                    &new.head,
                    raw.status,
                    raw.message(),
                )
                .await?
            }
            _ => return Err(ctx.api(&raw)),
        };
        super::ensure_labels(self, pr, &new.labels).await
    }

    async fn update_pr_body(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        self.put_mr("update description", number, json!({"description": body}))
            .await
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        self.put_mr(
            "add labels",
            number,
            json!({"add_labels": labels.join(",")}),
        )
        .await
    }

    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("comment", Some(number));
        let raw = self
            .call(
                &ctx,
                reqwest::Method::POST,
                &format!("/merge_requests/{number}/notes"),
                Some(json!({"body": body})),
            )
            .await?;
        self.expect_ok(&ctx, &raw)
    }

    async fn list_comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        #[derive(serde::Deserialize)]
        struct Note {
            id: u64,
            #[serde(default)]
            body: String,
            #[serde(default)]
            system: bool,
        }
        const PER_PAGE: usize = 100;
        const MAX_PAGES: usize = 10;
        let ctx = self.ctx("list comments", Some(number));
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!(
                "/merge_requests/{number}/notes?sort=asc&order_by=created_at&per_page={PER_PAGE}&page={page}"
            );
            let raw = self.call(&ctx, reqwest::Method::GET, &path, None).await?;
            self.expect_ok(&ctx, &raw)?;
            let batch: Vec<Note> = self.parse(&ctx, &raw)?;
            let n = batch.len();
            out.extend(batch.into_iter().filter(|n| !n.system).map(|n| Comment {
                id: n.id,
                body: n.body,
            }));
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }

    async fn update_comment(&self, number: u64, id: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("update comment", Some(number));
        let raw = self
            .call(
                &ctx,
                reqwest::Method::PUT,
                &format!("/merge_requests/{number}/notes/{id}"),
                Some(json!({"body": body})),
            )
            .await?;
        self.expect_ok(&ctx, &raw)
    }

    async fn reviews(&self, pr: &PullRequest) -> Result<Reviews, ForgeError> {
        let number = pr.number;
        let ctx = self.ctx("reviews", Some(number));
        let raw = self
            .call(
                &ctx,
                reqwest::Method::GET,
                &format!("/merge_requests/{number}/approvals"),
                None,
            )
            .await?;
        self.expect_ok(&ctx, &raw)?;
        let approvals: Approvals = self.parse(&ctx, &raw)?;
        let mr = self.get_mr(number).await?;
        let changes_requested = mr.detailed_merge_status.as_deref() == Some("requested_changes");
        let approvals: Vec<GitLabApproval> = approvals
            .approved_by
            .into_iter()
            .map(|a| GitLabApproval {
                user_id: a.user.id,
                username: a.user.username,
                approved_at: a.approved_at,
            })
            .collect();
        let author_id = mr.author.as_ref().map(|a| a.id);
        let head = if approvals.iter().any(|a| a.approved_at.is_some()) {
            self.head_since(number, &pr.head_sha).await?
        } else {
            HeadSince::Unknown
        };
        let mut access = BTreeMap::new();
        for id in approval::gitlab_approvers_to_check(&approvals, author_id, &head) {
            access.insert(id, self.access_level(number, id).await?);
        }
        Ok(approval::summarize_gitlab(
            &approvals,
            author_id,
            &head,
            &access,
            changes_requested,
        ))
    }

    async fn checks(&self, sha: &str) -> Result<Checks, ForgeError> {
        let ctx = self.ctx("checks", None);
        let path = format!(
            "/pipelines?sha={}&order_by=id&sort=desc&per_page=1",
            encode_segment(sha)
        );
        let raw = self.call(&ctx, reqwest::Method::GET, &path, None).await?;
        self.expect_ok(&ctx, &raw)?;
        let pipelines: Vec<Pipeline> = self.parse(&ctx, &raw)?;
        Ok(checks_from(pipelines.first()))
    }

    async fn mergeable(&self, number: u64) -> Result<Mergeable, ForgeError> {
        let mr = self.get_mr(number).await?;
        Ok(mergeable_from(
            mr.detailed_merge_status.as_deref(),
            mr.merge_status.as_deref(),
        ))
    }

    async fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> Result<MergeOutcome, ForgeError> {
        if method == MergeMethod::Rebase {
            return Err(ForgeError::Unsupported {
                forge: "GitLab",
                what: "merge method `rebase` (GitLab sets fast-forward merges per project; use merge or squash)".into(),
            });
        }
        let ctx = self.ctx("merge", Some(number));
        let mut body = json!({
            "sha": expected_head_sha,
            "squash": method == MergeMethod::Squash,
            "should_remove_source_branch": true,
        });
        if self.cfg.auto_merge {
            body["auto_merge"] = json!(true);
            body["merge_when_pipeline_succeeds"] = json!(true);
        }
        let raw = self
            .call(
                &ctx,
                reqwest::Method::PUT,
                &format!("/merge_requests/{number}/merge"),
                Some(body),
            )
            .await?;
        let repo = self.cfg.project.clone();
        match raw.status {
            200 | 201 => {
                let mr: Mr = self.parse(&ctx, &raw)?;
                match (
                    mr.state.as_str(),
                    mr.merge_commit_sha.or(mr.squash_commit_sha),
                ) {
                    ("merged", Some(sha)) => Ok(MergeOutcome::Merged { sha }),
                    ("merged", None) => Ok(MergeOutcome::Merged {
                        sha: mr.sha.unwrap_or_default(),
                    }),
                    _ if self.cfg.auto_merge => Ok(MergeOutcome::Scheduled),
                    (state, _) => Err(ForgeError::NotMergeable {
                        repo,
                        number,
                        status: raw.status,
                        message: format!("merge answered with state `{state}`"),
                    }),
                }
            }
            404 => Err(ctx.not_found()),
            405 | 406 | 422 => Err(ForgeError::NotMergeable {
                repo,
                number,
                status: raw.status,
                message: raw.message(),
            }),
            409 => Err(ForgeError::HeadChanged {
                repo,
                number,
                status: raw.status,
                expected_head_sha: expected_head_sha.to_string(),
                message: raw.message(),
            }),
            _ => Err(ctx.api(&raw)),
        }
    }

    async fn close(&self, number: u64) -> Result<(), ForgeError> {
        self.put_mr("close", number, json!({"state_event": "close"}))
            .await
    }

    fn web_url(&self, number: u64) -> String {
        let project = match &self.cfg.project_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if self.cfg.project.chars().all(|c| c.is_ascii_digit()) => {
                format!(
                    "{}/projects/{}",
                    self.cfg.server_url.trim_end_matches('/'),
                    self.cfg.project
                )
            }
            None => format!(
                "{}/{}",
                self.cfg.server_url.trim_end_matches('/'),
                self.cfg.project
            ),
        };
        format!("{project}/-/merge_requests/{number}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mergeability_from_detailed_status() {
        assert_eq!(mergeable_from(Some("mergeable"), None), Mergeable::Yes);
        assert_eq!(
            mergeable_from(Some("conflict"), Some("can_be_merged")),
            Mergeable::No
        );
        assert_eq!(mergeable_from(Some("checking"), None), Mergeable::Unknown);
        assert_eq!(
            mergeable_from(Some("ci_still_running"), None),
            Mergeable::Unknown
        );
        assert_eq!(
            mergeable_from(None, Some("cannot_be_merged")),
            Mergeable::No
        );
        assert_eq!(mergeable_from(None, None), Mergeable::Unknown);
    }

    #[test]
    fn pipeline_status_to_checks() {
        let p = |s: &str| Pipeline {
            id: 4,
            status: s.into(),
        };
        assert_eq!(checks_from(None), Checks::None);
        assert_eq!(checks_from(Some(&p("success"))), Checks::Success);
        assert_eq!(checks_from(Some(&p("running"))), Checks::Pending);
        assert_eq!(checks_from(Some(&p("manual"))), Checks::Pending);
        assert_eq!(
            checks_from(Some(&p("failed"))),
            Checks::Failure("pipeline 4 failed".into())
        );
    }
}
