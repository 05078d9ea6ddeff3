//! A stateful fake of GitLab's REST API v4 for merge requests, on 127.0.0.1.
//!
//! It keeps merge requests (addressed by project id or URL-encoded path, and by `iid`),
//! branches, approvals, notes, labels, pipelines and merges, and answers in the shapes GitLab
//! documents: 409 "Another open merge request already exists for this source branch", 409
//! "SHA does not match HEAD of source branch" on merge, 405 for an unmergeable request, 422 for
//! conflicts, `detailed_merge_status`, `head_pipeline`, and "merge when pipeline succeeds" which
//! merges when a later pipeline of the head succeeds. Faults (5xx, 429 with `Retry-After`,
//! 401/403, insufficient scope) can be injected for the next N requests, on all routes or one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The user that opens merge requests through the API (a project access token's bot).
pub const MR_AUTHOR: &str = "project_bot";

/// GitLab's access levels.
pub const GUEST: u32 = 10;
pub const REPORTER: u32 = 20;
pub const DEVELOPER: u32 = 30;
pub const MAINTAINER: u32 = 40;

#[derive(Debug, Clone)]
pub enum Fault {
    ServerError,
    ServiceUnavailable,
    /// 429 with `Retry-After` and `RateLimit-*` headers.
    TooManyRequests {
        retry_after: u64,
    },
    /// 403 "403 Forbidden" (role too low).
    Forbidden,
    /// 403 `insufficient_scope` (token without the `api` scope).
    InsufficientScope,
}

#[derive(Debug, Clone)]
struct FaultRule {
    method: Option<String>,
    path_suffix: Option<String>,
    remaining: usize,
    fault: Fault,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub at: Instant,
    pub status: u16,
    pub request_body: String,
    pub auth: String,
}

#[derive(Debug, Clone)]
pub struct MergeEvent {
    pub iid: u64,
    pub source_branch: String,
    pub sha: String,
    pub target_branch: String,
    pub squash: bool,
}

type BranchSource = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
type MergeHook = Arc<dyn Fn(&MergeEvent) -> Option<String> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Mr {
    pub iid: u64,
    pub id: u64,
    pub title: String,
    pub description: Option<String>,
    pub source_branch: String,
    pub target_branch: String,
    pub sha: String,
    pub labels: Vec<String>,
    /// opened, closed, merged
    pub state: String,
    pub merge_commit_sha: Option<String>,
    pub squash_commit_sha: Option<String>,
    pub squash: bool,
    pub merged_at: Option<String>,
    pub closed_at: Option<String>,
    pub draft: bool,
    pub has_conflicts: bool,
    /// GitLab is still checking mergeability.
    pub checking: bool,
    pub requested_changes: bool,
    pub approved_by: Vec<String>,
    /// When each of `approved_by` approved (logical clock), same order.
    pub approved_at: Vec<u64>,
    /// `author.username`.
    pub author: String,
    /// Diff versions, oldest first: (id, head sha, created at). Each push adds one.
    pub versions: Vec<(u64, String, u64)>,
    pub auto_merge: bool,
    pub remove_source_branch: bool,
    pub created: u64,
    pub updated: u64,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: u64,
    pub sha: String,
    pub r#ref: String,
    pub status: String,
}

#[derive(Default)]
pub struct State {
    pub branches: BTreeMap<String, String>,
    pub mrs: Vec<Mr>,
    pub notes: BTreeMap<u64, Vec<(u64, String)>>,
    pub pipelines: Vec<Pipeline>,
    /// Access levels (including inherited ones) by username; others are not members.
    pub members: BTreeMap<String, u32>,
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
        500 + self.next_id
    }

    /// Move an open request's head, as a push to its source branch does: a new diff version.
    /// Approvals stay (GitLab's "reset approvals on push" off, the Free tier's behaviour).
    pub fn set_mr_head(&mut self, i: usize, sha: &str) {
        if self.mrs[i].sha == sha {
            return;
        }
        let (id, t) = (self.id(), self.tick());
        let m = &mut self.mrs[i];
        m.sha = sha.into();
        m.updated = t;
        m.versions.push((id, sha.into(), t));
    }

    /// Merge `i` now; the hook may supply the real merge sha.
    fn do_merge(&mut self, i: usize) -> String {
        let m = self.mrs[i].clone();
        let ev = MergeEvent {
            iid: m.iid,
            source_branch: m.source_branch.clone(),
            sha: m.sha.clone(),
            target_branch: m.target_branch.clone(),
            squash: m.squash,
        };
        let sha = self
            .merge_hook
            .clone()
            .and_then(|h| h(&ev))
            .unwrap_or_else(|| fake_sha(&format!("glmerge:{}:{}:{}", m.iid, m.sha, m.squash)));
        let t = self.tick();
        self.branches.insert(m.target_branch.clone(), sha.clone());
        if m.remove_source_branch {
            self.branches.remove(&m.source_branch);
        }
        let mr = &mut self.mrs[i];
        mr.state = "merged".into();
        mr.merged_at = Some(timestamp(t));
        mr.updated = t;
        if m.squash {
            mr.squash_commit_sha = Some(fake_sha(&format!("squash:{}", m.sha)));
        }
        mr.merge_commit_sha = Some(sha.clone());
        mr.auto_merge = false;
        sha
    }
}

pub fn timestamp(t: u64) -> String {
    let t = t % 86_400;
    format!(
        "2026-01-01T{:02}:{:02}:{:02}.000Z",
        t / 3600,
        (t / 60) % 60,
        t % 60
    )
}

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

pub struct FakeGitLab {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
}

impl FakeGitLab {
    pub async fn start(project_id: u64, project_path: &str, token: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut s = state.lock().unwrap();
            s.branches.insert("main".into(), fake_sha("main"));
            s.members.insert(MR_AUTHOR.into(), MAINTAINER);
        }
        let server = MockServer::builder().start().await;
        let r = Responder {
            state: state.clone(),
            project_id,
            project_path: project_path.into(),
            token: token.into(),
            base: server.uri(),
        };
        Mock::given(any()).respond_with(r).mount(&server).await;
        FakeGitLab { server, state }
    }

    /// What `CI_SERVER_URL` would be.
    pub fn server_url(&self) -> String {
        self.server.uri()
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn set_branch(&self, name: &str, sha: &str) {
        self.lock().branches.insert(name.into(), sha.into());
    }

    pub fn fail(&self, times: usize, fault: Fault) {
        self.lock().faults.push(FaultRule {
            method: None,
            path_suffix: None,
            remaining: times,
            fault,
        });
    }

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

    /// `username` approves now (on whatever the head is).
    pub fn approve(&self, iid: u64, username: &str) {
        let mut s = self.lock();
        let t = s.tick();
        if let Some(m) = s.mrs.iter_mut().find(|m| m.iid == iid) {
            m.approved_by.push(username.into());
            m.approved_at.push(t);
        }
    }

    /// `username` revokes their approval.
    pub fn unapprove(&self, iid: u64, username: &str) {
        let mut s = self.lock();
        if let Some(m) = s.mrs.iter_mut().find(|m| m.iid == iid) {
            if let Some(i) = m.approved_by.iter().position(|u| u == username) {
                m.approved_by.remove(i);
                m.approved_at.remove(i);
            }
        }
    }

    /// Make `username` a member with `access_level` (or change it).
    pub fn add_member(&self, username: &str, access_level: u32) {
        self.lock().members.insert(username.into(), access_level);
    }

    pub fn request_changes(&self, iid: u64, on: bool) {
        let mut s = self.lock();
        if let Some(m) = s.mrs.iter_mut().find(|m| m.iid == iid) {
            m.requested_changes = on;
        }
    }

    pub fn with_mr(&self, iid: u64, f: impl FnOnce(&mut Mr)) {
        let mut s = self.lock();
        if let Some(m) = s.mrs.iter_mut().find(|m| m.iid == iid) {
            f(m);
        }
    }

    /// Add or update a pipeline for `sha`; a success merges requests waiting on it.
    pub fn set_pipeline(&self, sha: &str, status: &str) -> u64 {
        let mut s = self.lock();
        let id = match s.pipelines.iter_mut().rev().find(|p| p.sha == sha) {
            Some(p)
                if !matches!(
                    p.status.as_str(),
                    "success" | "failed" | "canceled" | "skipped"
                ) =>
            {
                p.status = status.into();
                p.id
            }
            _ => {
                let id = s.id();
                let r#ref = s
                    .mrs
                    .iter()
                    .find(|m| m.sha == sha)
                    .map(|m| m.source_branch.clone())
                    .unwrap_or_default();
                s.pipelines.push(Pipeline {
                    id,
                    sha: sha.into(),
                    r#ref,
                    status: status.into(),
                });
                id
            }
        };
        if status == "success" {
            let waiting: Vec<usize> = (0..s.mrs.len())
                .filter(|i| {
                    s.mrs[*i].auto_merge && s.mrs[*i].sha == sha && s.mrs[*i].state == "opened"
                })
                .collect();
            for i in waiting {
                s.do_merge(i);
            }
        }
        id
    }

    pub fn push_to_mr(&self, iid: u64, sha: &str) {
        let mut s = self.lock();
        if let Some(i) = s.mrs.iter().position(|m| m.iid == iid) {
            s.set_mr_head(i, sha);
            let b = s.mrs[i].source_branch.clone();
            s.branches.insert(b, sha.into());
        }
    }

    pub fn mr(&self, iid: u64) -> Option<Mr> {
        self.lock().mrs.iter().find(|m| m.iid == iid).cloned()
    }

    pub fn mrs(&self) -> Vec<Mr> {
        self.lock().mrs.clone()
    }

    pub fn notes(&self, iid: u64) -> Vec<String> {
        self.lock()
            .notes
            .get(&iid)
            .map(|v| v.iter().map(|n| n.1.clone()).collect())
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
    project_id: u64,
    project_path: String,
    token: String,
    base: String,
}

type Answer = (u16, Value, Vec<(String, String)>);

fn msg(status: u16, message: Value) -> Answer {
    (status, json!({ "message": message }), vec![])
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let method = req.method.as_str().to_uppercase();
        let path = req.url.path().to_string();
        let mut st = self.state.lock().unwrap();
        let (status, body, headers) = self.handle(&mut st, req, &method, &path);
        let text = body.to_string();
        let auth = req
            .headers
            .get("private-token")
            .map(|_| "PRIVATE-TOKEN")
            .or_else(|| req.headers.get("authorization").map(|_| "Authorization"))
            .unwrap_or("")
            .to_string();
        st.requests.push(Recorded {
            method,
            path,
            at: Instant::now(),
            status,
            request_body: String::from_utf8_lossy(&req.body).into_owned(),
            auth,
        });
        let mut t = ResponseTemplate::new(status)
            .insert_header("ratelimit-limit", "2000")
            .insert_header("x-request-id", format!("fake-{}", st.requests.len()));
        for (k, v) in headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        t.set_body_raw(text.into_bytes(), "application/json")
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
        Some(match rule.fault.clone() {
            Fault::ServerError => msg(500, json!("500 Internal Server Error")),
            Fault::ServiceUnavailable => msg(503, json!("503 Service Unavailable")),
            Fault::TooManyRequests { retry_after } => (
                429,
                json!("Retry later"),
                vec![
                    ("retry-after".into(), retry_after.to_string()),
                    ("ratelimit-remaining".into(), "0".into()),
                    ("ratelimit-observed".into(), "2000".into()),
                ],
            ),
            Fault::Forbidden => msg(403, json!("403 Forbidden")),
            Fault::InsufficientScope => (
                403,
                json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"}),
                vec![("www-authenticate".into(), "Bearer realm=\"Protected by OAuth 2.0\", error=\"insufficient_scope\", error_description=\"The request requires higher privileges than provided by the access token.\", scope=\"api\"".into())],
            ),
        })
    }

    fn authorized(&self, req: &Request) -> bool {
        let h = |k: &str| {
            req.headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        h("private-token") == self.token || h("authorization") == format!("Bearer {}", self.token)
    }

    fn handle(&self, st: &mut State, req: &Request, method: &str, path: &str) -> Answer {
        if !self.authorized(req) {
            return msg(401, json!("401 Unauthorized"));
        }
        if let Some(f) = self.fault(st, method, path) {
            return f;
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        if segs.len() < 4 || segs[0] != "api" || segs[1] != "v4" || segs[2] != "projects" {
            return msg(404, json!("404 Not Found"));
        }
        let project =
            url::form_urlencoded::parse(format!("p={}", segs[3].replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
        if project != self.project_id.to_string() && project != self.project_path {
            return msg(404, json!("404 Project Not Found"));
        }
        let q: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(_) => return (400, json!({"error": "400 Bad request"}), vec![]),
            }
        };
        let rest = &segs[4..];
        let idx = |st: &State, n: &str| {
            n.parse::<u64>()
                .ok()
                .and_then(|n| st.mrs.iter().position(|m| m.iid == n))
        };
        match (method, rest) {
            ("GET", ["merge_requests"]) => self.list(st, &q),
            ("POST", ["merge_requests"]) => self.create(st, &body),
            ("GET", ["merge_requests", n]) => match idx(st, n) {
                Some(i) => (200, self.mr_json(st, &st.mrs[i], true), vec![]),
                None => msg(404, json!("404 Not found")),
            },
            ("PUT", ["merge_requests", n]) => match idx(st, n) {
                Some(i) => self.update(st, i, &body),
                None => msg(404, json!("404 Not found")),
            },
            ("PUT", ["merge_requests", n, "merge"]) => match idx(st, n) {
                Some(i) => self.merge(st, i, &body),
                None => msg(404, json!("404 Not found")),
            },
            ("GET", ["merge_requests", n, "approvals"]) => match idx(st, n) {
                Some(i) => (200, self.approvals_json(&st.mrs[i]), vec![]),
                None => msg(404, json!("404 Not found")),
            },
            ("POST", ["merge_requests", n, "approve"]) => match idx(st, n) {
                Some(i) => {
                    if st.mrs[i].approved_by.iter().any(|u| u == MR_AUTHOR) {
                        return msg(401, json!("401 Unauthorized"));
                    }
                    let t = st.tick();
                    st.mrs[i].approved_by.push(MR_AUTHOR.into());
                    st.mrs[i].approved_at.push(t);
                    (201, self.approvals_json(&st.mrs[i]), vec![])
                }
                None => msg(404, json!("404 Not found")),
            },
            ("GET", ["merge_requests", n, "versions"]) => match idx(st, n) {
                Some(i) => {
                    let m = &st.mrs[i];
                    let base = st.branch(&m.target_branch).unwrap_or_default();
                    let list: Vec<Value> = m
                        .versions
                        .iter()
                        .rev()
                        .map(|(id, sha, at)| {
                            json!({
                                "id": id, "head_commit_sha": sha, "base_commit_sha": base,
                                "start_commit_sha": base, "created_at": timestamp(*at),
                                "merge_request_id": m.id, "state": "collected", "real_size": "1",
                                "patch_id_sha": fake_sha(&format!("patch:{sha}"))
                            })
                        })
                        .collect();
                    (200, Value::Array(list), vec![])
                }
                None => msg(404, json!("404 Not found")),
            },
            ("GET", ["members", "all", user_id]) => {
                let member = st.members.iter().find(|(u, _)| {
                    user_id.parse::<u64>().ok()
                        == Some(self.user_json(u)["id"].as_u64().unwrap_or(0))
                });
                match member {
                    Some((username, level)) => {
                        let mut v = self.user_json(username);
                        v["access_level"] = json!(level);
                        v["created_at"] = json!(timestamp(0));
                        v["expires_at"] = Value::Null;
                        v["membership_state"] = json!("active");
                        (200, v, vec![])
                    }
                    None => msg(404, json!("404 Not found")),
                }
            }
            ("POST", ["merge_requests", n, "notes"]) => match idx(st, n) {
                Some(i) => {
                    let Some(text) = body
                        .get("body")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                    else {
                        return msg(400, json!({"body": ["can't be blank"]}));
                    };
                    let (id, t) = (st.id(), st.tick());
                    let iid = st.mrs[i].iid;
                    st.notes
                        .entry(iid)
                        .or_default()
                        .push((id, text.to_string()));
                    (201, self.note_json(st, i, id, text, t), vec![])
                }
                None => msg(404, json!("404 Not found")),
            },
            ("GET", ["merge_requests", n, "notes"]) => match idx(st, n) {
                Some(i) => {
                    // GitLab: newest first unless `sort=asc`; 20 a page by default, at most 100.
                    let iid = st.mrs[i].iid;
                    let mut list: Vec<(u64, String)> =
                        st.notes.get(&iid).cloned().unwrap_or_default();
                    if q.get("sort").map(String::as_str) != Some("asc") {
                        list.reverse();
                    }
                    let per_page: usize = q
                        .get("per_page")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(20)
                        .clamp(1, 100);
                    let page: usize = q
                        .get("page")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1)
                        .max(1);
                    let items: Vec<Value> = list
                        .iter()
                        .skip((page - 1) * per_page)
                        .take(per_page)
                        .map(|(id, b)| self.note_json(st, i, *id, b, 0))
                        .collect();
                    (200, Value::Array(items), vec![])
                }
                None => msg(404, json!("404 Not found")),
            },
            ("PUT", ["merge_requests", n, "notes", note]) => match idx(st, n) {
                Some(i) => {
                    let iid = st.mrs[i].iid;
                    let Some(text) = body
                        .get("body")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                    else {
                        return msg(400, json!({"body": ["can't be blank"]}));
                    };
                    let id = note.parse::<u64>().ok();
                    let Some(entry) = st
                        .notes
                        .get_mut(&iid)
                        .and_then(|v| v.iter_mut().find(|x| Some(x.0) == id))
                    else {
                        return msg(404, json!("404 Note Not Found"));
                    };
                    entry.1 = text.to_string();
                    let id = entry.0;
                    let t = st.tick();
                    (200, self.note_json(st, i, id, text, t), vec![])
                }
                None => msg(404, json!("404 Not found")),
            },
            ("GET", ["pipelines"]) => {
                let mut list: Vec<&Pipeline> = st
                    .pipelines
                    .iter()
                    .filter(|p| q.get("sha").is_none_or(|s| &p.sha == s))
                    .filter(|p| q.get("ref").is_none_or(|r| &p.r#ref == r))
                    .collect();
                list.sort_by_key(|p| p.id);
                if q.get("sort").map(String::as_str) != Some("asc") {
                    list.reverse();
                }
                let per_page: usize = q
                    .get("per_page")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(20)
                    .clamp(1, 100);
                let items: Vec<Value> = list
                    .into_iter()
                    .take(per_page)
                    .map(|p| self.pipeline_json(p))
                    .collect();
                (200, Value::Array(items), vec![])
            }
            _ => msg(404, json!("404 Not Found")),
        }
    }

    fn list(&self, st: &State, q: &BTreeMap<String, String>) -> Answer {
        let state = q.get("state").map(String::as_str).unwrap_or("all");
        if !["opened", "closed", "locked", "merged", "all"].contains(&state) {
            return (
                400,
                json!({"error": "state does not have a valid value"}),
                vec![],
            );
        }
        let want_labels: Vec<&str> = q
            .get("labels")
            .map(|l| l.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let mut list: Vec<&Mr> = st
            .mrs
            .iter()
            .filter(|m| state == "all" || m.state == state)
            .filter(|m| q.get("source_branch").is_none_or(|b| &m.source_branch == b))
            .filter(|m| q.get("target_branch").is_none_or(|b| &m.target_branch == b))
            .filter(|m| want_labels.iter().all(|l| m.labels.iter().any(|x| x == l)))
            .collect();
        match q
            .get("order_by")
            .map(String::as_str)
            .unwrap_or("created_at")
        {
            "updated_at" => list.sort_by_key(|m| m.updated),
            _ => list.sort_by_key(|m| m.created),
        }
        if q.get("sort").map(String::as_str) != Some("asc") {
            list.reverse();
        }
        let per_page: usize = q
            .get("per_page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
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
            .map(|m| self.mr_json(st, m, false))
            .collect();
        let next = if page * per_page < total {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let headers = vec![
            ("x-total".to_string(), total.to_string()),
            ("x-page".to_string(), page.to_string()),
            ("x-per-page".to_string(), per_page.to_string()),
            ("x-next-page".to_string(), next),
        ];
        (200, Value::Array(items), headers)
    }

    fn create(&self, st: &mut State, body: &Value) -> Answer {
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(source), Some(target), Some(title)) =
            (s("source_branch"), s("target_branch"), s("title"))
        else {
            return (
                400,
                json!({"error": "source_branch, target_branch, title are missing"}),
                vec![],
            );
        };
        let Some(sha) = st.branch(&source) else {
            return msg(
                422,
                json!([format!("Source branch \"{source}\" does not exist")]),
            );
        };
        if st.branch(&target).is_none() {
            return msg(
                422,
                json!([format!("Target branch \"{target}\" does not exist")]),
            );
        }
        if let Some(m) = st
            .mrs
            .iter()
            .find(|m| m.state == "opened" && m.source_branch == source && m.target_branch == target)
        {
            return msg(
                409,
                json!([format!(
                    "Another open merge request already exists for this source branch: !{}",
                    m.iid
                )]),
            );
        }
        let labels = match body.get("labels") {
            Some(Value::String(s)) => s
                .split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        };
        let iid = st.mrs.iter().map(|m| m.iid).max().unwrap_or(0) + 1;
        let (id, t) = (st.id(), st.tick());
        let mr = Mr {
            iid,
            id,
            title,
            description: s("description"),
            source_branch: source,
            target_branch: target,
            sha: sha.clone(),
            labels,
            state: "opened".into(),
            merge_commit_sha: None,
            squash_commit_sha: None,
            squash: body.get("squash").and_then(Value::as_bool).unwrap_or(false),
            merged_at: None,
            closed_at: None,
            draft: false,
            has_conflicts: false,
            checking: false,
            requested_changes: false,
            approved_by: vec![],
            approved_at: vec![],
            author: MR_AUTHOR.into(),
            versions: vec![(id, sha.clone(), t)],
            auto_merge: false,
            remove_source_branch: body
                .get("remove_source_branch")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            created: t,
            updated: t,
        };
        st.mrs.push(mr.clone());
        (201, self.mr_json(st, &mr, true), vec![])
    }

    fn update(&self, st: &mut State, i: usize, body: &Value) -> Answer {
        let t = st.tick();
        let m = &mut st.mrs[i];
        let split = |v: &Value| -> Vec<String> {
            v.as_str()
                .map(|s| {
                    s.split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(d) = body.get("description") {
            m.description = d.as_str().map(str::to_string);
        }
        if let Some(x) = body.get("title").and_then(Value::as_str) {
            m.title = x.into();
        }
        if let Some(l) = body.get("labels") {
            m.labels = split(l);
        }
        if let Some(l) = body.get("add_labels") {
            for l in split(l) {
                if !m.labels.contains(&l) {
                    m.labels.push(l);
                }
            }
        }
        if let Some(l) = body.get("remove_labels") {
            let rm = split(l);
            m.labels.retain(|x| !rm.contains(x));
        }
        match body.get("state_event").and_then(Value::as_str) {
            Some("close") if m.state == "opened" => {
                m.state = "closed".into();
                m.closed_at = Some(timestamp(t));
            }
            Some("reopen") if m.state == "closed" => {
                m.state = "opened".into();
                m.closed_at = None;
            }
            _ => {}
        }
        m.updated = t;
        let m = st.mrs[i].clone();
        (200, self.mr_json(st, &m, true), vec![])
    }

    fn merge(&self, st: &mut State, i: usize, body: &Value) -> Answer {
        let m = st.mrs[i].clone();
        if m.state != "opened" || m.draft {
            return msg(405, json!("405 Method Not Allowed"));
        }
        if let Some(sha) = body.get("sha").and_then(Value::as_str) {
            if sha != m.sha {
                return msg(
                    409,
                    json!(format!(
                        "SHA does not match HEAD of source branch: {}",
                        m.sha
                    )),
                );
            }
        }
        if m.has_conflicts {
            return msg(422, json!("Branch cannot be merged"));
        }
        if let Some(sq) = body.get("squash").and_then(Value::as_bool) {
            st.mrs[i].squash = sq;
        }
        if body
            .get("should_remove_source_branch")
            .and_then(Value::as_bool)
            == Some(true)
        {
            st.mrs[i].remove_source_branch = true;
        }
        let wants_auto = body.get("auto_merge").and_then(Value::as_bool) == Some(true)
            || body
                .get("merge_when_pipeline_succeeds")
                .and_then(Value::as_bool)
                == Some(true);
        let head_pipeline = st
            .pipelines
            .iter()
            .rev()
            .find(|p| p.sha == m.sha)
            .map(|p| p.status.clone());
        match head_pipeline.as_deref() {
            Some("failed" | "canceled") => return msg(405, json!("405 Method Not Allowed")),
            Some("success" | "skipped") | None => {
                st.do_merge(i);
            }
            Some(_) if wants_auto => {
                st.mrs[i].auto_merge = true;
                let t = st.tick();
                st.mrs[i].updated = t;
            }
            // Running pipeline, no auto-merge asked: the project requires a green pipeline.
            Some(_) => return msg(405, json!("405 Method Not Allowed")),
        }
        let m = st.mrs[i].clone();
        (200, self.mr_json(st, &m, true), vec![])
    }

    /// A note as GitLab's Notes API answers it.
    fn note_json(&self, st: &State, i: usize, id: u64, body: &str, t: u64) -> Value {
        json!({
            "id": id, "type": null, "body": body, "author": self.user_json("project_bot"),
            "created_at": timestamp(t), "updated_at": timestamp(t), "system": false,
            "noteable_id": st.mrs[i].id, "noteable_type": "MergeRequest", "noteable_iid": st.mrs[i].iid,
            "project_id": self.project_id, "resolvable": false, "confidential": false, "internal": false,
            "imported": false, "imported_from": "none"
        })
    }

    fn user_json(&self, username: &str) -> Value {
        let id = username.bytes().map(u64::from).sum::<u64>();
        json!({
            "id": id, "username": username, "name": username, "state": "active", "locked": false,
            "avatar_url": format!("{}/uploads/-/system/user/avatar/{id}/avatar.png", self.base),
            "web_url": format!("{}/{username}", self.base)
        })
    }

    fn pipeline_json(&self, p: &Pipeline) -> Value {
        json!({
            "id": p.id, "iid": p.id - 500, "project_id": self.project_id, "sha": p.sha, "ref": p.r#ref,
            "status": p.status, "source": "merge_request_event", "created_at": timestamp(1), "updated_at": timestamp(2),
            "web_url": format!("{}/{}/-/pipelines/{}", self.base, self.project_path, p.id), "name": null
        })
    }

    fn detailed_status(&self, st: &State, m: &Mr) -> &'static str {
        if m.state != "opened" {
            return "not_open";
        }
        if m.checking {
            return "checking";
        }
        if m.draft {
            return "draft_status";
        }
        if m.has_conflicts {
            return "conflict";
        }
        if m.requested_changes {
            return "requested_changes";
        }
        match st
            .pipelines
            .iter()
            .rev()
            .find(|p| p.sha == m.sha)
            .map(|p| p.status.as_str())
        {
            Some("failed" | "canceled") => "ci_must_pass",
            Some("success" | "skipped") | None => "mergeable",
            Some(_) => "ci_still_running",
        }
    }

    fn mr_json(&self, st: &State, m: &Mr, single: bool) -> Value {
        let web = format!(
            "{}/{}/-/merge_requests/{}",
            self.base, self.project_path, m.iid
        );
        let merge_status = match (m.has_conflicts, m.checking) {
            (_, true) => "checking",
            (true, _) => "cannot_be_merged",
            _ => "can_be_merged",
        };
        let mut v = json!({
            "id": m.id, "iid": m.iid, "project_id": self.project_id, "title": m.title, "description": m.description,
            "state": m.state, "created_at": timestamp(m.created), "updated_at": timestamp(m.updated),
            "merged_by": if m.state == "merged" { self.user_json("project_bot") } else { Value::Null },
            "merge_user": if m.state == "merged" { self.user_json("project_bot") } else { Value::Null },
            "merged_at": m.merged_at, "closed_by": null, "closed_at": m.closed_at,
            "target_branch": m.target_branch, "source_branch": m.source_branch,
            "user_notes_count": st.notes.get(&m.iid).map(Vec::len).unwrap_or(0), "upvotes": 0, "downvotes": 0,
            "author": self.user_json(&m.author), "assignees": [], "assignee": null, "reviewers": [],
            "source_project_id": self.project_id, "target_project_id": self.project_id, "labels": m.labels,
            "draft": m.draft, "work_in_progress": m.draft, "milestone": null,
            "merge_when_pipeline_succeeds": m.auto_merge, "merge_status": merge_status,
            "detailed_merge_status": self.detailed_status(st, m), "sha": m.sha,
            "merge_commit_sha": m.merge_commit_sha, "squash_commit_sha": m.squash_commit_sha,
            "discussion_locked": null, "should_remove_source_branch": m.remove_source_branch,
            "force_remove_source_branch": m.remove_source_branch, "prepared_at": timestamp(m.created),
            "reference": format!("!{}", m.iid),
            "references": {"short": format!("!{}", m.iid), "relative": format!("!{}", m.iid), "full": format!("{}!{}", self.project_path, m.iid)},
            "web_url": web,
            "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": null, "human_total_time_spent": null},
            "squash": m.squash, "squash_on_merge": m.squash,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": m.has_conflicts, "blocking_discussions_resolved": true
        });
        if single {
            let head = st
                .pipelines
                .iter()
                .rev()
                .find(|p| p.sha == m.sha)
                .map(|p| self.pipeline_json(p));
            v["head_pipeline"] = head.unwrap_or(Value::Null);
            v["diff_refs"] = json!({"base_sha": st.branches.get(&m.target_branch), "head_sha": m.sha, "start_sha": st.branches.get(&m.target_branch)});
            v["first_contribution"] = json!(false);
            v["changes_count"] = json!("1");
        }
        v
    }

    fn approvals_json(&self, m: &Mr) -> Value {
        json!({
            "id": m.id, "iid": m.iid, "project_id": self.project_id, "title": m.title, "description": m.description,
            "state": m.state, "created_at": timestamp(m.created), "updated_at": timestamp(m.updated),
            "merge_status": "can_be_merged", "approved": !m.approved_by.is_empty(),
            "approvals_required": 0, "approvals_left": 0, "require_password_to_approve": false,
            "approved_by": m.approved_by.iter().zip(&m.approved_at).map(|(u, at)| json!({"user": self.user_json(u), "approved_at": timestamp(*at)})).collect::<Vec<_>>(),
            "suggested_approvers": [], "approvers": [], "approver_groups": [],
            "user_has_approved": false, "user_can_approve": true, "approval_rules_left": [],
            "has_approval_rules": false, "merge_request_approvers_available": false,
            "multiple_approval_rules_available": false, "invalid_approvers_rules": []
        })
    }
}
