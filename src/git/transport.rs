//! The network side of the workspace: credentials for libgit2, ls-remote, fetch and push,
//! with every error scrubbed of secrets and classified (auth, host key, transient).

use super::*;

impl Workspace {
    // --- remote operations ---------------------------------------------------------------

    pub(super) fn callbacks<'a>(&'a self, state: &'a AuthState) -> RemoteCallbacks<'a> {
        let mut cb = RemoteCallbacks::new();
        cb.credentials(move |_url, url_user, allowed| self.credential(state, url_user, allowed));
        cb
    }

    pub(super) fn credential(
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

    pub(super) fn remote_err(
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

    pub(super) fn local_err(&self, op: &'static str, what: String, e: &git2::Error) -> GitError {
        GitError::Local {
            op,
            what,
            dir: self.dir.clone(),
            source: Cause::git(e, Some(&self.remote)),
        }
    }

    pub(super) fn no_such_branch(&self, branch: &str) -> GitError {
        GitError::NoSuchBranch {
            url: self.remote.display_url(),
            branch: branch.to_string(),
        }
    }

    /// One connection, the remote tips of `branches` (in order).
    pub(super) fn ls_remote(&self, branches: &[&str]) -> Result<Vec<Option<Oid>>, GitError> {
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

    pub(super) fn fetch(&self, branches: &[&str]) -> Result<(), GitError> {
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

    pub(super) fn tracking(&self, branch: &str) -> Result<Oid, GitError> {
        let name = format!("{TRACKING_NS}/{branch}");
        match self.repo.refname_to_id(&name) {
            Ok(oid) => Ok(oid),
            Err(e) if e.code() == ErrorCode::NotFound => Err(self.no_such_branch(branch)),
            Err(e) => Err(self.local_err("read ref", name, &e)),
        }
    }

    /// Push `PUBLISH_REF` to `refs/heads/<branch>`. With `lease`, only if the remote ref is still
    /// at that oid (absent when `None`); the server checks the old oid again when it updates.
    pub(super) fn push(
        &self,
        branch: &str,
        force: bool,
        lease: Option<Oid>,
    ) -> Result<PushOutcome, GitError> {
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
}
