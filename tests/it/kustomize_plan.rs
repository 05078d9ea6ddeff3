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

/// An HTTPRoute in a layout: listed per root with its rendered namespace and name, and each
/// weight with the file and line that decide it (an overlay's inline JSON 6902 patch, a
/// strategic-merge patch replacing the rules, or the base).
#[test]
fn http_routes_per_root_with_the_deciding_lines() {
    let (code, out, err) = plan(&case("route-json6902-inline"), true);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let roots = doc["kustomizeRoots"].as_array().unwrap();
    let root = |dir: &str| roots.iter().find(|r| r["dir"] == dir).unwrap();
    let prod = &root("overlays/prod")["routes"][0];
    assert_eq!(prod["namespace"], "shop-prod");
    assert_eq!(prod["name"], "web");
    assert_eq!(prod["file"], "base/route.yaml");
    assert_eq!(prod["canaryService"], "web-canary");
    assert_eq!(prod["weight"], 40.0);
    let weight = |r: &serde_json::Value, i: usize| {
        let w = &r["weights"][i];
        (
            w["name"].as_str().unwrap().to_string(),
            w["weightRaw"].as_str().unwrap().to_string(),
            w["decidedBy"]["file"].as_str().unwrap().to_string(),
            w["decidedBy"]["line"].as_u64().unwrap(),
            w["decidedBy"]["kind"].as_str().unwrap().to_string(),
        )
    };
    let k = "overlays/prod/kustomization.yaml";
    assert_eq!(
        weight(prod, 0),
        ("web".into(), "60".into(), k.into(), 16, "json6902".into())
    );
    assert_eq!(
        weight(prod, 1),
        (
            "web-canary".into(),
            "40".into(),
            k.into(),
            13,
            "json6902".into()
        )
    );
    let staging = &root("overlays/staging")["routes"][0];
    assert_eq!(staging["namespace"], "shop-staging");
    let base = "base/route.yaml";
    assert_eq!(
        weight(staging, 0),
        (
            "web".into(),
            "90".into(),
            base.into(),
            19,
            "resource".into()
        )
    );
    assert_eq!(
        weight(staging, 1),
        (
            "web-canary".into(),
            "10".into(),
            base.into(),
            22,
            "resource".into()
        )
    );

    let (code, out, err) = plan(&case("route-strategic-merge"), true);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prod = doc["kustomizeRoots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dir"] == "overlays/prod")
        .unwrap();
    let w = &prod["routes"][0]["weights"][1];
    assert_eq!(w["decidedBy"]["file"], "overlays/prod/rules.yaml");
    assert_eq!(w["decidedBy"]["line"], 18);
    assert_eq!(w["decidedBy"]["kind"], "patch");

    let (code, out, err) = plan(&case("route-name-prefix"), true);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<(String, String)> = doc["kustomizeRoots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["routes"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["namespace"].as_str().unwrap_or("-").to_string(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("-".into(), "prod-web".into()),
            ("shop-staging".into(), "web".into())
        ]
    );
}

#[test]
fn http_routes_per_root_on_the_terminal() {
    let (code, out, err) = plan(&case("route-json6902-inline"), false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 HTTPRoutes (gateway-api) rendered by the roots\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "HTTPRoute shop-prod/web  canary 40%  root overlays/prod\n  canary  web-canary  stable web\n  rule 0 web  weight 60  overlays/prod/kustomization.yaml:16 (json6902 patch)\n  rule 0 web-canary  weight 40  overlays/prod/kustomization.yaml:13 (json6902 patch)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("HTTPRoute shop-staging/web  canary 10%  root overlays/staging\n"),
        "{out}"
    );
    // The base's route is shown through the roots that render it, not as a flat manifest.
    assert!(
        !out.contains("with a canary or a split (gateway-api)"),
        "{out}"
    );
}
