//! The user's checkout is never changed: every command runs on a dirty checkout (an untracked
//! file, a modified tracked file, a staged change, another branch checked out) and afterwards
//! every byte under the checkout, `.git` included (so the index, HEAD, refs and config), is what
//! it was. The rollout commands push to the bare origin from the tool's own private workspace.
//!
//! Needs the `git` binary to build the checkout; missing, the test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("the git binary is needed by this test");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Every file (path -> mode and bytes) and directory under `root`.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.insert(rel, (mode, Vec::new()));
                stack.push(entry.path());
            } else {
                out.insert(rel, (mode, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out
}

struct World {
    _tmp: tempfile::TempDir,
    origin: PathBuf,
    work: PathBuf,
}

/// The example repository in a bare origin and a dirty checkout of it.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops-repo"),
        &src,
    );
    std::fs::write(src.join("README.md"), "# gitops\n").unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "example"]);
    let origin = tmp.path().join("origin.git");
    git(
        tmp.path(),
        &["clone", "-q", "--bare", "src", origin.to_str().unwrap()],
    );
    let work = tmp.path().join("work");
    git(
        tmp.path(),
        &["clone", "-q", origin.to_str().unwrap(), "work"],
    );
    // The user's work in progress.
    git(&work, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(work.join("NOTES.md"), "untracked notes\n").unwrap();
    std::fs::write(work.join("README.md"), "# gitops, edited\n").unwrap();
    std::fs::write(work.join("staged.txt"), "staged\n").unwrap();
    git(&work, &["add", "staged.txt"]);
    World {
        _tmp: tmp,
        origin,
        work,
    }
}

fn tool(work: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("gitops-canary")
        .unwrap()
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_TERMINAL_PROMPT", "0")
        .arg(args[0])
        .arg("--repo")
        .arg(work)
        .args(&args[1..])
        .output()
        .unwrap()
}

const NONE: &[&str] = &["--forge", "none", "--cluster", "none"];

#[test]
fn no_command_changes_a_dirty_checkout() {
    let w = world();
    let before = snapshot(&w.work);
    let head = git(&w.work, &["rev-parse", "HEAD"]);
    let mut runs: Vec<Vec<&str>> = vec![
        vec!["plan"],
        vec![
            "set-weight",
            "--ingress",
            "shop/web-canary",
            "--weight",
            "25",
            "--dry-run",
        ],
    ];
    for cmd in ["status", "reconcile", "run"] {
        let mut v = vec![cmd];
        v.extend(NONE);
        v.push("--dry-run");
        runs.push(v);
    }
    let mut rb = vec!["rollback"];
    rb.extend(NONE);
    rb.push("--dry-run");
    runs.push(rb);
    // Then for real: each pushes to the origin; `run` goes to the end, then promote is valid.
    for cmd in ["reconcile", "status", "run"] {
        let mut v = vec![cmd];
        v.extend(NONE);
        runs.push(v);
    }
    for dry in [true, false] {
        let mut v = vec!["promote"];
        v.extend(NONE);
        if dry {
            v.push("--dry-run");
        }
        runs.push(v);
    }
    let mut rb = vec!["rollback", "--reason", "test"];
    rb.extend(NONE);
    runs.push(rb);
    runs.push(vec![
        "propose",
        "--ingress",
        "shop/web-canary",
        "--weight",
        "5",
        "--forge",
        "none",
        "--gate",
        "direct",
    ]);
    for args in &runs {
        let out = tool(&w.work, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // `plan` may exit 1 for error-level problems; a crash or usage error is a test bug.
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{args:?} exited {:?}: {stderr}",
            out.status.code()
        );
        let after = snapshot(&w.work);
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        assert!(
            changed.is_empty(),
            "{args:?} changed the user's checkout: {changed:?}\n{stderr}"
        );
    }
    assert_eq!(git(&w.work, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&w.work, &["branch", "--show-current"]), "feature");
    // The real runs did reach the origin: the rollout moved on there.
    let log = git(&w.origin, &["log", "--format=%s", "main"]);
    assert!(log.lines().count() > 1, "nothing was pushed: {log}");
}

/// Values from outside that try to become CI commands: a header value, a directory and file
/// name, a rollback reason and a token. Under GitHub Actions and GitLab CI, no line any command
/// prints may start a workflow command or a section that carries them.
#[test]
fn adversarial_text_never_becomes_a_ci_command() {
    const MARK: &str = "FORGED";
    const SECRET: &str = "ghp_adversarialSECRETvalue0000";
    let w = world();
    // A checkout whose manifests carry the attack, pushed to the origin as the base.
    let canary = w.work.join("apps/shop/canary.yaml");
    let text = std::fs::read_to_string(&canary).unwrap().replace(
        "    nginx.ingress.kubernetes.io/canary: \"true\"\n",
        "    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-by-header: X-Canary\n    nginx.ingress.kubernetes.io/canary-by-header-value: \"yes\\n::warning title=X::FORGED\\n\\e[0Ksection_start:1:FORGED\"\n",
    );
    std::fs::write(&canary, text).unwrap();
    let evil_dir = w.work.join("apps/evil\n::error::FORGED dir");
    std::fs::create_dir_all(&evil_dir).unwrap();
    std::fs::write(
        evil_dir.join("x\n::add-mask::FORGED.yaml"),
        "kind: Ingress\nmetadata: [unclosed\n  name: other\n",
    )
    .unwrap();
    git(&w.work, &["add", "-A"]);
    git(&w.work, &["commit", "-qm", "attack"]);
    git(&w.work, &["push", "-q", "origin", "HEAD:main"]);

    let reason =
        format!("broken\n::add-mask::main\n::warning::{MARK}\n\x1b[0Ksection_start:1:{MARK}");
    let mut runs: Vec<Vec<String>> = vec![vec!["plan".into()]];
    for cmd in ["status", "reconcile", "run"] {
        runs.push(
            [cmd, "--forge", "none", "--cluster", "none", "--dry-run"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
    }
    runs.push(
        [
            "rollback",
            "--forge",
            "none",
            "--cluster",
            "none",
            "--reason",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([reason.clone()])
        .collect(),
    );
    for ci in ["GITHUB_ACTIONS", "GITLAB_CI"] {
        for args in &runs {
            let files = tempfile::tempdir().unwrap();
            let out = Command::cargo_bin("gitops-canary")
                .unwrap()
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("GIT_TERMINAL_PROMPT", "0")
                .env(ci, "true")
                .env("GITHUB_OUTPUT", files.path().join("out"))
                .env("GITHUB_STEP_SUMMARY", files.path().join("summary"))
                .env("GITOPS_CANARY_DOTENV", files.path().join("dotenv"))
                .env("GITOPS_CANARY_TOKEN", SECRET)
                .arg(&args[0])
                .arg("--repo")
                .arg(&w.work)
                .args(&args[1..])
                .output()
                .unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !all.contains(SECRET)
                    || all
                        .lines()
                        .all(|l| !l.contains(SECRET) || l.starts_with("::add-mask::")),
                "{ci} {args:?}: the token was printed:\n{all}"
            );
            // The mask comes before any other line.
            if ci == "GITHUB_ACTIONS" {
                let first = String::from_utf8_lossy(&out.stdout);
                assert!(
                    first.starts_with(&format!("::add-mask::{SECRET}\n")),
                    "{args:?}: the mask is not the first line:\n{first}"
                );
            }
            for line in all.lines() {
                let forged_github = line.trim_start().starts_with("::") && line.contains(MARK);
                let forged_gitlab = line.contains('\x1b') && line.contains(MARK);
                assert!(
                    !forged_github && !forged_gitlab,
                    "{ci} {args:?} printed a forged command: {line:?}\n{all}"
                );
                assert!(
                    !line.starts_with("::add-mask::main"),
                    "{ci} {args:?}: forged mask {line:?}"
                );
            }
            assert!(
                all.contains(MARK) || args[0] != "plan",
                "{ci} {args:?}: the attack was not even shown:\n{all}"
            );
        }
    }
}

/// A checkout owned by another user: libgit2 refuses it, and the tool says so and how to fix
/// it (instead of "has no origin remote"), exit 2, with nothing written.
#[test]
fn a_checkout_owned_by_another_user_is_explained() {
    let w = world();
    let status = Command::new("chown")
        .args(["-R", "12345:12345"])
        .arg(&w.work)
        .status()
        .expect("chown is needed by this test");
    assert!(
        status.success(),
        "chown failed (the tests run as root in CI)"
    );
    let before = snapshot(&w.work);
    let out = tool(&w.work, &["status", "--forge", "none", "--cluster", "none"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("owned by another user"), "{stderr}");
    assert!(
        stderr.contains("help: ") && stderr.contains("safe.directory"),
        "{stderr}"
    );
    assert_eq!(snapshot(&w.work), before);
}
