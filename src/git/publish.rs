//! Publishing: apply an edit on the remote base, build the commit from the edited files and
//! push it (reusing a branch whose tree already matches, a lease on a stale one, a bounded
//! retry after a push race), and the local tree operations it needs.

use super::*;

impl Workspace {
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

    pub(super) fn publish_once(
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

    pub(super) fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Run a read-only remote operation again after network faults and 5xx answers.
    pub(super) fn retrying<T>(
        &self,
        mut op: impl FnMut() -> Result<T, GitError>,
    ) -> Result<T, GitError> {
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

    // --- local operations ----------------------------------------------------------------

    /// Force the working tree and index to `oid`, dropping local changes and untracked files
    /// (ignored files stay), and detach HEAD there.
    pub(super) fn checkout_clean(&self, oid: Oid) -> Result<(), GitError> {
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

    pub(super) fn commit_tree(&self, oid: Oid) -> Result<Oid, GitError> {
        self.repo
            .find_commit(oid)
            .map(|c| c.tree_id())
            .map_err(|e| self.local_err("read commit", oid.to_string(), &e))
    }

    /// The base tree with the edited paths replaced by their bytes on disk (no filters: the
    /// edit is byte-exact and so is the commit).
    pub(super) fn build_tree(&self, base_tree: Oid, changed: &[PathBuf]) -> Result<Oid, GitError> {
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

    pub(super) fn repo_relative(&self, path: &Path) -> Result<PathBuf, GitError> {
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

    pub(super) fn commit(
        &self,
        parent: Oid,
        tree: Oid,
        req: &ChangeRequest,
    ) -> Result<Oid, GitError> {
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
pub(super) fn file_mode(meta: &std::fs::Metadata) -> FileMode {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        FileMode::BlobExecutable
    } else {
        FileMode::Blob
    }
}

#[cfg(not(unix))]
pub(super) fn file_mode(_meta: &std::fs::Metadata) -> FileMode {
    FileMode::Blob
}

pub(super) fn validate_branch(name: &str) -> Result<(), GitError> {
    if git2::Reference::is_valid_name(&format!("refs/heads/{name}")) {
        Ok(())
    } else {
        Err(GitError::InvalidBranch {
            name: name.to_string(),
        })
    }
}
