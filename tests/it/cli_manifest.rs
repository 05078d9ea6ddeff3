//! The manifest commands through the binary, on the bundled example repository: what people
//! read is snapshotted (insta), exit codes and the no-write guarantee are asserted.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops-repo")
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn bin() -> Command {
    let mut c = Command::cargo_bin("gitops-canary").unwrap();
    for (k, _) in std::env::vars() {
        if k.starts_with("GITOPS_CANARY_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn plan_human_and_json() {
    let out = bin()
        .args(["plan", "--repo"])
        .arg(example())
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!("plan_human", String::from_utf8_lossy(&out.stdout));
    let out = bin()
        .args(["plan", "--output", "json", "--repo", "examples/gitops-repo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("plan_json", v);
}

#[test]
fn plan_exits_1_on_router_errors_and_warns_on_skipped_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: lonely\n  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\nspec:\n  rules:\n  - host: x\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {service: {name: s, port: {number: 80}}}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("t.yaml"),
        "kind: Ingress\nmetadata: {{ .Values.meta }}\n  x: [\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join(".gitignore"), "ignored/\n").unwrap();
    std::fs::create_dir(tmp.path().join("ignored")).unwrap();
    std::fs::write(tmp.path().join("ignored/i.yaml"), "kind: Ingress\n: : :\n").unwrap();
    let out = bin()
        .args(["plan", "--repo"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("[no-stable]"), "{stdout}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("warning: skipped t.yaml"))
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        !stderr.contains("i.yaml"),
        "gitignored file was read: {stderr}"
    );
}

#[test]
fn init_canary_in_a_second_namespace_passes_plan() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&example(), tmp.path());
    // Remove the shop canary so we can derive it again, this time in its own namespace.
    std::fs::remove_file(tmp.path().join("apps/shop/canary.yaml")).unwrap();
    let out = bin()
        .args([
            "init-canary",
            "--ingress",
            "shop/web",
            "--service",
            "web",
            "--namespace",
            "shop-canary",
            "--weight",
            "5",
            "--repo",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = tmp.path().join("apps/shop/web-canary.shop-canary.yaml");
    let text = std::fs::read_to_string(&written).unwrap();
    insta::assert_snapshot!("init_canary_second_namespace", text);
    let plan = bin()
        .args(["plan", "--output", "json", "--repo"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(plan.status.success());
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let pair = v["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["canary"]["namespace"] == "shop-canary")
        .expect("new pair");
    assert_eq!(pair["weight"], 5);
    assert_eq!(pair["stable"][0]["name"], "web");
    assert!(pair["problems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["severity"] != "error"));
    // Running it again refuses to overwrite.
    let again = bin()
        .args([
            "init-canary",
            "--ingress",
            "shop/web",
            "--service",
            "web",
            "--namespace",
            "shop-canary",
            "--repo",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn init_canary_refuses_a_canary_that_plan_would_reject() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&example(), tmp.path());
    // shop/web already has a canary on its host and path: a second one is a duplicate.
    let out = bin()
        .args([
            "init-canary",
            "--ingress",
            "shop/web",
            "--service",
            "web-v2",
            "--repo",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("duplicate-canary"), "{stderr}");
    assert!(!tmp.path().join("apps/shop/web-canary.yaml").exists());
}
