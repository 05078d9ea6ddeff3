//! HTTPRoute cases as data: each folder under `tests/cases/httproute/` holds a `repo/` tree,
//! the `args` of one run (the subcommand first; `--repo` is added after it), and one of:
//! - `expected/`: the files that must change, byte for byte (every other file stays as it
//!   was); the run is made twice, first with `--dry-run` (nothing written, the diff printed);
//! - `error`: exit code, then lines stderr must contain (one `error:` line; no file changes);
//! - `stdout`: exit code, then lines stdout must contain (`plan`; no file changes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !root.is_dir() {
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn write_tree(root: &Path, tree: &BTreeMap<PathBuf, Vec<u8>>) {
    for (p, bytes) in tree {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn run(repo: &Path, args: &str, dry_run: bool) -> std::process::Output {
    let mut words = args.split_whitespace();
    let mut cmd = Command::cargo_bin("gitops-canary").unwrap();
    cmd.arg(words.next().expect("a subcommand"))
        .arg("--repo")
        .arg(repo);
    cmd.args(words);
    if dry_run {
        cmd.arg("--dry-run");
    }
    for var in [
        "GITOPS_CANARY_DRY_RUN",
        "GITOPS_CANARY_INGRESS",
        "GITOPS_CANARY_ROUTE",
        "GITOPS_CANARY_CANARY_SERVICE",
        "GITOPS_CANARY_OUTPUT",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

fn expect_lines(spec: &str) -> (i32, Vec<&str>) {
    let mut lines = spec.lines();
    let code = lines.next().unwrap().parse().unwrap();
    (code, lines.filter(|l| !l.is_empty()).collect())
}

#[test]
fn httproute_cases() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/httproute");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    assert!(names.len() >= 35, "only {} cases", names.len());
    let mut failures = Vec::new();
    for case in &names {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let input = read_tree(&case.join("repo"));
        let args = std::fs::read_to_string(case.join("args")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        write_tree(tmp.path(), &input);
        for (file, stream) in [("error", "stderr"), ("stdout", "stdout")] {
            let Ok(spec) = std::fs::read_to_string(case.join(file)) else {
                continue;
            };
            let (code, wants) = expect_lines(&spec);
            let out = run(tmp.path(), &args, false);
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            let text = if stream == "stderr" {
                stderr.clone()
            } else {
                String::from_utf8_lossy(&out.stdout).to_string()
            };
            if out.status.code() != Some(code) {
                failures.push(format!(
                    "{name}: exit {:?}, want {code}: {stderr}",
                    out.status.code()
                ));
            }
            for want in wants {
                if !text.contains(want) {
                    failures.push(format!("{name}: {stream} lacks {want:?}:\n{text}"));
                }
            }
            if file == "error" && stderr.lines().filter(|l| l.starts_with("error:")).count() != 1 {
                failures.push(format!("{name}: want exactly one error line: {stderr}"));
            }
            if read_tree(tmp.path()) != input {
                failures.push(format!("{name}: files changed"));
            }
        }
        if !case.join("expected").is_dir() {
            continue;
        }
        let mut expected = input.clone();
        expected.extend(read_tree(&case.join("expected")));
        let changes = expected != input;

        let dry = run(tmp.path(), &args, true);
        if !dry.status.success() {
            failures.push(format!(
                "{name}: dry run failed: {}",
                String::from_utf8_lossy(&dry.stderr)
            ));
            continue;
        }
        if read_tree(tmp.path()) != input {
            failures.push(format!("{name}: --dry-run wrote files"));
        }
        let diff = String::from_utf8_lossy(&dry.stdout);
        if changes != diff.contains("@@") {
            failures.push(format!("{name}: dry-run diff {diff:?}"));
        }
        let out = run(tmp.path(), &args, false);
        if !out.status.success() {
            failures.push(format!(
                "{name}: failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let got = read_tree(tmp.path());
        if got.len() != expected.len() {
            failures.push(format!("{name}: files added or removed"));
        }
        for (p, want) in &expected {
            let have = got.get(p).cloned().unwrap_or_default();
            if &have != want {
                failures.push(format!(
                    "{name}: {} differs:\n--- want\n{}\n--- got\n{}",
                    p.display(),
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(&have)
                ));
            }
        }
        // Run again: the weights are where they should be, nothing changes.
        let again = run(tmp.path(), &args, false);
        if args.starts_with("set-weight")
            && (!again.status.success() || read_tree(tmp.path()) != expected)
        {
            failures.push(format!("{name}: a second run is not a no-op"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
