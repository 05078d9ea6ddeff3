//! The Git adapter: fetch the base branch, apply an edit in a clean checkout, commit and push it.
//!
//! Git is the tool's state, so `Workspace::publish` is built to be re-run: it reuses a remote
//! branch whose tree already equals the wanted result, recreates a stale one with a
//! force-with-lease push (only over the oid it saw), and when the base moves under it (a push
//! race) it fetches again, re-runs the edit on the new base and retries a bounded number of times.
//! Everything goes through libgit2 (`git2`); no `git` binary is needed at run time. libgit2 never
//! prompts on a terminal, and credentials come only from `Auth` through the credentials callback,
//! so a token is never part of a URL, and every message that leaves this module has URL userinfo
//! stripped and known secrets redacted.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use git2::build::{CheckoutBuilder, TreeUpdateBuilder};
use git2::{
    Cred, CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions, FileMode, ObjectType,
    Oid, PushOptions, RemoteCallbacks, Repository, Signature,
};

use crate::fault::Classify;
use crate::secret::Token;

/// Where fetched remote branches are kept in the workspace repository, away from `refs/remotes`
/// so an existing CI checkout's own `origin` refs are left alone.
const TRACKING_NS: &str = "refs/gitops-canary/remote";
/// The local ref a publish pushes from (libgit2 resolves push sources as revisions).
const PUBLISH_REF: &str = "refs/gitops-canary/publish";
/// The user's commits, named in the private workspace so a fetch does not download them again.
const SEED_NS: &str = "refs/gitops-canary/seed";

// ---------------------------------------------------------------------------------------------
// Remote, credentials, identity

/// A Git remote and how to authenticate to it.
#[derive(Clone)]
pub struct Remote {
    /// `https://`, `http://`, `ssh://`, `git@host:path`, `file://` or a plain path.
    pub url: String,
    pub auth: Auth,
}

impl Remote {
    pub fn new(url: impl Into<String>, auth: Auth) -> Self {
        Remote {
            url: url.into(),
            auth,
        }
    }

    /// The URL without userinfo, safe to print.
    pub fn display_url(&self) -> String {
        strip_userinfo(&self.url)
    }

    /// Credentials written into an http(s) URL move into `Auth` so libgit2 never sees them in the
    /// URL (it would echo the URL in some messages).
    fn normalized(self) -> Remote {
        let Remote { url, auth } = self;
        let Ok(mut parsed) = url::Url::parse(&url) else {
            return Remote { url, auth };
        };
        if !matches!(parsed.scheme(), "http" | "https") || parsed.username().is_empty() {
            return Remote { url, auth };
        }
        let user = percent_decode(parsed.username());
        let password = parsed.password().map(percent_decode);
        let auth = match (auth, password) {
            (Auth::None, Some(password)) => Auth::Token {
                user,
                token: Token::new(password),
            },
            // A lone userinfo on https is a token by convention (`https://TOKEN@host/...`).
            (Auth::None, None) => Auth::Token {
                user: "x-access-token".to_string(),
                token: Token::new(user),
            },
            (auth, _) => auth,
        };
        // Setting an empty username/password cannot fail on http(s) URLs.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        Remote {
            url: parsed.to_string(),
            auth,
        }
    }

    /// Local transports (paths, `file://`) cannot do shallow fetches in libgit2.
    fn is_local(&self) -> bool {
        let u = self.url.as_str();
        if u.starts_with("file://") {
            return true;
        }
        if u.contains("://") {
            return false;
        }
        // scp-like `host:path` has a colon before any slash; a path does not.
        match (u.find(':'), u.find('/')) {
            (Some(c), Some(s)) => s < c,
            (Some(_), None) => false,
            _ => true,
        }
    }

    fn secrets(&self) -> Vec<&Token> {
        match &self.auth {
            Auth::None => vec![],
            Auth::Token { token, .. } => vec![token],
            Auth::SshKey { passphrase, .. } => passphrase.iter().collect(),
            Auth::SshKeyContent {
                private_key,
                passphrase,
            } => std::iter::once(private_key).chain(passphrase).collect(),
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.display_url())
            .field("auth", &self.auth)
            .finish()
    }
}

/// How to authenticate. `Token` is sent as HTTP basic auth (user + token as password).
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Token {
        user: String,
        token: Token,
    },
    SshKey {
        private_key: PathBuf,
        passphrase: Option<Token>,
    },
    /// The key's content, as actions/checkout's `ssh-key` input takes it: never written to disk.
    SshKeyContent {
        private_key: Token,
        passphrase: Option<Token>,
    },
}

impl Auth {
    /// An SSH key given as its content (`-----BEGIN ...`) or as a path to it.
    pub fn ssh_key(value: &str) -> Self {
        if value.trim_start().starts_with("-----BEGIN") {
            // A key pasted into a CI secret often loses its final newline; libssh2 wants it.
            let mut key = value.trim().to_string();
            key.push('\n');
            Auth::SshKeyContent {
                private_key: Token::new(key),
                passphrase: None,
            }
        } else {
            Auth::SshKey {
                private_key: PathBuf::from(value),
                passphrase: None,
            }
        }
    }

    /// GitHub App / Actions tokens authenticate as `x-access-token`.
    pub fn github(token: Token) -> Self {
        Auth::Token {
            user: "x-access-token".to_string(),
            token,
        }
    }

    /// GitLab project, group and CI job tokens authenticate as `oauth2`.
    pub fn gitlab(token: Token) -> Self {
        Auth::Token {
            user: "oauth2".to_string(),
            token,
        }
    }

    fn user(&self) -> Option<String> {
        match self {
            Auth::Token { user, .. } => Some(user.clone()),
            _ => None,
        }
    }
}

/// Commit author and committer identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Author {
            name: name.into(),
            email: email.into(),
        }
    }

    /// The identity GitHub shows as the Actions bot (the id prefix links the avatar).
    pub fn github_actions_bot() -> Self {
        Author::new(
            "github-actions[bot]",
            "41898282+github-actions[bot]@users.noreply.github.com",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A libgit2 failure with its message scrubbed of URL userinfo and known secrets.
#[derive(Debug, Clone)]
pub struct Cause {
    pub message: String,
    pub code: ErrorCode,
    pub class: ErrorClass,
}

impl Cause {
    fn git(e: &git2::Error, remote: Option<&Remote>) -> Self {
        Cause {
            message: scrub(e.message(), remote),
            code: e.code(),
            class: e.class(),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{dir} is owned by another user, and git refuses repositories it does not own (safe.directory)")]
    NotOwned { dir: PathBuf },
    #[error("{dir} has no `origin` remote")]
    NoOrigin { dir: PathBuf },
    #[error("cannot open the git checkout at {dir}")]
    Open {
        dir: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("cannot create a temporary directory to clone {url}")]
    TempDir {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("authentication to {url} failed{}; check the token and its permissions", user.as_ref().map(|u| format!(" as user {u:?}")).unwrap_or_default())]
    Auth {
        url: String,
        user: Option<String>,
        #[source]
        source: Cause,
    },
    #[error("the SSH host key of {url} is unknown or does not match; add the host to ~/.ssh/known_hosts")]
    HostKey {
        url: String,
        #[source]
        source: Cause,
    },
    #[error("branch {branch:?} does not exist on {url}")]
    NoSuchBranch { url: String, branch: String },
    #[error("{op} {refname} on {url} failed")]
    Remote {
        op: &'static str,
        url: String,
        refname: String,
        #[source]
        source: Cause,
    },
    #[error("{op} ({what}) in {dir} failed")]
    Local {
        op: &'static str,
        what: String,
        dir: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("{name:?} is not a valid branch name")]
    InvalidBranch { name: String },
    #[error("editing the checkout of {base} in {dir} failed")]
    Edit {
        dir: PathBuf,
        base: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("the edit reported {path}, which is not a file inside the repository")]
    EditPath { path: PathBuf },
    #[error("reading {path} in {dir} failed")]
    Io {
        dir: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("push of {branch:?} to {url} was rejected {attempts} times; last: {reason}")]
    PushRejected {
        url: String,
        branch: String,
        reason: String,
        attempts: u32,
    },
}

impl GitError {
    /// Advice for the user (`help:` lines), where there is any.
    pub fn help(&self) -> Vec<String> {
        match self {
            GitError::NotOwned { dir } => vec![
                format!(
                    "if you trust it: git config --global --add safe.directory {}",
                    dir.display()
                ),
                "in CI (GITHUB_ACTIONS or GITLAB_CI set) the check is off for the job's own checkout"
                    .to_string(),
            ],
            GitError::NoOrigin { .. } => vec!["pass --remote URL".to_string()],
            _ => Vec::new(),
        }
    }

    /// Network faults and server errors, worth another attempt.
    fn is_transient(&self) -> bool {
        matches!(self, GitError::Remote { source, .. }
            if matches!(source.class, ErrorClass::Net | ErrorClass::Http | ErrorClass::Os | ErrorClass::Ssl)
                // A 4xx (wrong repository path, forbidden) will not get better by waiting.
                && !source.message.contains("status code: 4")
                && source.code != ErrorCode::Certificate)
    }
}

impl Classify for GitError {
    fn is_bad_input(&self) -> bool {
        match self {
            GitError::Open { .. }
            | GitError::NotOwned { .. }
            | GitError::NoOrigin { .. }
            | GitError::Auth { .. }
            | GitError::HostKey { .. }
            | GitError::NoSuchBranch { .. }
            | GitError::InvalidBranch { .. } => true,
            // The edit's own error decides: a usage or manifest error is the user's input.
            GitError::Edit { source, .. } => source.chain().any(|c| {
                c.is::<crate::fault::Usage>()
                    || c.downcast_ref::<crate::manifest::ManifestError>()
                        .is_some_and(Classify::is_bad_input)
            }),
            GitError::TempDir { .. }
            | GitError::Remote { .. }
            | GitError::Local { .. }
            | GitError::EditPath { .. }
            | GitError::Io { .. }
            | GitError::PushRejected { .. } => false,
        }
    }
}

/// A test over a commit's trailers.
pub type TrailerPredicate<'a> = dyn Fn(&[(String, String)]) -> bool + 'a;

// ---------------------------------------------------------------------------------------------
// Publish request and result

/// What to publish: an edit on top of `base`, committed with `message` by `author`.
#[derive(Clone, Debug)]
pub struct ChangeRequest {
    pub base: String,
    pub target: Target,
    /// Subject, body and trailers (`Gitops-Canary-Stage: 2`), as `git commit -m` would take it.
    pub message: String,
    pub author: Author,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A branch created from base (for a PR/MR).
    Branch(String),
    /// Straight onto the base branch.
    Direct,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The remote branch that carries the change (the base branch for `Target::Direct`).
    pub branch: String,
    /// The commit on `branch`; `None` when the edit changed nothing (nothing was pushed).
    pub commit: Option<Oid>,
    /// The base tip the change was made on.
    pub base: Oid,
    /// The remote branch already had exactly this tree; nothing was pushed.
    pub reused: bool,
    /// How many attempts it took (more than 1 after a push race).
    pub attempts: u32,
}

/// Bounds for push-race and transient-fault retries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// Open the user's repository at `dir`, read-only by convention; says plainly when libgit2
/// refuses it for its owner.
fn open_user_repo(dir: &Path) -> Result<Repository, GitError> {
    Repository::open(dir).map_err(|e| {
        if e.code() == ErrorCode::Owner {
            GitError::NotOwned {
                dir: dir.to_path_buf(),
            }
        } else {
            GitError::Open {
                dir: dir.to_path_buf(),
                source: Cause::git(&e, None),
            }
        }
    })
}

/// The Git credentials for a forge token. On GitLab without a token of its own, the job's
/// `CI_JOB_TOKEN` is used for Git only, as user `gitlab-ci-token` (the one user GitLab accepts
/// it for; it can fetch, and push where the project allows job tokens to push); it cannot be
/// used for the merge-request API, which needs a project or group access token.
pub fn token_auth(token: Option<&Token>, gitlab: bool, job_token: Option<String>) -> Auth {
    match (token, gitlab) {
        (Some(t), true) => Auth::gitlab(t.clone()),
        (Some(t), false) => Auth::github(t.clone()),
        (None, true) => match job_token {
            Some(job) if !job.is_empty() => Auth::Token {
                user: "gitlab-ci-token".to_string(),
                token: Token::new(job),
            },
            _ => Auth::None,
        },
        (None, false) => Auth::None,
    }
}

/// `file` (relative to `dir`) as a path from the root of the Git repository that holds `dir`,
/// which is how GitHub resolves an annotation's `file=`: `--repo gitops` may be a folder of
/// the repository (the prefix stays) or the repository checked out at `gitops/` (it goes).
/// Outside a repository, `dir/file`.
pub fn path_in_repository(dir: &Path, file: &Path) -> PathBuf {
    let fallback = || {
        if dir == Path::new(".") {
            file.to_path_buf()
        } else {
            dir.join(file)
        }
    };
    let Ok(repo) = Repository::discover(dir) else {
        return fallback();
    };
    let (Some(root), Ok(dir)) = (
        repo.workdir().and_then(|w| w.canonicalize().ok()),
        dir.canonicalize(),
    ) else {
        return fallback();
    };
    match dir.strip_prefix(&root) {
        Ok(rel) => rel.join(file),
        Err(_) => fallback(),
    }
}

/// The URL of the `origin` remote of the checkout at `dir`.
pub fn origin_url(dir: &Path) -> Result<String, GitError> {
    let repo = open_user_repo(dir)?;
    let origin = repo.find_remote("origin").map_err(|_| GitError::NoOrigin {
        dir: dir.to_path_buf(),
    })?;
    origin
        .url()
        .map(str::to_string)
        .map_err(|_| GitError::NoOrigin {
            dir: dir.to_path_buf(),
        })
}

/// libgit2's network timeouts (process-wide options), set before each workspace's first
/// network call: without them a server that accepts and never answers hangs the job until CI
/// kills it. A timeout is a transient fault, retried within the workspace's bounded policy.
/// `GITOPS_CANARY_GIT_CONNECT_TIMEOUT_MS` and `GITOPS_CANARY_GIT_TIMEOUT_MS` override the
/// defaults (10 s to connect, 60 s without a byte).
fn set_network_timeouts() {
    let ms = |var: &str, default: i32| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let connect = ms("GITOPS_CANARY_GIT_CONNECT_TIMEOUT_MS", 10_000);
    let io = ms("GITOPS_CANARY_GIT_TIMEOUT_MS", 60_000);
    // SAFETY: plain integer options that libgit2 reads when it opens a connection.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(connect);
        let _ = git2::opts::set_server_timeout_in_milliseconds(io);
    }
}

// ---------------------------------------------------------------------------------------------
// Workspace

/// The tool's private checkout, in a temporary directory it owns: it may be reset at will
/// because no user's work lives there.
pub struct Workspace {
    repo: Repository,
    dir: PathBuf,
    remote: Remote,
    shallow: bool,
    retry: Retry,
    _tmp: Option<tempfile::TempDir>,
}

impl fmt::Debug for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workspace")
            .field("dir", &self.dir)
            .field("remote", &self.remote)
            .field("shallow", &self.shallow)
            .finish()
    }
}

/// Per-operation credential bookkeeping: libgit2 asks again after every 401, so without a
/// counter a wrong token loops forever.
#[derive(Default)]
struct AuthState {
    attempts: Cell<u32>,
    failed: Cell<bool>,
}

enum PushOutcome {
    Pushed,
    Rejected(String),
}

enum Step {
    Done(Published),
    Raced(String),
}

impl Workspace {
    /// Work for the user's checkout at `dir` (the CI case) without ever touching it.
    ///
    /// The user's working tree, index, HEAD, refs and `.git` are only read: the tool works in a
    /// private repository in a temporary directory (fetch, check out, commit, push from there).
    /// Its object database borrows the checkout's objects as an alternate and its refs are
    /// seeded with the checkout's commits, so a fetch only downloads what the checkout lacks.
    /// Nothing is written under `dir`, so a container running as root leaves no root-owned file
    /// in the user's `.git` either.
    pub fn open(dir: &Path, remote: Remote) -> Result<Self, GitError> {
        let user = open_user_repo(dir)?;
        let shallow = user.is_shallow();
        let remote = remote.normalized();
        let mut ws = Self::private(&remote, shallow && !remote.is_local())?;
        // A shallow checkout's objects lack parents: negotiating with them would walk into
        // missing commits, so a shallow checkout lends nothing and the fetch is shallow too.
        if !shallow {
            ws.borrow_objects(&user);
        }
        ws.remote = remote;
        Ok(ws)
    }

    /// An empty private repository in a new temporary directory (removed on drop).
    fn private(remote: &Remote, shallow: bool) -> Result<Self, GitError> {
        set_network_timeouts();
        let tmp = tempfile::Builder::new()
            .prefix("gitops-canary-")
            .tempdir()
            .map_err(|source| GitError::TempDir {
                url: remote.display_url(),
                source,
            })?;
        let repo = Repository::init(tmp.path()).map_err(|e| GitError::Local {
            op: "init",
            what: "private workspace".to_string(),
            dir: tmp.path().to_path_buf(),
            source: Cause::git(&e, None),
        })?;
        let dir = repo
            .workdir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| tmp.path().to_path_buf());
        Ok(Workspace {
            repo,
            dir,
            shallow,
            remote: remote.clone(),
            retry: Retry::default(),
            _tmp: Some(tmp),
        })
    }

    /// Read the user's objects in place (an alternate) and name its commits in a private
    /// namespace so fetch negotiation advertises them. Best effort: on any failure the fetch
    /// just downloads more.
    fn borrow_objects(&mut self, user: &Repository) {
        let objects = user.path().join("objects");
        let Ok(odb) = self.repo.odb() else { return };
        if odb.add_disk_alternate(&objects.to_string_lossy()).is_err() {
            return;
        }
        let Ok(refs) = user.references() else { return };
        let mut seen = std::collections::HashSet::new();
        for r in refs.flatten() {
            let Ok(commit) = r.peel_to_commit() else {
                continue;
            };
            if seen.insert(commit.id()) {
                let name = format!("{SEED_NS}/{}", seen.len());
                let _ = self.repo.reference(&name, commit.id(), true, "seed");
            }
        }
    }

    /// Fetch `base` into a new temporary checkout (depth 1 when `shallow` and the transport
    /// allows it; libgit2's local transport does not).
    pub fn clone(remote: Remote, base: &str, shallow: bool) -> Result<Self, GitError> {
        let remote = remote.normalized();
        let ws = Self::private(&remote, shallow && !remote.is_local())?;
        let oid = ws.fetch_base(base)?;
        ws.checkout_clean(oid)?;
        Ok(ws)
    }

    /// Replace the retry bounds (tests use short delays).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    pub fn is_shallow(&self) -> bool {
        self.shallow
    }

    /// Fetch `base` from the remote; returns its tip there.
    pub fn fetch_base(&self, base: &str) -> Result<Oid, GitError> {
        self.retrying(|| {
            let heads = self.ls_remote(&[base])?;
            if heads[0].is_none() {
                return Err(self.no_such_branch(base));
            }
            self.fetch(&[base])?;
            self.tracking(base)
        })
    }

    /// The remote tip of `branch`, without fetching it (`git ls-remote`).
    pub fn remote_branch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        self.retrying(|| Ok(self.ls_remote(&[branch])?[0]))
    }

    /// The bytes of `path` in commit (or tree) `oid`; `None` if there is no such file.
    pub fn read_file_at(&self, oid: Oid, path: &Path) -> Result<Option<Vec<u8>>, GitError> {
        let what = || format!("{} at {oid}", path.display());
        let tree = self
            .repo
            .find_object(oid, None)
            .and_then(|o| o.peel_to_tree())
            .map_err(|e| self.local_err("read file", what(), &e))?;
        let entry = match tree.get_path(path) {
            Ok(entry) => entry,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(self.local_err("read file", what(), &e)),
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|e| self.local_err("read file", what(), &e))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// Fetch `base` and check its tip out, clean and detached, so the manifests on disk are
    /// exactly what the base branch holds now. Returns the tip.
    pub fn sync_to_base(&self, base: &str) -> Result<Oid, GitError> {
        let tip = self.fetch_base(base)?;
        self.checkout_clean(tip)?;
        Ok(tip)
    }

    /// The newest commit reachable from `from` (at most `max` commits back, within the history
    /// this checkout has) whose trailers satisfy `pred`.
    pub fn find_commit_with_trailers(
        &self,
        from: Oid,
        max: usize,
        pred: &TrailerPredicate<'_>,
    ) -> Result<Option<Oid>, GitError> {
        let what = || from.to_string();
        let mut walk = self
            .repo
            .revwalk()
            .map_err(|e| self.local_err("walk history", what(), &e))?;
        walk.push(from)
            .map_err(|e| self.local_err("walk history", what(), &e))?;
        for oid in walk.take(max) {
            // A shallow checkout ends early: the history it lacks cannot be searched.
            let Ok(oid) = oid else { break };
            if pred(&self.commit_trailers(oid)?) {
                return Ok(Some(oid));
            }
        }
        Ok(None)
    }

    /// When commit `oid` was committed, in seconds since the epoch.
    pub fn commit_time(&self, oid: Oid) -> Result<i64, GitError> {
        self.repo
            .find_commit(oid)
            .map(|c| c.committer().when().seconds())
            .map_err(|e| self.local_err("read commit", oid.to_string(), &e))
    }

    /// The trailers of commit `oid`'s message (see `parse_trailers`).
    pub fn commit_trailers(&self, oid: Oid) -> Result<Vec<(String, String)>, GitError> {
        let commit = self
            .repo
            .find_commit(oid)
            .map_err(|e| self.local_err("read commit", oid.to_string(), &e))?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        Ok(parse_trailers(&message))
    }

    /// Apply `edit` on the current remote tip of `req.base`, commit it and push it to the target.
    ///
    /// `edit` gets the checkout directory and returns the repo-relative paths it changed (a path
    /// that no longer exists is deleted). It may run more than once: after a push race it runs
    /// again on the new base. No change -> `commit: None` and no push. Afterwards the checkout
    /// is clean at the published commit (or the base) with HEAD detached there. A remote branch whose tree
    /// already equals the result is reused; a stale one is replaced with a lease on the oid seen.
    pub fn publish(
        &self,
        req: &ChangeRequest,
        edit: &mut dyn FnMut(&Path) -> anyhow::Result<Vec<PathBuf>>,
    ) -> Result<Published, GitError> {
        if let Target::Branch(name) = &req.target {
            validate_branch(name)?;
        }
        validate_branch(&req.base)?;
        let attempts = self.retry.attempts.max(1);
        let mut delays = self.backoff();
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.publish_once(req, edit, attempt) {
                Ok(Step::Done(p)) => return Ok(p),
                Ok(Step::Raced(reason)) => {
                    tracing::info!(attempt, reason = %reason, "push raced; retrying on the new base");
                    last = reason;
                }
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, "transient git failure; retrying");
                    last = e.to_string();
                }
                Err(e) => return Err(e),
            }
            if attempt < attempts {
                std::thread::sleep(delays.next().unwrap_or(self.retry.max_delay));
            }
        }
        Err(GitError::PushRejected {
            url: self.remote.display_url(),
            branch: match &req.target {
                Target::Branch(b) => b.clone(),
                Target::Direct => req.base.clone(),
            },
            reason: last,
            attempts,
        })
    }

    fn publish_once(
        &self,
        req: &ChangeRequest,
        edit: &mut dyn FnMut(&Path) -> anyhow::Result<Vec<PathBuf>>,
        attempt: u32,
    ) -> Result<Step, GitError> {
        let (branch, direct) = match &req.target {
            Target::Branch(b) => (b.as_str(), false),
            Target::Direct => (req.base.as_str(), true),
        };
        let heads = self.ls_remote(&[&req.base, branch])?;
        if heads[0].is_none() {
            return Err(self.no_such_branch(&req.base));
        }
        let seen_tip = if direct { None } else { heads[1] };
        let mut wanted = vec![req.base.as_str()];
        if seen_tip.is_some() {
            wanted.push(branch);
        }
        self.fetch(&wanted)?;
        let base = self.tracking(&req.base)?;
        // The lease is on what was fetched: that is what the tree comparison looked at.
        let tip = match seen_tip {
            Some(_) => Some(self.tracking(branch)?),
            None => None,
        };

        self.checkout_clean(base)?;
        let changed = edit(&self.dir).map_err(|source| GitError::Edit {
            dir: self.dir.clone(),
            base: req.base.clone(),
            source,
        })?;
        let base_tree = self.commit_tree(base)?;
        let tree = self.build_tree(base_tree, &changed)?;
        let published = |commit, reused| Published {
            branch: branch.to_string(),
            commit,
            base,
            reused,
            attempts: attempt,
        };
        if tree == base_tree {
            return Ok(Step::Done(published(None, false)));
        }
        if let Some(tip) = tip {
            if self.commit_tree(tip)? == tree {
                self.checkout_clean(tip)?;
                return Ok(Step::Done(published(Some(tip), true)));
            }
        }
        let commit = self.commit(base, tree, req)?;
        self.checkout_clean(commit)?;
        let lease = if direct { Some(base) } else { tip };
        match self.push(branch, !direct, lease)? {
            PushOutcome::Pushed => Ok(Step::Done(published(Some(commit), false))),
            PushOutcome::Rejected(reason) => Ok(Step::Raced(reason)),
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Run a read-only remote operation again after network faults and 5xx answers.
    fn retrying<T>(&self, mut op: impl FnMut() -> Result<T, GitError>) -> Result<T, GitError> {
        let attempts = self.retry.attempts.max(1);
        let mut delays = self.backoff();
        let mut attempt = 1;
        loop {
            match op() {
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, "transient git failure; retrying");
                    std::thread::sleep(delays.next().unwrap_or(self.retry.max_delay));
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    // --- remote operations ---------------------------------------------------------------

    fn callbacks<'a>(&'a self, state: &'a AuthState) -> RemoteCallbacks<'a> {
        let mut cb = RemoteCallbacks::new();
        cb.credentials(move |_url, url_user, allowed| self.credential(state, url_user, allowed));
        cb
    }

    fn credential(
        &self,
        state: &AuthState,
        url_user: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        let refuse = |msg: &str| {
            state.failed.set(true);
            Err(git2::Error::new(ErrorCode::Auth, ErrorClass::Http, msg))
        };
        match &self.remote.auth {
            Auth::SshKey { .. } | Auth::SshKeyContent { .. }
                if allowed.contains(CredentialType::USERNAME) =>
            {
                // libgit2 asks for the SSH user name first, separately from the key.
                Cred::username(url_user.unwrap_or("git"))
            }
            auth => {
                let n = state.attempts.get() + 1;
                state.attempts.set(n);
                if n > 1 {
                    return refuse("the remote rejected the credentials");
                }
                match auth {
                    Auth::None => refuse("the remote asks for credentials and none were given"),
                    Auth::Token { user, token } => {
                        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                            Cred::userpass_plaintext(user, token.expose())
                        } else {
                            refuse("a token was given but the remote wants another kind of credential (use an https URL)")
                        }
                    }
                    Auth::SshKey {
                        private_key,
                        passphrase,
                    } => {
                        if allowed.contains(CredentialType::SSH_KEY) {
                            Cred::ssh_key(
                                url_user.unwrap_or("git"),
                                None,
                                private_key,
                                passphrase.as_ref().map(Token::expose),
                            )
                        } else {
                            refuse("an SSH key was given but the remote wants another kind of credential (use an ssh URL)")
                        }
                    }
                    Auth::SshKeyContent {
                        private_key,
                        passphrase,
                    } => {
                        if allowed.contains(CredentialType::SSH_KEY) {
                            Cred::ssh_key_from_memory(
                                url_user.unwrap_or("git"),
                                None,
                                private_key.expose(),
                                passphrase.as_ref().map(Token::expose),
                            )
                        } else {
                            refuse("an SSH key was given but the remote wants another kind of credential (use an ssh URL)")
                        }
                    }
                }
            }
        }
    }

    fn remote_err(
        &self,
        op: &'static str,
        refname: &str,
        e: &git2::Error,
        state: &AuthState,
    ) -> GitError {
        let source = Cause::git(e, Some(&self.remote));
        if e.code() == ErrorCode::Certificate && e.class() == ErrorClass::Ssh {
            GitError::HostKey {
                url: self.remote.display_url(),
                source,
            }
        } else if state.failed.get()
            || e.code() == ErrorCode::Auth
            // libssh2 reports a refused key or a wrong passphrase only in the message.
            || (e.class() == ErrorClass::Ssh && e.message().contains("failed to authenticate"))
        {
            GitError::Auth {
                url: self.remote.display_url(),
                user: self.remote.auth.user(),
                source,
            }
        } else {
            GitError::Remote {
                op,
                url: self.remote.display_url(),
                refname: refname.to_string(),
                source,
            }
        }
    }

    fn local_err(&self, op: &'static str, what: String, e: &git2::Error) -> GitError {
        GitError::Local {
            op,
            what,
            dir: self.dir.clone(),
            source: Cause::git(e, Some(&self.remote)),
        }
    }

    fn no_such_branch(&self, branch: &str) -> GitError {
        GitError::NoSuchBranch {
            url: self.remote.display_url(),
            branch: branch.to_string(),
        }
    }

    /// One connection, the remote tips of `branches` (in order).
    fn ls_remote(&self, branches: &[&str]) -> Result<Vec<Option<Oid>>, GitError> {
        let what = branches.join(", ");
        let state = AuthState::default();
        let mut remote = self
            .repo
            .remote_anonymous(&self.remote.url)
            .map_err(|e| self.remote_err("list", &what, &e, &state))?;
        let conn = remote
            .connect_auth(Direction::Fetch, Some(self.callbacks(&state)), None)
            .map_err(|e| self.remote_err("list", &what, &e, &state))?;
        let heads = conn
            .list()
            .map_err(|e| self.remote_err("list", &what, &e, &state))?;
        Ok(branches
            .iter()
            .map(|b| {
                let name = format!("refs/heads/{b}");
                heads.iter().find(|h| h.name() == name).map(|h| h.oid())
            })
            .collect())
    }

    fn fetch(&self, branches: &[&str]) -> Result<(), GitError> {
        let what = branches.join(", ");
        let state = AuthState::default();
        let refspecs: Vec<String> = branches
            .iter()
            .map(|b| format!("+refs/heads/{b}:{TRACKING_NS}/{b}"))
            .collect();
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(self.callbacks(&state))
            .download_tags(git2::AutotagOption::None);
        if self.shallow {
            opts.depth(1);
        }
        let mut remote = self
            .repo
            .remote_anonymous(&self.remote.url)
            .map_err(|e| self.remote_err("fetch", &what, &e, &state))?;
        remote
            .fetch(&refspecs, Some(&mut opts), None)
            .map_err(|e| self.remote_err("fetch", &what, &e, &state))
    }

    fn tracking(&self, branch: &str) -> Result<Oid, GitError> {
        let name = format!("{TRACKING_NS}/{branch}");
        match self.repo.refname_to_id(&name) {
            Ok(oid) => Ok(oid),
            Err(e) if e.code() == ErrorCode::NotFound => Err(self.no_such_branch(branch)),
            Err(e) => Err(self.local_err("read ref", name, &e)),
        }
    }

    /// Push `PUBLISH_REF` to `refs/heads/<branch>`. With `lease`, only if the remote ref is still
    /// at that oid (absent when `None`); the server checks the old oid again when it updates.
    fn push(&self, branch: &str, force: bool, lease: Option<Oid>) -> Result<PushOutcome, GitError> {
        let dst = format!("refs/heads/{branch}");
        let refspec = format!("{}{PUBLISH_REF}:{dst}", if force { "+" } else { "" });
        let state = AuthState::default();
        let rejected: RefCell<Option<String>> = RefCell::new(None);
        let lease_broken: RefCell<Option<String>> = RefCell::new(None);
        let mut cb = self.callbacks(&state);
        cb.push_update_reference(|name, status| {
            if let Some(status) = status {
                *rejected.borrow_mut() = Some(format!("{name}: {status}"));
            }
            Ok(())
        });
        cb.push_negotiation(|updates| {
            let expected = lease.unwrap_or(Oid::ZERO_SHA1);
            for u in updates {
                if u.dst_refname().ok() == Some(dst.as_str()) && u.src() != expected {
                    *lease_broken.borrow_mut() = Some(format!(
                        "{dst} is at {} on the remote, expected {expected}",
                        u.src()
                    ));
                    return Err(git2::Error::from_str("lease broken"));
                }
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        let mut remote = self
            .repo
            .remote_anonymous(&self.remote.url)
            .map_err(|e| self.remote_err("push", branch, &e, &state))?;
        let result = remote.push(&[refspec.as_str()], Some(&mut opts));
        drop(opts);
        if let Some(reason) = lease_broken.into_inner() {
            return Ok(PushOutcome::Rejected(reason));
        }
        match result {
            Err(e) if e.code() == ErrorCode::NotFastForward => Ok(PushOutcome::Rejected(scrub(
                e.message(),
                Some(&self.remote),
            ))),
            Err(e) => Err(self.remote_err("push", branch, &e, &state)),
            Ok(()) => match rejected.into_inner() {
                Some(reason) => Ok(PushOutcome::Rejected(scrub(&reason, Some(&self.remote)))),
                None => Ok(PushOutcome::Pushed),
            },
        }
    }

    // --- local operations ----------------------------------------------------------------

    /// Force the working tree and index to `oid`, dropping local changes and untracked files
    /// (ignored files stay), and detach HEAD there.
    fn checkout_clean(&self, oid: Oid) -> Result<(), GitError> {
        let what = oid.to_string();
        let commit = self
            .repo
            .find_commit(oid)
            .map_err(|e| self.local_err("checkout", what.clone(), &e))?;
        let mut co = CheckoutBuilder::new();
        co.force().remove_untracked(true);
        self.repo
            .checkout_tree(commit.as_object(), Some(&mut co))
            .and_then(|()| self.repo.set_head_detached(oid))
            .map_err(|e| self.local_err("checkout", what, &e))
    }

    fn commit_tree(&self, oid: Oid) -> Result<Oid, GitError> {
        self.repo
            .find_commit(oid)
            .map(|c| c.tree_id())
            .map_err(|e| self.local_err("read commit", oid.to_string(), &e))
    }

    /// The base tree with the edited paths replaced by their bytes on disk (no filters: the
    /// edit is byte-exact and so is the commit).
    fn build_tree(&self, base_tree: Oid, changed: &[PathBuf]) -> Result<Oid, GitError> {
        let tree = self
            .repo
            .find_tree(base_tree)
            .map_err(|e| self.local_err("read tree", base_tree.to_string(), &e))?;
        let mut update = TreeUpdateBuilder::new();
        for path in changed {
            let rel = self.repo_relative(path)?;
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let full = self.dir.join(&rel);
            let io_err = |source| GitError::Io {
                dir: self.dir.clone(),
                path: rel.clone(),
                source,
            };
            match std::fs::symlink_metadata(&full) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = std::fs::read_link(&full).map_err(io_err)?;
                    let blob = self
                        .repo
                        .blob(target.as_os_str().as_encoded_bytes())
                        .map_err(|e| self.local_err("write blob", name.clone(), &e))?;
                    update.upsert(name.as_str(), blob, FileMode::Link);
                }
                Ok(meta) if meta.is_file() => {
                    let data = std::fs::read(&full).map_err(io_err)?;
                    let blob = self
                        .repo
                        .blob(&data)
                        .map_err(|e| self.local_err("write blob", name.clone(), &e))?;
                    update.upsert(name.as_str(), blob, file_mode(&meta));
                }
                Ok(_) => return Err(GitError::EditPath { path: path.clone() }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if tree.get_path(&rel).is_ok() {
                        update.remove(name.as_str());
                    }
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        update
            .create_updated(&self.repo, &tree)
            .map_err(|e| self.local_err("write tree", base_tree.to_string(), &e))
    }

    fn repo_relative(&self, path: &Path) -> Result<PathBuf, GitError> {
        let bad = || GitError::EditPath {
            path: path.to_path_buf(),
        };
        let rel = if path.is_absolute() {
            path.strip_prefix(&self.dir).map_err(|_| bad())?
        } else {
            path
        };
        let mut out = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(part) => out.push(part),
                Component::CurDir => {}
                _ => return Err(bad()),
            }
        }
        if out.as_os_str().is_empty() || out.starts_with(".git") {
            return Err(bad());
        }
        Ok(out)
    }

    fn commit(&self, parent: Oid, tree: Oid, req: &ChangeRequest) -> Result<Oid, GitError> {
        let what = format!("on {parent}");
        let err = |e: git2::Error| self.local_err("commit", what.clone(), &e);
        let sig = Signature::now(&req.author.name, &req.author.email).map_err(err)?;
        let parent = self.repo.find_commit(parent).map_err(err)?;
        let tree = self.repo.find_tree(tree).map_err(err)?;
        let oid = self
            .repo
            .commit(None, &sig, &sig, &req.message, &tree, &[&parent])
            .map_err(err)?;
        self.repo
            .reference(PUBLISH_REF, oid, true, "gitops-canary publish")
            .map_err(err)?;
        Ok(oid)
    }
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> FileMode {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        FileMode::BlobExecutable
    } else {
        FileMode::Blob
    }
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> FileMode {
    FileMode::Blob
}

fn validate_branch(name: &str) -> Result<(), GitError> {
    if git2::Reference::is_valid_name(&format!("refs/heads/{name}")) {
        Ok(())
    } else {
        Err(GitError::InvalidBranch {
            name: name.to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers

/// The trailers of a commit message: the last paragraph, when the message has more than one and
/// every line of it is `Key: value` (key `[A-Za-z0-9-]+`) or an indented continuation of the
/// previous value. Stricter than git's 25% rule, which is what a tool reading its own trailers
/// wants: a prose paragraph with a colon in it is never taken for trailers.
pub fn parse_trailers(message: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = message
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.starts_with('#'))
        .collect();
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let lines = &lines[..end];
    let Some(blank) = lines.iter().rposition(|l| l.trim().is_empty()) else {
        return Vec::new();
    };
    if !lines[..blank].iter().any(|l| !l.trim().is_empty()) {
        return Vec::new();
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for line in &lines[blank + 1..] {
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, value)) => {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(line.trim());
                    continue;
                }
                None => return Vec::new(),
            }
        }
        let Some((key, value)) = line.split_once(':') else {
            return Vec::new();
        };
        let key_ok = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !key.starts_with('-');
        if !key_ok || !(value.is_empty() || value.starts_with([' ', '\t'])) {
            return Vec::new();
        }
        out.push((key.to_string(), value.trim().to_string()));
    }
    out
}

/// `scheme://user:pass@host/path` -> `scheme://host/path`; other forms unchanged.
pub fn strip_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Remove URL userinfo and the remote's secrets from a libgit2 message.
fn scrub(text: &str, remote: Option<&Remote>) -> String {
    let mut out = text.to_string();
    if let Some(r) = remote {
        out = out.replace(&r.url, &r.display_url());
        out = crate::secret::redact(&out, &r.secrets());
    }
    // Any other URL with userinfo in the text (libgit2 may print redirect targets).
    let mut cleaned = String::with_capacity(out.len());
    for (i, word) in out.split(' ').enumerate() {
        if i > 0 {
            cleaned.push(' ');
        }
        cleaned.push_str(&strip_userinfo(word));
    }
    cleaned
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_from_last_paragraph() {
        let msg = "canary: web to 25%\n\nBody text: with a colon\nin prose.\n\n\
                   Gitops-Canary-Rollout: shop/web\nGitops-Canary-Stage: 2\nGitops-Canary-Weight: 25\n";
        assert_eq!(
            parse_trailers(msg),
            vec![
                ("Gitops-Canary-Rollout".into(), "shop/web".into()),
                ("Gitops-Canary-Stage".into(), "2".into()),
                ("Gitops-Canary-Weight".into(), "25".into()),
            ]
        );
    }

    #[test]
    fn trailers_continuation_crlf_and_trailing_blank_lines() {
        let msg = "subject\r\n\r\nKey: first\r\n  second\r\nOther:\r\n\r\n\r\n";
        assert_eq!(
            parse_trailers(msg),
            vec![
                ("Key".into(), "first second".into()),
                ("Other".into(), "".into())
            ]
        );
    }

    #[test]
    fn no_trailers_in_subject_only_or_prose() {
        assert!(parse_trailers("Stage: 2").is_empty());
        assert!(parse_trailers("").is_empty());
        assert!(parse_trailers("\n\nKey: v").is_empty());
        assert!(parse_trailers("subject\n\nKey: v\nplain prose line").is_empty());
        assert!(parse_trailers("subject\n\nhttp://x: y").is_empty());
        assert!(parse_trailers("subject\n\nKey:novalue-space").is_empty());
    }

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("https://oauth2:glpat-xyz@gitlab.com/a/b.git"),
            "https://gitlab.com/a/b.git"
        );
        assert_eq!(
            strip_userinfo("https://gitlab.com/a@b.git"),
            "https://gitlab.com/a@b.git"
        );
        assert_eq!(strip_userinfo("git@github.com:a/b"), "git@github.com:a/b");
        assert_eq!(strip_userinfo("/srv/repo.git"), "/srv/repo.git");
    }

    #[test]
    fn credentials_in_url_move_into_auth() {
        let r =
            Remote::new("https://bob:s3cr%40t-token@example.com/r.git", Auth::None).normalized();
        assert_eq!(r.url, "https://example.com/r.git");
        match &r.auth {
            Auth::Token { user, token } => {
                assert_eq!(user, "bob");
                assert_eq!(token.expose(), "s3cr@t-token");
            }
            other => panic!("unexpected {other:?}"),
        }
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("s3cr"), "{dbg}");
        let r = Remote::new("https://ghp_tokenonly@example.com/r.git", Auth::None).normalized();
        assert!(matches!(&r.auth, Auth::Token { user, .. } if user == "x-access-token"));
        assert!(!format!("{r:?}").contains("ghp_tokenonly"));
    }

    #[test]
    fn local_remotes_are_detected() {
        assert!(Remote::new("/srv/a.git", Auth::None).is_local());
        assert!(Remote::new("rel/a.git", Auth::None).is_local());
        assert!(Remote::new("file:///srv/a.git", Auth::None).is_local());
        assert!(!Remote::new("git@github.com:a/b.git", Auth::None).is_local());
        assert!(!Remote::new("https://h/a.git", Auth::None).is_local());
        assert!(!Remote::new("ssh://git@h/a.git", Auth::None).is_local());
    }

    #[test]
    fn scrub_removes_tokens_and_userinfo() {
        let r = Remote::new(
            "https://h/r.git",
            Auth::github(Token::new("ghp_0123456789abcdef")),
        );
        let s = scrub(
            "failed at https://u:pw@h/r.git with ghp_0123456789abcdef",
            Some(&r),
        );
        assert_eq!(s, "failed at https://h/r.git with ***");
    }

    #[test]
    fn workspace_can_move_to_a_blocking_thread() {
        // cmd/ runs publish in spawn_blocking; the workspace must be Send.
        fn send<T: Send>() {}
        send::<Workspace>();
        send::<GitError>();
        fn sync<T: Sync>() {}
        sync::<GitError>();
    }

    #[test]
    fn bot_identity() {
        let a = Author::github_actions_bot();
        assert_eq!(a.name, "github-actions[bot]");
        assert_eq!(
            a.email,
            "41898282+github-actions[bot]@users.noreply.github.com"
        );
    }

    #[test]
    fn gitlab_job_token_is_for_git_as_gitlab_ci_token() {
        let job = Some("job-token-value".to_string());
        match token_auth(None, true, job.clone()) {
            Auth::Token { user, token } => {
                assert_eq!(user, "gitlab-ci-token");
                assert_eq!(token.expose(), "job-token-value");
            }
            other => panic!("{other:?}"),
        }
        // A token of its own wins, as oauth2; GitHub never uses a GitLab job token.
        let own = Token::new("glpat-own");
        assert!(
            matches!(token_auth(Some(&own), true, job.clone()), Auth::Token { user, .. } if user == "oauth2")
        );
        assert!(matches!(token_auth(None, false, job), Auth::None));
    }

    #[test]
    fn annotation_paths_are_relative_to_the_repository_root() {
        let tmp = tempfile::tempdir().unwrap();
        // The repository checked out at `gitops/` (actions/checkout `path: gitops`).
        let checkout = tmp.path().join("gitops");
        Repository::init(&checkout).unwrap();
        assert_eq!(
            path_in_repository(&checkout, Path::new("apps/a.yaml")),
            PathBuf::from("apps/a.yaml")
        );
        // A folder `deploy/` inside a repository (a monorepo).
        let mono = tmp.path().join("mono");
        Repository::init(&mono).unwrap();
        std::fs::create_dir_all(mono.join("deploy")).unwrap();
        assert_eq!(
            path_in_repository(&mono.join("deploy"), Path::new("apps/a.yaml")),
            PathBuf::from("deploy/apps/a.yaml")
        );
        // Outside any repository: as given.
        let plain = tmp.path().join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        assert_eq!(
            path_in_repository(&plain, Path::new("a.yaml")),
            plain.join("a.yaml")
        );
    }
}
