//! GitLab merge requests through the REST API v4 with reqwest.
//!
//! A merge request is addressed by its `iid` (the `!N` users see), which this module calls the
//! request's number. Reviews come from `/approvals` (each approver's access level from
//! `members/all`, and `approved_at` against the newest diff version's time for the head) plus
//! `detailed_merge_status` (`requested_changes`), checks from the newest pipeline of the
//! commit, and merging can be deferred to GitLab with `auto_merge` (GitLab 17+) and its older
//! name `merge_when_pipeline_succeeds`, sent together because GitLab ignores the one it does not
//! know. Retries, scrubbing, paging and what an answer means are the shared `Rest` layer's;
//! this module says how one attempt goes over reqwest and what each operation asks, and
//! `answers` reads what GitLab sends back.

mod answers;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::json;

use self::answers::{
    checks_from, mergeable_from, permission_for, Approvals, DiffVersion, Member, Mr, Pipeline,
};
use super::approval::{self, GitLabApproval, HeadSince};
use super::rest::{Endpoint, Rest};
use super::{
    encode_segment, Checks, Comment, Forge, ForgeError, MergeMethod, MergeOutcome, Mergeable,
    NewPullRequest, PrState, PullRequest, RawResponse, RetryPolicy, Reviews, StateFilter,
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

    async fn get_mr(&self, number: u64) -> Result<Mr, ForgeError> {
        let ctx = self.ctx("get merge request", Some(number));
        self.get(&ctx, &format!("/merge_requests/{number}")).await
    }

    async fn list(&self, op: &'static str, query: &str) -> Result<Vec<Mr>, ForgeError> {
        let ctx = self.ctx(op, None);
        self.pages(&ctx, |paging| {
            format!("/merge_requests?{query}&order_by=updated_at&sort=desc&{paging}")
        })
        .await
    }

    async fn put_mr(
        &self,
        op: &'static str,
        number: u64,
        body: serde_json::Value,
    ) -> Result<(), ForgeError> {
        let ctx = self.ctx(op, Some(number));
        let path = format!("/merge_requests/{number}");
        self.send_ok(&ctx, http::Method::PUT, &path, body)
            .await
            .map(drop)
    }

    /// When `head_sha` became the request's head: the creation of the newest diff version, if
    /// that version is of `head_sha`.
    async fn head_since(&self, number: u64, head_sha: &str) -> Result<HeadSince, ForgeError> {
        let ctx = self.ctx("reviews", Some(number));
        let versions: Vec<DiffVersion> = self
            .get(&ctx, &format!("/merge_requests/{number}/versions"))
            .await?;
        Ok(match versions.into_iter().next() {
            Some(v) if v.head_commit_sha == head_sha => HeadSince::At(v.created_at),
            _ => HeadSince::Unknown,
        })
    }

    /// A user's access level on the project, inherited ones included (0 if not a member).
    async fn access_level(&self, number: u64, user_id: u64) -> Result<u32, ForgeError> {
        let ctx = self.ctx("approver access", Some(number));
        let member: Option<Member> = self
            .get_if_found(&ctx, &format!("/members/all/{user_id}"))
            .await?;
        Ok(member.map_or(0, |m| m.access_level))
    }
}

impl Rest for GitLab {
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            repo: &self.cfg.project,
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
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        req = match self.cfg.auth {
            GitLabAuth::PrivateToken => req.header("PRIVATE-TOKEN", self.cfg.token.expose()),
            GitLabAuth::Bearer => req.bearer_auth(self.cfg.token.expose()),
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        // reqwest errors can carry the URL, never headers; the caller scrubs them anyway.
        let res = req.send().await.map_err(|e| format!("{e:#}"))?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.map_err(|e| format!("{e:#}"))?;
        Ok(RawResponse {
            status,
            headers,
            body: bytes.to_vec(),
        })
    }

    fn lacks(&self, op: &str, raw: &RawResponse) -> String {
        permission_for(op, raw)
    }
}

impl Forge for GitLab {
    async fn find_pr_by_branch(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError> {
        let q = format!("state=all&source_branch={}", encode_segment(branch));
        let mrs: Vec<PullRequest> = self
            .list("find merge request", &q)
            .await?
            .into_iter()
            .map(answers::pull_request)
            .filter(|p| p.branch == branch)
            .collect();
        Ok(super::pick_for_branch(mrs))
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
            .map(answers::pull_request)
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
            .call(&ctx, http::Method::POST, "/merge_requests", Some(body))
            .await?;
        let pr = match raw.status {
            200 | 201 => answers::pull_request(ctx.parse(&raw)?),
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
        let path = format!("/merge_requests/{number}/notes");
        self.send_ok(&ctx, http::Method::POST, &path, json!({"body": body}))
            .await
            .map(drop)
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
        let ctx = self.ctx("list comments", Some(number));
        let notes: Vec<Note> = self
            .pages(&ctx, |paging| {
                format!("/merge_requests/{number}/notes?sort=asc&order_by=created_at&{paging}")
            })
            .await?;
        Ok(notes
            .into_iter()
            .filter(|n| !n.system)
            .map(|n| Comment {
                id: n.id,
                body: n.body,
            })
            .collect())
    }

    async fn update_comment(&self, number: u64, id: u64, body: &str) -> Result<(), ForgeError> {
        let ctx = self.ctx("update comment", Some(number));
        let path = format!("/merge_requests/{number}/notes/{id}");
        self.send_ok(&ctx, http::Method::PUT, &path, json!({"body": body}))
            .await
            .map(drop)
    }

    async fn reviews(&self, pr: &PullRequest) -> Result<Reviews, ForgeError> {
        let number = pr.number;
        let ctx = self.ctx("reviews", Some(number));
        let approvals: Approvals = self
            .get(&ctx, &format!("/merge_requests/{number}/approvals"))
            .await?;
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
        let pipelines: Vec<Pipeline> = self.get(&ctx, &path).await?;
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
                http::Method::PUT,
                &format!("/merge_requests/{number}/merge"),
                Some(body),
            )
            .await?;
        if !matches!(raw.status, 200 | 201) {
            return Err(ctx.merge_refused(&raw, expected_head_sha));
        }
        let mr: Mr = ctx.parse(&raw)?;
        match (
            mr.state.as_str(),
            mr.merge_commit_sha.or(mr.squash_commit_sha),
        ) {
            ("merged", Some(sha)) => Ok(MergeOutcome::Merged { sha }),
            ("merged", None) => Ok(MergeOutcome::Merged {
                sha: mr.sha.unwrap_or_default(),
            }),
            _ if self.cfg.auto_merge => Ok(MergeOutcome::Scheduled),
            (state, _) => {
                Err(ctx.not_mergeable(raw.status, format!("merge answered with state `{state}`")))
            }
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
