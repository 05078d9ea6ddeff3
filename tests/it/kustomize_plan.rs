//! `plan` on Kustomize layouts: each canary per root with the file and line deciding its
//! weight, an overlay's weight patch no longer reported as a stray annotation, and a root that
//! cannot be resolved reported with its file and why.

use std::path::Path;

use assert_cmd::Command;

fn case(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases/kustomize")
        .join(name)
        .join("repo")
}

fn plan(repo: &Path, json: bool) -> (i32, String, String) {
    let mut cmd = Command::cargo_bin("gitops-canary").unwrap();
    cmd.arg("plan").arg("--repo").arg(repo);
    if json {
        cmd.args(["--output", "json"]);
    }
    cmd.env_remove("GITOPS_CANARY_OUTPUT");
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn canaries_per_root_with_the_deciding_line() {
    let (code, out, err) = plan(&case("patch-exists"), false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("2 canaries (ingress-nginx): 2 rendered by 2 of 2 kustomize roots\n"),
        "{out}"
    );
    for env in ["prod", "staging"] {
        assert!(
            out.contains(&format!(
                "shop-{env}/shop-canary  weight 5/100  root overlays/{env}\n  weight  overlays/{env}/canary-weight.yaml:6 (patch)\n  canary  base/canary.yaml:1 (document 1)  service shop-canary\n  stable  shop-{env}/shop base/ingress.yaml:1"
            )),
            "{out}"
        );
    }
    assert!(!out.contains("canary-annotation-without-canary"), "{out}");

    let (_, out, _) = plan(&case("inline-json6902"), false);
    assert!(
        out.contains("  weight  overlays/prod/kustomization.yaml:10 (json6902 patch)"),
        "{out}"
    );
    assert!(
        out.contains("shop-staging/shop-canary  weight 5/100  root overlays/staging"),
        "{out}"
    );
}

#[test]
fn json_lists_roots_and_origins() {
    let (code, out, err) = plan(&case("component-sets-weight"), true);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let roots = doc["kustomizeRoots"].as_array().unwrap();
    let prod = roots.iter().find(|r| r["dir"] == "overlays/prod").unwrap();
    let c = &prod["canaries"][0];
    assert_eq!(c["namespace"], "shop-prod");
    assert_eq!(c["weightRaw"], "7");
    assert_eq!(
        c["decidedBy"]["file"],
        "components/canary-weight/weight.yaml"
    );
    assert_eq!(c["decidedBy"]["line"], 6);
    assert_eq!(c["decidedBy"]["kind"], "patch");
    let staging = roots
        .iter()
        .find(|r| r["dir"] == "overlays/staging")
        .unwrap();
    assert_eq!(
        staging["canaries"][0]["decidedBy"]["file"],
        "base/canary.yaml"
    );
    assert_eq!(doc["pairs"].as_array().unwrap().len(), 0);
}

#[test]
fn unresolved_roots_are_named_with_why() {
    let (code, out, err) = plan(&case("error-remote-base"), false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning overlays/prod/kustomization.yaml:1 [kustomize-unresolved] root overlays/prod is not shown: line 3: resources: https://github.com/example/shop//deploy?ref=v1.0.0 is a remote base"),
        "{out}"
    );
}
