//! The gate verdicts on the peers' own health objects (`../shared/corpus/health/`, sources in
//! its SOURCES.tsv), against the verdicts those peers give: one table,
//! `tests/cases/health/verdicts.yaml`, each case citing the peer's code or test, run by one loop.
//! The corpus must be there: a missing directory fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gitops_canary::cluster::DEFAULT_RESTART_THRESHOLD;
use gitops_canary::gate::k8s as gates;
use gitops_canary::gate::Verdict;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct Table {
    cases: Vec<Case>,
    not_judged: Vec<NotJudged>,
}

#[derive(Debug, Deserialize)]
struct Case {
    fixture: String,
    #[serde(default)]
    select: Option<String>,
    gate: String,
    #[serde(default)]
    revision: Option<String>,
    expect: String,
    #[serde(default)]
    reason: Option<String>,
    cite: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NotJudged {
    fixture: String,
    why: String,
}

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/health");
    assert!(
        dir.is_dir(),
        "the health corpus must sit beside the checkout at {}",
        dir.display()
    );
    dir
}

fn table() -> Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/health/verdicts.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture file under the corpus directory, as a path relative to it.
fn fixture_files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel != "SOURCES.tsv" {
                    out.insert(rel);
                }
            }
        }
    }
    out
}

/// The kinds a gate judges; other documents in a multi-document fixture (Namespace,
/// ConfigMap, Secret) are context.
const JUDGED_KINDS: &[&str] = &["Deployment", "Pod", "Application", "Kustomization"];

/// The objects a fixture holds, by the name a case selects them with (`None` for a file that
/// holds one object).
fn objects(dir: &Path, fixture: &str) -> BTreeMap<Option<String>, Value> {
    let text =
        std::fs::read_to_string(dir.join(fixture)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let mut out = BTreeMap::new();
    if fixture.ends_with(".json") {
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        match v.get("cases").and_then(Value::as_array) {
            // kubectl's transcribed table: a Deployment foo in bar per case.
            Some(cases) => {
                for c in cases {
                    let name = c["name"].as_str().unwrap().to_string();
                    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "foo", "namespace": "bar", "generation": c["generation"]},
                        "spec": {"replicas": c["specReplicas"]},
                        "status": c["status"]});
                    out.insert(Some(name), d);
                }
            }
            None => {
                out.insert(None, v);
            }
        }
        return out;
    }
    // Flux CLI test data are templates: fill in the namespace as the CLI's tests do.
    let text = text.replace("{{ .fluxns }}", "flux-system");
    // kstatus' objects repeat a key (observedGeneration); Go's YAML reader keeps the last.
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, options)
        .unwrap_or_else(|e| panic!("{fixture}: {e}"))
        .into_iter()
        .filter(|d: &Value| !d.is_null())
        .collect();
    let single = docs.len() == 1;
    for mut doc in docs {
        // The kustomize-controller docs show some status blocks without their `status:` key.
        if doc.get("status").is_none() && doc.get("conditions").is_some() {
            doc = json!({ "status": doc });
        }
        if single {
            out.insert(None, doc);
        } else if doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| JUDGED_KINDS.contains(&k))
        {
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            out.insert(Some(name), doc);
        }
    }
    out
}

/// The API server always fills in a Deployment's selector and template; test objects that show
/// only part of a spec get empty ones so the typed object can be read.
fn typed_deployment(mut v: Value) -> Deployment {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("selector").or_insert_with(|| json!({}));
        spec.entry("template").or_insert_with(|| json!({}));
    }
    serde_json::from_value(v).expect("a Deployment")
}

fn judge(case: &Case, obj: Value) -> Verdict {
    let revision = || {
        case.revision
            .as_deref()
            .unwrap_or_else(|| panic!("{}: a synced case needs a revision", case.fixture))
    };
    match case.gate.as_str() {
        "rolled-out" => gates::deployment_rolled_out(&typed_deployment(obj)),
        "steady" => {
            let pod: Pod = serde_json::from_value(obj).expect("a Pod");
            gates::pods_steady(&[pod], DEFAULT_RESTART_THRESHOLD)
        }
        "synced/argocd" => gates::argo_synced(&obj, revision()),
        "synced/flux" => gates::flux_ready(&obj, revision()),
        other => panic!("{}: unknown gate {other}", case.fixture),
    }
}

fn kind_of(v: &Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Wait(_) => "wait",
        Verdict::Fail(_) => "fail",
        Verdict::Inconclusive(_) => "inconclusive",
    }
}

#[test]
fn gate_verdicts_agree_with_the_peers_on_their_own_objects() {
    let dir = corpus_dir();
    let table = table();
    let sources = std::fs::read_to_string(dir.join("SOURCES.tsv")).unwrap();
    let listed: BTreeSet<&str> = sources
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();

    // Every object of every fixture is judged once, or its file is set aside with a reason.
    let files = fixture_files(&dir);
    let mut judged: BTreeMap<&str, BTreeSet<Option<String>>> = BTreeMap::new();
    for c in &table.cases {
        assert!(
            judged
                .entry(&c.fixture)
                .or_default()
                .insert(c.select.clone()),
            "{} {:?} is in the table twice",
            c.fixture,
            c.select
        );
        assert!(!c.cite.trim().is_empty(), "{}: no citation", c.fixture);
    }
    let skipped: BTreeSet<&str> = table
        .not_judged
        .iter()
        .inspect(|n| assert!(!n.why.trim().is_empty(), "{}: no reason", n.fixture))
        .map(|n| n.fixture.as_str())
        .collect();
    for f in &files {
        assert!(listed.contains(f.as_str()), "{f} is not in SOURCES.tsv");
        if skipped.contains(f.as_str()) {
            continue;
        }
        let want: BTreeSet<Option<String>> = objects(&dir, f).into_keys().collect();
        let have = judged.get(f.as_str()).cloned().unwrap_or_default();
        assert_eq!(have, want, "{f}: the table must judge each of its objects");
    }
    for f in judged.keys().chain(skipped.iter()) {
        assert!(
            files.contains(*f),
            "{f} is in the table but not in the corpus"
        );
    }

    let mut disagreements = Vec::new();
    for c in &table.cases {
        let obj = objects(&dir, &c.fixture)
            .remove(&c.select)
            .unwrap_or_else(|| panic!("{} has no object {:?}", c.fixture, c.select));
        let verdict = judge(c, obj);
        let got = kind_of(&verdict);
        let reason_ok = match (&c.reason, &verdict) {
            (Some(want), Verdict::Wait(r) | Verdict::Fail(r)) => r.contains(want.as_str()),
            (Some(_), _) => false,
            (None, _) => true,
        };
        if got != c.expect || !reason_ok {
            disagreements.push(format!(
                "{} {} [{}]: expected {}{} ({}), got {verdict:?}",
                c.fixture,
                c.select.as_deref().unwrap_or(""),
                c.gate,
                c.expect,
                c.reason
                    .as_deref()
                    .map(|r| format!(" with {r:?}"))
                    .unwrap_or_default(),
                c.cite
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree with the peers:\n{}",
        disagreements.len(),
        table.cases.len(),
        disagreements.join("\n")
    );
}
