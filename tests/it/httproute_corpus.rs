//! Real-world HTTPRoutes (`../shared/corpus/httproute/`, sources in its SOURCES.tsv): every
//! rule that splits between two backends is given a new canary share; the only byte changes
//! are the weight scalars (or one added `weight:` line per backendRef that had none), an
//! independent parse (serde-saphyr) of the result equals the original plus the new weights,
//! and every result validates against the OpenAPI v3 schema of the standard-channel
//! HTTPRoute CRD (`crds/`). A missing corpus fails the tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitops_canary::manifest::{edit, PathSeg, SourceFile};
use gitops_canary::router::gateway::{self, Context};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/httproute");
    assert!(
        dir.is_dir(),
        "the HTTPRoute corpus must sit beside the checkout at {}",
        dir.display()
    );
    dir
}

fn corpus_files() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 30, "only {} corpus files", out.len());
    out
}

fn docs(text: &str) -> Vec<Value> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_saphyr::from_multiple::<Value>(text).expect("serde-saphyr reads every corpus file")
}

/// OpenAPI v3 (as CRDs write it) to JSON Schema: `nullable` becomes a null type; formats
/// (`int32`, `int64`) are dropped; `x-kubernetes-*` keys are left for the validator to ignore.
fn to_json_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                if k == "format" && v.is_string() {
                    continue;
                }
                out.insert(k.clone(), to_json_schema(v));
            }
            if out.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), serde_json::json!([t, "null"]));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// A validator per served version (`v1`, `v1beta1`) of the CRD.
fn crd_validators() -> BTreeMap<String, jsonschema::Validator> {
    let path = corpus_dir().join("crds/gateway.networking.k8s.io_httproutes.yaml");
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for v in crd["spec"]["versions"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap().to_string();
        let schema = to_json_schema(&v["schema"]["openAPIV3Schema"]);
        out.insert(name, jsonschema::draft4::new(&schema).unwrap());
    }
    assert!(out.contains_key("v1") && out.contains_key("v1beta1"));
    out
}

/// The API server drops null fields before validation (27 has `matches:` with no value).
fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

fn schema_errors(validators: &BTreeMap<String, jsonschema::Validator>, doc: &Value) -> Vec<String> {
    let version = doc["apiVersion"]
        .as_str()
        .and_then(|a| a.strip_prefix("gateway.networking.k8s.io/"))
        .unwrap_or_default();
    let validator = validators
        .get(version)
        .unwrap_or_else(|| panic!("no schema for {version}"));
    let doc = drop_nulls(doc);
    validator
        .iter_errors(&doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn set_path(doc: &mut Value, path: &[PathSeg], new: Value) {
    let mut at = doc;
    for seg in path {
        at = match seg {
            PathSeg::Key(k) => &mut at[k.as_str()],
            PathSeg::Index(i) => &mut at[*i],
        };
    }
    *at = new;
}

/// Every changed line is a weight line with only its number changed, or an added
/// `weight: N` line with the file's line ending.
fn only_weight_lines(old: &str, new: &str, name: &str) -> (usize, usize) {
    let eol = if old.contains("\r\n") { "\r\n" } else { "\n" };
    let is_weight = |l: &str| {
        let t = l.trim_start().trim_end_matches(['\n', '\r']);
        t.strip_prefix("weight: ")
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
    };
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let (mut i, mut j, mut replaced, mut added) = (0, 0, 0, 0);
    while i < old_lines.len() || j < new_lines.len() {
        let (o, n) = (old_lines.get(i).copied(), new_lines.get(j).copied());
        match (o, n) {
            (Some(o), Some(n)) if o == n => {
                i += 1;
                j += 1;
            }
            (Some(o), Some(n))
                if is_weight(o)
                    && is_weight(n)
                    && o.split("weight:").next() == n.split("weight:").next()
                    && o.ends_with('\n') == n.ends_with('\n') =>
            {
                replaced += 1;
                i += 1;
                j += 1;
            }
            (_, Some(n)) if is_weight(n) => {
                // An added line: the file's line ending, unless it is the new last line of a
                // file without a final newline (then the line before it gained the ending).
                assert!(
                    n.ends_with(eol) || j + 1 == new_lines.len(),
                    "{name}: added line {n:?} lacks the file's line ending"
                );
                added += 1;
                j += 1;
            }
            (Some(o), Some(n)) if j + 2 == new_lines.len() && o.trim_end() == n.trim_end() => {
                // The old last line (no final newline) now ends with one, before the added line.
                assert!(
                    !o.ends_with('\n') && n.ends_with(eol),
                    "{name}: {o:?} -> {n:?}"
                );
                i += 1;
                j += 1;
            }
            _ => panic!(
                "{name}: line {} changed beyond a weight: {o:?} -> {n:?}",
                i + 1
            ),
        }
    }
    (replaced, added)
}

#[test]
fn every_two_backend_split_is_edited_byte_exactly_and_stays_valid() {
    let validators = crd_validators();
    let mut edited = 0;
    let mut added_lines = 0;
    for (name, text) in corpus_files() {
        let file = SourceFile::parse(PathBuf::from(&name), text.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ctx = Context::from_files([std::slice::from_ref(&file)]);
        for route in gateway::http_routes(&file) {
            // Each backend that is second of a two-backend rule, taken as the canary.
            let mut canaries: Vec<String> = Vec::new();
            for rule in route.rules.iter().filter(|r| r.backends.len() == 2) {
                let c = rule.backends[1].name.clone();
                if !canaries.contains(&c) && c != rule.backends[0].name {
                    canaries.push(c);
                }
            }
            for canary in canaries {
                let rc = gateway::analyze(&route, Some(&canary), &ctx);
                assert!(!rc.splits.is_empty(), "{name}: {canary}: no split");
                // A share that is exact for every split and changes something.
                let pct = [37, 25, 20, 40, 50, 60, 0, 100]
                    .into_iter()
                    .find(|p| {
                        rc.splits
                            .iter()
                            .all(|s| gateway::new_weights(s, *p).is_ok())
                            && rc.splits.iter().any(|s| {
                                gateway::new_weights(s, *p).ok()
                                    != Some((
                                        s.stable.weight.unwrap_or(0),
                                        s.canary.weight.unwrap_or(0),
                                    ))
                                    || s.stable.weight_raw.is_none()
                                    || s.canary.weight_raw.is_none()
                            })
                    })
                    .unwrap_or_else(|| panic!("{name}: no share fits {canary}"));
                let edits = gateway::weight_edits(&rc, pct)
                    .unwrap_or_else(|e| panic!("{name}: {canary}: {e}"));
                assert_eq!(edits.len(), 2 * rc.splits.len());
                let out = edit::apply(&file, &edits).unwrap_or_else(|e| panic!("{name}: {e}"));
                let new_text = &out.changed[0].1;

                let (replaced, added) = only_weight_lines(&text, new_text, &name);
                let missing = edits.iter().filter(|e| e.old.is_none()).count();
                assert_eq!(added, missing, "{name}: one added line per missing weight");
                assert!(replaced <= edits.len() - missing, "{name}");
                added_lines += added;

                // Independent parse: the original plus the new weights.
                let mut want = docs(&text);
                for e in &edits {
                    let n: u64 = e.new.parse().unwrap();
                    set_path(&mut want[e.document - 1], &e.path, Value::from(n));
                }
                let got = docs(new_text);
                assert_eq!(want, got, "{name}: documents differ beyond the weights");

                // The result is a valid HTTPRoute.
                let doc = &got[route.document - 1];
                let errors = schema_errors(&validators, doc);
                assert!(errors.is_empty(), "{name}: schema: {errors:?}");
                // And what plan reads back is the share that was set.
                let after = SourceFile::parse(PathBuf::from(&name), new_text.clone()).unwrap();
                let back = gateway::http_routes(&after)
                    .into_iter()
                    .find(|r| r.document == route.document)
                    .unwrap();
                let rc2 = gateway::analyze(&back, Some(&canary), &ctx);
                for s in &rc2.splits {
                    assert_eq!(s.percent, Some(f64::from(pct)), "{name}: {canary}");
                }
                edited += 1;
            }
        }
    }
    eprintln!("edited {edited} splits, {added_lines} added weight lines");
    assert!(edited >= 25, "only {edited} splits edited");
    assert!(added_lines >= 8, "only {added_lines} added lines");
}

#[test]
fn every_corpus_httproute_validates_and_the_validator_has_teeth() {
    let validators = crd_validators();
    let mut routes = 0;
    for (name, text) in corpus_files() {
        for doc in docs(&text) {
            if doc["kind"] != "HTTPRoute" {
                continue;
            }
            routes += 1;
            let errors = schema_errors(&validators, &doc);
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }
    assert!(routes >= 35, "only {routes} HTTPRoutes");
    // A weight above the maximum, a string weight and a missing backend name are rejected.
    let doc: Value = serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "x"},
        "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": 1000000}]}]}
    });
    assert!(schema_errors(&validators, &doc).is_empty());
    for bad in [
        serde_json::json!({"name": "a", "port": 80, "weight": 1000001}),
        serde_json::json!({"name": "a", "port": 80, "weight": -1}),
        serde_json::json!({"name": "a", "port": 80, "weight": "10"}),
        serde_json::json!({"port": 80, "weight": 1}),
    ] {
        let mut d = doc.clone();
        d["spec"]["rules"][0]["backendRefs"][0] = bad.clone();
        assert!(
            !schema_errors(&validators, &d).is_empty(),
            "the schema accepts {bad}"
        );
    }
}

#[test]
fn corpus_discovery() {
    let d = gateway::discover_repo(&corpus_dir(), None).unwrap();
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    let find = |file: &str| {
        d.routes
            .iter()
            .find(|r| r.route.file.to_string_lossy().starts_with(file))
            .unwrap_or_else(|| panic!("{file} not listed"))
    };
    // The header-matched canary: a subset rule, no weighted split.
    let r = find("10-");
    assert_eq!(r.canary_service.as_deref(), Some("bar-svc-canary"));
    assert!(r.splits.is_empty() && r.subset_rules.len() == 1);
    assert!(r.problems.iter().any(|p| p.code == "match-precedence"));
    // Three backends with no canary by name: listed for the user to name one.
    assert!(find("05-")
        .problems
        .iter()
        .any(|p| p.code == "canary-unknown"));
    // v1beta1 is read.
    assert_eq!(
        find("21-").route.api_version,
        "gateway.networking.k8s.io/v1beta1"
    );
    // With the canary named, the multi-rule route moves both rules and shows 50%.
    let d = gateway::discover_repo(
        &corpus_dir(),
        Some("httproute-multi-rule-header-canary-service"),
    )
    .unwrap();
    let r = d
        .routes
        .iter()
        .find(|r| r.route.name == "httproute-multi-rule")
        .unwrap();
    assert_eq!(r.splits.len(), 2);
    assert_eq!(r.weight, Some(50.0));
    // More than two backends with a canary named: which is the stable is unclear.
    let d = gateway::discover_repo(
        &corpus_dir(),
        Some("httproute-multiple-extra-backends-canary-service"),
    )
    .unwrap();
    let r = d
        .routes
        .iter()
        .find(|r| r.route.name == "httproute-multiple-extra-backends")
        .unwrap();
    assert!(r.problems.iter().any(|p| p.code == "backends-unclear"));
    assert!(gateway::weight_edits(r, 10).is_err());
}
