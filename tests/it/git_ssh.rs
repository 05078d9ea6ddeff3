//! Git over SSH with a real OpenSSH server: key auth (plain and passphrase-protected), host key
//! checking against known_hosts, and the errors for an unknown host or a refused key.
//!
//! libgit2 reads `~/.ssh/known_hosts` from `HOME`, which is process-wide, and every test runs in
//! the one test binary: so the test runs itself again in a child process with its own `HOME`.

use crate::support::git_server;
use crate::support::ssh_server;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use git_server::*;
use gitops_canary::exit::Classify;
use gitops_canary::git::{Auth, Author, ChangeRequest, GitError, Remote, Target, Workspace};
use gitops_canary::secret::Token;
use ssh_server::*;

const PASSPHRASE: &str = "correct-horse-passphrase";

#[test]
fn ssh_key_auth_host_keys_and_publish() {
    if !git_available() {
        return;
    }
    if sshd_path().is_none() {
        skip("sshd not found (run .ci/install-git.sh)");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "git_ssh::ssh_in_a_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env("HOME", home.path())
        .env("GITOPS_CANARY_SSH_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the SSH test in its child process:\n{text}"
    );
}

#[test]
#[ignore = "run by ssh_key_auth_host_keys_and_publish in a child process with its own HOME"]
fn ssh_in_a_child_process() {
    assert!(
        std::env::var_os("GITOPS_CANARY_SSH_CHILD").is_some(),
        "run through ssh_key_auth_host_keys_and_publish"
    );
    let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap());
    let keys = tempfile::tempdir().unwrap();
    let plain = keys.path().join("id_plain");
    let locked = keys.path().join("id_locked");
    let stranger = keys.path().join("id_stranger");
    keygen(&plain, "");
    keygen(&locked, PASSPHRASE);
    keygen(&stranger, "");
    let Some(sshd) = SshServer::start(&[&plain, &locked]) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("gitops.git");
    seed_bare_repo(&bare, fixture_dir().path());
    let url = sshd.url(&bare);
    let key = |path: &std::path::Path, pass: Option<&str>| Auth::SshKey {
        private_key: path.to_path_buf(),
        passphrase: pass.map(Token::new),
    };

    // Unknown host: refused, not trusted on first use.
    let err = Workspace::clone(Remote::new(&url, key(&plain, None)), "main", true).unwrap_err();
    assert!(matches!(err, GitError::HostKey { .. }), "{err:?}");
    assert!(err.is_bad_input());

    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/known_hosts"), &sshd.known_hosts_line).unwrap();

    // Shallow clone and a publish over SSH with a plain key.
    let ws = Workspace::clone(Remote::new(&url, key(&plain, None)), "main", true).expect("clone");
    assert!(git2::Repository::open(ws.dir()).unwrap().is_shallow());
    let req = ChangeRequest {
        base: "main".into(),
        target: Target::Branch(gitops_canary::plan::branch(
            "shop-web-canary",
            gitops_canary::plan::ChangeKind::Stage {
                stage: 2,
                weight: 25,
            },
        )),
        message: "canary 25\n\nGitops-Canary-Weight: 25\n".into(),
        author: Author::new("Canary Bot", "bot@example.com"),
    };
    let p = ws
        .publish(&req, &mut weight_edit(25, Arc::new(AtomicU32::new(0))))
        .expect("publish over ssh");
    let tip = rev(&bare, &format!("refs/heads/{}", p.branch)).unwrap();
    assert_eq!(Some(tip.clone()), p.commit.map(|c| c.to_string()));
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", &tip]),
        "Canary Bot <bot@example.com>"
    );

    // The key's content, as actions/checkout's `ssh-key` input takes it (no trailing newline,
    // as a pasted secret often is).
    let content = std::fs::read_to_string(&plain).unwrap();
    let ws = Workspace::clone(
        Remote::new(&url, Auth::ssh_key(content.trim_end())),
        "main",
        true,
    )
    .expect("clone with the key's content");
    assert_eq!(ws.remote_branch(&p.branch).unwrap(), p.commit);
    assert!(!format!("{ws:?}").contains(content.lines().nth(1).unwrap()));

    // A passphrase-protected key.
    let ws = Workspace::clone(
        Remote::new(&url, key(&locked, Some(PASSPHRASE))),
        "main",
        true,
    )
    .expect("clone with passphrase");
    assert_eq!(ws.remote_branch(&p.branch).unwrap(), p.commit);

    // Wrong passphrase and a key the server does not know: auth errors without secrets.
    for auth in [
        key(&locked, Some("wrong-passphrase-x")),
        key(&stranger, None),
    ] {
        let err = Workspace::clone(Remote::new(&url, auth), "main", true).unwrap_err();
        let shown = format!("{:#} {err:?}", anyhow::Error::msg(err.to_string()));
        assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
        assert!(!shown.contains(PASSPHRASE) && !shown.contains("wrong-passphrase-x"));
    }
}
