//! Workspace against real git: shallow clone over smart HTTP with a token, wrong credentials,
//! an existing (shallow) checkout, a bare repository by path, ls-remote and file reads.

use crate::support::git_server;

use std::path::Path;

use git_server::*;
use gitops_canary::exit::Classify;
use gitops_canary::git::{Auth, GitError, Remote, Retry, Workspace};
use gitops_canary::secret::Token;
use std::time::Duration;

const USER: &str = "x-access-token";
const TOKEN: &str = "ghs_test0123456789SECRETtoken";

fn remote(server: &GitServer, name: &str) -> Remote {
    Remote::new(server.url(name), Auth::github(Token::new(TOKEN)))
}

#[test]
fn shallow_clone_over_http_with_token() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let second = commit_to_bare(&bare, "main", "README.md", "# two\n", "second");

    let ws = Workspace::clone(remote(&server, "gitops"), "main", true).expect("clone");
    assert!(ws.is_shallow());
    let repo = git2::Repository::open(ws.dir()).unwrap();
    assert!(repo.is_shallow(), "depth 1 was asked for over HTTP");
    assert_eq!(repo.head().unwrap().target().unwrap().to_string(), second);
    assert_eq!(
        std::fs::read_to_string(ws.dir().join(CANARY_PATH)).unwrap(),
        CANARY_10
    );
    assert_eq!(
        std::fs::read_to_string(ws.dir().join("README.md")).unwrap(),
        "# two\n"
    );
    // Only one commit came over: the shallow graft hides its parent, which is not in the clone.
    let head = repo
        .find_commit(repo.head().unwrap().target().unwrap())
        .unwrap();
    assert_eq!(head.parent_count(), 0);
    let seed = git(&bare, &["rev-parse", "main^"]);
    assert!(repo
        .find_commit(git2::Oid::from_str(&seed).unwrap())
        .is_err());

    // Every request that reached the backend carried basic auth; the token is in no URL.
    let reqs = server.requests();
    assert!(reqs.iter().any(|r| r.status == 200));
    for r in &reqs {
        assert!(!r.target.contains(TOKEN));
        if r.status == 200 {
            assert!(r.authorization.is_some());
        }
    }
    assert!(!format!("{ws:?}").contains(TOKEN));
}

#[test]
fn wrong_token_is_a_clear_error_without_the_token() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    server.create_repo("gitops", fixture_dir().path());
    let wrong = "ghs_WRONGwrongWRONG0000";
    let r = Remote::new(server.url("gitops"), Auth::github(Token::new(wrong)));
    let err = Workspace::clone(r, "main", true).expect_err("wrong token must fail");
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(err.is_bad_input());
    let shown = format!("{:#}", anyhow::Error::new(err));
    let debug = format!("{shown:?}");
    assert!(shown.contains("authentication"), "{shown}");
    assert!(shown.contains(&server.url("gitops")), "{shown}");
    assert!(shown.contains("x-access-token"), "{shown}");
    for text in [&shown, &debug] {
        assert!(!text.contains(wrong), "token leaked: {text}");
    }
    // A bounded number of tries, not a loop on 401.
    let unauthorized = server.requests().iter().filter(|r| r.status == 401).count();
    assert!(unauthorized <= 3, "{unauthorized} attempts");

    // No credentials at all against a server that wants them.
    let err = Workspace::clone(Remote::new(server.url("gitops"), Auth::None), "main", true)
        .expect_err("anonymous must fail");
    assert!(matches!(err, GitError::Auth { user: None, .. }), "{err:?}");
}

#[test]
fn credentials_in_the_url_are_used_but_never_shown() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    server.create_repo("gitops", fixture_dir().path());
    let url = server
        .url("gitops")
        .replace("http://", &format!("http://{USER}:{TOKEN}@"));
    let ws = Workspace::clone(Remote::new(url, Auth::None), "main", true).expect("clone");
    assert!(!format!("{ws:?}").contains(TOKEN));
    assert!(!ws.remote().url.contains(TOKEN));
    let err = ws.fetch_base("nope").expect_err("missing branch");
    let shown = format!("{:#}", anyhow::Error::new(err));
    assert!(shown.contains("\"nope\" does not exist"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn open_existing_shallow_checkout_and_fetch_over_http() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    commit_to_bare(&bare, "main", "README.md", "# two\n", "second");
    // What actions/checkout leaves behind: a depth-1 clone.
    let ci = tempfile::tempdir().unwrap();
    let file_url = format!("file://{}", bare.display());
    git(
        ci.path(),
        &["clone", "-q", "--depth", "1", &file_url, "checkout"],
    );
    let dir = ci.path().join("checkout");

    let ws = Workspace::open(&dir, remote(&server, "gitops")).expect("open");
    // The tool works in a private place of its own, never in the user's checkout.
    assert_ne!(
        ws.dir().canonicalize().unwrap(),
        dir.canonicalize().unwrap()
    );
    assert!(!ws.dir().starts_with(&dir));
    assert!(ws.is_shallow());
    let third = commit_to_bare(&bare, "main", "README.md", "# three\n", "third");
    let tip = ws.fetch_base("main").expect("fetch");
    assert_eq!(tip.to_string(), third);
    assert_eq!(
        ws.read_file_at(tip, Path::new("README.md"))
            .unwrap()
            .as_deref(),
        Some(&b"# three\n"[..])
    );
    // The checkout's own origin refs are untouched.
    assert_ne!(git(&dir, &["rev-parse", "origin/main"]), third);
}

#[test]
fn open_rejects_non_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let err = Workspace::open(dir.path(), Remote::new("/nowhere", Auth::None)).unwrap_err();
    assert!(matches!(err, GitError::Open { .. }), "{err:?}");
    assert!(err.is_bad_input());
}

#[test]
fn bare_repo_by_path_ls_remote_and_reads() {
    if !git_available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("gitops.git");
    seed_bare_repo(&bare, fixture_dir().path());
    let main = rev(&bare, "refs/heads/main").unwrap();

    let r = Remote::new(bare.to_str().unwrap(), Auth::None);
    // Shallow is asked for but the local transport cannot: a full clone instead of an error.
    let ws = Workspace::clone(r, "main", true).expect("clone by path");
    assert!(!ws.is_shallow());
    assert_eq!(
        ws.remote_branch("main").unwrap().map(|o| o.to_string()),
        Some(main.clone())
    );
    assert_eq!(
        ws.remote_branch("gitops-canary/none/weight-5").unwrap(),
        None
    );
    let tip = ws.fetch_base("main").unwrap();
    assert_eq!(tip.to_string(), main);
    assert_eq!(
        ws.read_file_at(tip, Path::new(CANARY_PATH))
            .unwrap()
            .unwrap(),
        CANARY_10.as_bytes()
    );
    assert_eq!(
        ws.read_file_at(tip, Path::new("no/such.yaml")).unwrap(),
        None
    );
    assert_eq!(ws.read_file_at(tip, Path::new("apps")).unwrap(), None);

    let err = ws.fetch_base("release").unwrap_err();
    assert!(matches!(err, GitError::NoSuchBranch { ref branch, .. } if branch == "release"));
    assert!(err.is_bad_input());
    let err = Workspace::clone(
        Remote::new(bare.to_str().unwrap(), Auth::None),
        "nope",
        false,
    )
    .unwrap_err();
    assert!(matches!(err, GitError::NoSuchBranch { .. }), "{err:?}");

    // file:// URLs are local too.
    let url = format!("file://{}", bare.display());
    let ws = Workspace::clone(Remote::new(url, Auth::None), "main", true).expect("file://");
    assert_eq!(ws.fetch_base("main").unwrap().to_string(), main);
}

#[test]
fn server_errors_are_retried_client_errors_are_not() {
    if !git_available() {
        return;
    }
    let server = GitServer::start(USER, TOKEN);
    let bare = server.create_repo("gitops", fixture_dir().path());
    let main = rev(&bare, "refs/heads/main").unwrap();
    let ws = Workspace::clone(remote(&server, "gitops"), "main", true)
        .unwrap()
        .with_retry(Retry {
            attempts: 4,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        });
    server.fail_next(2, 503);
    assert_eq!(ws.fetch_base("main").expect("third try").to_string(), main);
    assert_eq!(
        server.requests().iter().filter(|r| r.status == 503).count(),
        2
    );

    server.fail_next(10, 502);
    let err = ws.remote_branch("main").expect_err("gives up");
    assert!(matches!(err, GitError::Remote { .. }), "{err:?}");
    assert!(!err.is_bad_input());
    assert_eq!(
        server.requests().iter().filter(|r| r.status == 502).count(),
        4
    );

    server.fail_next(0, 0);
    // A wrong repository path is a 404: reported at once, not retried.
    let before = server.requests().len();
    let err = Workspace::clone(remote(&server, "no-such-repo"), "main", true).unwrap_err();
    assert!(
        matches!(&err, GitError::Remote { source, .. } if source.message.contains("404")),
        "{err:?}"
    );
    let seen = server.requests().len() - before;
    assert!(seen <= 2, "{seen} requests for a 404: {err:?}");
}

/// A server that accepts and never answers: libgit2's server timeout ends each attempt, the
/// bounded retry gives up, and the error says which operation on which URL.
#[test]
fn a_git_server_that_never_answers_times_out() {
    // libgit2's timeouts are process-wide options, read once; 3 s is far above what the local
    // servers of the other tests in this binary need.
    std::env::set_var("GITOPS_CANARY_GIT_TIMEOUT_MS", "3000");
    std::env::set_var("GITOPS_CANARY_GIT_CONNECT_TIMEOUT_MS", "3000");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for sock in listener.incoming().flatten() {
            held.push(sock);
        }
    });
    let started = std::time::Instant::now();
    let err = Workspace::clone(
        Remote::new(format!("http://{addr}/gitops.git"), Auth::None),
        "main",
        true,
    )
    .map(|ws| {
        ws.with_retry(Retry {
            attempts: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        })
    })
    .expect_err("nothing answers");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let shown = format!("{:#}", anyhow::Error::new(err));
    assert!(shown.contains(&addr.to_string()), "{shown}");
}

/// CI sets `GITOPS_CANARY_REQUIRE_TOOLS`: then a test whose tool is missing fails instead of
/// skipping. Run one git test of this binary with git hidden and the switch on.
#[test]
fn a_missing_tool_fails_the_test_when_tools_are_required() {
    let exe = std::env::current_exe().unwrap();
    let run = |require: bool| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "--exact",
            "git_workspace::shallow_clone_over_http_with_token",
            "--nocapture",
        ])
        .env("GITOPS_CANARY_TEST_NO_GIT", "1")
        .env_remove("GITOPS_CANARY_REQUIRE_TOOLS");
        if require {
            cmd.env("GITOPS_CANARY_REQUIRE_TOOLS", "1");
        }
        cmd.output().unwrap()
    };
    let strict = run(true);
    let text = String::from_utf8_lossy(&strict.stdout).to_string()
        + &String::from_utf8_lossy(&strict.stderr);
    assert!(!strict.status.success(), "{text}");
    assert!(
        text.contains("GITOPS_CANARY_REQUIRE_TOOLS is set"),
        "{text}"
    );
    let lax = run(false);
    let text = String::from_utf8_lossy(&lax.stderr).to_string();
    assert!(lax.status.success() && text.contains("SKIP"), "{text}");
}
