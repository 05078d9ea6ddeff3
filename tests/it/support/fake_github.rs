//! A stateful fake of GitHub's REST API for pull requests, on 127.0.0.1.
//!
//! It keeps pull requests, branches, reviews, labels, comments, commit statuses and check runs,
//! and answers in the shapes of GitHub's OpenAPI description (`ROUTES` lists what it serves;
//! `tests/forge_spec.rs` holds the routes and the bodies to `@octokit/openapi`). Validation
//! errors, 404/405/409 on merge and the 422 "A pull request already exists" follow GitHub's
//! documented answers. Faults (5xx, 429, secondary rate limits, 401/403) can be injected for the
//! next N requests, on all routes or one. A merge creates a merge commit sha, or asks a hook
//! (so an end-to-end harness can merge in a real git repository and report the real sha).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Every (method, OpenAPI path) the fake answers.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("put", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    (
        "get",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    ),
    (
        "patch",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
    ),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/status"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
    (
        "get",
        "/repos/{owner}/{repo}/collaborators/{username}/permission",
    ),
];

/// A fault to answer instead of the real response.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 500 Internal Server Error.
    ServerError,
    /// 502 Bad Gateway.
    BadGateway,
    /// The request takes effect, then the answer is lost: 502 Bad Gateway (a proxy timing out
    /// after the backend merged).
    BadGatewayAfterEffect,
    /// 429 with `retry-after`.
    TooManyRequests { retry_after: u64 },
    /// 403 "You have exceeded a secondary rate limit" with `retry-after`.
    SecondaryRateLimit { retry_after: u64 },
    /// 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` in `reset_in` seconds.
    PrimaryRateLimit { reset_in: u64 },
    /// 403 "Resource not accessible by integration", optionally with
    /// `x-accepted-github-permissions` (e.g. `contents=write`).
    Forbidden { accepted: Option<String> },
}

#[derive(Debug, Clone)]
struct FaultRule {
    method: Option<String>,
    path_suffix: Option<String>,
    remaining: usize,
    fault: Fault,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub at: Instant,
    pub status: u16,
    pub body: String,
    pub request_body: String,
}

/// What a merge hook is told.
#[derive(Debug, Clone)]
pub struct MergeEvent {
    pub number: u64,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub method: String,
}

type BranchSource = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
type MergeHook = Arc<dyn Fn(&MergeEvent) -> Option<String> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Pr {
    pub number: u64,
    pub id: u64,
    pub title: String,
    pub body: Option<String>,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub labels: Vec<String>,
    pub open: bool,
    pub merged: bool,
    pub merged_at: Option<String>,
    pub closed_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub merge_method: Option<String>,
    /// `None` while GitHub computes it.
    pub mergeable: Option<bool>,
    pub draft: bool,
    /// `user.login`: who opened it.
    pub author: String,
    pub created: u64,
    pub updated: u64,
}

#[derive(Debug, Clone)]
pub struct Review {
    pub id: u64,
    pub login: String,
    pub state: String,
    pub commit_id: String,
    /// `author_association`: OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE...
    pub association: String,
    pub at: u64,
}

/// The login that opens pull requests through the API (the token's user).
pub const PR_AUTHOR: &str = "gitops-canary[bot]";

#[derive(Debug, Clone)]
pub struct Status {
    pub id: u64,
    pub context: String,
    pub state: String,
    pub at: u64,
}

#[derive(Debug, Clone)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub branches: BTreeMap<String, String>,
    pub prs: Vec<Pr>,
    pub reviews: BTreeMap<u64, Vec<Review>>,
    pub comments: BTreeMap<u64, Vec<(u64, String, u64)>>,
    pub statuses: BTreeMap<String, Vec<Status>>,
    pub check_runs: BTreeMap<String, Vec<CheckRun>>,
    pub label_ids: BTreeMap<String, u64>,
    /// Repository roles by lower-cased login: admin, maintain, write, triage, read. Anyone
    /// else reads (the repository is public).
    pub roles: BTreeMap<String, String>,
    pub requests: Vec<Recorded>,
    faults: Vec<FaultRule>,
    merge_hook: Option<MergeHook>,
    /// Consulted for branches not set with `set_branch` (a real repository, in e2e tests).
    branch_source: Option<BranchSource>,
    clock: u64,
    next_id: u64,
}

impl State {
    /// The sha of `branch`: set explicitly, else from the branch source.
    pub fn branch(&self, branch: &str) -> Option<String> {
        self.branches
            .get(branch)
            .cloned()
            .or_else(|| self.branch_source.as_ref().and_then(|f| f(branch)))
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        1000 + self.next_id
    }
}

/// A time in GitHub's format, from the fake's logical clock (seconds after a fixed instant).
pub fn timestamp(t: u64) -> String {
    let t = t % 86_400;
    format!(
        "2026-01-01T{:02}:{:02}:{:02}Z",
        t / 3600,
        (t / 60) % 60,
        t % 60
    )
}

/// A deterministic 40-hex sha.
pub fn fake_sha(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::new();
    let mut i = 0u64;
    while out.len() < 40 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seed, i).hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
        i += 1;
    }
    out.truncate(40);
    out
}

pub struct FakeGitHub {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
    pub owner: String,
    pub repo: String,
}

impl FakeGitHub {
    /// Serve `owner/repo` with a `main` branch, accepting `token`.
    pub async fn start(owner: &str, repo: &str, token: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut s = state.lock().unwrap();
            s.branches.insert("main".into(), fake_sha("main"));
            s.roles.insert(owner.to_ascii_lowercase(), "admin".into());
        }
        let server = MockServer::builder().start().await;
        let responder = Responder {
            state: state.clone(),
            owner: owner.to_string(),
            repo: repo.to_string(),
            token: token.to_string(),
            base: server.uri(),
        };
        Mock::given(any())
            .respond_with(responder)
            .mount(&server)
            .await;
        FakeGitHub {
            server,
            state,
            owner: owner.into(),
            repo: repo.into(),
        }
    }

    pub fn api_url(&self) -> String {
        self.server.uri()
    }

    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Create or move a branch.
    pub fn set_branch(&self, name: &str, sha: &str) {
        self.lock().branches.insert(name.into(), sha.into());
    }

    /// Answer the next `times` requests (any route) with `fault`.
    pub fn fail(&self, times: usize, fault: Fault) {
        self.lock().faults.push(FaultRule {
            method: None,
            path_suffix: None,
            remaining: times,
            fault,
        });
    }

    /// Answer the next `times` requests with `method` whose path ends with `suffix`.
    pub fn fail_on(&self, method: &str, suffix: &str, times: usize, fault: Fault) {
        self.lock().faults.push(FaultRule {
            method: Some(method.to_uppercase()),
            path_suffix: Some(suffix.into()),
            remaining: times,
            fault,
        });
    }

    /// Resolve branches through `f` (e.g. `git rev-parse` in a bare repository).
    pub fn branches_from(&self, f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) {
        let mut s = self.lock();
        // The real repository is the truth for every branch, `main` included.
        s.branches.clear();
        s.branch_source = Some(Arc::new(f));
    }

    pub fn on_merge(&self, hook: impl Fn(&MergeEvent) -> Option<String> + Send + Sync + 'static) {
        self.lock().merge_hook = Some(Arc::new(hook));
    }

    /// Give `login` a repository role (admin, maintain, write, triage, read).
    pub fn grant(&self, login: &str, role: &str) {
        self.lock()
            .roles
            .insert(login.to_ascii_lowercase(), role.into());
    }

    /// A review by a `MEMBER` on the PR's current head.
    pub fn add_review(&self, number: u64, login: &str, state: &str) {
        self.add_review_with(number, login, state, "MEMBER", None);
    }

    /// A review with this `author_association`, on `commit_id` (default: the current head).
    pub fn add_review_with(
        &self,
        number: u64,
        login: &str,
        state: &str,
        association: &str,
        commit_id: Option<&str>,
    ) {
        let mut s = self.lock();
        let id = s.id();
        let at = s.tick();
        let head = s
            .prs
            .iter()
            .find(|p| p.number == number)
            .map(|p| p.head_sha.clone())
            .unwrap_or_default();
        s.reviews.entry(number).or_default().push(Review {
            id,
            login: login.into(),
            state: state.into(),
            commit_id: commit_id.map(str::to_string).unwrap_or(head),
            association: association.into(),
            at,
        });
    }

    pub fn add_status(&self, sha: &str, context: &str, state: &str) {
        let mut s = self.lock();
        let id = s.id();
        let at = s.tick();
        s.statuses.entry(sha.into()).or_default().push(Status {
            id,
            context: context.into(),
            state: state.into(),
            at,
        });
    }

    pub fn add_check_run(&self, sha: &str, name: &str, status: &str, conclusion: Option<&str>) {
        let mut s = self.lock();
        let id = s.id();
        s.check_runs.entry(sha.into()).or_default().push(CheckRun {
            id,
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
        });
    }

    pub fn set_mergeable(&self, number: u64, mergeable: Option<bool>) {
        let mut s = self.lock();
        if let Some(p) = s.prs.iter_mut().find(|p| p.number == number) {
            p.mergeable = mergeable;
        }
    }

    /// Move a PR's head (a push to its branch).
    pub fn push_to_pr(&self, number: u64, sha: &str) {
        let mut s = self.lock();
        let t = s.tick();
        if let Some(p) = s.prs.iter_mut().find(|p| p.number == number) {
            p.head_sha = sha.into();
            p.updated = t;
            let b = p.head_ref.clone();
            s.branches.insert(b, sha.into());
        }
    }

    /// Close a PR without merging, as a user would in the web UI.
    pub fn close_pr(&self, number: u64) {
        let mut s = self.lock();
        let t = s.tick();
        if let Some(p) = s.prs.iter_mut().find(|p| p.number == number) {
            p.open = false;
            p.closed_at = Some(timestamp(t));
            p.updated = t;
        }
    }

    pub fn pr(&self, number: u64) -> Option<Pr> {
        self.lock().prs.iter().find(|p| p.number == number).cloned()
    }

    pub fn prs(&self) -> Vec<Pr> {
        self.lock().prs.clone()
    }

    pub fn comments(&self, number: u64) -> Vec<String> {
        self.lock()
            .comments
            .get(&number)
            .map(|v| v.iter().map(|c| c.1.clone()).collect())
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests whose method and path end match.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }
}

type Answer = (u16, Value, Vec<(String, String)>);

struct Responder {
    state: Arc<Mutex<State>>,
    owner: String,
    repo: String,
    token: String,
    base: String,
}

fn reply(status: u16, body: Value) -> Answer {
    (status, body, vec![])
}

fn error(status: u16, message: &str, doc: &str) -> Answer {
    reply(
        status,
        json!({"message": message, "documentation_url": format!("https://docs.github.com/rest/{doc}"), "status": status.to_string()}),
    )
}

fn validation(errors: Value, doc: &str) -> Answer {
    reply(
        422,
        json!({"message": "Validation Failed", "errors": errors, "documentation_url": format!("https://docs.github.com/rest/{doc}"), "status": "422"}),
    )
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let method = req.method.as_str().to_uppercase();
        let path = req.url.path().to_string();
        let query = req.url.query().unwrap_or("").to_string();
        let mut st = self.state.lock().unwrap();
        let (status, body, headers) = self.handle(&mut st, req, &method, &path);
        let text = if status == 204 {
            String::new()
        } else {
            body.to_string()
        };
        st.requests.push(Recorded {
            method: method.clone(),
            path,
            query,
            at: Instant::now(),
            status,
            body: text.clone(),
            request_body: String::from_utf8_lossy(&req.body).into_owned(),
        });
        let mut t = ResponseTemplate::new(status)
            .insert_header("x-github-api-version-selected", "2022-11-28")
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-github-request-id", format!("FAKE:{}", st.requests.len()));
        if !headers.iter().any(|(k, _)| k == "x-ratelimit-remaining") {
            t = t.insert_header("x-ratelimit-remaining", "4999");
        }
        for (k, v) in headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        if status != 204 {
            t = t.set_body_raw(text.into_bytes(), "application/json; charset=utf-8");
        }
        t
    }
}

impl Responder {
    fn fault(&self, st: &mut State, method: &str, path: &str) -> Option<Answer> {
        let rule = st.faults.iter_mut().find(|r| {
            r.remaining > 0
                && r.method.as_deref().is_none_or(|m| m == method)
                && r.path_suffix.as_deref().is_none_or(|s| path.ends_with(s))
        })?;
        rule.remaining -= 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Some(match rule.fault.clone() {
            Fault::ServerError => reply(500, json!({"message": "Server Error"})),
            Fault::BadGateway => reply(502, json!({"message": "Server Error"})),
            // Status 0 marks "answer after the effect" for `handle`.
            Fault::BadGatewayAfterEffect => reply(0, json!({})),
            Fault::TooManyRequests { retry_after } => (
                429,
                json!({"message": "Too Many Requests", "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"}),
                vec![("retry-after".into(), retry_after.to_string())],
            ),
            Fault::SecondaryRateLimit { retry_after } => (
                403,
                json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
                vec![("retry-after".into(), retry_after.to_string())],
            ),
            Fault::PrimaryRateLimit { reset_in } => (
                403,
                json!({"message": "API rate limit exceeded for installation ID 1.", "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"}),
                vec![
                    ("x-ratelimit-remaining".into(), "0".into()),
                    ("x-ratelimit-reset".into(), (now + reset_in).to_string()),
                ],
            ),
            Fault::Forbidden { accepted } => (
                403,
                json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/pulls/pulls", "status": "403"}),
                accepted
                    .map(|a| vec![("x-accepted-github-permissions".to_string(), a)])
                    .unwrap_or_default(),
            ),
        })
    }

    fn handle(&self, st: &mut State, req: &Request, method: &str, path: &str) -> Answer {
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {}", self.token) && auth != format!("token {}", self.token) {
            return error(
                401,
                "Bad credentials",
                "overview/troubleshooting-the-rest-api",
            );
        }
        if let Some(f) = self.fault(st, method, path) {
            if f.0 != 0 {
                return f;
            }
            // Take effect, then lose the answer.
            let _ = self.route(st, req, method, path);
            return reply(502, json!({"message": "Server Error"}));
        }
        self.route(st, req, method, path)
    }

    fn route(&self, st: &mut State, req: &Request, method: &str, path: &str) -> Answer {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let q: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(_) => {
                    return error(
                        400,
                        "Problems parsing JSON",
                        "overview/resources-in-the-rest-api",
                    )
                }
            }
        };
        if segs.len() < 4 || segs[0] != "repos" || segs[1] != self.owner || segs[2] != self.repo {
            return error(404, "Not Found", "");
        }
        let rest = &segs[3..];
        let num = |s: &str| s.parse::<u64>().ok();
        match (method, rest) {
            ("GET", ["pulls"]) => self.list_pulls(st, &q),
            ("POST", ["pulls"]) => self.create_pull(st, &body),
            ("GET", ["pulls", n]) => {
                match num(n).and_then(|n| st.prs.iter().find(|p| p.number == n)) {
                    Some(p) => reply(200, self.pull_json(p, st)),
                    None => error(404, "Not Found", "pulls/pulls#get-a-pull-request"),
                }
            }
            ("PATCH", ["pulls", n]) => self.update_pull(st, num(n), &body),
            ("PUT", ["pulls", n, "merge"]) => self.merge(st, num(n), &body),
            ("GET", ["pulls", n, "reviews"]) => {
                let Some(n) = num(n).filter(|n| st.prs.iter().any(|p| p.number == *n)) else {
                    return error(
                        404,
                        "Not Found",
                        "pulls/reviews#list-reviews-for-a-pull-request",
                    );
                };
                let list: Vec<Value> = st
                    .reviews
                    .get(&n)
                    .map(|v| v.iter().map(|r| self.review_json(n, r)).collect())
                    .unwrap_or_default();
                reply(200, Value::Array(list))
            }
            ("POST", ["pulls", n, "reviews"]) => {
                let Some(n) = num(n).filter(|n| st.prs.iter().any(|p| p.number == *n)) else {
                    return error(
                        404,
                        "Not Found",
                        "pulls/reviews#create-a-review-for-a-pull-request",
                    );
                };
                let state = match body.get("event").and_then(Value::as_str) {
                    Some("APPROVE") => "APPROVED",
                    Some("REQUEST_CHANGES") => "CHANGES_REQUESTED",
                    Some("COMMENT") => "COMMENTED",
                    _ => "PENDING",
                };
                let (id, at) = (st.id(), st.tick());
                let commit_id = st
                    .prs
                    .iter()
                    .find(|p| p.number == n)
                    .map(|p| p.head_sha.clone())
                    .unwrap_or_default();
                let r = Review {
                    id,
                    login: "reviewer".into(),
                    state: state.into(),
                    commit_id,
                    association: "MEMBER".into(),
                    at,
                };
                st.reviews.entry(n).or_default().push(r.clone());
                reply(200, self.review_json(n, &r))
            }
            ("GET", ["collaborators", login, "permission"]) => {
                let role = st
                    .roles
                    .get(&login.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_else(|| "read".into());
                // `permission` is the legacy base role: maintain maps to write, triage to read.
                let permission = match role.as_str() {
                    "admin" => "admin",
                    "maintain" | "write" => "write",
                    "triage" | "read" => "read",
                    _ => "none",
                };
                let mut user = self.user_json(login, 100 + login.len() as u64);
                user["role_name"] = json!(role);
                reply(
                    200,
                    json!({"permission": permission, "role_name": role, "user": user}),
                )
            }
            ("POST", ["issues", n, "labels"]) => {
                let Some(i) = num(n).and_then(|n| st.prs.iter().position(|p| p.number == n)) else {
                    return error(404, "Not Found", "issues/labels#add-labels-to-an-issue");
                };
                let names: Vec<String> = match body.get("labels").unwrap_or(&body) {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .or_else(|| v.get("name")?.as_str().map(str::to_string))
                        })
                        .collect(),
                    _ => {
                        return validation(
                            json!([{"resource": "Label", "field": "labels", "code": "invalid"}]),
                            "issues/labels#add-labels-to-an-issue",
                        )
                    }
                };
                let t = st.tick();
                for name in names {
                    if !st.label_ids.contains_key(&name) {
                        let id = st.id();
                        st.label_ids.insert(name.clone(), id);
                    }
                    let p = &mut st.prs[i];
                    if !p.labels.contains(&name) {
                        p.labels.push(name);
                    }
                    p.updated = t;
                }
                let labels = st.prs[i].labels.clone();
                reply(
                    200,
                    Value::Array(labels.iter().map(|l| self.label_json(st, l)).collect()),
                )
            }
            ("GET", ["issues", n, "comments"]) => {
                let Some(n) = num(n).filter(|n| st.prs.iter().any(|p| p.number == *n)) else {
                    return error(404, "Not Found", "issues/comments#list-issue-comments");
                };
                // Oldest first, 30 a page by default, at most 100 (GitHub's rules).
                let per_page: usize = q
                    .get("per_page")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30)
                    .clamp(1, 100);
                let page: usize = q
                    .get("page")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1)
                    .max(1);
                let list: Vec<Value> = st
                    .comments
                    .get(&n)
                    .map(|v| {
                        v.iter()
                            .skip((page - 1) * per_page)
                            .take(per_page)
                            .map(|(id, b, at)| self.comment_json(n, *id, b, *at))
                            .collect()
                    })
                    .unwrap_or_default();
                reply(200, Value::Array(list))
            }
            ("PATCH", ["issues", "comments", id]) => {
                let found = num(id).and_then(|id| {
                    st.comments
                        .iter()
                        .find_map(|(n, v)| v.iter().position(|c| c.0 == id).map(|i| (*n, i)))
                });
                let Some((n, i)) = found else {
                    return error(404, "Not Found", "issues/comments#update-an-issue-comment");
                };
                let Some(text) = body.get("body").and_then(Value::as_str) else {
                    return validation(
                        json!([{"resource": "IssueComment", "field": "body", "code": "missing_field"}]),
                        "issues/comments#update-an-issue-comment",
                    );
                };
                let at = st.tick();
                let c = &mut st.comments.get_mut(&n).expect("found above")[i];
                c.1 = text.to_string();
                c.2 = at;
                let (id, b, at) = c.clone();
                reply(200, self.comment_json(n, id, &b, at))
            }
            ("POST", ["issues", n, "comments"]) => {
                let Some(n) = num(n).filter(|n| st.prs.iter().any(|p| p.number == *n)) else {
                    return error(404, "Not Found", "issues/comments#create-an-issue-comment");
                };
                let Some(text) = body.get("body").and_then(Value::as_str) else {
                    return validation(
                        json!([{"resource": "IssueComment", "field": "body", "code": "missing_field"}]),
                        "issues/comments#create-an-issue-comment",
                    );
                };
                let (id, at) = (st.id(), st.tick());
                st.comments
                    .entry(n)
                    .or_default()
                    .push((id, text.to_string(), at));
                reply(201, self.comment_json(n, id, text, at))
            }
            ("POST", ["statuses", sha]) => {
                let state = body.get("state").and_then(Value::as_str).unwrap_or("");
                if !["error", "failure", "pending", "success"].contains(&state) {
                    return validation(
                        json!([{"resource": "Status", "field": "state", "code": "invalid"}]),
                        "commits/statuses#create-a-commit-status",
                    );
                }
                let context = body
                    .get("context")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string();
                let (id, at) = (st.id(), st.tick());
                let s = Status {
                    id,
                    context,
                    state: state.into(),
                    at,
                };
                st.statuses
                    .entry(sha.to_string())
                    .or_default()
                    .push(s.clone());
                reply(201, self.status_json(&s))
            }
            ("GET", ["commits", r, "status"]) => {
                let Some(sha) = self.resolve(st, r) else {
                    return error(
                        404,
                        &format!("No commit found for SHA: {r}"),
                        "commits/statuses#get-the-combined-status-for-a-specific-reference",
                    );
                };
                // Latest status per context, newest first, like GitHub.
                let mut latest: BTreeMap<String, Status> = BTreeMap::new();
                for s in st.statuses.get(&sha).cloned().unwrap_or_default() {
                    latest.insert(s.context.clone(), s);
                }
                let mut list: Vec<Status> = latest.into_values().collect();
                list.sort_by_key(|s| std::cmp::Reverse(s.at));
                let state = if list
                    .iter()
                    .any(|s| s.state == "error" || s.state == "failure")
                {
                    "failure"
                } else if list.is_empty() || list.iter().any(|s| s.state == "pending") {
                    "pending"
                } else {
                    "success"
                };
                let repo = self.repo_json();
                reply(
                    200,
                    json!({
                        "state": state,
                        "statuses": list.iter().map(|s| self.status_json(s)).collect::<Vec<_>>(),
                        "sha": sha,
                        "total_count": list.len(),
                        "repository": repo,
                        "commit_url": format!("{}/repos/{}/{}/commits/{sha}", self.base, self.owner, self.repo),
                        "url": format!("{}/repos/{}/{}/commits/{sha}/status", self.base, self.owner, self.repo),
                    }),
                )
            }
            ("GET", ["commits", r, "check-runs"]) => {
                let Some(sha) = self.resolve(st, r) else {
                    return error(
                        404,
                        "Not Found",
                        "checks/runs#list-check-runs-for-a-git-reference",
                    );
                };
                let runs: Vec<Value> = st
                    .check_runs
                    .get(&sha)
                    .map(|v| v.iter().map(|c| self.check_run_json(&sha, c)).collect())
                    .unwrap_or_default();
                reply(200, json!({"total_count": runs.len(), "check_runs": runs}))
            }
            _ => error(404, "Not Found", ""),
        }
    }

    /// A branch name or a known sha to a sha.
    fn resolve(&self, st: &State, r: &str) -> Option<String> {
        if let Some(s) = st.branch(r) {
            return Some(s);
        }
        let known = r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit());
        known.then(|| r.to_string())
    }

    fn list_pulls(&self, st: &State, q: &BTreeMap<String, String>) -> Answer {
        let state = q.get("state").map(String::as_str).unwrap_or("open");
        if !["open", "closed", "all"].contains(&state) {
            return validation(
                json!([{"resource": "Issue", "field": "state", "code": "invalid"}]),
                "pulls/pulls#list-pull-requests",
            );
        }
        let mut list: Vec<&Pr> = st
            .prs
            .iter()
            .filter(|p| match state {
                "open" => p.open,
                "closed" => !p.open,
                _ => true,
            })
            .filter(|p| match q.get("head") {
                // `user:ref-name`; a bare ref is ignored by GitHub... it requires the user.
                Some(h) => match h.split_once(':') {
                    Some((user, r)) => user == self.owner && p.head_ref == r,
                    None => true,
                },
                None => true,
            })
            .filter(|p| q.get("base").is_none_or(|b| &p.base_ref == b))
            .collect();
        let sort = q.get("sort").map(String::as_str).unwrap_or("created");
        match sort {
            "updated" => list.sort_by_key(|p| p.updated),
            _ => list.sort_by_key(|p| p.created),
        }
        // GitHub: direction defaults to desc when sort is created (the default) or updated.
        if q.get("direction").map(String::as_str) != Some("asc") {
            list.reverse();
        }
        let per_page: usize = q
            .get("per_page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page: usize = q
            .get("page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .max(1);
        let total = list.len();
        let items: Vec<Value> = list
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|p| self.pull_json(p, st))
            .collect();
        let mut headers = vec![];
        if page * per_page < total {
            headers.push((
                "link".to_string(),
                format!(
                    "<{}/repos/{}/{}/pulls?state={state}&per_page={per_page}&page={}>; rel=\"next\"",
                    self.base,
                    self.owner,
                    self.repo,
                    page + 1
                ),
            ));
        }
        (200, Value::Array(items), headers)
    }

    fn create_pull(&self, st: &mut State, body: &Value) -> Answer {
        const DOC: &str = "pulls/pulls#create-a-pull-request";
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(head), Some(base)) = (s("head"), s("base")) else {
            return validation(
                json!([{"resource": "PullRequest", "field": "head", "code": "missing_field"}]),
                DOC,
            );
        };
        let Some(title) = s("title") else {
            return validation(
                json!([{"resource": "PullRequest", "field": "title", "code": "missing_field"}]),
                DOC,
            );
        };
        // `head` may be `owner:branch` for the same repository.
        let head_ref = match head.split_once(':') {
            Some((o, r)) if o == self.owner => r.to_string(),
            Some(_) => {
                return validation(
                    json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
                    DOC,
                )
            }
            None => head.clone(),
        };
        let Some(head_sha) = st.branch(&head_ref) else {
            return validation(
                json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
                DOC,
            );
        };
        let Some(base_sha) = st.branch(&base) else {
            return validation(
                json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
                DOC,
            );
        };
        if head_sha == base_sha {
            return validation(
                json!([{"resource": "PullRequest", "code": "custom", "message": format!("No commits between {base} and {head_ref}")}]),
                DOC,
            );
        }
        if st
            .prs
            .iter()
            .any(|p| p.open && p.head_ref == head_ref && p.base_ref == base)
        {
            return validation(
                json!([{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {}:{head_ref}.", self.owner)}]),
                DOC,
            );
        }
        let number = st.prs.iter().map(|p| p.number).max().unwrap_or(0) + 1;
        let (id, t) = (st.id(), st.tick());
        let pr = Pr {
            number,
            id,
            title,
            body: s("body"),
            head_ref,
            head_sha,
            base_ref: base,
            base_sha,
            labels: vec![],
            open: true,
            merged: false,
            merged_at: None,
            closed_at: None,
            merge_commit_sha: None,
            merge_method: None,
            mergeable: Some(true),
            draft: body.get("draft").and_then(Value::as_bool).unwrap_or(false),
            author: PR_AUTHOR.into(),
            created: t,
            updated: t,
        };
        st.prs.push(pr.clone());
        let mut r = reply(201, self.pull_json(&pr, st));
        r.2.push((
            "location".into(),
            format!(
                "{}/repos/{}/{}/pulls/{number}",
                self.base, self.owner, self.repo
            ),
        ));
        r
    }

    fn update_pull(&self, st: &mut State, n: Option<u64>, body: &Value) -> Answer {
        let Some(i) = n.and_then(|n| st.prs.iter().position(|p| p.number == n)) else {
            return error(404, "Not Found", "pulls/pulls#update-a-pull-request");
        };
        let t = st.tick();
        if let Some(state) = body.get("state").and_then(Value::as_str) {
            match state {
                "closed" if !st.prs[i].merged => {
                    st.prs[i].open = false;
                    st.prs[i].closed_at = Some(timestamp(t));
                }
                "open" if !st.prs[i].merged => {
                    st.prs[i].open = true;
                    st.prs[i].closed_at = None;
                }
                "closed" | "open" => {}
                _ => {
                    return validation(
                        json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}]),
                        "pulls/pulls#update-a-pull-request",
                    )
                }
            }
        }
        let p = &mut st.prs[i];
        if let Some(b) = body.get("body") {
            p.body = b.as_str().map(str::to_string);
        }
        if let Some(t) = body.get("title").and_then(Value::as_str) {
            p.title = t.into();
        }
        p.updated = t;
        let p = st.prs[i].clone();
        reply(200, self.pull_json(&p, st))
    }

    fn merge(&self, st: &mut State, n: Option<u64>, body: &Value) -> Answer {
        const DOC: &str = "pulls/pulls#merge-a-pull-request";
        let Some(i) = n.and_then(|n| st.prs.iter().position(|p| p.number == n)) else {
            return error(404, "Not Found", DOC);
        };
        let method = body
            .get("merge_method")
            .and_then(Value::as_str)
            .unwrap_or("merge")
            .to_string();
        if !["merge", "squash", "rebase"].contains(&method.as_str()) {
            return validation(
                json!([{"resource": "PullRequest", "field": "merge_method", "code": "invalid"}]),
                DOC,
            );
        }
        let p = st.prs[i].clone();
        if !p.open || p.merged || p.mergeable != Some(true) || p.draft {
            return error(405, "Pull Request is not mergeable", DOC);
        }
        if let Some(sha) = body.get("sha").and_then(Value::as_str) {
            if sha != p.head_sha {
                return error(
                    409,
                    "Head branch was modified. Review and try the merge again.",
                    DOC,
                );
            }
        }
        let event = MergeEvent {
            number: p.number,
            head_ref: p.head_ref.clone(),
            head_sha: p.head_sha.clone(),
            base_ref: p.base_ref.clone(),
            method: method.clone(),
        };
        let hook = st.merge_hook.clone();
        let sha = hook
            .and_then(|h| h(&event))
            .unwrap_or_else(|| fake_sha(&format!("merge:{}:{}:{method}", p.number, p.head_sha)));
        let t = st.tick();
        st.branches.insert(p.base_ref.clone(), sha.clone());
        let p = &mut st.prs[i];
        p.open = false;
        p.merged = true;
        p.merged_at = Some(timestamp(t));
        p.closed_at = Some(timestamp(t));
        p.merge_commit_sha = Some(sha.clone());
        p.merge_method = Some(method);
        p.updated = t;
        reply(
            200,
            json!({"sha": sha, "merged": true, "message": "Pull Request successfully merged"}),
        )
    }

    fn user_json(&self, login: &str, id: u64) -> Value {
        let u = format!("{}/users/{login}", self.base);
        json!({
            "login": login, "id": id, "node_id": format!("U_{id}"),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
            "gravatar_id": "", "url": u, "html_url": format!("https://github.com/{login}"),
            "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
            "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
            "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
            "received_events_url": format!("{u}/received_events"), "type": "User",
            "user_view_type": "public", "site_admin": false
        })
    }

    fn repo_json(&self) -> Value {
        let full = format!("{}/{}", self.owner, self.repo);
        let u = format!("{}/repos/{full}", self.base);
        let mut v = json!({
            "id": 4242, "node_id": "R_fake", "name": self.repo, "full_name": full,
            "owner": self.user_json(&self.owner, 1), "private": false,
            "html_url": format!("https://github.com/{full}"), "description": null, "fork": false, "url": u,
            "clone_url": format!("https://github.com/{full}.git"), "git_url": format!("git://github.com/{full}.git"),
            "ssh_url": format!("git@github.com:{full}.git"), "svn_url": format!("https://github.com/{full}"),
            "mirror_url": null, "homepage": null, "language": null, "license": null,
            "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0,
            "size": 1, "default_branch": "main", "open_issues": 0, "open_issues_count": 0,
            "has_issues": true, "has_projects": false, "has_wiki": false, "has_pages": false,
            "has_downloads": true, "archived": false, "disabled": false, "visibility": "public",
            "pushed_at": timestamp(0), "created_at": timestamp(0), "updated_at": timestamp(0),
            "topics": [], "is_template": false, "allow_forking": true, "web_commit_signoff_required": false
        });
        let templated = [
            ("archive_url", "/{archive_format}{/ref}"),
            ("assignees_url", "/assignees{/user}"),
            ("blobs_url", "/git/blobs{/sha}"),
            ("branches_url", "/branches{/branch}"),
            ("collaborators_url", "/collaborators{/collaborator}"),
            ("comments_url", "/comments{/number}"),
            ("commits_url", "/commits{/sha}"),
            ("compare_url", "/compare/{base}...{head}"),
            ("contents_url", "/contents/{+path}"),
            ("contributors_url", "/contributors"),
            ("deployments_url", "/deployments"),
            ("downloads_url", "/downloads"),
            ("events_url", "/events"),
            ("forks_url", "/forks"),
            ("git_commits_url", "/git/commits{/sha}"),
            ("git_refs_url", "/git/refs{/sha}"),
            ("git_tags_url", "/git/tags{/sha}"),
            ("hooks_url", "/hooks"),
            ("issue_comment_url", "/issues/comments{/number}"),
            ("issue_events_url", "/issues/events{/number}"),
            ("issues_url", "/issues{/number}"),
            ("keys_url", "/keys{/key_id}"),
            ("labels_url", "/labels{/name}"),
            ("languages_url", "/languages"),
            ("merges_url", "/merges"),
            ("milestones_url", "/milestones{/number}"),
            (
                "notifications_url",
                "/notifications{?since,all,participating}",
            ),
            ("pulls_url", "/pulls{/number}"),
            ("releases_url", "/releases{/id}"),
            ("stargazers_url", "/stargazers"),
            ("statuses_url", "/statuses/{sha}"),
            ("subscribers_url", "/subscribers"),
            ("subscription_url", "/subscription"),
            ("tags_url", "/tags"),
            ("teams_url", "/teams"),
            ("trees_url", "/git/trees{/sha}"),
        ];
        for (k, suffix) in templated {
            v[k] = json!(format!("{u}{suffix}"));
        }
        v
    }

    fn label_json(&self, st: &State, name: &str) -> Value {
        let id = st.label_ids.get(name).copied().unwrap_or_default();
        json!({
            "id": id, "node_id": format!("LA_{id}"),
            "url": format!("{}/repos/{}/{}/labels/{}", self.base, self.owner, self.repo, name.replace(' ', "%20")),
            "name": name, "description": format!("{name} (label)"), "color": "ededed", "default": false
        })
    }

    fn pull_json(&self, p: &Pr, st: &State) -> Value {
        let full = format!("{}/{}", self.owner, self.repo);
        let api = format!("{}/repos/{full}", self.base);
        let html = format!("https://github.com/{full}/pull/{}", p.number);
        let link = |h: String| json!({"href": h});
        let branch = |r: &str, sha: &str| {
            json!({
                "label": format!("{}:{r}", self.owner), "ref": r, "sha": sha,
                "user": self.user_json(&self.owner, 1), "repo": self.repo_json()
            })
        };
        let state = if p.open { "open" } else { "closed" };
        let mergeable_state = match (p.open, p.mergeable) {
            (false, _) => "unknown",
            (true, Some(true)) => "clean",
            (true, Some(false)) => "dirty",
            (true, None) => "unknown",
        };
        json!({
            "url": format!("{api}/pulls/{}", p.number), "id": p.id, "node_id": format!("PR_{}", p.id),
            "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
            "issue_url": format!("{api}/issues/{}", p.number),
            "commits_url": format!("{api}/pulls/{}/commits", p.number),
            "review_comments_url": format!("{api}/pulls/{}/comments", p.number),
            "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
            "comments_url": format!("{api}/issues/{}/comments", p.number),
            "statuses_url": format!("{api}/statuses/{}", p.head_sha),
            "number": p.number, "state": state, "locked": false, "title": p.title,
            "user": self.user_json(&p.author, 7), "body": p.body,
            "labels": p.labels.iter().map(|l| self.label_json(st, l)).collect::<Vec<_>>(),
            "milestone": null, "active_lock_reason": null,
            "created_at": timestamp(p.created), "updated_at": timestamp(p.updated),
            "closed_at": p.closed_at, "merged_at": p.merged_at, "merge_commit_sha": p.merge_commit_sha,
            "assignee": null, "assignees": [], "requested_reviewers": [], "requested_teams": [],
            "head": branch(&p.head_ref, &p.head_sha), "base": branch(&p.base_ref, &p.base_sha),
            "_links": {
                "self": link(format!("{api}/pulls/{}", p.number)), "html": link(html.clone()),
                "issue": link(format!("{api}/issues/{}", p.number)),
                "comments": link(format!("{api}/issues/{}/comments", p.number)),
                "review_comments": link(format!("{api}/pulls/{}/comments", p.number)),
                "review_comment": link(format!("{api}/pulls/comments{{/number}}")),
                "commits": link(format!("{api}/pulls/{}/commits", p.number)),
                "statuses": link(format!("{api}/statuses/{}", p.head_sha))
            },
            "author_association": "CONTRIBUTOR", "auto_merge": null, "draft": p.draft,
            "merged": p.merged, "mergeable": if p.open { json!(p.mergeable) } else { Value::Null },
            "rebaseable": if p.open { json!(p.mergeable) } else { Value::Null },
            "mergeable_state": mergeable_state,
            "merged_by": if p.merged { self.user_json("gitops-canary[bot]", 7) } else { Value::Null },
            "comments": st.comments.get(&p.number).map(Vec::len).unwrap_or(0),
            "review_comments": 0, "maintainer_can_modify": false, "commits": 1,
            "additions": 1, "deletions": 1, "changed_files": 1
        })
    }

    fn review_json(&self, n: u64, r: &Review) -> Value {
        let api = format!("{}/repos/{}/{}", self.base, self.owner, self.repo);
        let html = format!(
            "https://github.com/{}/{}/pull/{n}#pullrequestreview-{}",
            self.owner, self.repo, r.id
        );
        json!({
            "id": r.id, "node_id": format!("PRR_{}", r.id), "user": self.user_json(&r.login, 100 + r.id),
            "body": "", "state": r.state, "html_url": html,
            "pull_request_url": format!("{api}/pulls/{n}"),
            "_links": {"html": {"href": html}, "pull_request": {"href": format!("{api}/pulls/{n}")}},
            "submitted_at": timestamp(r.at), "commit_id": r.commit_id, "author_association": r.association
        })
    }

    fn comment_json(&self, n: u64, id: u64, body: &str, at: u64) -> Value {
        let api = format!("{}/repos/{}/{}", self.base, self.owner, self.repo);
        json!({
            "id": id, "node_id": format!("IC_{id}"), "url": format!("{api}/issues/comments/{id}"),
            "html_url": format!("https://github.com/{}/{}/pull/{n}#issuecomment-{id}", self.owner, self.repo),
            "body": body, "user": self.user_json("gitops-canary[bot]", 7),
            "created_at": timestamp(at), "updated_at": timestamp(at),
            "issue_url": format!("{api}/issues/{n}"), "author_association": "CONTRIBUTOR"
        })
    }

    fn status_json(&self, s: &Status) -> Value {
        json!({
            "url": format!("{}/repos/{}/{}/statuses/{}", self.base, self.owner, self.repo, s.id),
            "avatar_url": null, "id": s.id, "node_id": format!("SC_{}", s.id), "state": s.state,
            "description": format!("{} is {}", s.context, s.state), "target_url": null, "context": s.context,
            "created_at": timestamp(s.at), "updated_at": timestamp(s.at), "creator": self.user_json("ci", 9)
        })
    }

    fn check_run_json(&self, sha: &str, c: &CheckRun) -> Value {
        let api = format!("{}/repos/{}/{}", self.base, self.owner, self.repo);
        json!({
            "id": c.id, "head_sha": sha, "node_id": format!("CR_{}", c.id), "external_id": "",
            "url": format!("{api}/check-runs/{}", c.id),
            "html_url": format!("https://github.com/{}/{}/runs/{}", self.owner, self.repo, c.id),
            "details_url": null, "status": c.status, "conclusion": c.conclusion,
            "started_at": timestamp(1), "completed_at": if c.conclusion.is_some() { json!(timestamp(2)) } else { Value::Null },
            "output": {"title": null, "summary": null, "text": null, "annotations_count": 0,
                       "annotations_url": format!("{api}/check-runs/{}/annotations", c.id)},
            "name": c.name, "check_suite": {"id": 1}, "app": null, "pull_requests": []
        })
    }
}
