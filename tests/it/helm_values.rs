//! Canary weights that are Helm chart values (`--weight-from FILE:PATH`, config `weightFrom`).
//!
//! - Fixture (`tests/cases/helm/`): a chart whose canary Ingress reads `.Values.canary.weight`
//!   into `nginx.ingress.kubernetes.io/canary-weight` (and fails to render when the value is a
//!   string), driven through its values file, a Flux HelmRelease, and Argo CD Applications
//!   (`valuesObject`, multi-source `parameters`). The oracle renders the chart with Helm's Go
//!   SDK (PyPI helm-python-sdk, `tests/cases/helm/render.py`) before and after each edit: only
//!   the weight annotation may change. The tests fail (never skip) without the SDK;
//!   `.ci/install-helm.sh` installs it.
//! - The real Applications and HelmReleases of `../shared/corpus/helm/apps/`, in one
//!   data-driven loop: a value path in each, the edit byte-minimal (only the value's bytes
//!   change) and typed as before (a number stays a number, a string a string), or refused
//!   with its reason and nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use assert_cmd::Command;
use serde_json::{json, Value};

const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/helm")
}

fn oracle_present() {
    let ok = Process::new("python3")
        .args(["-c", "import helm_python; helm_python.helm_sdk_version()"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests render charts with Helm's Go SDK through the PyPI package helm-python-sdk: \
         run `bash .ci/install-helm.sh` (pip install 'helm-python-sdk>=0.2.2,<0.3')"
    );
}

/// Render a chart: `{template: manifest}`, or the SDK's error.
fn render(req: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut child = Process::new("python3")
        .arg(cases().join("render.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), req.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).expect("parse")
}

/// What the chart is rendered with, as Flux and Argo CD would pass it: a HelmRelease's
/// `spec.values`; an Application's (helm) source's `valuesObject` and `parameters` (as --set,
/// --set-string with forceString); for a values file, the chart's own values.
fn oracle_request(chart: &Path, text: &str) -> Value {
    let mut req = json!({"chart": chart, "name": "shop", "namespace": "shop"});
    for d in docs(text) {
        match d["kind"].as_str() {
            Some("HelmRelease") => req["values"] = d["spec"]["values"].clone(),
            Some("Application") => {
                let source = match d["spec"]["sources"].as_array() {
                    Some(s) => s.iter().find(|s| s.get("helm").is_some()).unwrap().clone(),
                    None => d["spec"]["source"].clone(),
                };
                let helm = &source["helm"];
                req["values"] = helm["valuesObject"].clone();
                let (mut set, mut set_string) = (Vec::new(), Vec::new());
                for p in helm["parameters"].as_array().into_iter().flatten() {
                    let expr = format!(
                        "{}={}",
                        p["name"].as_str().unwrap(),
                        p["value"].as_str().unwrap()
                    );
                    if p["forceString"] == json!(true) {
                        set_string.push(expr);
                    } else {
                        set.push(expr);
                    }
                }
                req["set"] = json!(set);
                req["setString"] = json!(set_string);
            }
            _ => {}
        }
    }
    req
}

/// The repository: the fixture chart under `charts/shop`, the fixture apps under `apps/`.
fn fixture_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&cases().join("chart"), &dir.path().join("charts/shop"));
    copy_dir(&cases().join("apps"), &dir.path().join("apps"));
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

// `--repo` belongs to the subcommand.
fn set_weight(repo: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "set-weight".to_string(),
        "--repo".into(),
        repo.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::cargo_bin("gitops-canary")
        .unwrap()
        .args(&args)
        .env_remove("GITOPS_CANARY_WEIGHT_FROM")
        .env_remove("GITOPS_CANARY_CONFIG")
        .output()
        .unwrap()
}

/// Old and new differ in exactly one place: `(old bytes, new bytes)` of that place, widened to
/// whole tokens (a value is never split).
fn one_change(old: &str, new: &str) -> (String, String) {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let mut p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let mut s = a[p..]
        .iter()
        .rev()
        .zip(b[p..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let token = |c: u8| c.is_ascii_alphanumeric() || c == b'"' || c == b'\'' || c == b'.';
    while p > 0 && token(a[p - 1]) {
        p -= 1;
    }
    while s > 0 && token(a[a.len() - s]) {
        s -= 1;
    }
    (
        old[p..old.len() - s].to_string(),
        new[p..new.len() - s].to_string(),
    )
}

/// Every leaf where two JSON documents differ, with its path.
fn leaf_diffs(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => leaf_diffs(&format!("{path}.{k}"), v, w, out),
                    None => out.push((path.into(), a.clone(), b.clone())),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                leaf_diffs(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a != b => out.push((path.into(), a.clone(), b.clone())),
        _ => {}
    }
}

/// The renderings differ in exactly one line: the weight annotation, `from` -> `to`.
fn only_the_weight_changed(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    from: u32,
    to: u32,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let mut changed = Vec::new();
    for (t, b) in before {
        let a = &after[t];
        let (bl, al): (Vec<&str>, Vec<&str>) = (b.lines().collect(), a.lines().collect());
        assert_eq!(bl.len(), al.len(), "{t}: line count changed");
        for (x, y) in bl.iter().zip(&al) {
            if x != y {
                changed.push((x.to_string(), y.to_string()));
            }
        }
    }
    assert_eq!(
        changed,
        vec![(
            format!("    {WEIGHT}: \"{from}\""),
            format!("    {WEIGHT}: \"{to}\"")
        )],
        "the rendering must change in the weight annotation only"
    );
}

/// One fixture form: set the weight through `file:path`, render before and after.
fn fixture_case(file: &str, path: &str, old_token: &str, new_token: &str) {
    oracle_present();
    let repo = fixture_repo();
    let chart = repo.path().join("charts/shop");
    let target = repo.path().join(file);
    let old = std::fs::read_to_string(&target).unwrap();
    let before = render(&oracle_request(&chart, &old)).expect("renders before");
    let arg = format!("{file}:{path}");
    let out = set_weight(repo.path(), &["--weight-from", &arg, "--weight", "30"]);
    assert!(
        out.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = std::fs::read_to_string(&target).unwrap();
    assert_eq!(
        one_change(&old, &new),
        (old_token.to_string(), new_token.to_string()),
        "{file}: byte-minimal edit"
    );
    let after = render(&oracle_request(&chart, &new)).expect("renders after");
    only_the_weight_changed(&before, &after, 10, 30);
    // Again: nothing to do.
    let again = set_weight(repo.path(), &["--weight-from", &arg, "--weight", "30"]);
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), new);
}

#[test]
fn values_file_renders_the_new_weight_only() {
    fixture_case("charts/shop/values.yaml", "canary.weight", "10", "30");
}

#[test]
fn helm_release_renders_the_new_weight_only() {
    fixture_case("apps/shop-helmrelease.yaml", "canary.weight", "10", "30");
}

#[test]
fn application_values_object_renders_the_new_weight_only() {
    fixture_case(
        "apps/shop-application-valuesobject.yaml",
        "canary.weight",
        "10",
        "30",
    );
}

#[test]
fn application_parameter_renders_the_new_weight_only() {
    fixture_case(
        "apps/shop-application-parameters.yaml",
        "canary.weight",
        "\"10\"",
        "\"30\"",
    );
}

#[test]
fn the_oracle_sees_a_weight_turned_string() {
    // The check above would catch an edit that quoted the number: the chart refuses it.
    oracle_present();
    let chart = cases().join("chart");
    let err = render(&json!({"chart": chart, "values": {"canary": {"weight": "30"}}}))
        .expect_err("a string weight must not render");
    assert!(err.contains("must be a number"), "{err}");
}

#[test]
fn values_string_block_is_refused_and_nothing_written() {
    let repo = fixture_repo();
    let file = "apps/shop-application-values-string.yaml";
    let old = std::fs::read(repo.path().join(file)).unwrap();
    let out = set_weight(
        repo.path(),
        &[
            "--weight-from",
            &format!("{file}:canary.weight"),
            "--weight",
            "30",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(file)
            && err.contains("spec.source.helm.values")
            && err.contains("valuesObject"),
        "{err}"
    );
    assert_eq!(std::fs::read(repo.path().join(file)).unwrap(), old);
}

#[test]
fn missing_path_names_file_document_and_path() {
    let repo = fixture_repo();
    let file = "apps/shop-helmrelease.yaml";
    let old = std::fs::read(repo.path().join(file)).unwrap();
    let out = set_weight(
        repo.path(),
        &[
            "--weight-from",
            &format!("{file}:canary.percent"),
            "--weight",
            "30",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{file} (document 2): spec.values.canary.percent: no such value"
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(repo.path().join(file)).unwrap(), old);
}

#[test]
fn config_weight_from_drives_set_weight_and_plan() {
    let repo = fixture_repo();
    std::fs::write(
        repo.path().join(".gitops-canary.yaml"),
        "weightFrom:\n  file: apps/shop-helmrelease.yaml\n  path: canary.weight\n",
    )
    .unwrap();
    let out = Command::cargo_bin("gitops-canary")
        .unwrap()
        .args(["plan", "--output", "json", "--repo"])
        .arg(repo.path())
        .env_remove("GITOPS_CANARY_WEIGHT_FROM")
        .env_remove("GITOPS_CANARY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hv = &doc["helmValues"][0];
    assert_eq!(hv["located"]["weight"], json!(10), "{doc:#}");
    assert_eq!(hv["located"]["form"], json!("helm-release"));
    assert_eq!(hv["located"]["document"], json!(2));
    let hint = &doc["helmHints"][0];
    assert_eq!(hint["file"], json!("charts/shop/templates/ingress.yaml"));
    assert_eq!(hint["path"], json!("canary.weight"));
    assert_eq!(hint["valuesFile"], json!("charts/shop/values.yaml"));

    let out = set_weight(repo.path(), &["--weight", "25"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(repo.path().join("apps/shop-helmrelease.yaml")).unwrap();
    assert!(
        text.contains("      weight: 25   # moved by gitops-canary\n"),
        "{text}"
    );

    // The human plan shows the value and the template hint; a broken weightFrom fails it.
    let out = Command::cargo_bin("gitops-canary")
        .unwrap()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .args(["--weight-from", "apps/shop-helmrelease.yaml:canary.weight"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 Helm value canary (weightFrom)"), "{text}");
    assert!(text.contains("weight 25/100"), "{text}");
    assert!(
        text.contains("hint charts/shop/templates/ingress.yaml:")
            && text.contains(".Values.canary.weight"),
        "{text}"
    );
    let out = Command::cargo_bin("gitops-canary")
        .unwrap()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .args(["--weight-from", "apps/shop-helmrelease.yaml:canary.nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no such value"));
}

/// What the corpus loop expects for one file.
enum Expect {
    /// Edited; the value was a number (written plain) or a string (written quoted).
    Number,
    Text,
    /// Refused with this in the message.
    Refused(&'static str),
}

#[test]
fn corpus_applications_and_helm_releases() {
    use Expect::*;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/helm/apps");
    // One value path per file (a number where the file has one), and a missing one.
    let table: &[(&str, &str, Expect)] = &[
        (
            "01-",
            "ingress.enabled",
            Refused("Argo CD ignores spec.source when spec.sources is set"),
        ),
        ("02-", "controller.podSecurityContext.runAsUser", Number),
        ("03-", "profile", Refused("ambiguous: 4 helm sources")),
        ("03-", "configMap", Refused("a boolean or null")),
        ("04-", "kyverno\\.fullname", Text),
        ("05-", "hub.baseUrl", Refused("YAML string (values: |)")),
        ("06-", "podSecurityStandard", Text),
        ("07-", "tags.complete", Text),
        ("08-", "args[0]", Refused("YAML string (values: |)")),
        ("09-", "redis.tag", Text),
        ("10-", "redis.tag", Text),
        ("11-", "httpRoute.hostnames[0]", Text),
        ("12-", "prometheus.prometheusSpec.retention", Text),
        (
            "12-",
            "canary.weight",
            Refused("spec.values.canary.weight: no such value (it may come from spec.valuesFrom"),
        ),
        ("13-", "singleBinary.replicas", Number),
        ("13-", "read.replicas", Number),
        ("14-", "resources.requests.memory", Text),
        ("15-", "replicaCount", Number),
        (
            "15-",
            "canary.weight",
            Refused("(document 1): spec.values.canary.weight: no such value; nothing was written"),
        ),
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 15, "the corpus has 15 apps");
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let rows: Vec<&(&str, &str, Expect)> = table
            .iter()
            .filter(|(p, _, _)| name.starts_with(p))
            .collect();
        assert!(!rows.is_empty(), "no case for {name}");
        for (_, path, expect) in rows {
            if let Err(e) = corpus_case(f, &name, path, expect) {
                failures.push(format!("{name}:{path}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn corpus_case(src: &Path, name: &str, path: &str, expect: &Expect) -> Result<(), String> {
    let repo = tempfile::tempdir().unwrap();
    let old = std::fs::read_to_string(src).unwrap();
    std::fs::write(repo.path().join(name), &old).unwrap();
    let out = set_weight(
        repo.path(),
        &["--weight-from", &format!("{name}:{path}"), "--weight", "25"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let new = std::fs::read_to_string(repo.path().join(name)).unwrap();
    if let Expect::Refused(why) = expect {
        if out.status.code() != Some(2) {
            return Err(format!(
                "want refused (exit 2), got {:?}: {stderr}",
                out.status.code()
            ));
        }
        if !stderr.contains(why) || !stderr.contains(name) {
            return Err(format!("message lacks {why:?} or the file: {stderr}"));
        }
        if new != old {
            return Err("a refused edit wrote the file".into());
        }
        return Ok(());
    }
    if !out.status.success() {
        return Err(format!("failed: {stderr}"));
    }
    // Byte-minimal: one token changed, the old value (with its quotes) for the new one.
    let (was, now) = one_change(&old, &new);
    let want_now = match expect {
        Expect::Number => "25".to_string(),
        _ if was.starts_with('\'') => "'25'".to_string(),
        _ => "\"25\"".to_string(),
    };
    if now != want_now
        || new.len() as isize - old.len() as isize != now.len() as isize - was.len() as isize
    {
        return Err(format!("changed {was:?} -> {now:?}, want -> {want_now:?}"));
    }
    if new.lines().count() != old.lines().count() {
        return Err("line count changed".into());
    }
    // Semantically: one leaf differs, and it keeps its type.
    let (a, b) = (docs(&old), docs(&new));
    let mut diffs = Vec::new();
    leaf_diffs("", &Value::Array(a), &Value::Array(b), &mut diffs);
    let want = match expect {
        Expect::Number => json!(25),
        _ => json!("25"),
    };
    match diffs.as_slice() {
        [(_, before, after)] if *after == want => {
            let same_type = match expect {
                Expect::Number => before.is_number(),
                _ => before.is_string(),
            };
            if same_type {
                Ok(())
            } else {
                Err(format!("type changed: {before} -> {after}"))
            }
        }
        other => Err(format!("semantic changes: {other:?}")),
    }
}
