//! The Git adapter: fetch the base branch into a private clone (never the user's checkout),
//! apply an edit there, commit and push it. Rooms: `remote` (remotes, credentials, scrubbing),
//! `transport` (ls-remote, fetch, push), `publish` (edit, commit, push with races and leases),
//! `trailers`, `error`.
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

mod error;
mod publish;
mod remote;
#[cfg(test)]
mod tests;
mod trailers;
mod transport;

pub use error::*;
pub use remote::*;
pub(crate) use trailers::*;

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

/// `file` (relative to `dir`) as a path from the root of the Git repository that holds `dir`,
/// which is how GitHub resolves an annotation's `file=`: `--repo gitops` may be a folder of
/// the repository (the prefix stays) or the repository checked out at `gitops/` (it goes).
/// Outside a repository, `dir/file`.
pub(crate) fn path_in_repository(dir: &Path, file: &Path) -> PathBuf {
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
pub(crate) fn origin_url(dir: &Path) -> Result<String, GitError> {
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
    pub(crate) fn sync_to_base(&self, base: &str) -> Result<Oid, GitError> {
        let tip = self.fetch_base(base)?;
        self.checkout_clean(tip)?;
        Ok(tip)
    }

    /// The newest commit reachable from `from` (at most `max` commits back, within the history
    /// this checkout has) whose trailers satisfy `pred`.
    pub(crate) fn find_commit_with_trailers(
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
    pub(crate) fn commit_time(&self, oid: Oid) -> Result<i64, GitError> {
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
}
