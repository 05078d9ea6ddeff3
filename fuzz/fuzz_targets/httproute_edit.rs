//! HTTPRoute discovery + set-weight on arbitrary bytes: never panic, and a successful edit
//! keeps its guard: the text parses, every other document reads as before, the route's
//! document differs in backendRef weights alone, and every split reads back with both weights
//! written and the canary at the share asked for.
#![no_main]

use std::path::PathBuf;

use gitops_canary::manifest::{edit, SourceFile};
use gitops_canary::router::gateway::{self, Context, GatewayApi};
use gitops_canary::router::Router;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A document's value with every `backendRefs[].weight` taken out.
fn without_weights(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = match (k.as_str(), x) {
                        ("backendRefs", Value::Array(refs)) => Value::Array(
                            refs.iter()
                                .map(|b| match b {
                                    Value::Object(b) => {
                                        let mut b = b.clone();
                                        b.remove("weight");
                                        without_weights(&Value::Object(b))
                                    }
                                    other => without_weights(other),
                                })
                                .collect(),
                        ),
                        _ => without_weights(x),
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_weights).collect()),
        other => other.clone(),
    }
}

fn docs(file: &SourceFile) -> Vec<Value> {
    let s = &file.stream;
    s.docs
        .iter()
        .map(|d| d.root.map(|r| s.to_value(r)).unwrap_or_default())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&w, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(file) = SourceFile::parse(PathBuf::from("r.yaml"), text.to_string()) else {
        return;
    };
    let pct = u32::from(w % 101);
    let files = std::slice::from_ref(&file);
    let _ = GatewayApi.discover(files, &[]);
    // The generic consumers' way: no panic.
    for route in GatewayApi.routes(&file) {
        if let Ok(edits) = GatewayApi.weight_edits(&file, &route, pct) {
            let _ = edit::apply(&file, &edits);
        }
    }
    let ctx = Context::from_files([files]);
    let before = docs(&file);
    for route in gateway::http_routes(&file) {
        let rc = gateway::analyze(&route, None, &ctx);
        let Ok(edits) = gateway::weight_edits(&rc, pct) else {
            continue;
        };
        let Ok(out) = edit::apply(&file, &edits) else {
            continue;
        };
        let after = out.changed.first().map_or(text, |(_, t)| t.as_str());
        let back = SourceFile::parse(PathBuf::from("r.yaml"), after.to_string())
            .expect("edited text parses");
        let now = docs(&back);
        assert_eq!(now.len(), before.len());
        for (i, (a, b)) in before.iter().zip(&now).enumerate() {
            if i + 1 == route.document {
                assert_eq!(
                    without_weights(a),
                    without_weights(b),
                    "more than weights changed"
                );
            } else {
                assert_eq!(a, b, "document {} changed", i + 1);
            }
        }
        let again = gateway::http_routes(&back)
            .into_iter()
            .find(|r| r.document == route.document && r.item == route.item)
            .expect("the route is still there");
        let ctx2 = Context::from_files([std::slice::from_ref(&back)]);
        let rc2 = gateway::analyze(&again, rc.canary_service.as_deref(), &ctx2);
        assert_eq!(rc2.splits.len(), rc.splits.len());
        for s in &rc2.splits {
            assert!(s.stable.weight_raw.is_some() && s.canary.weight_raw.is_some());
            assert_eq!(s.percent, Some(f64::from(pct)), "rule {}", s.rule);
        }
    }
});
