//! The end-to-end world for rollout tests: a real Git remote, a forge fake, a fake Kubernetes
//! API with the controllers a cluster would run, and optionally a real Prometheus, all on
//! 127.0.0.1 and all stopped when the [`World`] is dropped.
//!
//! What runs behind the scenes (one background thread, ticking every 10 ms):
//! - forge upkeep: the fake's branches follow the bare repository (the repository is the truth),
//!   an open PR's head follows its branch, and `mergeable` is what `git merge-tree` says;
//! - merges: the fake's merge hook merges in the bare repository (merge commit, squash or
//!   rebase, with git plumbing so no worktree is needed) and reports the real commit SHA;
//! - a sync agent (Argo CD / Flux / plain apply): polls the base branch every 100 ms and, after a
//!   configurable delay, applies the manifests of the new commit to the fake kube (objects
//!   round-tripped through k8s-openapi types, status kept, objects gone from Git pruned), then
//!   reports Synced/Ready at that commit and health from the Deployments;
//! - a Deployment controller: on a new generation, after a delay, writes the status the real
//!   controller writes and replaces the Pods (Running and ready, or crash-looping on request).
//!
//! A thread rather than tokio tasks: `#[tokio::test]` runs on one thread, and the agent shells
//! out to `git`, which must not stall the fake API servers the tool under test is talking to.

pub use super::fake_github;
pub use super::fake_gitlab;
pub use super::fake_kube;
pub use super::git_server;
pub use super::prometheus;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{json, Value};

pub use fake_github::FakeGitHub;
pub use fake_gitlab::FakeGitLab;
pub use fake_kube::FakeKube;
pub use git_server::GitServer;

/// `owner/name` of the repository on the forge (and its path on the Git server).
pub const REPO: &str = "acme/gitops";
pub const BASE: &str = "main";
pub const GITHUB_TOKEN: &str = "ghs_e2eT0kenNeverPrinted4f9d1c";
pub const GITLAB_TOKEN: &str = "glpat-e2eT0kenNeverPrinted8b2e";
pub const GITLAB_PROJECT_ID: u64 = 4242;
/// Name of the Argo CD `Application` / Flux `Kustomization` that deploys the repository.
pub const APP: &str = "gitops";
pub const ARGO_NAMESPACE: &str = "argocd";
pub const FLUX_NAMESPACE: &str = "flux-system";
/// Restart count of a crash-looping container (above the default threshold of 3).
pub const CRASH_RESTARTS: i32 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    Github,
    Gitlab,
    None,
}

/// Who applies Git to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncAgent {
    /// An Argo CD `Application` `argocd/gitops`.
    Argo,
    /// A Flux `Kustomization` `flux-system/gitops`.
    Flux,
    /// Manifests are applied, with no GitOps controller object to ask.
    IngressOnly,
}

/// Canary traffic backfilled into a real Prometheus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metrics {
    /// No Prometheus.
    None,
    /// Canary and stable answer 0.1% errors.
    Healthy,
    /// The canary answers 30% errors and is slow.
    Failing,
}

#[derive(Clone, Debug)]
pub struct WorldOptions {
    pub forge: Forge,
    /// Seeds the base branch (one commit).
    pub example_repo: PathBuf,
    pub sync: SyncAgent,
    /// From noticing a new commit to applying it.
    pub sync_delay: Duration,
    /// From a Deployment's new generation to its status and Pods.
    pub rollout_delay: Duration,
    /// How long a crash-looping Deployment stays `Progressing=True` before
    /// `ProgressDeadlineExceeded` (Argo CD then reports Degraded, Flux HealthCheckFailed).
    pub progress_deadline: Duration,
    pub metrics: Metrics,
    /// Extra files for the seed commit: (repo-relative path, contents), e.g. a config file.
    pub extra_files: Vec<(String, String)>,
    /// Kustomize roots (directories) the sync agent applies, each rendered by `kubectl
    /// kustomize` as Argo CD / Flux would; empty: every YAML file as it is (flat manifests).
    pub render_roots: Vec<String>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            forge: Forge::Github,
            example_repo: Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops-repo"),
            sync: SyncAgent::Argo,
            sync_delay: Duration::from_millis(150),
            rollout_delay: Duration::from_millis(100),
            progress_deadline: Duration::from_secs(2),
            metrics: Metrics::None,
            extra_files: Vec::new(),
            render_roots: Vec::new(),
        }
    }
}

/// A PR/MR as both forges describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrInfo {
    pub number: u64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    /// open, closed or merged
    pub state: String,
    pub merge_commit_sha: Option<String>,
    pub labels: Vec<String>,
}

/// Test knobs and what the agent saw, shared with the background thread.
#[derive(Default)]
struct Shared {
    sync_delay: Duration,
    rollout_delay: Duration,
    progress_deadline: Duration,
    paused: bool,
    /// Look at the base branch now (a refresh annotation or a test asked).
    kick: bool,
    crash: BTreeSet<(String, String)>,
    /// The last commit whose manifests were applied.
    synced: Option<String>,
    /// Manifest errors per commit (what Argo CD shows as ComparisonError).
    errors: Vec<(String, String)>,
    /// PR/MR number -> title, cached for the merge hook (which runs under the fake's lock).
    titles: HashMap<u64, String>,
    /// GitLab squash commits: MR iid -> squash commit.
    squashes: HashMap<u64, String>,
    /// Deployments the agent applied: (namespace, name).
    deployments: BTreeSet<(String, String)>,
}

#[derive(Clone)]
enum ForgeHandle {
    Github(Arc<FakeGitHub>),
    Gitlab(Arc<FakeGitLab>),
    None,
}

pub struct World {
    opts: WorldOptions,
    git: GitServer,
    bare: PathBuf,
    token: String,
    forge: ForgeHandle,
    kube: Arc<FakeKube>,
    prometheus: Option<prometheus::Prometheus>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    agent: Option<std::thread::JoinHandle<()>>,
    checkouts: Mutex<Vec<tempfile::TempDir>>,
    http: reqwest::Client,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.agent.take() {
            let _ = t.join();
        }
    }
}

/// Is everything the world needs installed? Prints a SKIP line when not.
pub fn available() -> bool {
    git_server::git_available()
}

impl World {
    /// Start everything and wait until the seed commit is synced and every Deployment is
    /// available (so a test starts from a steady cluster). Call [`available`] first.
    pub async fn start(opts: WorldOptions) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (user, token) = match opts.forge {
            Forge::Gitlab => ("oauth2", GITLAB_TOKEN),
            _ => ("x-access-token", GITHUB_TOKEN),
        };
        let git = GitServer::start(user, token);
        let seed = tempfile::tempdir().expect("tempdir");
        copy_tree(&opts.example_repo, seed.path());
        for (path, text) in &opts.extra_files {
            let p = seed.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write extra file");
        }
        let bare = git.create_repo(REPO, seed.path());

        let source = {
            let bare = bare.clone();
            move |branch: &str| git_server::rev(&bare, &format!("refs/heads/{branch}"))
        };
        let forge = match opts.forge {
            Forge::Github => {
                let (owner, name) = REPO.split_once('/').expect("owner/name");
                let gh = Arc::new(FakeGitHub::start(owner, name, token).await);
                gh.branches_from(source);
                ForgeHandle::Github(gh)
            }
            Forge::Gitlab => {
                let gl = Arc::new(FakeGitLab::start(GITLAB_PROJECT_ID, REPO, token).await);
                gl.branches_from(source);
                ForgeHandle::Gitlab(gl)
            }
            Forge::None => ForgeHandle::None,
        };
        let kube = Arc::new(FakeKube::start().await);
        let shared = Arc::new(Mutex::new(Shared {
            sync_delay: opts.sync_delay,
            rollout_delay: opts.rollout_delay,
            progress_deadline: opts.progress_deadline,
            ..Shared::default()
        }));
        install_merge_hook(&forge, &bare, &shared);

        let prometheus = match opts.metrics {
            Metrics::None => None,
            m => prometheus::start(&traffic(m == Metrics::Failing)).await,
        };

        let stop = Arc::new(AtomicBool::new(false));
        let mut agent = Agent {
            bare: bare.clone(),
            kube: kube.clone(),
            forge: forge.clone(),
            sync: opts.sync,
            roots: opts.render_roots.clone(),
            shared: shared.clone(),
            seen: None,
            pending: None,
            applied: BTreeMap::new(),
            controller: BTreeMap::new(),
            last_poll: None,
            last_upkeep: None,
            syncs: 0,
            mergeable: HashMap::new(),
        };
        agent.create_sync_object();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                agent.tick();
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let world = World {
            opts,
            git,
            bare,
            token: token.to_string(),
            forge,
            kube,
            prometheus,
            shared,
            stop,
            agent: Some(thread),
            checkouts: Mutex::new(Vec::new()),
            http: reqwest::Client::new(),
        };
        let seed_sha = world.base_sha();
        world
            .wait_for(
                "the seed commit synced and healthy",
                Duration::from_secs(10),
                |w| w.synced_sha().as_deref() == Some(seed_sha.as_str()) && w.all_available(),
            )
            .await;
        world
    }

    pub fn options(&self) -> &WorldOptions {
        &self.opts
    }

    /// `http://127.0.0.1:P/acme/gitops.git`, served by `git http-backend` with token auth.
    pub fn remote_url(&self) -> String {
        self.git.url(REPO)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The bare repository behind the remote.
    pub fn bare(&self) -> &Path {
        &self.bare
    }

    /// A fresh clone of the base branch, as actions/checkout leaves it: `origin` is the plain
    /// remote URL and the credentials sit in an `http.<url>.extraheader` entry of .git/config.
    /// Lives as long as the world.
    pub fn checkout(&self) -> PathBuf {
        self.checkout_with(&[])
    }

    /// [`World::checkout`] with `fetch-depth: 1`: only the tip commit, its parents cut off.
    pub fn checkout_shallow(&self) -> PathBuf {
        self.checkout_with(&["--depth", "1"])
    }

    fn checkout_with(&self, extra: &[&str]) -> PathBuf {
        let dir = tempfile::tempdir().expect("tempdir");
        let header = format!(
            "AUTHORIZATION: Basic {}",
            base64(format!("{}:{}", self.git_user(), self.token).as_bytes())
        );
        let prefix = format!("http://127.0.0.1:{}/", self.git.port);
        let work = dir.path().join("checkout");
        run_git(
            dir.path(),
            &[
                "-c",
                &format!("http.{prefix}.extraheader={header}"),
                "clone",
                "-q",
                "-b",
                BASE,
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .chain([self.remote_url().as_str(), work.to_str().expect("utf-8")])
            .collect::<Vec<_>>(),
            &[],
        )
        .expect("git clone");
        run_git(
            &work,
            &["config", &format!("http.{prefix}.extraheader"), &header],
            &[],
        )
        .expect("git config");
        self.checkouts.lock().unwrap().push(dir);
        work
    }

    fn git_user(&self) -> &'static str {
        match self.opts.forge {
            Forge::Gitlab => "oauth2",
            _ => "x-access-token",
        }
    }

    /// The environment the binary would see in CI: the forge's variables, `KUBECONFIG`, and
    /// `GITOPS_CANARY_PROMETHEUS_URL` when a Prometheus runs.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| env.push((k.to_string(), v));
        let git_host = format!("http://127.0.0.1:{}", self.git.port);
        match &self.forge {
            ForgeHandle::Github(gh) => {
                set("GITHUB_API_URL", gh.api_url());
                set("GITHUB_SERVER_URL", git_host);
                set("GITHUB_REPOSITORY", REPO.to_string());
                set("GITHUB_TOKEN", self.token.clone());
            }
            ForgeHandle::Gitlab(gl) => {
                set("CI_SERVER_URL", gl.server_url());
                set("CI_PROJECT_ID", GITLAB_PROJECT_ID.to_string());
                set("CI_PROJECT_PATH", REPO.to_string());
                set("CI_PROJECT_URL", format!("{git_host}/{REPO}"));
                set("CI_DEFAULT_BRANCH", BASE.to_string());
                set("GITLAB_TOKEN", self.token.clone());
            }
            ForgeHandle::None => {}
        }
        set(
            "KUBECONFIG",
            self.kube.kubeconfig().to_string_lossy().into_owned(),
        );
        set("GIT_TERMINAL_PROMPT", "0".to_string());
        if let Some(url) = self.prometheus_url() {
            set("GITOPS_CANARY_PROMETHEUS_URL", url);
        }
        env
    }

    /// Where the `synced` gate should look, as `GITOPS_CANARY_SYNC_SOURCE` and
    /// `GITOPS_CANARY_ARGOCD_APP` / `GITOPS_CANARY_FLUX_KUSTOMIZATION` (the `check` flags).
    pub fn sync_env(&self) -> Vec<(String, String)> {
        let pair = |k: &str, v: String| (k.to_string(), v);
        match self.opts.sync {
            SyncAgent::Argo => vec![
                pair("GITOPS_CANARY_SYNC_SOURCE", "argocd".into()),
                pair(
                    "GITOPS_CANARY_ARGOCD_APP",
                    format!("{ARGO_NAMESPACE}/{APP}"),
                ),
            ],
            SyncAgent::Flux => vec![
                pair("GITOPS_CANARY_SYNC_SOURCE", "flux".into()),
                pair(
                    "GITOPS_CANARY_FLUX_KUSTOMIZATION",
                    format!("{FLUX_NAMESPACE}/{APP}"),
                ),
            ],
            SyncAgent::IngressOnly => vec![pair("GITOPS_CANARY_SYNC_SOURCE", "ingress".into())],
        }
    }

    /// The GitHub fake (panics when the world has another forge).
    pub fn github(&self) -> &FakeGitHub {
        match &self.forge {
            ForgeHandle::Github(gh) => gh,
            _ => panic!("this world has no GitHub (WorldOptions.forge)"),
        }
    }

    /// The GitLab fake (panics when the world has another forge).
    pub fn gitlab(&self) -> &FakeGitLab {
        match &self.forge {
            ForgeHandle::Gitlab(gl) => gl,
            _ => panic!("this world has no GitLab (WorldOptions.forge)"),
        }
    }

    pub fn kube(&self) -> &FakeKube {
        &self.kube
    }

    pub fn prometheus_url(&self) -> Option<String> {
        self.prometheus.as_ref().map(|p| p.url.clone())
    }

    // ----- Git, read from the bare repository

    pub fn base_sha(&self) -> String {
        git_server::rev(&self.bare, &format!("refs/heads/{BASE}")).expect("base branch")
    }

    /// The canary weight of the (first) canary Ingress in `file` on the base branch, read with
    /// the git CLI and `gitops_canary::router` (0 when the annotation is absent).
    pub fn base_weight(&self, file: &str) -> u32 {
        self.weight_at(BASE, file)
    }

    /// Same as [`World::base_weight`] at any revision (a branch name or a SHA).
    pub fn weight_at(&self, rev: &str, file: &str) -> u32 {
        let text = run_git(&self.bare, &["show", &format!("{rev}:{file}")], &[])
            .unwrap_or_else(|e| panic!("{file} at {rev}: {e}"));
        canary_weight(file, &text).unwrap_or_else(|| panic!("no canary Ingress in {file} at {rev}"))
    }

    /// Every branch of the bare repository, sorted.
    pub fn branches(&self) -> Vec<String> {
        let out = run_git(
            &self.bare,
            &["for-each-ref", "--format=%(refname:short)", "refs/heads/"],
            &[],
        )
        .expect("for-each-ref");
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    }

    /// `(sha, subject)` of the base branch's first-parent history, newest first.
    pub fn commits_on_base(&self) -> Vec<(String, String)> {
        let out = run_git(
            &self.bare,
            &["log", "--first-parent", "--format=%H %s", BASE],
            &[],
        )
        .expect("git log");
        out.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Full commit message of `rev`.
    pub fn message(&self, rev: &str) -> String {
        run_git(&self.bare, &["log", "-1", "--format=%B", rev], &[]).expect("git log")
    }

    /// Parents of `rev` (two for a merge commit).
    pub fn parents(&self, rev: &str) -> Vec<String> {
        run_git(&self.bare, &["log", "-1", "--format=%P", rev], &[])
            .expect("git log")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    // ----- Acting as a person

    /// Commit a change on `branch` (created off the base when new) and push it, as a person
    /// would: `edit` gets a checkout to change. Returns the branch head.
    pub fn push_branch(&self, branch: &str, message: &str, edit: impl FnOnce(&Path)) -> String {
        let dir = self.checkout();
        let exists = git_server::rev(&self.bare, &format!("refs/heads/{branch}")).is_some();
        let args: &[&str] = if exists {
            &["checkout", "-q", branch]
        } else {
            &["checkout", "-q", "-b", branch]
        };
        run_git(&dir, args, &[]).expect("checkout");
        edit(&dir);
        run_git(&dir, &["add", "-A"], &[]).expect("add");
        run_git(&dir, &["commit", "-q", "-m", message], &person()).expect("commit");
        run_git(&dir, &["push", "-q", "origin", branch], &[]).expect("push");
        run_git(&dir, &["rev-parse", "HEAD"], &[]).expect("rev-parse")
    }

    /// [`World::push_branch`] with the canary weight of `ingress` (`[NS/]NAME`) set to `weight`
    /// by `gitops_canary::manifest::set_weight` (the tool's own byte-exact edit).
    pub fn push_weight_branch(&self, branch: &str, ingress: &str, weight: u32) -> String {
        self.push_branch(
            branch,
            &format!("Set {ingress} canary weight to {weight}"),
            |dir| {
                gitops_canary::router::set_weight(dir, ingress, weight, false)
                    .unwrap_or_else(|e| panic!("set_weight {ingress}: {e}"));
            },
        )
    }

    /// Commit straight to the base branch (a person pushing to main, no PR).
    pub fn commit_to_base(&self, message: &str, edit: impl FnOnce(&Path)) -> String {
        let dir = self.checkout();
        edit(&dir);
        run_git(&dir, &["add", "-A"], &[]).expect("add");
        run_git(&dir, &["commit", "-q", "-m", message], &person()).expect("commit");
        run_git(&dir, &["push", "-q", "origin", BASE], &[]).expect("push");
        run_git(&dir, &["rev-parse", "HEAD"], &[]).expect("rev-parse")
    }

    /// Open a PR/MR through the forge's HTTP API; returns its number (iid on GitLab).
    pub async fn open_pr(&self, head: &str, title: &str) -> u64 {
        let (url, body) = match &self.forge {
            ForgeHandle::Github(gh) => (
                format!("{}/repos/{REPO}/pulls", gh.api_url()),
                json!({"title": title, "head": head, "base": BASE, "body": "opened by a person"}),
            ),
            ForgeHandle::Gitlab(gl) => (
                format!(
                    "{}/api/v4/projects/{GITLAB_PROJECT_ID}/merge_requests",
                    gl.server_url()
                ),
                json!({"title": title, "source_branch": head, "target_branch": BASE}),
            ),
            ForgeHandle::None => panic!("this world has no forge"),
        };
        let v = self.call("POST", &url, Some(body)).await;
        let number = v
            .get("number")
            .or_else(|| v.get("iid"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no number in {v}"));
        // The merge hook cannot ask the fake for the title (it runs under the fake's lock), and
        // the background thread may not have cached it yet when a test merges at once.
        self.shared
            .lock()
            .unwrap()
            .titles
            .insert(number, title.to_string());
        number
    }

    /// Approve a PR/MR as a reviewer who may write (Developer on GitLab), on its current head.
    pub fn approve(&self, number: u64) {
        match &self.forge {
            ForgeHandle::Github(gh) => {
                gh.grant("reviewer", "write");
                gh.add_review(number, "reviewer", "APPROVED");
            }
            ForgeHandle::Gitlab(gl) => {
                gl.add_member("reviewer", fake_gitlab::DEVELOPER);
                gl.approve(number, "reviewer");
            }
            ForgeHandle::None => panic!("this world has no forge"),
        }
    }

    /// Merge a PR/MR through the forge's HTTP API as a person (`merge`, `squash` or `rebase`
    /// on GitHub; `squash` or anything else on GitLab). The merge happens in the bare
    /// repository; returns the commit the base branch now points to.
    pub async fn merge_pr(&self, number: u64, method: &str) -> String {
        let (verb, url, body) = match &self.forge {
            ForgeHandle::Github(gh) => (
                "PUT",
                format!("{}/repos/{REPO}/pulls/{number}/merge", gh.api_url()),
                json!({"merge_method": method}),
            ),
            ForgeHandle::Gitlab(gl) => (
                "PUT",
                format!(
                    "{}/api/v4/projects/{GITLAB_PROJECT_ID}/merge_requests/{number}/merge",
                    gl.server_url()
                ),
                json!({"squash": method == "squash"}),
            ),
            ForgeHandle::None => panic!("this world has no forge"),
        };
        let v = self.call(verb, &url, Some(body)).await;
        // GitHub answers {sha}; GitLab the merge request, whose `sha` is the head.
        v.get("merge_commit_sha")
            .filter(|s| !s.is_null())
            .or_else(|| v.get("sha"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no merge sha in {v}"))
    }

    /// Close a PR/MR without merging, as a person in the web UI.
    pub fn close_pr(&self, number: u64) {
        match &self.forge {
            ForgeHandle::Github(gh) => gh.close_pr(number),
            ForgeHandle::Gitlab(gl) => gl.with_mr(number, |m| m.state = "closed".into()),
            ForgeHandle::None => panic!("this world has no forge"),
        }
    }

    /// Every PR/MR, oldest first.
    pub fn prs(&self) -> Vec<PrInfo> {
        match &self.forge {
            ForgeHandle::Github(gh) => gh
                .prs()
                .into_iter()
                .map(|p| PrInfo {
                    number: p.number,
                    title: p.title,
                    head: p.head_ref,
                    base: p.base_ref,
                    head_sha: p.head_sha,
                    state: if p.merged {
                        "merged".into()
                    } else if p.open {
                        "open".into()
                    } else {
                        "closed".into()
                    },
                    merge_commit_sha: p.merge_commit_sha,
                    labels: p.labels,
                })
                .collect(),
            ForgeHandle::Gitlab(gl) => gl
                .mrs()
                .into_iter()
                .map(|m| PrInfo {
                    number: m.iid,
                    title: m.title,
                    head: m.source_branch,
                    base: m.target_branch,
                    head_sha: m.sha,
                    state: if m.state == "opened" {
                        "open".into()
                    } else {
                        m.state
                    },
                    merge_commit_sha: m.merge_commit_sha,
                    labels: m.labels,
                })
                .collect(),
            ForgeHandle::None => Vec::new(),
        }
    }

    /// Head branches with more than one open PR/MR (empty when the tool never duplicated).
    pub fn duplicate_prs(&self) -> Vec<String> {
        let mut seen = BTreeMap::<String, usize>::new();
        for p in self.open_prs() {
            *seen.entry(p.head).or_default() += 1;
        }
        seen.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(h, _)| h)
            .collect()
    }

    /// Open PRs/MRs.
    pub fn open_prs(&self) -> Vec<PrInfo> {
        self.prs()
            .into_iter()
            .filter(|p| p.state == "open")
            .collect()
    }

    async fn call(&self, method: &str, url: &str, body: Option<Value>) -> Value {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, url);
        req = match &self.forge {
            ForgeHandle::Gitlab(_) => req.header("PRIVATE-TOKEN", &self.token),
            _ => req
                .bearer_auth(&self.token)
                .header("accept", "application/vnd.github+json"),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("forge request");
        let status = resp.status();
        let text = resp.text().await.expect("forge body");
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    // ----- The cluster

    /// The live `canary-weight` of an Ingress (None when absent or the Ingress is missing).
    pub fn live_weight(&self, namespace: &str, name: &str) -> Option<u32> {
        self.kube
            .get("networking.k8s.io/v1", "Ingress", namespace, name)?
            .pointer("/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight")?
            .as_str()?
            .parse()
            .ok()
    }

    /// The live weights of an HTTPRoute's backendRefs, by Service name, summed over its rules
    /// that split by weight (a missing weight is 1).
    pub fn live_route_weights(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, u64>> {
        let r = self
            .kube
            .get("gateway.networking.k8s.io/v1", "HTTPRoute", namespace, name)?;
        let mut out = BTreeMap::new();
        for rule in r.pointer("/spec/rules")?.as_array()? {
            for b in rule["backendRefs"].as_array().into_iter().flatten() {
                let n = b["name"].as_str().unwrap_or_default().to_string();
                *out.entry(n).or_default() += b["weight"].as_u64().unwrap_or(1);
            }
        }
        Some(out)
    }

    /// What a Kustomize root renders on the base branch.
    pub fn rendered(&self, root: &str) -> String {
        render_at(&self.bare, BASE, root).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A file on the base branch (None when absent).
    pub fn file_on_base(&self, file: &str) -> Option<String> {
        run_git(&self.bare, &["show", &format!("{BASE}:{file}")], &[]).ok()
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        self.kube.get("apps/v1", "Deployment", namespace, name)
    }

    /// The Pods the controller keeps for a Deployment.
    pub fn pods(&self, namespace: &str, deployment: &str) -> Vec<Value> {
        let Some(d) = self.deployment(namespace, deployment) else {
            return Vec::new();
        };
        let replicas = d
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let hash = template_hash(&d);
        (0..replicas)
            .filter_map(|i| {
                self.kube
                    .get("v1", "Pod", namespace, &pod_name(deployment, &hash, i))
            })
            .collect()
    }

    /// The Argo CD Application (SyncAgent::Argo).
    pub fn argo_app(&self) -> Option<Value> {
        self.kube
            .get("argoproj.io/v1alpha1", "Application", ARGO_NAMESPACE, APP)
    }

    /// The Flux Kustomization (SyncAgent::Flux).
    pub fn flux_kustomization(&self) -> Option<Value> {
        self.kube.get(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            FLUX_NAMESPACE,
            APP,
        )
    }

    /// The last commit the sync agent applied.
    pub fn synced_sha(&self) -> Option<String> {
        self.shared.lock().unwrap().synced.clone()
    }

    /// `(commit, message)` of commits whose manifests the agent could not apply.
    pub fn sync_errors(&self) -> Vec<(String, String)> {
        self.shared.lock().unwrap().errors.clone()
    }

    /// Every Deployment the agent applied is rolled out and available.
    pub fn all_available(&self) -> bool {
        let deps = self.shared.lock().unwrap().deployments.clone();
        !deps.is_empty()
            && deps.iter().all(|(ns, n)| {
                self.deployment(ns, n)
                    .is_some_and(|d| deployment_health(&d, false) == Health::Healthy)
            })
    }

    // ----- Knobs

    /// Make a Deployment's Pods crash-loop (`CrashLoopBackOff`, restarts [`CRASH_RESTARTS`]),
    /// or recover; the controller applies it after the rollout delay.
    pub fn crash_loop(&self, namespace: &str, deployment: &str, on: bool) {
        let mut s = self.shared.lock().unwrap();
        let key = (namespace.to_string(), deployment.to_string());
        if on {
            s.crash.insert(key);
        } else {
            s.crash.remove(&key);
        }
    }

    /// Scale a live Deployment as `kubectl scale` would (Git is not changed).
    pub fn scale(&self, namespace: &str, deployment: &str, replicas: i32) {
        self.kube
            .modify("apps/v1", "Deployment", namespace, deployment, |d| {
                d["spec"]["replicas"] = json!(replicas)
            });
    }

    /// Stop (true) or resume (false) the sync agent: new commits are not applied meanwhile.
    pub fn pause_sync(&self, paused: bool) {
        self.shared.lock().unwrap().paused = paused;
    }

    /// Wait until the sync agent applied `sha` and every Deployment is rolled out and available.
    pub async fn wait_synced(&self, sha: &str, timeout: Duration) {
        self.wait_for(&format!("{sha} applied and healthy"), timeout, |w| {
            w.synced_sha().as_deref() == Some(sha) && w.all_available()
        })
        .await
    }

    /// Poll until `f` holds; panics with `what` after `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&World) -> bool) {
        let until = Instant::now() + timeout;
        while !f(self) {
            assert!(
                Instant::now() < until,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Git plumbing

fn person() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GIT_AUTHOR_NAME", "Pat Person"),
        ("GIT_AUTHOR_EMAIL", "pat@example.com"),
        ("GIT_COMMITTER_NAME", "Pat Person"),
        ("GIT_COMMITTER_EMAIL", "pat@example.com"),
    ]
}

/// `git` in `dir` without user/system config; Err carries stderr.
fn run_git(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| format!("run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        // Credentials travel in `-c http.<url>.extraheader=...`: never show them.
        let shown: Vec<&str> = args
            .iter()
            .map(|a| {
                if a.contains("extraheader") {
                    "<credentials>"
                } else {
                    a
                }
            })
            .collect();
        Err(format!(
            "git {shown:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MergeMethod {
    Merge,
    Squash,
    Rebase,
    /// GitLab with squash: a squash commit, then a merge commit of it.
    SquashThenMerge,
}

fn forge_identity(forge: &str) -> Vec<(&'static str, &'static str)> {
    let (name, email) = if forge == "github" {
        ("GitHub", "noreply@github.com")
    } else {
        ("GitLab", "gitlab@example.com")
    };
    vec![
        ("GIT_AUTHOR_NAME", "Pat Person"),
        ("GIT_AUTHOR_EMAIL", "pat@example.com"),
        ("GIT_COMMITTER_NAME", name),
        ("GIT_COMMITTER_EMAIL", email),
    ]
}

/// The tree of `head` merged into `base`, or None on conflicts.
fn merge_tree(bare: &Path, base: &str, head: &str) -> Option<String> {
    let out = run_git(bare, &["merge-tree", "--write-tree", base, head], &[]).ok()?;
    out.lines().next().map(str::to_string)
}

/// Merge `head` into `base_ref` of the bare repository and move the branch (compare-and-swap).
/// Returns (new base head, squash commit if one was made).
fn merge_in_bare(
    bare: &Path,
    base_ref: &str,
    head: &str,
    method: MergeMethod,
    message: &str,
    forge: &str,
) -> Result<(String, Option<String>), String> {
    let id = forge_identity(forge);
    let base = run_git(bare, &["rev-parse", &format!("refs/heads/{base_ref}")], &[])?;
    let conflict = || format!("merge conflict between {base_ref} and {head}");
    let commit_tree = |tree: &str, parents: &[&str], msg: &str| {
        let mut args = vec!["commit-tree", tree];
        for p in parents {
            args.push("-p");
            args.push(p);
        }
        args.push("-m");
        args.push(msg);
        run_git(bare, &args, &id)
    };
    let (new, squash) = match method {
        MergeMethod::Merge => {
            let tree = merge_tree(bare, &base, head).ok_or_else(conflict)?;
            (commit_tree(&tree, &[&base, head], message)?, None)
        }
        MergeMethod::Squash => {
            let tree = merge_tree(bare, &base, head).ok_or_else(conflict)?;
            (commit_tree(&tree, &[&base], message)?, None)
        }
        MergeMethod::SquashThenMerge => {
            let tree = merge_tree(bare, &base, head).ok_or_else(conflict)?;
            let title = message.lines().nth(2).unwrap_or(message);
            let squash = commit_tree(&tree, &[&base], title)?;
            (
                commit_tree(&tree, &[&base, &squash], message)?,
                Some(squash),
            )
        }
        MergeMethod::Rebase => {
            let list = run_git(
                bare,
                &[
                    "rev-list",
                    "--reverse",
                    "--no-merges",
                    &format!("{base}..{head}"),
                ],
                &[],
            )?;
            let mut cur = base.clone();
            for c in list.lines() {
                let parent = format!("{c}^");
                let out = run_git(
                    bare,
                    &[
                        "merge-tree",
                        "--write-tree",
                        "--merge-base",
                        &parent,
                        &cur,
                        c,
                    ],
                    &[],
                )
                .map_err(|_| conflict())?;
                let tree = out.lines().next().unwrap_or_default().to_string();
                let msg = run_git(bare, &["log", "-1", "--format=%B", c], &[])?;
                cur = commit_tree(&tree, &[&cur], &msg)?;
            }
            (cur, None)
        }
    };
    run_git(
        bare,
        &["update-ref", &format!("refs/heads/{base_ref}"), &new, &base],
        &[],
    )?;
    Ok((new, squash))
}

/// Messages of the commits `head` adds over `base` (oldest first), for squash bodies.
fn branch_messages(bare: &Path, base_ref: &str, head: &str) -> String {
    run_git(
        bare,
        &[
            "log",
            "--reverse",
            "--format=%B",
            &format!("refs/heads/{base_ref}..{head}"),
        ],
        &[],
    )
    .unwrap_or_default()
}

fn install_merge_hook(forge: &ForgeHandle, bare: &Path, shared: &Arc<Mutex<Shared>>) {
    match forge {
        ForgeHandle::Github(gh) => {
            let (bare, shared) = (bare.to_path_buf(), shared.clone());
            // Runs under the fake's state lock: must not call back into the fake.
            gh.on_merge(move |ev| {
                let title = shared
                    .lock()
                    .unwrap()
                    .titles
                    .get(&ev.number)
                    .cloned()
                    .unwrap_or_else(|| format!("Pull request #{}", ev.number));
                let (method, message) = match ev.method.as_str() {
                    "squash" => (
                        MergeMethod::Squash,
                        format!(
                            "{title} (#{})\n\n{}",
                            ev.number,
                            branch_messages(&bare, &ev.base_ref, &ev.head_sha)
                        ),
                    ),
                    "rebase" => (MergeMethod::Rebase, String::new()),
                    _ => (
                        MergeMethod::Merge,
                        format!(
                            "Merge pull request #{} from {}/{}\n\n{title}",
                            ev.number,
                            REPO.split('/').next().unwrap_or_default(),
                            ev.head_ref
                        ),
                    ),
                };
                match merge_in_bare(
                    &bare,
                    &ev.base_ref,
                    &ev.head_sha,
                    method,
                    &message,
                    "github",
                ) {
                    Ok((sha, _)) => Some(sha),
                    Err(e) => {
                        eprintln!("e2e: merge of PR #{} failed in git: {e}", ev.number);
                        None
                    }
                }
            });
        }
        ForgeHandle::Gitlab(gl) => {
            let (bare, shared) = (bare.to_path_buf(), shared.clone());
            gl.on_merge(move |ev| {
                let title = shared
                    .lock()
                    .unwrap()
                    .titles
                    .get(&ev.iid)
                    .cloned()
                    .unwrap_or_else(|| format!("Merge request !{}", ev.iid));
                let message = format!(
                    "Merge branch '{}' into '{}'\n\n{title}\n\nSee merge request {REPO}!{}",
                    ev.source_branch, ev.target_branch, ev.iid
                );
                let method = if ev.squash {
                    MergeMethod::SquashThenMerge
                } else {
                    MergeMethod::Merge
                };
                match merge_in_bare(
                    &bare,
                    &ev.target_branch,
                    &ev.sha,
                    method,
                    &message,
                    "gitlab",
                ) {
                    Ok((sha, squash)) => {
                        if let Some(s) = squash {
                            shared.lock().unwrap().squashes.insert(ev.iid, s);
                        }
                        Some(sha)
                    }
                    Err(e) => {
                        eprintln!("e2e: merge of MR !{} failed in git: {e}", ev.iid);
                        None
                    }
                }
            });
        }
        ForgeHandle::None => {}
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The weight of the first canary route in one file's text, through the tool's router.
fn canary_weight(file: &str, text: &str) -> Option<u32> {
    let source =
        gitops_canary::manifest::SourceFile::parse(PathBuf::from(file), text.to_string()).ok()?;
    let router = gitops_canary::router::default_router();
    let routes = router.routes(&source);
    let canary = routes.iter().find(|r| r.canary)?;
    Some(canary.weight.unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Objects

type Key = (String, String, String, String); // apiVersion, kind, namespace, name

/// Round-trip a manifest through its k8s-openapi type, so only real fields reach the fake.
fn typed(obj: Value) -> Result<Value, String> {
    fn via<K: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> Result<Value, String> {
        let k: K = serde_json::from_value(v).map_err(|e| e.to_string())?;
        serde_json::to_value(k).map_err(|e| e.to_string())
    }
    match (obj["apiVersion"].as_str(), obj["kind"].as_str()) {
        (Some("apps/v1"), Some("Deployment")) => via::<Deployment>(obj),
        (Some("networking.k8s.io/v1"), Some("Ingress")) => via::<Ingress>(obj),
        (Some("v1"), Some("Service")) => via::<Service>(obj),
        (Some("v1"), Some("ConfigMap")) => via::<ConfigMap>(obj),
        (Some("v1"), Some("Pod")) => via::<Pod>(obj),
        // Custom resources (and kinds the harness does not know) go as they are.
        _ => Ok(obj),
    }
}

/// Every object the agent applies at `sha`, keyed: each YAML file as it is (and what each Flux
/// HelmRelease of a chart in the repository renders, the chart's own files skipped), or what
/// each Kustomize root in `roots` renders. Err names what does not parse or render.
fn manifests_at(bare: &Path, sha: &str, roots: &[String]) -> Result<BTreeMap<Key, Value>, String> {
    let mut texts: Vec<(String, String)> = Vec::new();
    if roots.is_empty() {
        let files = run_git(bare, &["ls-tree", "-r", "--name-only", sha], &[])?;
        let charts = super::helm::chart_dirs(files.lines());
        for file in files.lines() {
            if !(file.ends_with(".yaml") || file.ends_with(".yml"))
                || super::helm::in_chart(file, &charts)
            {
                continue;
            }
            let text = run_git(bare, &["show", &format!("{sha}:{file}")], &[])?;
            texts.push((file.to_string(), text));
        }
        if super::helm::has_local_release(&texts) {
            let tree = extract_at(bare, sha)?;
            let rendered = super::helm::render_releases(tree.path(), &texts)?;
            texts.extend(rendered);
        }
    } else {
        for root in roots {
            texts.push((format!("{root} (kustomize)"), render_at(bare, sha, root)?));
        }
    }
    let mut out = BTreeMap::new();
    for (file, text) in texts {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{file}: {e}"))?;
        for doc in docs {
            let (Some(api), Some(kind), Some(name)) = (
                doc["apiVersion"].as_str(),
                doc["kind"].as_str(),
                doc.pointer("/metadata/name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let ns = doc
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            let key = (
                api.to_string(),
                kind.to_string(),
                ns.to_string(),
                name.to_string(),
            );
            let obj = typed(doc.clone()).map_err(|e| format!("{file}: {kind} {name}: {e}"))?;
            out.insert(key, obj);
        }
    }
    Ok(out)
}

/// `kubectl kustomize ROOT` over the tree of `rev` (a commit or branch), as Argo CD renders it.
pub fn render_at(bare: &Path, rev: &str, root: &str) -> Result<String, String> {
    let tmp = extract_at(bare, rev)?;
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(tmp.path().join(root))
        .output()
        .map_err(|e| format!("kubectl kustomize (is kubectl with Kustomize v5 installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "kubectl kustomize {root} at {rev}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The tree of `rev` (a commit or branch), written to a temporary directory.
fn extract_at(bare: &Path, rev: &str) -> Result<tempfile::TempDir, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let archive = Command::new("git")
        .arg("-C")
        .arg(bare)
        .args(["archive", "--format=tar", rev])
        .output()
        .map_err(|e| e.to_string())?;
    if !archive.status.success() {
        return Err(format!(
            "git archive {rev}: {}",
            String::from_utf8_lossy(&archive.stderr)
        ));
    }
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(tmp.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut stdin = tar.stdin.take().ok_or("tar stdin")?;
        stdin
            .write_all(&archive.stdout)
            .map_err(|e| e.to_string())?;
    }
    if !tar.wait().map_err(|e| e.to_string())?.success() {
        return Err("tar -x failed".into());
    }
    Ok(tmp)
}

/// Is `kubectl kustomize` there? Prints a SKIP line when not (a failure under
/// `GITOPS_CANARY_REQUIRE_TOOLS`).
pub fn kustomize_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        git_server::skip("kubectl (with Kustomize v5) is not installed; install kubectl to run the overlay scenarios");
    }
    ok
}

/// What `kubectl apply` owns: everything but status and server-set metadata.
fn desired_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            meta.remove(k);
        }
    }
    v
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Healthy,
    Progressing,
    Degraded,
}

fn deployment_health(d: &Value, _crash: bool) -> Health {
    let gen = d
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let observed = d
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let conds = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cond = |t: &str| {
        conds
            .iter()
            .find(|c| c["type"] == t)
            .and_then(|c| c["status"].as_str().map(str::to_string))
    };
    if cond("Progressing").as_deref() == Some("False") {
        return Health::Degraded;
    }
    let want = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let num = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    if observed < gen
        || num("/status/updatedReplicas") < want
        || num("/status/availableReplicas") < want
        || cond("Available").as_deref() != Some("True")
    {
        return Health::Progressing;
    }
    Health::Healthy
}

/// A stable short hash of a Deployment's pod template (what `pod-template-hash` stands for).
fn template_hash(d: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    d.pointer("/spec/template")
        .unwrap_or(&Value::Null)
        .to_string()
        .hash(&mut h);
    format!("{:010x}", h.finish() & 0xff_ffff_ffff)
}

fn pod_name(deployment: &str, hash: &str, i: i64) -> String {
    format!("{deployment}-{hash}-{i}")
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

// ---------------------------------------------------------------------------------------------
// The background agent

#[derive(Default)]
struct DeployState {
    /// (generation, crash-looping) last reconciled.
    done: Option<(i64, bool)>,
    /// When the current change was first seen.
    since: Option<Instant>,
    /// When the Pods began crash-looping.
    crashing_since: Option<Instant>,
    deadline_reported: bool,
    pods: BTreeSet<String>,
}

struct Agent {
    bare: PathBuf,
    kube: Arc<FakeKube>,
    forge: ForgeHandle,
    sync: SyncAgent,
    /// Kustomize roots to render and apply (empty: flat manifests).
    roots: Vec<String>,
    shared: Arc<Mutex<Shared>>,
    /// Base head last seen.
    seen: Option<String>,
    /// A commit waiting to be applied, and when.
    pending: Option<(String, Instant)>,
    applied: BTreeMap<Key, Value>,
    controller: BTreeMap<(String, String), DeployState>,
    last_poll: Option<Instant>,
    last_upkeep: Option<Instant>,
    /// Commits applied so far (the first is rolled out at once).
    syncs: usize,
    /// (base, head) -> merges cleanly
    mergeable: HashMap<(String, String), bool>,
}

impl Agent {
    fn tick(&mut self) {
        self.forge_upkeep();
        self.handle_refresh_requests();
        self.poll_git();
        self.apply_due();
        self.run_controller();
        self.report_health();
    }

    fn create_sync_object(&self) {
        match self.sync {
            SyncAgent::Argo => {
                let mut app =
                    fake_kube::objects::argo_app(ARGO_NAMESPACE, APP, "", "OutOfSync", "Missing");
                app["spec"]["source"] = json!({"repoURL": "http://127.0.0.1/acme/gitops.git", "path": ".", "targetRevision": BASE});
                app["spec"]["syncPolicy"] =
                    json!({"automated": {"prune": true, "selfHeal": false}});
                self.kube.upsert(app);
            }
            SyncAgent::Flux => {
                let mut ks = fake_kube::objects::flux_kustomization(
                    FLUX_NAMESPACE,
                    APP,
                    "",
                    "Unknown",
                    "Progressing",
                );
                ks["spec"]["path"] = json!("./");
                ks["spec"]["wait"] = json!(true);
                ks["status"]["lastAppliedRevision"] = Value::Null;
                ks["status"]["lastAttemptedRevision"] = Value::Null;
                self.kube.upsert(ks);
            }
            SyncAgent::IngressOnly => {}
        }
    }

    // ----- forge

    fn branch_sha(&self, branch: &str) -> Option<String> {
        git_server::rev(&self.bare, &format!("refs/heads/{branch}"))
    }

    fn merges_cleanly(&mut self, base: &str, head: &str) -> bool {
        let key = (base.to_string(), head.to_string());
        if let Some(v) = self.mergeable.get(&key) {
            return *v;
        }
        let ok = merge_tree(&self.bare, base, head).is_some();
        self.mergeable.insert(key, ok);
        ok
    }

    /// Every branch head, in one `git` call (the upkeep runs often on a shared machine).
    fn heads(&self) -> HashMap<String, String> {
        run_git(
            &self.bare,
            &[
                "for-each-ref",
                "--format=%(refname:short) %(objectname)",
                "refs/heads/",
            ],
            &[],
        )
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, s)| (b.to_string(), s.to_string()))
        .collect()
    }

    fn forge_upkeep(&mut self) {
        if matches!(self.forge, ForgeHandle::None)
            || self
                .last_upkeep
                .is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            return;
        }
        self.last_upkeep = Some(Instant::now());
        let heads = self.heads();
        match self.forge.clone() {
            ForgeHandle::Github(gh) => {
                let open: Vec<(u64, String, String, String)> = {
                    let mut s = gh.lock();
                    // The fake records merges and pushes in its own map; the repository is the
                    // truth, so drop those records and let the branch source answer.
                    s.branches.clear();
                    let titles: Vec<(u64, String)> =
                        s.prs.iter().map(|p| (p.number, p.title.clone())).collect();
                    self.shared.lock().unwrap().titles.extend(titles);
                    s.prs
                        .iter()
                        .filter(|p| p.open)
                        .map(|p| {
                            (
                                p.number,
                                p.head_ref.clone(),
                                p.base_ref.clone(),
                                p.head_sha.clone(),
                            )
                        })
                        .collect()
                };
                for (number, head_ref, base_ref, old_head) in open {
                    let (Some(head), Some(base)) =
                        (heads.get(&head_ref).cloned(), heads.get(&base_ref).cloned())
                    else {
                        continue;
                    };
                    let clean = self.merges_cleanly(&base, &head);
                    let mut s = gh.lock();
                    if let Some(p) = s.prs.iter_mut().find(|p| p.number == number && p.open) {
                        if p.head_sha != head && p.head_sha == old_head {
                            p.head_sha = head;
                        }
                        p.base_sha = base;
                        p.mergeable = Some(clean);
                    }
                }
            }
            ForgeHandle::Gitlab(gl) => {
                let squashes = self.shared.lock().unwrap().squashes.clone();
                let open: Vec<(u64, String, String)> = {
                    let mut s = gl.lock();
                    s.branches.clear();
                    let titles: Vec<(u64, String)> =
                        s.mrs.iter().map(|m| (m.iid, m.title.clone())).collect();
                    self.shared.lock().unwrap().titles.extend(titles);
                    for m in s.mrs.iter_mut() {
                        if let Some(sq) = squashes.get(&m.iid) {
                            m.squash_commit_sha = Some(sq.clone());
                        }
                    }
                    s.mrs
                        .iter()
                        .filter(|m| m.state == "opened")
                        .map(|m| (m.iid, m.source_branch.clone(), m.target_branch.clone()))
                        .collect()
                };
                for (iid, source, target) in open {
                    let (Some(head), Some(base)) =
                        (heads.get(&source).cloned(), heads.get(&target).cloned())
                    else {
                        continue;
                    };
                    let clean = self.merges_cleanly(&base, &head);
                    let mut s = gl.lock();
                    if let Some(i) = s
                        .mrs
                        .iter()
                        .position(|m| m.iid == iid && m.state == "opened")
                    {
                        s.set_mr_head(i, &head);
                        s.mrs[i].has_conflicts = !clean;
                    }
                }
            }
            ForgeHandle::None => {}
        }
    }

    // ----- sync

    /// Argo CD drops its refresh annotation once it has refreshed; Flux records the request.
    fn handle_refresh_requests(&mut self) {
        match self.sync {
            SyncAgent::Argo => {
                let Some(app) =
                    self.kube
                        .get("argoproj.io/v1alpha1", "Application", ARGO_NAMESPACE, APP)
                else {
                    return;
                };
                if app
                    .pointer("/metadata/annotations/argocd.argoproj.io~1refresh")
                    .is_some()
                {
                    self.kube.modify(
                        "argoproj.io/v1alpha1",
                        "Application",
                        ARGO_NAMESPACE,
                        APP,
                        |a| {
                            if let Some(m) = a["metadata"]["annotations"].as_object_mut() {
                                m.remove("argocd.argoproj.io/refresh");
                            }
                        },
                    );
                    self.last_poll = None;
                }
            }
            SyncAgent::Flux => {
                let Some(ks) = self.kube.get(
                    "kustomize.toolkit.fluxcd.io/v1",
                    "Kustomization",
                    FLUX_NAMESPACE,
                    APP,
                ) else {
                    return;
                };
                let requested = ks
                    .pointer("/metadata/annotations/reconcile.fluxcd.io~1requestedAt")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let handled = ks
                    .pointer("/status/lastHandledReconcileAt")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(r) = requested.filter(|r| Some(r) != handled.as_ref()) {
                    self.kube.modify(
                        "kustomize.toolkit.fluxcd.io/v1",
                        "Kustomization",
                        FLUX_NAMESPACE,
                        APP,
                        |k| {
                            k["status"]["lastHandledReconcileAt"] = json!(r);
                        },
                    );
                    self.last_poll = None;
                }
            }
            SyncAgent::IngressOnly => {}
        }
    }

    fn poll_git(&mut self) {
        let kick = std::mem::take(&mut self.shared.lock().unwrap().kick);
        if !kick
            && self
                .last_poll
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_poll = Some(Instant::now());
        let Some(head) = self.branch_sha(BASE) else {
            return;
        };
        if self.seen.as_deref() == Some(head.as_str()) {
            return;
        }
        self.seen = Some(head.clone());
        let delay = self.shared.lock().unwrap().sync_delay;
        // The first commit is applied at once: the world starts from a synced cluster.
        let due = if self.applied.is_empty() && self.pending.is_none() {
            Instant::now()
        } else {
            Instant::now() + delay
        };
        self.pending = Some((head.clone(), due));
        // The controller noticed: Git and the cluster differ until the sync runs.
        match self.sync {
            SyncAgent::Argo => {
                self.kube.modify(
                    "argoproj.io/v1alpha1",
                    "Application",
                    ARGO_NAMESPACE,
                    APP,
                    |a| {
                        a["status"]["sync"] = json!({"status": "OutOfSync", "revision": head});
                    },
                );
            }
            SyncAgent::Flux => {
                self.kube.modify(
                    "kustomize.toolkit.fluxcd.io/v1",
                    "Kustomization",
                    FLUX_NAMESPACE,
                    APP,
                    |k| {
                        set_ready(
                            k,
                            "Unknown",
                            "Progressing",
                            &format!("Reconciliation in progress for {BASE}@sha1:{head}"),
                        );
                    },
                );
            }
            SyncAgent::IngressOnly => {}
        }
    }

    fn apply_due(&mut self) {
        let paused = self.shared.lock().unwrap().paused;
        let Some((sha, due)) = self.pending.clone() else {
            return;
        };
        if paused || Instant::now() < due {
            return;
        }
        self.pending = None;
        let wanted = match manifests_at(&self.bare, &sha, &self.roots) {
            Ok(w) => w,
            Err(e) => {
                self.shared
                    .lock()
                    .unwrap()
                    .errors
                    .push((sha.clone(), e.clone()));
                self.report_error(&sha, &e);
                return;
            }
        };
        for (key, obj) in &wanted {
            let (api, kind, ns, name) = key;
            let live = self.kube.get(api, kind, ns, name);
            if live.as_ref().map(desired_part) == Some(desired_part(obj)) {
                continue;
            }
            let mut new = obj.clone();
            if let Some(status) = live.as_ref().and_then(|l| l.get("status")) {
                new["status"] = status.clone();
            }
            let stored = self.kube.upsert(new);
            if kind == "HTTPRoute" {
                // The Gateway accepts the route and resolves its backends at this generation.
                let gen = stored.pointer("/metadata/generation").cloned();
                self.kube.modify(api, kind, ns, name, |r| {
                    let parents: Vec<Value> = r
                        .pointer("/spec/parentRefs")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| {
                            let cond = |t: &str, reason: &str| {
                                json!({"type": t, "status": "True", "reason": reason,
                                    "observedGeneration": gen, "lastTransitionTime": now_rfc3339(),
                                    "message": ""})
                            };
                            json!({"parentRef": p, "controllerName": "example.com/fake-gateway",
                                "conditions": [cond("Accepted", "Accepted"), cond("ResolvedRefs", "ResolvedRefs")]})
                        })
                        .collect();
                    r["status"] = json!({ "parents": parents });
                });
            }
        }
        for key in self.applied.keys() {
            if !wanted.contains_key(key) {
                let (api, kind, ns, name) = key;
                self.kube.delete(api, kind, ns, name);
            }
        }
        let deployments: BTreeSet<(String, String)> = wanted
            .keys()
            .filter(|(api, kind, _, _)| api == "apps/v1" && kind == "Deployment")
            .map(|(_, _, ns, n)| (ns.clone(), n.clone()))
            .collect();
        self.applied = wanted;
        self.syncs += 1;
        {
            let mut s = self.shared.lock().unwrap();
            s.deployments = deployments;
            s.synced = Some(sha.clone());
        }
        let flux_rev = format!("{BASE}@sha1:{sha}");
        match self.sync {
            SyncAgent::Argo => {
                self.kube.modify("argoproj.io/v1alpha1", "Application", ARGO_NAMESPACE, APP, |a| {
                    a["status"]["sync"] = json!({"status": "Synced", "revision": sha});
                    a["status"]["health"] = json!({"status": "Progressing"});
                    a["status"]["conditions"] = json!([]);
                    a["status"]["operationState"] = json!({"phase": "Succeeded", "message": "successfully synced (all tasks run)",
                        "syncResult": {"revision": sha}, "finishedAt": now_rfc3339()});
                });
            }
            SyncAgent::Flux => {
                self.kube.modify(
                    "kustomize.toolkit.fluxcd.io/v1",
                    "Kustomization",
                    FLUX_NAMESPACE,
                    APP,
                    |k| {
                        k["status"]["lastAttemptedRevision"] = json!(flux_rev);
                        k["status"]["lastAppliedRevision"] = json!(flux_rev);
                        set_ready(k, "Unknown", "Progressing", "Health check in progress");
                    },
                );
            }
            SyncAgent::IngressOnly => {}
        }
    }

    fn report_error(&self, sha: &str, message: &str) {
        match self.sync {
            SyncAgent::Argo => {
                self.kube.modify("argoproj.io/v1alpha1", "Application", ARGO_NAMESPACE, APP, |a| {
                    a["status"]["sync"] = json!({"status": "Unknown", "revision": sha});
                    a["status"]["conditions"] = json!([{"type": "ComparisonError", "message": message,
                        "lastTransitionTime": now_rfc3339()}]);
                });
            }
            SyncAgent::Flux => {
                let rev = format!("{BASE}@sha1:{sha}");
                self.kube.modify(
                    "kustomize.toolkit.fluxcd.io/v1",
                    "Kustomization",
                    FLUX_NAMESPACE,
                    APP,
                    |k| {
                        k["status"]["lastAttemptedRevision"] = json!(rev);
                        set_ready(k, "False", "BuildFailed", message);
                    },
                );
            }
            SyncAgent::IngressOnly => {}
        }
    }

    /// Argo CD health / Flux Ready from the Deployments, once the latest commit is applied.
    fn report_health(&mut self) {
        if self.pending.is_some() || self.applied.is_empty() {
            return;
        }
        let deployments = self.shared.lock().unwrap().deployments.clone();
        let mut worst = Health::Healthy;
        let mut message = String::new();
        for (ns, n) in &deployments {
            let Some(d) = self.kube.get("apps/v1", "Deployment", ns, n) else {
                continue;
            };
            let h = deployment_health(&d, false);
            let rank = |h: Health| match h {
                Health::Healthy => 0,
                Health::Progressing => 1,
                Health::Degraded => 2,
            };
            if rank(h) > rank(worst) {
                worst = h;
                message = match h {
                    Health::Degraded => {
                        format!("Deployment {ns}/{n} has exceeded its progress deadline")
                    }
                    _ => format!("Waiting for rollout of Deployment {ns}/{n} to finish"),
                };
            }
        }
        match self.sync {
            SyncAgent::Argo => {
                let Some(app) =
                    self.kube
                        .get("argoproj.io/v1alpha1", "Application", ARGO_NAMESPACE, APP)
                else {
                    return;
                };
                if app.pointer("/status/sync/status").and_then(Value::as_str) != Some("Synced") {
                    return;
                }
                let status = match worst {
                    Health::Healthy => "Healthy",
                    Health::Progressing => "Progressing",
                    Health::Degraded => "Degraded",
                };
                let mut health = json!({"status": status});
                if !message.is_empty() {
                    health["message"] = json!(message);
                }
                if app.pointer("/status/health") != Some(&health) {
                    self.kube.modify(
                        "argoproj.io/v1alpha1",
                        "Application",
                        ARGO_NAMESPACE,
                        APP,
                        |a| {
                            a["status"]["health"] = health;
                        },
                    );
                }
            }
            SyncAgent::Flux => {
                let Some(ks) = self.kube.get(
                    "kustomize.toolkit.fluxcd.io/v1",
                    "Kustomization",
                    FLUX_NAMESPACE,
                    APP,
                ) else {
                    return;
                };
                let applied = ks
                    .pointer("/status/lastAppliedRevision")
                    .and_then(Value::as_str);
                let attempted = ks
                    .pointer("/status/lastAttemptedRevision")
                    .and_then(Value::as_str);
                if applied.is_none() || applied != attempted {
                    return;
                }
                let rev = applied.unwrap_or_default().to_string();
                let (status, reason, msg) = match worst {
                    Health::Healthy => (
                        "True",
                        "ReconciliationSucceeded",
                        format!("Applied revision: {rev}"),
                    ),
                    Health::Progressing => ("Unknown", "Progressing", message),
                    Health::Degraded => ("False", "HealthCheckFailed", message),
                };
                let current = ks
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                    .map(|c| (c["status"].clone(), c["reason"].clone()));
                if current != Some((json!(status), json!(reason))) {
                    self.kube.modify(
                        "kustomize.toolkit.fluxcd.io/v1",
                        "Kustomization",
                        FLUX_NAMESPACE,
                        APP,
                        |k| {
                            set_ready(k, status, reason, &msg);
                        },
                    );
                }
            }
            SyncAgent::IngressOnly => {}
        }
    }

    // ----- the Deployment controller

    fn run_controller(&mut self) {
        let (deployments, crash, delay, deadline) = {
            let s = self.shared.lock().unwrap();
            (
                s.deployments.clone(),
                s.crash.clone(),
                s.rollout_delay,
                s.progress_deadline,
            )
        };
        // Deployments pruned from Git: their Pods go too.
        let gone: Vec<(String, String)> = self
            .controller
            .keys()
            .filter(|k| !deployments.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(st) = self.controller.remove(&key) {
                for p in st.pods {
                    self.kube.delete("v1", "Pod", &key.0, &p);
                }
            }
        }
        for key in deployments {
            let Some(d) = self.kube.get("apps/v1", "Deployment", &key.0, &key.1) else {
                continue;
            };
            let gen = d
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let crashing = crash.contains(&key);
            let first = !self.controller.contains_key(&key) && self.syncs <= 1;
            let st = self.controller.entry(key.clone()).or_default();
            if st.done != Some((gen, crashing)) {
                let since = *st.since.get_or_insert_with(Instant::now);
                // The seed is rolled out at once so a world starts steady.
                if !first && since.elapsed() < delay {
                    continue;
                }
                st.since = None;
                st.done = Some((gen, crashing));
                st.crashing_since = crashing.then(Instant::now);
                st.deadline_reported = false;
                let pods = reconcile(&self.kube, &key.0, &key.1, &d, crashing, &st.pods);
                st.pods = pods;
            } else if crashing
                && !st.deadline_reported
                && st.crashing_since.is_some_and(|t| t.elapsed() >= deadline)
            {
                st.deadline_reported = true;
                let (ns, n) = &key;
                self.kube.modify("apps/v1", "Deployment", ns, n, |d| {
                    set_condition(
                        d,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!(
                            "ReplicaSet \"{n}-{}\" has timed out progressing.",
                            template_hash(d)
                        ),
                    );
                });
            }
        }
    }
}

fn set_ready(k: &mut Value, status: &str, reason: &str, message: &str) {
    let gen = k
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    k["status"]["observedGeneration"] = gen;
    k["status"]["conditions"] = json!([{"type": "Ready", "status": status, "reason": reason,
        "message": message, "lastTransitionTime": now_rfc3339()}]);
}

fn set_condition(d: &mut Value, kind: &str, status: &str, reason: &str, message: &str) {
    let cond = json!({"type": kind, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()});
    let conds = d["status"]["conditions"].as_array_mut();
    match conds {
        Some(cs) => {
            cs.retain(|c| c["type"] != kind);
            cs.push(cond);
        }
        None => d["status"]["conditions"] = json!([cond]),
    }
}

/// Roll a Deployment's current spec out: Pods of the new template replace the old ones, and
/// the status says what the real controller would. Returns the Pods now owned.
fn reconcile(
    kube: &FakeKube,
    ns: &str,
    name: &str,
    d: &Value,
    crashing: bool,
    old_pods: &BTreeSet<String>,
) -> BTreeSet<String> {
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let gen = d
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let hash = template_hash(d);
    let mut labels = d
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    labels["pod-template-hash"] = json!(hash);
    let containers = d
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let uid = d.pointer("/metadata/uid").cloned().unwrap_or(json!(""));
    let mut pods = BTreeSet::new();
    for i in 0..replicas {
        let pod = pod_name(name, &hash, i);
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                let cname = c["name"].clone();
                let image = c["image"].clone();
                if crashing {
                    json!({"name": cname, "image": image, "imageID": "", "ready": false, "started": false,
                        "restartCount": CRASH_RESTARTS,
                        "state": {"waiting": {"reason": "CrashLoopBackOff",
                            "message": format!("back-off 40s restarting failed container={} pod={pod}", c["name"].as_str().unwrap_or(""))}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                            "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()}}})
                } else {
                    json!({"name": cname, "image": image, "imageID": "", "ready": true, "started": true,
                        "restartCount": 0, "state": {"running": {"startedAt": now_rfc3339()}}})
                }
            })
            .collect();
        let ready = if crashing { "False" } else { "True" };
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": ns, "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-{hash}"),
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"containers": containers},
            "status": {"phase": "Running", "podIP": format!("10.0.0.{}", 10 + i),
                "conditions": [{"type": "Ready", "status": ready}, {"type": "ContainersReady", "status": ready}],
                "containerStatuses": statuses}});
        let obj = typed(obj).unwrap_or_else(|e| panic!("pod {pod}: {e}"));
        kube.upsert(obj);
        pods.insert(pod);
    }
    for p in old_pods.difference(&pods) {
        kube.delete("v1", "Pod", ns, p);
    }
    let ready = if crashing { 0 } else { replicas };
    kube.modify("apps/v1", "Deployment", ns, name, |d| {
        let mut status = json!({"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": ready, "availableReplicas": ready});
        if replicas - ready > 0 {
            status["unavailableReplicas"] = json!(replicas - ready);
        }
        let now = now_rfc3339();
        let available = if ready >= replicas {
            json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now})
        } else {
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now})
        };
        let progressing = if ready >= replicas {
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                "message": format!("ReplicaSet \"{name}-{hash}\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now})
        } else {
            json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                "message": format!("ReplicaSet \"{name}-{hash}\" is progressing."), "lastUpdateTime": now, "lastTransitionTime": now})
        };
        status["conditions"] = json!([available, progressing]);
        let mut typed_d = d.clone();
        typed_d["status"] = status;
        *d = typed(typed_d).unwrap_or_else(|e| panic!("deployment {ns}/{name}: {e}"));
    });
    pods
}

// ---------------------------------------------------------------------------------------------
// Prometheus traffic

/// One hour of ingress-nginx traffic for the example shop (stable `web`, canary `web-canary`)
/// around now, so queries at the current time see it.
fn traffic(failing: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let stable = prometheus::Traffic {
        namespace: "shop",
        ingress: "web",
        service: "web",
        canary: None,
        rps: 50.0,
        error_ratio: 0.001,
        slow_ratio: 0.01,
    };
    let canary = prometheus::Traffic {
        canary: Some("shop-web-canary-80"),
        rps: 10.0,
        error_ratio: if failing { 0.3 } else { 0.001 },
        slow_ratio: if failing { 0.5 } else { 0.01 },
        ..stable.clone()
    };
    prometheus::openmetrics(now - 1800, 3600, 15, &[stable, canary])
}
