//! Generated HTTPRoute rule shapes: block or flow backendRefs, items indented under their key
//! or not, weights present, absent or 0, keys in any order, comments, CRLF, a rule with
//! filters, several rules splitting between the same two Services. For every shape and share,
//! `set-weight`'s edits either apply (the guard passes, an independent parse equals the
//! original plus the new weights, the share reads back exactly, a written total is kept, every
//! other line is kept) or are refused because the share is not exact for the rule's total.

use std::path::PathBuf;

use gitops_canary::manifest::{edit, PathSeg, SourceFile};
use gitops_canary::router::gateway::{self, Context};
use proptest::prelude::*;
use serde_json::Value;

#[derive(Debug, Clone)]
struct Backend {
    weight: Option<u32>,
    weight_first: bool,
    kind: bool,
    comment: bool,
}

#[derive(Debug, Clone)]
struct RuleShape {
    stable: Backend,
    canary: Backend,
    path: Option<String>,
    flow: bool,
    filters: bool,
}

#[derive(Debug, Clone)]
struct Shape {
    rules: Vec<RuleShape>,
    indented: bool,
    crlf: bool,
    final_newline: bool,
}

fn backend() -> impl Strategy<Value = Backend> {
    (
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(0)),
            4 => prop::sample::select(vec![1u32, 5, 9, 10, 20, 50, 80, 90, 95, 100]).prop_map(Some),
            2 => (0u32..=1000).prop_map(Some),
            1 => Just(Some(1_000_000))
        ],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(weight, weight_first, kind, comment)| Backend {
            weight,
            weight_first,
            kind,
            comment,
        })
}

fn rule() -> impl Strategy<Value = RuleShape> {
    (
        backend(),
        backend(),
        prop::option::of("/[a-z]{1,6}"),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(stable, canary, path, flow, filters)| RuleShape {
            stable,
            canary,
            path,
            flow,
            filters,
        })
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec(rule(), 1..4),
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(rules, indented, crlf, final_newline)| Shape {
            rules,
            indented,
            crlf,
            final_newline,
        })
}

fn flow_backend(name: &str, b: &Backend) -> String {
    let mut keys = vec![format!("name: {name}"), "port: 80".to_string()];
    if b.kind {
        keys.push("kind: Service".into());
    }
    if let Some(w) = b.weight {
        let at = if b.weight_first { 1 } else { keys.len() };
        keys.insert(at, format!("weight: {w}"));
    }
    format!("{{{}}}", keys.join(", "))
}

fn block_backend(out: &mut Vec<String>, pad: &str, name: &str, b: &Backend, filters: bool) {
    let mut keys = vec![format!("name: {name}"), "port: 80".to_string()];
    if b.kind {
        keys.push("kind: Service".into());
    }
    if let Some(w) = b.weight {
        let at = if b.weight_first { 1 } else { keys.len() };
        let comment = if b.comment { " # share" } else { "" };
        keys.insert(at, format!("weight: {w}{comment}"));
    }
    for (i, k) in keys.iter().enumerate() {
        let lead = if i == 0 {
            format!("{pad}- ")
        } else {
            format!("{pad}  ")
        };
        out.push(format!("{lead}{k}"));
    }
    if filters {
        out.push(format!("{pad}  filters:"));
        out.push(format!("{pad}  - type: RequestHeaderModifier"));
        out.push(format!("{pad}    requestHeaderModifier:"));
        out.push(format!("{pad}      set:"));
        out.push(format!("{pad}      - name: x-backend"));
        out.push(format!("{pad}        value: {name}"));
    }
}

fn render(s: &Shape) -> String {
    let mut l: Vec<String> = vec![
        "# generated".into(),
        "apiVersion: gateway.networking.k8s.io/v1".into(),
        "kind: HTTPRoute".into(),
        "metadata:".into(),
        "  name: web".into(),
        "  namespace: shop".into(),
        "spec:".into(),
        "  parentRefs:".into(),
        "  - name: gw".into(),
        "  rules:".into(),
    ];
    let item = if s.indented { "    " } else { "  " };
    for r in &s.rules {
        let mut first = true;
        let mut lead = || {
            let p = if first {
                format!("{item}- ")
            } else {
                format!("{item}  ")
            };
            first = false;
            p
        };
        if let Some(p) = &r.path {
            l.push(format!("{}matches:", lead()));
            l.push(format!("{item}  - path:"));
            l.push(format!("{item}      type: PathPrefix"));
            l.push(format!("{item}      value: {p}"));
        }
        if r.flow {
            l.push(format!(
                "{}backendRefs: [{}, {}]",
                lead(),
                flow_backend("web", &r.stable),
                flow_backend("web-canary", &r.canary)
            ));
        } else {
            l.push(format!("{}backendRefs:", lead()));
            let pad = if s.indented {
                format!("{item}    ")
            } else {
                format!("{item}  ")
            };
            block_backend(&mut l, &pad, "web", &r.stable, r.filters);
            block_backend(&mut l, &pad, "web-canary", &r.canary, false);
        }
    }
    let eol = if s.crlf { "\r\n" } else { "\n" };
    let mut text = l.join(eol);
    if s.final_newline {
        text.push_str(eol);
    }
    text
}

fn effective_total(r: &RuleShape) -> (u64, bool) {
    let w = |b: &Backend| u64::from(b.weight.unwrap_or(1));
    let written = r.stable.weight.is_some() || r.canary.weight.is_some();
    let t = w(&r.stable) + w(&r.canary);
    (if !written || t == 0 { 100 } else { t }, written && t != 0)
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_rules(
        shape in shape(),
        pct in prop_oneof![prop::sample::select(vec![0u32, 10, 20, 25, 50, 100]), 0u32..=100],
    ) {
        let text = render(&shape);
        let file = SourceFile::parse(PathBuf::from("r.yaml"), text.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let routes = gateway::http_routes(&file);
        prop_assert_eq!(routes.len(), 1);
        let rc = gateway::analyze(&routes[0], None, &Context::default());
        prop_assert_eq!(rc.canary_service.as_deref(), Some("web-canary"));
        prop_assert_eq!(rc.splits.len(), shape.rules.len());
        let exact = shape.rules.iter().all(|r| effective_total(r).0 * u64::from(pct) % 100 == 0);
        let overflow = shape.rules.iter().any(|r| {
            let t = effective_total(r).0;
            let c = t * u64::from(pct) / 100;
            c > 1_000_000 || t - c > 1_000_000
        });
        let edits = gateway::weight_edits(&rc, pct);
        if !exact || overflow {
            prop_assert!(edits.is_err(), "{:?}", edits);
            return Ok(());
        }
        let edits = edits.map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        if std::env::var_os("HTTPROUTE_PROPTEST_COUNT").is_some() {
            eprintln!("applied");
        }
        let out = edit::apply(&file, &edits)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let new_text = out.changed.first().map(|(_, t)| t.clone()).unwrap_or(text.clone());

        // Independent parse: the original plus the new weights.
        let mut want: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for e in &edits {
            set_path(&mut want[e.document - 1], &e.path, Value::from(e.new.parse::<u64>().unwrap()));
        }
        let got: Vec<Value> = serde_saphyr::from_multiple(&new_text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{new_text}")))?;
        prop_assert_eq!(&want, &got, "\n{}\n---\n{}", text, new_text);

        // Every original line is kept, in order (a weight line may have a new number).
        let strip = |l: &str| {
            let t = l.trim_end_matches(['\r', '\n']);
            match t.find("weight: ") {
                Some(i) if !t.contains('{') => t[..i].to_string(),
                _ => t.to_string(),
            }
        };
        let old_lines: Vec<String> = text.split_inclusive('\n').map(strip).collect();
        let new_lines: Vec<String> = new_text.split_inclusive('\n').map(strip).collect();
        let mut j = 0;
        for o in &old_lines {
            while j < new_lines.len() && new_lines[j] != *o && !o.contains('{') {
                j += 1;
            }
            if !o.contains('{') {
                prop_assert!(j < new_lines.len(), "line {:?} lost\n{}", o, new_text);
            }
            j += 1;
        }
        let missing_block = shape.rules.iter().filter(|r| !r.flow).map(|r| {
            usize::from(r.stable.weight.is_none()) + usize::from(r.canary.weight.is_none())
        }).sum::<usize>();
        prop_assert_eq!(new_text.lines().count(), text.lines().count() + missing_block);

        // The share reads back, and a written total is kept.
        let after = SourceFile::parse(PathBuf::from("r.yaml"), new_text.clone()).unwrap();
        let rc2 = gateway::analyze(&gateway::http_routes(&after)[0], None, &Context::default());
        for (s, r) in rc2.splits.iter().zip(&shape.rules) {
            prop_assert_eq!(s.percent, Some(f64::from(pct)));
            prop_assert_eq!(s.total, Some(effective_total(r).0));
            prop_assert!(s.stable.weight_raw.is_some() && s.canary.weight_raw.is_some());
        }
        // A second run changes nothing.
        let again = gateway::weight_edits(&rc2, pct).unwrap();
        prop_assert!(edit::apply(&after, &again).unwrap().changed.is_empty());
    }
}
