//! Kustomize layouts, checked against `kubectl kustomize` (Kustomize v5) as the oracle.
//!
//! - Fixture cases (`tests/cases/kustomize/<case>/`): a `repo/` tree, the `args` of one
//!   `set-weight` run (`--ingress`, or `--route` for an HTTPRoute), and either `expected/`
//!   (the files that change or appear, byte for byte) or `error` (exit code, then lines stderr
//!   must contain; nothing may change).
//! - The real layouts of `../shared/corpus/kustomize/`, each given a canary the way a user
//!   would add one (a file in the kustomization most roots use, listed in its `resources:`),
//!   then the weight set in each root that renders it.
//!
//! After every successful edit every root is rendered by `kubectl kustomize` before and after:
//! the target root must differ in exactly the one canary's weight (an HTTPRoute: in its
//! backendRef weights alone, the canary getting the share asked for), every other root not at
//! all.
//! The tests need kubectl: they fail (never skip) without it; `.ci/install-kustomize.sh`
//! installs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;
use gitops_canary::router::kustomize::Layout;
use serde_json::Value;

const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

fn kubectl_present() {
    let ok = Process::new("kubectl")
        .args(["kustomize", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need `kubectl kustomize` (kubectl with Kustomize v5) as their oracle: \
         run `bash .ci/install-kustomize.sh` (installs Debian's kubernetes-client package), \
         or put a kubectl >= 1.27 on PATH"
    );
}

/// `kubectl kustomize DIR` as JSON values, or its error.
fn kustomize(dir: &Path) -> Result<Vec<Value>, String> {
    let out = Process::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_saphyr::from_multiple::<Value>(&text).map_err(|e| e.to_string())
}

fn renders(repo: &Path) -> BTreeMap<PathBuf, Result<Vec<Value>, String>> {
    let layout = Layout::discover(repo).expect("layout");
    // Two at a time: kubectl is most of these tests' time.
    let roots = &layout.roots;
    let half = roots.len().div_ceil(2);
    std::thread::scope(|s| {
        let parts: Vec<_> = roots
            .chunks(half.max(1))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|r| (r.clone(), kustomize(&repo.join(r))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn id(v: &Value) -> String {
    format!(
        "{}/{}/{}",
        v["kind"].as_str().unwrap_or(""),
        v["metadata"]["namespace"].as_str().unwrap_or(""),
        v["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// How the one object that changes may change: `Err` says how it changed beyond that.
type Change<'a> = &'a dyn Fn(&Value, &Value) -> Result<(), String>;

/// An Ingress's canary weight set to `weight`, nothing else.
fn ingress_weight(weight: &str) -> impl Fn(&Value, &Value) -> Result<(), String> + '_ {
    move |x, y| {
        let mut x2 = x.clone();
        x2["metadata"]["annotations"][WEIGHT] = Value::String(weight.to_string());
        if &x2 == y {
            Ok(())
        } else {
            Err(format!(
                "{} changed beyond its weight:\n{x:#}\n{y:#}",
                id(x)
            ))
        }
    }
}

/// An HTTPRoute whose backendRef weights alone change, and in every rule that sends to the
/// canary (`canary`, else the backendRef named `*-canary`) beside one other backendRef, the
/// canary gets `pct` percent (a missing weight is 1, as the Gateway API reads it).
fn route_share(pct: u64, canary: Option<String>) -> impl Fn(&Value, &Value) -> Result<(), String> {
    move |x, y| {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(rules) = v["spec"]["rules"].as_array_mut() {
                for r in rules {
                    if let Some(refs) = r["backendRefs"].as_array_mut() {
                        for b in refs.iter_mut().filter_map(Value::as_object_mut) {
                            b.remove("weight");
                        }
                    }
                }
            }
            v
        };
        if x["kind"] != "HTTPRoute" || strip(x) != strip(y) {
            return Err(format!(
                "{} changed beyond its weights:\n{x:#}\n{y:#}",
                id(x)
            ));
        }
        let is_canary = |b: &Value| {
            let name = b["name"].as_str().unwrap_or("");
            match &canary {
                Some(c) => name == c,
                None => name.ends_with("-canary"),
            }
        };
        let mut splits = 0;
        for r in y["spec"]["rules"].as_array().into_iter().flatten() {
            let refs = r["backendRefs"].as_array().cloned().unwrap_or_default();
            let weight = |b: &Value| b["weight"].as_u64().unwrap_or(1);
            let (c, s): (Vec<&Value>, Vec<&Value>) = refs.iter().partition(|b| is_canary(b));
            if let ([c], [s]) = (c.as_slice(), s.as_slice()) {
                splits += 1;
                let (wc, ws) = (weight(c), weight(s));
                if wc * 100 != pct * (wc + ws) {
                    return Err(format!(
                        "{}: canary {wc} of {}, want {pct}%",
                        id(y),
                        wc + ws
                    ));
                }
            }
        }
        if splits == 0 {
            return Err(format!("{}: no rule splits to the canary", id(y)));
        }
        Ok(())
    }
}

/// Which roots may render differently.
#[derive(Clone, Copy)]
enum Want<'a> {
    /// One root (this one, when given).
    Root(Option<&'a Path>),
    /// None: the edit is in a flat manifest no kustomization reads.
    Flat,
}

/// The oracle: exactly one root changed (as `want` says), in exactly one object, the way
/// `change` allows; or, for a flat manifest, no root at all.
fn check_renders(
    before: &BTreeMap<PathBuf, Result<Vec<Value>, String>>,
    after: &BTreeMap<PathBuf, Result<Vec<Value>, String>>,
    want: Want,
    change: Change,
) -> Result<(), String> {
    let mut changed = Vec::new();
    for (root, b) in before {
        let a = &after[root];
        let (b, a) = match (b, a) {
            (Ok(b), Ok(a)) => (b, a),
            (Err(_), Err(_)) => continue,
            (Ok(_), Err(e)) => return Err(format!("{}: no longer renders: {e}", root.display())),
            (Err(e), Ok(_)) => {
                return Err(format!("{}: renders now, did not: {e}", root.display()))
            }
        };
        if a == b {
            continue;
        }
        if a.len() != b.len() {
            return Err(format!("{}: object count changed", root.display()));
        }
        let diffs: Vec<(&Value, &Value)> = b.iter().zip(a).filter(|(x, y)| x != y).collect();
        if diffs.len() != 1 {
            return Err(format!(
                "{}: {} objects changed",
                root.display(),
                diffs.len()
            ));
        }
        let (x, y) = diffs[0];
        change(x, y).map_err(|e| format!("{}: {e}", root.display()))?;
        changed.push(root.clone());
    }
    match (changed.as_slice(), want) {
        ([one], Want::Root(Some(t))) if one == t => Ok(()),
        ([_], Want::Root(None)) | ([], Want::Flat) => Ok(()),
        ([], Want::Root(_)) => Err("no root renders the new weight".into()),
        (many, Want::Root(t)) => Err(format!("roots changed: {many:?}, want only {t:?}")),
        (many, Want::Flat) => Err(format!(
            "roots changed: {many:?}, want none (a flat manifest)"
        )),
    }
}

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

/// How a `set-weight` run ended.
struct Run {
    ok: bool,
    code: Option<i32>,
    stderr: String,
}

/// `set-weight ARGS` in `repo`, through the binary (`--ingress`, or `--route` for an HTTPRoute).
fn set_weight(repo: &Path, args: &[String], dry_run: bool) -> Run {
    let mut cmd = Command::cargo_bin("gitops-canary").unwrap();
    cmd.arg("set-weight").arg("--repo").arg(repo).args(args);
    if dry_run {
        cmd.arg("--dry-run");
    }
    for v in [
        "GITOPS_CANARY_DRY_RUN",
        "GITOPS_CANARY_OVERLAY",
        "GITOPS_CANARY_OUTPUT",
    ] {
        cmd.env_remove(v);
    }
    let out = cmd.output().unwrap();
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

#[test]
fn fixture_cases() {
    kubectl_present();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/kustomize");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    assert!(names.len() >= 15, "only {} cases", names.len());
    let mut failures = Vec::new();
    for case in &names {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let input = read_tree(&case.join("repo"));
        let args: Vec<String> = std::fs::read_to_string(case.join("args"))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        write_tree(tmp.path(), &input);
        if case.join("error").exists() {
            let spec = std::fs::read_to_string(case.join("error")).unwrap();
            let mut lines = spec.lines();
            let code: i32 = lines.next().unwrap().parse().unwrap();
            let out = set_weight(tmp.path(), &args, false);
            let stderr = &out.stderr;
            if out.code != Some(code) {
                failures.push(format!(
                    "{name}: exit {:?}, want {code}: {stderr}",
                    out.code
                ));
            }
            for want in lines.filter(|l| !l.is_empty()) {
                if !stderr.contains(want) {
                    failures.push(format!("{name}: stderr lacks {want:?}: {stderr}"));
                }
            }
            if read_tree(tmp.path()) != input {
                failures.push(format!("{name}: files changed on error"));
            }
            continue;
        }
        let mut expected = input.clone();
        expected.extend(read_tree(&case.join("expected")));
        let before = renders(tmp.path());
        let dry = set_weight(tmp.path(), &args, true);
        if !dry.ok || read_tree(tmp.path()) != input {
            failures.push(format!("{name}: dry run failed or wrote: {}", dry.stderr));
            continue;
        }
        let out = set_weight(tmp.path(), &args, false);
        if !out.ok {
            failures.push(format!("{name}: failed: {}", out.stderr));
            continue;
        }
        let got = read_tree(tmp.path());
        if got != expected {
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
            if got.len() != expected.len() {
                failures.push(format!("{name}: unexpected files written"));
            }
        }
        let after = renders(tmp.path());
        let overlay = arg_after(&args, "--overlay").map(|o| PathBuf::from(o.trim_end_matches('/')));
        let weight = arg_after(&args, "--weight").unwrap();
        // An edit no kustomization reads changes no rendering.
        let layout = Layout::discover(tmp.path()).expect("layout");
        let edited: Vec<&PathBuf> = expected
            .iter()
            .filter(|(p, bytes)| input.get(*p) != Some(*bytes))
            .map(|(p, _)| p)
            .collect();
        let flat = !edited.is_empty()
            && edited
                .iter()
                .all(|p| input.contains_key(*p) && !layout.owns(p));
        let want = if flat {
            Want::Flat
        } else {
            Want::Root(overlay.as_deref())
        };
        let check = if args.iter().any(|a| a == "--route") {
            check_renders(
                &before,
                &after,
                want,
                &route_share(
                    weight.parse().unwrap(),
                    arg_after(&args, "--canary-service"),
                ),
            )
        } else {
            check_renders(&before, &after, want, &ingress_weight(&weight))
        };
        if let Err(e) = check {
            failures.push(format!("{name}: kubectl kustomize: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

const STABLE: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: shop
            port:
              number: 80
";

fn canary_file() -> String {
    STABLE
        .replace(
            "metadata:\n  name: shop\n",
            "metadata:\n  name: shop-canary\n  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"0\"\n",
        )
        .replace("name: shop\n            port", "name: shop-canary\n            port")
}

/// Add `- entry` as the first item of the `resources:` (or `bases:`) list, in its indentation.
fn add_resource(kustomization: &str, entry: &str) -> Option<String> {
    let lines: Vec<&str> = kustomization.split_inclusive('\n').collect();
    let at = lines
        .iter()
        .position(|l| l.trim_end() == "resources:" || l.trim_end() == "bases:")?;
    let next = lines.get(at + 1)?;
    let dash = next.find('-')?;
    if !next[..dash].chars().all(|c| c == ' ') {
        return None;
    }
    let mut out: String = lines[..=at].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{}- {entry}\n", &next[..dash]));
    out.push_str(&lines[at + 1..].concat());
    Some(out)
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            std::fs::create_dir_all(&t).unwrap();
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

#[test]
fn corpus_layouts_with_a_canary_added() {
    kubectl_present();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/kustomize");
    assert!(
        corpus.is_dir(),
        "the corpus must sit beside the checkout at {}",
        corpus.display()
    );
    let mut layouts: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    layouts.sort();
    assert!(layouts.len() >= 7, "only {} layouts", layouts.len());
    let mut failures = Vec::new();
    let mut edits = 0;
    for src in &layouts {
        let name = src.file_name().unwrap().to_string_lossy().to_string();
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path();
        copy_dir(src, repo);
        let layout = Layout::discover(repo).unwrap();
        // The kustomization most roots build (that kubectl builds and has a resources list):
        // where a user puts the app's Ingresses.
        let buildable: Vec<&PathBuf> = layout
            .roots
            .iter()
            .filter(|r| kustomize(&repo.join(r)).is_ok())
            .collect();
        let base_roots = |d: &Path| {
            let kf = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
                .iter()
                .map(|n| d.join(n))
                .find(|p| repo.join(p).is_file());
            buildable
                .iter()
                .filter(|r| kf.as_ref().is_some_and(|kf| layout.reach(r).contains(kf)))
                .count()
        };
        let mut best: Option<(usize, PathBuf, String)> = None;
        for d in &layout.dirs {
            let Some(kf) = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
                .iter()
                .map(|n| d.join(n))
                .find(|p| repo.join(p).is_file())
            else {
                continue;
            };
            let text = std::fs::read_to_string(repo.join(&kf)).unwrap();
            if text.contains("kind: Component") {
                continue;
            }
            let Some(new) = add_resource(&text, "shop-canary-ingress.yaml") else {
                continue;
            };
            let n = base_roots(d);
            if n > 0 && best.as_ref().is_none_or(|(m, _, _)| n > *m) {
                best = Some((n, kf, new));
            }
        }
        let Some((_, kf, new)) = best else {
            failures.push(format!("{name}: no kustomization to add a canary to"));
            continue;
        };
        let dir = kf.parent().unwrap().to_path_buf();
        std::fs::write(repo.join(&kf), new).unwrap();
        std::fs::write(
            repo.join(dir.join("shop-canary-ingress.yaml")),
            format!("{STABLE}---\n{}", canary_file()),
        )
        .unwrap();

        // Every root that renders the canary, by kubectl.
        let mut targets = Vec::new();
        let all = renders(repo);
        let why: Vec<String> = all
            .iter()
            .filter_map(|(r, x)| x.as_ref().err().map(|e| format!("{}: {e}", r.display())))
            .collect();
        for (root, r) in all {
            if let Ok(objs) = r {
                for o in objs.iter().filter(|o| {
                    o["kind"] == "Ingress"
                        && o["metadata"]["annotations"][WEIGHT].is_string()
                        && o["metadata"]["name"]
                            .as_str()
                            .is_some_and(|n| n.contains("shop-canary"))
                }) {
                    let sel = match o["metadata"]["namespace"].as_str() {
                        Some(ns) => format!("{ns}/{}", o["metadata"]["name"].as_str().unwrap()),
                        None => o["metadata"]["name"].as_str().unwrap().to_string(),
                    };
                    targets.push((root.clone(), sel));
                }
            }
        }
        if targets.is_empty() {
            failures.push(format!(
                "{name}: the added canary is rendered by no root: {}",
                why.join("; ")
            ));
            continue;
        }
        // plan sees the canary in the roots that render it, with no error.
        let plan = Command::cargo_bin("gitops-canary")
            .unwrap()
            .args(["plan", "--output", "json", "--repo"])
            .arg(repo)
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&plan.stdout).unwrap_or_default();
        let shown = doc["kustomizeRoots"]
            .as_array()
            .map(|roots| {
                roots
                    .iter()
                    .map(|r| r["canaries"].as_array().map_or(0, Vec::len))
                    .sum::<usize>()
            })
            .unwrap_or(0);
        if shown < targets.len() {
            failures.push(format!(
                "{name}: plan shows {shown} rendered canaries, kubectl renders {}: {}",
                targets.len(),
                String::from_utf8_lossy(&plan.stderr)
            ));
        }
        // Big layouts: the first, a middle and the last target.
        if targets.len() > 3 {
            let n = targets.len();
            targets = vec![
                targets[0].clone(),
                targets[n / 2].clone(),
                targets[n - 1].clone(),
            ];
        }
        for (i, (root, sel)) in targets.iter().enumerate() {
            let weight = (10 + 7 * i).to_string();
            let args: Vec<String> = vec![
                "--ingress".into(),
                sel.clone(),
                "--overlay".into(),
                root.display().to_string(),
                "--weight".into(),
                weight.clone(),
            ];
            let args: Vec<String> = if root.as_os_str().is_empty() {
                let mut a = args;
                a[3] = ".".into();
                a
            } else {
                args
            };
            let before = renders(repo);
            let tree = read_tree(repo);
            let out = set_weight(repo, &args, false);
            if !out.ok {
                failures.push(format!("{name}: set-weight {args:?}: {}", out.stderr));
                continue;
            }
            let after = renders(repo);
            let want = Want::Root(Some(root));
            if let Err(e) = check_renders(&before, &after, want, &ingress_weight(&weight)) {
                failures.push(format!("{name}: {args:?}: {e}"));
                write_tree(repo, &tree);
            }
            edits += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(edits >= 7, "only {edits} edits");
}
