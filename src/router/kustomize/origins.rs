//! How each step of a rendering moves the origins of the tracked values (see
//! [`super::object::is_tracked`]): a resource brings its own, a strategic-merge patch replaces
//! what sits under every place it writes a scalar, a list or null, and a JSON 6902 operation
//! replaces, removes, inserts (shifting the list items after it), moves or copies.
//!
//! A value a `move` or `copy` put in place has an origin without a location: it is decided by
//! where it came from and by the operation, and is not edited in either.

use serde_json::Value;

use super::object::{is_tracked, may_hold_tracked};
use super::patch::{self, Op};
use super::{Origin, Origins};
use crate::manifest::PathSeg;
use crate::yaml::{NodeId, NodeKind, Stream};

/// Builds the origin of a tracked value found at a YAML node, given its path under the node the
/// walk started from.
pub(super) type MakeOrigin<'a> = dyn Fn(NodeId, &[PathSeg]) -> Origin + 'a;

fn is_null(s: &Stream, n: NodeId) -> bool {
    // Only a scalar reads as null: converting a collection would build all of it (this is
    // asked at every level of every object a rendering reads).
    matches!(s.node(s.resolve(n)).kind, NodeKind::Scalar { .. }) && super::to_json(s, n).is_null()
}

/// Every tracked value at or under `node` (which sits at `base` in an object of `kind`), with
/// its origin. Null values are absent, as the API server reads them.
pub(super) fn leaves(
    kind: &str,
    s: &Stream,
    node: NodeId,
    base: &[String],
    make: &MakeOrigin,
) -> Vec<(Vec<String>, Origin)> {
    fn walk(
        kind: &str,
        s: &Stream,
        node: NodeId,
        tokens: &mut Vec<String>,
        segs: &mut Vec<PathSeg>,
        make: &MakeOrigin,
        out: &mut Vec<(Vec<String>, Origin)>,
    ) {
        let n = s.resolve(node);
        if is_null(s, n) || !may_hold_tracked(kind, tokens) {
            return;
        }
        if is_tracked(kind, tokens) {
            out.push((tokens.clone(), make(n, segs)));
        }
        match &s.node(n).kind {
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    let Some(key) = s.str(*k) else { continue };
                    tokens.push(key.to_string());
                    segs.push(PathSeg::Key(key.to_string()));
                    walk(kind, s, *v, tokens, segs, make, out);
                    tokens.pop();
                    segs.pop();
                }
            }
            NodeKind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    tokens.push(i.to_string());
                    segs.push(PathSeg::Index(i));
                    walk(kind, s, *item, tokens, segs, make, out);
                    tokens.pop();
                    segs.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        kind,
        s,
        node,
        &mut base.to_vec(),
        &mut Vec::new(),
        make,
        &mut out,
    );
    out
}

/// The tracked paths at or under `base` in a JSON value (for what a `move` or `copy` put there).
fn json_leaves(kind: &str, v: &Value, base: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if v.is_null() || !may_hold_tracked(kind, base) {
        return;
    }
    if is_tracked(kind, base) {
        out.push(base.clone());
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                base.push(k.clone());
                json_leaves(kind, x, base, out);
                base.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                base.push(i.to_string());
                json_leaves(kind, x, base, out);
                base.pop();
            }
        }
        _ => {}
    }
}

fn drop_under(origins: &mut Origins, prefix: &[String]) {
    origins.retain(|k, _| !k.starts_with(prefix));
}

/// Renumber the items of the list at `list` from index `from` on by `delta` (an item was
/// inserted before them, or removed).
fn shift(origins: &mut Origins, list: &[String], from: usize, delta: isize) {
    let moved: Vec<Vec<String>> = origins
        .keys()
        .filter(|k| {
            k.starts_with(list)
                && k.get(list.len())
                    .and_then(|t| t.parse::<usize>().ok())
                    .is_some_and(|i| i >= from)
        })
        .cloned()
        .collect();
    let mut renumbered = Vec::new();
    for k in moved {
        if let Some(o) = origins.remove(&k) {
            let mut nk = k.clone();
            let i: usize = k[list.len()].parse().unwrap_or(0);
            nk[list.len()] = i.saturating_add_signed(delta).to_string();
            renumbered.push((nk, o));
        }
    }
    origins.extend(renumbered);
}

fn replace_at(origins: &mut Origins, at: &[String], new: Vec<(Vec<String>, Origin)>) {
    drop_under(origins, at);
    origins.extend(new);
}

/// The origins after a strategic-merge patch (its document root `node`) is merged into an
/// object of `kind`: a map merges key by key, anything else (and a `$patch: replace` map)
/// replaces what was there, lists included (kustomize knows no merge keys for these).
pub(super) fn strategic_merge(
    kind: &str,
    s: &Stream,
    node: NodeId,
    origins: &mut Origins,
    make: &MakeOrigin,
) {
    fn walk(
        kind: &str,
        s: &Stream,
        node: NodeId,
        tokens: &mut Vec<String>,
        segs: &mut Vec<PathSeg>,
        origins: &mut Origins,
        make: &MakeOrigin,
    ) {
        let n = s.resolve(node);
        let replace = s
            .get(n, "$patch")
            .and_then(|d| s.str(d))
            .is_some_and(|d| d == "replace");
        if !s.is_map(n) || replace {
            let rel = |at: NodeId, below: &[PathSeg]| {
                let all: Vec<PathSeg> = segs.iter().chain(below).cloned().collect();
                make(at, &all)
            };
            let new = leaves(kind, s, n, tokens, &rel);
            replace_at(origins, tokens, new);
            return;
        }
        for (k, v) in s.entries(n) {
            let Some(key) = s.str(*k) else { continue };
            if key.starts_with('$') {
                continue;
            }
            tokens.push(key.to_string());
            segs.push(PathSeg::Key(key.to_string()));
            if may_hold_tracked(kind, tokens) {
                walk(kind, s, *v, tokens, segs, origins, make);
            }
            tokens.pop();
            segs.pop();
        }
    }
    walk(
        kind,
        s,
        node,
        &mut Vec::new(),
        &mut Vec::new(),
        origins,
        make,
    );
}

/// The RFC 6901 pointer of the tokens.
pub(super) fn pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The list a pointer's last token indexes into, and the index (`-`: the end), when the
/// pointer's parent in `value` is a list.
fn list_index(value: &Value, path: &[String]) -> Option<(Vec<String>, usize)> {
    let (last, parent) = path.split_last()?;
    let a = value.pointer(&pointer(parent))?.as_array()?;
    let i = if last == "-" {
        a.len()
    } else {
        last.parse().ok()?
    };
    Some((parent.to_vec(), i))
}

/// Apply one JSON 6902 operation to an object of `kind` and move the origins with it.
/// `value_node` is the operation's `value` (the origins of what `add` and `replace` write are
/// made by `make`, relative to it); `moved` is the origin of what `move` and `copy` write.
pub(super) fn json6902(
    kind: &str,
    value: &mut Value,
    op: &Op,
    value_node: Option<(&Stream, NodeId)>,
    origins: &mut Origins,
    make: &MakeOrigin,
    moved: &Origin,
) -> Result<(), String> {
    let mut next = origins.clone();
    let written = |at: &[String]| match value_node {
        Some((s, n)) => leaves(kind, s, n, at, make),
        None => Vec::new(),
    };
    match op.op.as_str() {
        "add" => {
            let at = match list_index(value, &op.path) {
                Some((list, i)) => {
                    shift(&mut next, &list, i, 1);
                    let mut at = list;
                    at.push(i.to_string());
                    at
                }
                None => op.path.clone(),
            };
            let new = written(&at);
            replace_at(&mut next, &at, new);
        }
        "replace" => replace_at(&mut next, &op.path, written(&op.path)),
        "remove" => {
            drop_under(&mut next, &op.path);
            if let Some((list, i)) = list_index(value, &op.path) {
                shift(&mut next, &list, i + 1, -1);
            }
        }
        "move" | "copy" => {
            // Follow the value through the operation's two halves on a copy.
            let from = op.from.clone().unwrap_or_default();
            let mut mid = value.clone();
            if op.op == "move" {
                drop_under(&mut next, &from);
                if let Some((list, i)) = list_index(&mid, &from) {
                    shift(&mut next, &list, i + 1, -1);
                }
                let remove = Op {
                    op: "remove".into(),
                    path: from.clone(),
                    from: None,
                    value: None,
                };
                // An invalid `from` fails below, on the operation itself.
                let _ = patch::apply_op(&mut mid, &remove);
            }
            let at = match list_index(&mid, &op.path) {
                Some((list, i)) => {
                    shift(&mut next, &list, i, 1);
                    let mut at = list;
                    at.push(i.to_string());
                    at
                }
                None => op.path.clone(),
            };
            drop_under(&mut next, &at);
            let mut after = value.clone();
            if patch::apply_op(&mut after, op).is_ok() {
                let mut found = Vec::new();
                if let Some(v) = after.pointer(&pointer(&at)) {
                    json_leaves(kind, v, &mut at.clone(), &mut found);
                }
                next.extend(found.into_iter().map(|k| (k, moved.clone())));
            }
        }
        _ => {}
    }
    patch::apply_op(value, op)?;
    *origins = next;
    Ok(())
}
