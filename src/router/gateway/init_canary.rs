//! `init-canary --route`: add the canary backendRef beside the stable one in every rule that
//! sends all its requests to one backend, spliced into the text in the file's own style and
//! checked (every other byte's meaning kept, and the result passes what `plan` checks).

use std::path::Path;

use super::analyze::analyze;
use super::read::http_routes;
use super::set::{load_selected, weight_edit};
use super::{Context, Rule};
use crate::manifest::{edit, Edit, EditOutcome, ManifestError, PathSeg, ScalarKind, SourceFile};
use crate::router::Severity;
use crate::yaml::{NodeId, NodeKind, Stream, Style};

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

fn eol_of(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Byte just past the last content of a node (the last scalar of a block collection; the
/// closing bracket of a flow one).
fn content_end(s: &Stream, id: NodeId) -> usize {
    let n = s.node(id);
    match &n.kind {
        NodeKind::Map(entries) if !n.flow => entries.last().map_or(n.span.end, |(k, v)| {
            content_end(s, *v).max(s.node(*k).span.end)
        }),
        NodeKind::Seq(items) if !n.flow => items.last().map_or(n.span.end, |i| content_end(s, *i)),
        _ => n.span.end,
    }
}

/// The text of a new backendRef for `service`, copied from the stable's entry `stable` (its
/// one-line scalar keys, in order, with their bytes; `filters` and other blocks are left out),
/// with `name: service` and `weight: weight`. Returns the entries and the expected value.
fn new_backend(
    file: &SourceFile,
    stable: NodeId,
    service: &str,
    weight: u32,
) -> (Vec<String>, serde_json::Value) {
    let s = &file.stream;
    let mut entries = Vec::new();
    let mut value = serde_json::Map::new();
    let mut has_weight = false;
    for (k, v) in s.entries(stable) {
        let (kn, vn) = (s.node(*k), s.node(*v));
        let Some(key) = s.str(*k) else { continue };
        let NodeKind::Scalar { style, .. } = &vn.kind else {
            continue;
        };
        if vn.line != kn.line || matches!(style, Style::Literal | Style::Folded) {
            continue;
        }
        let key_text = &file.text[kn.span.clone()];
        match key {
            "name" => {
                let plain = *style == Style::Plain && edit::plain_safe(service);
                let text = if plain {
                    service.to_string()
                } else {
                    serde_json::to_string(service).unwrap_or_default()
                };
                entries.push(format!("{key_text}: {text}"));
                value.insert(
                    key.into(),
                    serde_json::Value::String(format!(
                        "{}:{service}",
                        if plain { "plain" } else { "str" }
                    )),
                );
            }
            "weight" => {
                has_weight = true;
                entries.push(format!("{key_text}: {weight}"));
                value.insert(
                    key.into(),
                    serde_json::Value::String(format!("plain:{weight}")),
                );
            }
            _ => {
                entries.push(format!("{key_text}: {}", &file.text[vn.span.clone()]));
                value.insert(key.into(), s.to_value(*v));
            }
        }
    }
    if !has_weight {
        entries.push(format!("weight: {weight}"));
        value.insert(
            "weight".into(),
            serde_json::Value::String(format!("plain:{weight}")),
        );
    }
    (entries, serde_json::Value::Object(value))
}

/// Add `service` as the canary of the HTTPRoute `selector` names: in every rule that sends all
/// the requests it matches (no header, query or method condition) to one stable backendRef,
/// a backendRef to `service` at `pct` and the stable's weight `100 - pct`, both written.
pub fn init_canary(
    dir: &Path,
    selector: &str,
    service: &str,
    pct: u32,
) -> Result<EditOutcome, ManifestError> {
    let (repo, route) = load_selected(dir, selector)?;
    let create = |reason: String| ManifestError::Create {
        file: route.file.clone(),
        reason,
    };
    super::set::percent_in_range(&route, pct)?;
    if route.backend_names().iter().any(|n| n == service) {
        return Err(create(format!(
            "{} has a backendRef {service} already (set-weight --route changes its weight)",
            route.qualified_name()
        )));
    }
    let main: Vec<&Rule> = route.rules.iter().filter(|r| !r.is_subset()).collect();
    if let Some(r) = main.iter().find(|r| r.backends.len() > 1) {
        return Err(create(format!(
            "rule {} of {} sends to several backends ({}); init-canary adds a canary beside one stable backend",
            r.index,
            route.qualified_name(),
            r.backends.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let targets: Vec<&Rule> = main.into_iter().filter(|r| r.backends.len() == 1).collect();
    let mut stables: Vec<&str> = targets
        .iter()
        .map(|r| r.backends[0].name.as_str())
        .collect();
    stables.dedup();
    match stables.as_slice() {
        [] => {
            return Err(create(format!(
                "{} has no rule that sends its requests to one backend",
                route.qualified_name()
            )))
        }
        [_] => {}
        many => {
            return Err(create(format!(
                "the rules of {} send to different backends ({}); which one the canary is for is unclear",
                route.qualified_name(),
                many.join(", ")
            )))
        }
    }
    let file = repo
        .file(&route.file)
        .ok_or_else(|| create("file not loaded".into()))?;

    // 1. The stable's weight, through the one writer.
    let stable_edits: Vec<Edit> = targets
        .iter()
        .map(|r| weight_edit(&route, r.index, &r.backends[0], 100 - pct))
        .collect();
    let step = edit::apply(file, &stable_edits)?;
    let text1 = step
        .changed
        .first()
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| file.text.clone());
    let mid = SourceFile::parse(file.path.clone(), text1.clone())
        .map_err(|e| create(format!("intermediate result does not parse: {e}")))?;

    // 2. One new backendRef per rule, after the stable's.
    let s = &mid.stream;
    let root = s.docs[route.document - 1]
        .root
        .ok_or_else(|| create("document vanished".into()))?;
    let obj = match route.item {
        Some(i) => s
            .get(root, "items")
            .and_then(|it| s.items(it).get(i).copied())
            .ok_or_else(|| create("list item vanished".into()))?,
        None => root,
    };
    let rules_node = s
        .path(obj, &["spec", "rules"])
        .ok_or_else(|| create("spec.rules vanished".into()))?;
    let eol = eol_of(&text1);
    let mut splices: Vec<(usize, String)> = Vec::new();
    let mut want = s.to_value(root);
    for r in &targets {
        let rule = s.items(rules_node)[r.index];
        let refs = s
            .get(rule, "backendRefs")
            .ok_or_else(|| create("backendRefs vanished".into()))?;
        let stable = s.items(refs)[0];
        if s.resolve(refs) != refs || s.node(refs).anchored || s.resolve(stable) != stable {
            return Err(create(format!(
                "rule {}'s backendRefs are shared through an anchor; add the canary by hand",
                r.index
            )));
        }
        let (entries, value) = new_backend(&mid, stable, service, pct);
        let flow_map = format!("{{{}}}", entries.join(", "));
        let refs_node = s.node(refs);
        let stable_node = s.node(stable);
        if refs_node.flow {
            splices.push((content_end(s, stable), format!(", {flow_map}")));
        } else {
            let first = match &stable_node.kind {
                NodeKind::Map(e) if !stable_node.flow => {
                    e.first().map(|(k, _)| s.node(*k).span.start)
                }
                _ => Some(stable_node.span.start),
            }
            .ok_or_else(|| create("empty backendRef".into()))?;
            let ls = line_start(&text1, first);
            let lead = &text1[ls..first];
            if !(lead.trim_start_matches(' ').starts_with('-')
                && lead.chars().all(|c| c == ' ' || c == '-'))
            {
                return Err(create(format!(
                    "rule {}'s backendRef does not start on its `- ` line; add the canary by hand",
                    r.index
                )));
            }
            let indent = " ".repeat(lead.len());
            let text = if stable_node.flow {
                format!("{lead}{flow_map}")
            } else {
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("{}{e}", if i == 0 { lead } else { &indent }))
                    .collect::<Vec<_>>()
                    .join(eol)
            };
            let end = content_end(s, stable);
            match text1[end..].find('\n') {
                Some(i) => splices.push((end + i + 1, format!("{text}{eol}"))),
                None => splices.push((text1.len(), format!("{eol}{text}"))),
            }
        }
        // The value the new entry must read back as.
        let mut target = &mut want;
        let mut path: Vec<PathSeg> = route.prefix();
        path.extend([
            PathSeg::Key("spec".into()),
            PathSeg::Key("rules".into()),
            PathSeg::Index(r.index),
            PathSeg::Key("backendRefs".into()),
        ]);
        for seg in &path {
            target = match seg {
                PathSeg::Key(k) => &mut target[k.as_str()],
                PathSeg::Index(i) => &mut target[*i],
            };
        }
        if let serde_json::Value::Array(a) = target {
            a.push(value);
        }
    }
    splices.sort_by_key(|(at, _)| *at);
    let mut text2 = String::with_capacity(text1.len() + 128);
    let mut at = 0;
    for (pos, t) in &splices {
        text2.push_str(&text1[at..*pos]);
        text2.push_str(t);
        at = *pos;
    }
    text2.push_str(&text1[at..]);

    // 3. The guard: every document as before, but for the stable weights and the new entries.
    let guard = |detail: String| ManifestError::Guard {
        file: route.file.clone(),
        document: route.document,
        field: route.field("spec.rules[].backendRefs"),
        detail,
    };
    let after =
        crate::yaml::parse(&text2).map_err(|e| guard(format!("result does not parse: {e}")))?;
    if after.docs.len() != s.docs.len() {
        return Err(guard("document count changed".into()));
    }
    for (i, (a, b)) in s.docs.iter().zip(&after.docs).enumerate() {
        let expected = if i + 1 == route.document {
            want.clone()
        } else {
            a.root.map(|r| s.to_value(r)).unwrap_or_default()
        };
        let got = b.root.map(|r| after.to_value(r)).unwrap_or_default();
        if expected != got {
            return Err(guard(format!("document {} differs beyond the edit", i + 1)));
        }
    }

    // 4. The result must pass what `plan` checks.
    let new_file = SourceFile::parse(file.path.clone(), text2.clone())
        .map_err(|e| create(format!("result does not parse: {e}")))?;
    let ctx = Context::load(dir)?;
    let routes = http_routes(&new_file);
    let Some(new_route) = routes
        .iter()
        .find(|r| r.document == route.document && r.item == route.item)
    else {
        return Err(create("the route is not readable after the edit".into()));
    };
    let rc = analyze(new_route, Some(service), &ctx);
    let errors: Vec<String> = rc
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| format!("[{}] {}", p.code, p.message))
        .collect();
    if !errors.is_empty() {
        return Err(create(errors.join("; ")));
    }
    let mut edits = stable_edits;
    for r in &targets {
        edits.push(Edit {
            file: route.file.clone(),
            document: route.document,
            path: route.weight_path(r.index, r.backends.len()),
            old: None,
            new: pct.to_string(),
            kind: ScalarKind::Int,
            insert_after: Vec::new(),
        });
    }
    let diff = edit::unified_diff(&file.path, &file.text, &text2);
    Ok(EditOutcome {
        edits,
        changed: vec![(file.path.clone(), text2)],
        diff,
    })
}
