//! Edit cases as data: each folder under `tests/cases/edit/` holds a `repo/` tree, the
//! `args` of one `set-weight` run, and either `expected/` (the files that must change, byte
//! for byte; every other file must stay as it was) or `error` (exit code, then lines the
//! error message must contain; no file may change). One loop runs them all, twice where it
//! succeeds: first with `--dry-run` (nothing written, the diff printed), then for real.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
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
    let mut cmd = Command::cargo_bin("gitops-canary").unwrap();
    cmd.arg("set-weight").arg("--repo").arg(repo);
    cmd.args(args.split_whitespace());
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.env_remove("GITOPS_CANARY_DRY_RUN");
    cmd.output().unwrap()
}

#[test]
fn edit_cases() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/edit");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    assert!(names.len() >= 25, "only {} cases", names.len());
    let mut failures = Vec::new();
    for case in &names {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let input = read_tree(&case.join("repo"));
        let args = std::fs::read_to_string(case.join("args")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        write_tree(tmp.path(), &input);
        if case.join("error").exists() {
            let spec = std::fs::read_to_string(case.join("error")).unwrap();
            let mut lines = spec.lines();
            let code: i32 = lines.next().unwrap().parse().unwrap();
            let out = run(tmp.path(), &args, false);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(code) {
                failures.push(format!(
                    "{name}: exit {:?}, want {code}: {stderr}",
                    out.status.code()
                ));
            }
            for want in lines.filter(|l| !l.is_empty()) {
                if !stderr.contains(want) {
                    failures.push(format!("{name}: stderr lacks {want:?}: {stderr}"));
                }
            }
            if stderr.lines().filter(|l| l.starts_with("error:")).count() != 1 {
                failures.push(format!("{name}: want exactly one error line: {stderr}"));
            }
            if read_tree(tmp.path()) != input {
                failures.push(format!("{name}: files changed on error"));
            }
            continue;
        }
        let expected_changes = read_tree(&case.join("expected"));
        let mut expected = input.clone();
        expected.extend(expected_changes);
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
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
