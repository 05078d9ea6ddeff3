//! `Workspace::publish` against real git: a branch over smart HTTP with a token, author and
//! trailers as git itself reads them, idempotent re-runs, stale branches, Direct mode, push
//! races injected on the server between the ref advertisement and the push, and bare repos by path.

use crate::support::git_server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use git_server::*;
use gitops_canary::exit::Classify;
use gitops_canary::git::{Auth, Author, ChangeRequest, GitError, Remote, Retry, Target, Workspace};
use gitops_canary::secret::Token;

const USER: &str = "oauth2";
const TOKEN: &str = "glpat-test0123456789SECRET";

const MESSAGE: &str = "canary: shop/web-canary to 25%\n\nStage 2 of 4.\n\n\
Gitops-Canary-Rollout: shop/web-canary\nGitops-Canary-Stage: 2\nGitops-Canary-Weight: 25\n";

fn fast_retry() -> Retry {
    Retry {
        attempts: 5,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn workspace(server: &GitServer) -> Workspace {
    let r = Remote::new(server.url("gitops"), Auth::gitlab(Token::new(TOKEN)));
    Workspace::clone(r, "main", true)
        .expect("clone")
        .with_retry(fast_retry())
}

fn request(target: Target) -> ChangeRequest {
    ChangeRequest {
        base: "main".to_string(),
        target,
        message: MESSAGE.to_string(),
        author: Author::github_actions_bot(),
    }
}

fn branch() -> String {
    gitops_canary::plan::branch(
        "shop-web-canary",
        gitops_canary::plan::ChangeKind::Stage {
            stage: 2,
            weight: 25,
        },
    )
}

fn counter() -> Arc<AtomicU32> {
    Arc::new(AtomicU32::new(0))
}

#[test]
fn publish_branch_over_http_with_author_and_trailers() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let main = rev(&bare, "refs/heads/main").unwrap();
    let ws = workspace(&server);
    let calls = counter();

    let p = ws
        .publish(
            &request(Target::Branch(branch())),
            &mut weight_edit(25, calls.clone()),
        )
        .expect("publish");
    assert_eq!(p.branch, "gitops-canary/shop-web-canary/stage-2-weight-25");
    assert_eq!(p.base.to_string(), main);
    assert!(!p.reused);
    assert_eq!(p.attempts, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let commit = p.commit.expect("a commit").to_string();

    // What the server has, read with the git CLI.
    let tip = rev(&bare, &format!("refs/heads/{}", p.branch)).expect("branch on server");
    assert_eq!(tip, commit);
    assert_eq!(git(&bare, &["rev-parse", &format!("{commit}^")]), main);
    assert_eq!(
        show(&bare, &format!("{commit}:{CANARY_PATH}")) + "\n",
        canary_with_weight(25)
    );
    assert_eq!(
        rev(&bare, "refs/heads/main").unwrap(),
        main,
        "base untouched"
    );
    assert_eq!(
        git(&bare, &["diff", "--name-only", &main, &commit]),
        CANARY_PATH
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an|%ae|%cn|%ce", &commit]),
        "github-actions[bot]|41898282+github-actions[bot]@users.noreply.github.com|\
github-actions[bot]|41898282+github-actions[bot]@users.noreply.github.com"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%B", &commit]),
        MESSAGE.trim_end()
    );
    assert_eq!(
        git(
            &bare,
            &[
                "log",
                "-1",
                "--format=%(trailers:key=Gitops-Canary-Weight,valueonly)",
                &commit
            ]
        ),
        "25"
    );
    // And read back through the adapter.
    let trailers = ws.commit_trailers(p.commit.unwrap()).unwrap();
    assert_eq!(
        trailers,
        vec![
            (
                "Gitops-Canary-Rollout".to_string(),
                "shop/web-canary".to_string()
            ),
            ("Gitops-Canary-Stage".to_string(), "2".to_string()),
            ("Gitops-Canary-Weight".to_string(), "25".to_string()),
        ]
    );
    assert_eq!(
        ws.remote_branch(&p.branch).unwrap(),
        p.commit,
        "ls-remote sees the pushed branch"
    );
    // The checkout is left at the published commit.
    assert_eq!(
        std::fs::read_to_string(ws.dir().join(CANARY_PATH)).unwrap(),
        canary_with_weight(25)
    );
    assert_eq!(server.push_count(), 1);
}

#[test]
fn republish_reuses_the_branch_without_a_new_commit() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    server.create_repo("gitops", fixture_dir().path());
    let req = request(Target::Branch(branch()));
    let first = workspace(&server)
        .publish(&req, &mut weight_edit(25, counter()))
        .expect("first");
    assert_eq!(server.push_count(), 1);

    // A re-run (a new process: a fresh clone) with the same request.
    let again = workspace(&server)
        .publish(&req, &mut weight_edit(25, counter()))
        .expect("again");
    assert!(again.reused);
    assert_eq!(again.commit, first.commit);
    assert_eq!(again.attempts, 1);
    assert_eq!(server.push_count(), 1, "no second push");
}

#[test]
fn an_edit_that_changes_nothing_commits_and_pushes_nothing() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let ws = workspace(&server);
    // The base already has weight 10.
    let p = ws
        .publish(
            &request(Target::Branch(branch())),
            &mut weight_edit(10, counter()),
        )
        .expect("publish");
    assert_eq!(p.commit, None);
    assert!(!p.reused);
    assert_eq!(server.push_count(), 0);
    assert_eq!(rev(&bare, &format!("refs/heads/{}", branch())), None);
    let p = ws
        .publish(&request(Target::Direct), &mut weight_edit(10, counter()))
        .expect("direct");
    assert_eq!(p.commit, None);
    assert_eq!(server.push_count(), 0);
}

#[test]
fn stale_branch_is_recreated_on_the_new_base() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let req = request(Target::Branch(branch()));
    let first = workspace(&server)
        .publish(&req, &mut weight_edit(25, counter()))
        .expect("first");
    // Base moves on (someone merged something else): the branch is now stale.
    let new_main = commit_to_bare(&bare, "main", "README.md", "# moved\n", "other change");

    let p = workspace(&server)
        .publish(&req, &mut weight_edit(25, counter()))
        .expect("recreate");
    assert!(!p.reused);
    assert_ne!(p.commit, first.commit);
    assert_eq!(p.base.to_string(), new_main);
    let tip = rev(&bare, &format!("refs/heads/{}", branch())).unwrap();
    assert_eq!(Some(tip.clone()), p.commit.map(|c| c.to_string()));
    assert_eq!(git(&bare, &["rev-parse", &format!("{tip}^")]), new_main);
    assert_eq!(show(&bare, &format!("{tip}:README.md")), "# moved");
    assert_eq!(server.push_count(), 2);

    // A branch with different content (a hand edit to 20) is replaced as well.
    let hand = commit_to_bare(
        &bare,
        &branch(),
        CANARY_PATH,
        &canary_with_weight(20),
        "hand edit",
    );
    let p = workspace(&server)
        .publish(&req, &mut weight_edit(25, counter()))
        .expect("replace hand edit");
    let tip = rev(&bare, &format!("refs/heads/{}", branch())).unwrap();
    assert_ne!(tip, hand);
    assert_eq!(Some(tip.clone()), p.commit.map(|c| c.to_string()));
    assert_eq!(
        show(&bare, &format!("{tip}:{CANARY_PATH}")) + "\n",
        canary_with_weight(25)
    );
}

#[test]
fn direct_mode_pushes_onto_base() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let main = rev(&bare, "refs/heads/main").unwrap();
    let p = workspace(&server)
        .publish(&request(Target::Direct), &mut weight_edit(50, counter()))
        .expect("direct");
    assert_eq!(p.branch, "main");
    let tip = rev(&bare, "refs/heads/main").unwrap();
    assert_eq!(Some(tip.clone()), p.commit.map(|c| c.to_string()));
    assert_eq!(git(&bare, &["rev-parse", &format!("{tip}^")]), main);
    assert_eq!(
        show(&bare, &format!("{tip}:{CANARY_PATH}")) + "\n",
        canary_with_weight(50)
    );
}

#[test]
fn push_race_on_direct_reapplies_on_the_new_base() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let other: Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let other2 = other.clone();
    // Lands after our fetch and ref advertisement, before our push is applied.
    server.before_next_push(move |repo| {
        let id = commit_to_bare(repo, "main", "README.md", "# raced\n", "concurrent change");
        *other2.lock().unwrap() = Some(id);
    });
    let calls = counter();
    let p = workspace(&server)
        .publish(
            &request(Target::Direct),
            &mut weight_edit(25, calls.clone()),
        )
        .expect("publish after race");
    let other = other.lock().unwrap().clone().expect("hook ran");
    assert_eq!(p.attempts, 2);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the edit ran again on the new base"
    );
    assert_eq!(p.base.to_string(), other);
    let tip = rev(&bare, "refs/heads/main").unwrap();
    assert_eq!(Some(tip.clone()), p.commit.map(|c| c.to_string()));
    assert_eq!(git(&bare, &["rev-parse", &format!("{tip}^")]), other);
    assert_eq!(show(&bare, &format!("{tip}:README.md")), "# raced");
    assert_eq!(
        show(&bare, &format!("{tip}:{CANARY_PATH}")) + "\n",
        canary_with_weight(25)
    );
}

#[test]
fn lease_protects_a_branch_created_concurrently() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let b = branch();
    let b2 = b.clone();
    // Another run creates the same branch (with other content) between our look and our push.
    server.before_next_push(move |repo| {
        let work = tempfile::tempdir().unwrap();
        let repo_s = repo.to_str().unwrap();
        git(work.path(), &["clone", "-q", repo_s, "c"]);
        let c = work.path().join("c");
        std::fs::write(c.join(CANARY_PATH), canary_with_weight(30)).unwrap();
        git(&c, &["commit", "-q", "-am", "other run"]);
        git(
            &c,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{b2}")],
        );
    });
    let p = workspace(&server)
        .publish(
            &request(Target::Branch(b.clone())),
            &mut weight_edit(25, counter()),
        )
        .expect("publish");
    assert_eq!(p.attempts, 2, "the first push lost the lease");
    let tip = rev(&bare, &format!("refs/heads/{b}")).unwrap();
    assert_eq!(Some(tip.clone()), p.commit.map(|c| c.to_string()));
    assert_eq!(
        show(&bare, &format!("{tip}:{CANARY_PATH}")) + "\n",
        canary_with_weight(25)
    );
    assert_eq!(server.push_count(), 2);
}

#[test]
fn lease_checked_against_the_advertisement_before_sending() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let req = request(Target::Branch(branch()));
    workspace(&server)
        .publish(&req, &mut weight_edit(25, counter()))
        .expect("first");
    let new_main = commit_to_bare(&bare, "main", "README.md", "# moved\n", "other change");
    // Another run rewrites the stale branch after our look but before our push connects: our
    // client sees it in the advertisement and must not overwrite it blindly.
    let b = branch();
    server.before_next_push_advertisement(move |repo| {
        commit_to_bare(repo, &b, "notes.txt", "theirs\n", "other run");
    });
    let p = workspace(&server)
        .publish(&req, &mut weight_edit(25, counter()))
        .expect("publish");
    assert_eq!(p.attempts, 2);
    assert_eq!(p.base.to_string(), new_main);
    // Only the winning push reached receive-pack: the first was stopped before sending.
    assert_eq!(server.push_count(), 2, "first publish + the retry");
    let tip = rev(&bare, &format!("refs/heads/{}", branch())).unwrap();
    assert_eq!(Some(tip.clone()), p.commit.map(|c| c.to_string()));
    assert_eq!(git(&bare, &["rev-parse", &format!("{tip}^")]), new_main);
}

#[test]
fn endless_races_give_push_rejected() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    server.create_repo("gitops", fixture_dir().path());
    let n = Arc::new(AtomicU32::new(0));
    let n2 = n.clone();
    server.before_every_push(move |repo| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        commit_to_bare(repo, "main", "README.md", &format!("# race {i}\n"), "race");
    });
    let ws = workspace(&server).with_retry(Retry {
        attempts: 3,
        ..fast_retry()
    });
    let err = ws
        .publish(&request(Target::Direct), &mut weight_edit(25, counter()))
        .expect_err("never wins");
    match &err {
        GitError::PushRejected {
            branch, attempts, ..
        } => {
            assert_eq!(branch, "main");
            assert_eq!(*attempts, 3);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_bad_input());
    assert_eq!(n.load(Ordering::SeqCst), 3);
    let shown = format!("{:#}", anyhow::Error::new(err));
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn publish_from_an_existing_shallow_checkout_leaves_it_alone() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let ci = tempfile::tempdir().unwrap();
    let file_url = format!("file://{}", bare.display());
    git(
        ci.path(),
        &["clone", "-q", "--depth", "1", &file_url, "checkout"],
    );
    let dir = ci.path().join("checkout");
    std::fs::write(dir.join("README.md"), "local junk\n").unwrap();
    std::fs::write(dir.join("untracked.txt"), "x\n").unwrap();
    // The base moves after the CI checkout was made.
    let new_main = commit_to_bare(&bare, "main", "docs/a.md", "a\n", "later");

    let r = Remote::new(server.url("gitops"), Auth::gitlab(Token::new(TOKEN)));
    let ws = Workspace::open(&dir, r).unwrap().with_retry(fast_retry());
    let p = ws
        .publish(
            &request(Target::Branch(branch())),
            &mut weight_edit(25, counter()),
        )
        .expect("publish from shallow checkout");
    assert_eq!(p.base.to_string(), new_main);
    let tip = rev(&bare, &format!("refs/heads/{}", branch())).unwrap();
    assert_eq!(git(&bare, &["rev-parse", &format!("{tip}^")]), new_main);
    assert_eq!(show(&bare, &format!("{tip}:README.md")), "# gitops fixture");
    // The user's checkout is as it was: local edits, untracked files, HEAD.
    assert_eq!(
        std::fs::read_to_string(dir.join("untracked.txt")).unwrap(),
        "x\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).unwrap(),
        "local junk\n"
    );
    assert_ne!(git(&dir, &["rev-parse", "HEAD"]), new_main);
}

#[test]
fn publish_to_a_bare_repo_by_path() {
    if !git_available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("gitops.git");
    seed_bare_repo(&bare, fixture_dir().path());
    let r = Remote::new(bare.to_str().unwrap(), Auth::None);
    let ws = Workspace::clone(r, "main", true)
        .unwrap()
        .with_retry(fast_retry());
    let req = request(Target::Branch(branch()));
    let p = ws.publish(&req, &mut weight_edit(25, counter())).unwrap();
    let tip = rev(&bare, &format!("refs/heads/{}", branch())).unwrap();
    assert_eq!(Some(tip), p.commit.map(|c| c.to_string()));
    let again = ws.publish(&req, &mut weight_edit(25, counter())).unwrap();
    assert!(again.reused);
    assert_eq!(again.commit, p.commit);
}

#[test]
fn edits_that_add_and_delete_files_are_committed() {
    if !git_available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("gitops.git");
    seed_bare_repo(&bare, fixture_dir().path());
    let ws = Workspace::clone(
        Remote::new(bare.to_str().unwrap(), Auth::None),
        "main",
        false,
    )
    .unwrap();
    let p = ws
        .publish(
            &request(Target::Branch("feature/x".into())),
            &mut |dir: &Path| {
                std::fs::remove_file(dir.join("README.md"))?;
                std::fs::create_dir_all(dir.join("new/dir"))?;
                std::fs::write(dir.join("new/dir/f.yaml"), "a: 1\r\n")?;
                Ok(vec![
                    PathBuf::from("README.md"),
                    dir.join("new/dir/f.yaml"), // absolute inside the checkout is accepted
                ])
            },
        )
        .unwrap();
    let tip = p.commit.unwrap().to_string();
    let files = git(&bare, &["ls-tree", "-r", "--name-only", &tip]);
    assert!(!files.contains("README.md"), "{files}");
    assert!(files.contains("new/dir/f.yaml"), "{files}");
    assert_eq!(
        ws.read_file_at(p.commit.unwrap(), Path::new("new/dir/f.yaml"))
            .unwrap()
            .unwrap(),
        b"a: 1\r\n",
        "bytes are committed as written"
    );
}

#[test]
fn edit_failures_and_bad_paths_are_reported() {
    if !git_available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("gitops.git");
    seed_bare_repo(&bare, fixture_dir().path());
    let ws = Workspace::clone(
        Remote::new(bare.to_str().unwrap(), Auth::None),
        "main",
        false,
    )
    .unwrap();
    let req = request(Target::Branch(branch()));

    let err = ws
        .publish(&req, &mut |_: &Path| {
            Err(anyhow::anyhow!("no such ingress shop/web"))
        })
        .unwrap_err();
    assert!(matches!(err, GitError::Edit { .. }), "{err:?}");
    assert!(format!("{:#}", anyhow::Error::new(err)).contains("no such ingress shop/web"));
    let err = ws
        .publish(&req, &mut |_: &Path| {
            Err(gitops_canary::fault::Usage("bad weight".into()).into())
        })
        .unwrap_err();
    assert!(
        err.is_bad_input(),
        "a usage error inside the edit stays bad input"
    );

    for bad in ["../outside.yaml", "/etc/passwd", ".git/config", "apps"] {
        let err = ws
            .publish(&req, &mut |_: &Path| Ok(vec![PathBuf::from(bad)]))
            .unwrap_err();
        assert!(matches!(err, GitError::EditPath { .. }), "{bad}: {err:?}");
    }
    let err = ws
        .publish(
            &request(Target::Branch("bad..name".into())),
            &mut weight_edit(25, counter()),
        )
        .unwrap_err();
    assert!(matches!(err, GitError::InvalidBranch { .. }));
    assert_eq!(rev(&bare, &format!("refs/heads/{}", branch())), None);
}
