//! A new patch in the target root: its file, and its entry appended to the kustomization's
//! `patches:` in the file's own style (checked to read as before plus that one entry).

use std::path::PathBuf;

use serde_json::Value;

use super::set::Change;
use super::{render::weight_path, to_json, Fs, Id, Kust, Obj};
use crate::manifest::edit::{self, Edit, PathSeg, ScalarKind};
use crate::manifest::ManifestError;
use crate::router::nginx;
use crate::yaml::{self, NodeId, NodeKind, Stream};

fn max_end(s: &Stream, id: NodeId) -> usize {
    let n = s.node(id);
    match &n.kind {
        NodeKind::Scalar { .. } | NodeKind::Alias(_) => n.span.end,
        NodeKind::Seq(items) => items
            .iter()
            .map(|i| max_end(s, *i))
            .max()
            .unwrap_or(n.span.start),
        NodeKind::Map(entries) => entries
            .iter()
            .map(|(_, v)| max_end(s, *v))
            .max()
            .unwrap_or(n.span.start),
    }
}

/// `(indentation before the dash, gap after it)` of a block sequence's items.
fn dash_style(text: &str, s: &Stream, seq: NodeId) -> Option<(String, String)> {
    let first = *s.items(seq).first()?;
    let start = s.node(first).span.start;
    let ls = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let prefix = &text[ls..start];
    let dash = prefix.rfind('-')?;
    if !prefix[..dash].chars().all(|c| c == ' ') || !prefix[dash + 1..].chars().all(|c| c == ' ') {
        return None;
    }
    Some((prefix[..dash].to_string(), prefix[dash + 1..].to_string()))
}

/// Add `- path: ENTRY` (with a `target:` of the given fields when there are any) to the
/// kustomization's `patches:` in the file's own style.
pub(super) fn append_patch_entry(
    k: &Kust,
    entry: &str,
    target: &[(&str, String)],
) -> Result<String, String> {
    let text = &k.text;
    let s = &k.stream;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    // The entry as block lines after `- `, each line's indentation past the dash's column.
    let block = |indent: &str, gap: &str| {
        let cont = format!("{indent} {}", " ".repeat(gap.len()));
        let mut lines = vec![format!("{indent}-{gap}path: {entry}")];
        if !target.is_empty() {
            lines.push(format!("{cont}target:"));
            for (key, v) in target {
                lines.push(format!("{cont}  {key}: {}", yaml_scalar(v)));
            }
        }
        lines.join(eol)
    };
    let flow = if target.is_empty() {
        format!("{{path: {entry}}}")
    } else {
        let fields: Vec<String> = target
            .iter()
            .map(|(key, v)| format!("{key}: {}", yaml_scalar(v)))
            .collect();
        format!("{{path: {entry}, target: {{{}}}}}", fields.join(", "))
    };
    let out = match k.get("patches") {
        Some(seq) if matches!(s.node(seq).kind, NodeKind::Seq(_)) && !s.node(seq).flow => {
            let (indent, gap) =
                dash_style(text, s, seq).ok_or("cannot tell how patches: is indented")?;
            let end = text[..max_end(s, seq)]
                .trim_end_matches([' ', '\t', '\n', '\r'])
                .len();
            let line = block(&indent, &gap);
            match text[end..].find('\n') {
                Some(i) => {
                    let at = end + i + 1;
                    format!("{}{line}{eol}{}", &text[..at], &text[at..])
                }
                None => format!("{text}{eol}{line}"),
            }
        }
        Some(seq) if matches!(s.node(seq).kind, NodeKind::Seq(_)) => {
            let n = s.node(seq);
            let close = n.span.end - 1;
            if text.as_bytes().get(close) != Some(&b']') {
                return Err("cannot find the end of patches: [...]".into());
            }
            let sep = if s.items(seq).is_empty() { "" } else { ", " };
            format!("{}{sep}{flow}{}", &text[..close], &text[close..])
        }
        Some(_) => return Err("patches: is not a list".into()),
        None => {
            let (indent, gap) = ["resources", "bases", "components", "patchesStrategicMerge"]
                .iter()
                .filter_map(|f| k.get(f))
                .filter(|n| !s.node(*n).flow)
                .find_map(|n| dash_style(text, s, n))
                .unwrap_or_else(|| (String::new(), " ".into()));
            let mut t = text.clone();
            if !t.is_empty() && !t.ends_with('\n') {
                t.push_str(eol);
            }
            t.push_str(&format!("patches:{eol}{}{eol}", block(&indent, &gap)));
            t
        }
    };
    // The guard: the kustomization reads as before plus one `patches` entry.
    let after = yaml::parse(&out).map_err(|e| format!("the result does not parse: {e}"))?;
    let mut want = k
        .root
        .map(|r| to_json(s, r))
        .unwrap_or(Value::Object(Default::default()));
    let list = want
        .as_object_mut()
        .ok_or("not a mapping")?
        .entry("patches")
        .or_insert(Value::Array(Vec::new()));
    if list.is_null() {
        *list = Value::Array(Vec::new());
    }
    list.as_array_mut()
        .ok_or("patches: is not a list")?
        .push(if target.is_empty() {
            serde_json::json!({ "path": entry })
        } else {
            let fields: serde_json::Map<String, Value> = target
                .iter()
                .map(|(key, v)| (key.to_string(), Value::String(v.clone())))
                .collect();
            serde_json::json!({ "path": entry, "target": fields })
        });
    let got = after
        .docs
        .first()
        .and_then(|d| d.root)
        .map(|r| to_json(&after, r))
        .unwrap_or_default();
    if want != got || after.docs.len() != s.docs.len().max(1) {
        return Err("refusing to write, adding the patch entry would change more".into());
    }
    Ok(out)
}

pub(super) fn yaml_scalar(v: &str) -> String {
    if edit::plain_safe(v) {
        v.to_string()
    } else {
        serde_json::to_string(v).unwrap_or_default()
    }
}

/// A name for a new patch file about `id` in the root `k`: `NAME-SUFFIX.yaml`, numbered when
/// the name is taken.
pub(super) fn free_name(fs: Fs, k: &Kust, id: &Id, suffix: &str) -> String {
    let safe: String = id
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("{safe}-{suffix}.yaml");
    let mut n = 2;
    while fs.is_file(&k.dir.join(&name)) {
        name = format!("{safe}-{suffix}-{n}.yaml");
        n += 1;
    }
    name
}

/// The line ending the kustomization uses.
pub(super) fn eol(k: &Kust) -> &'static str {
    if k.text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// A new patch file `name` (in the root `k`) holding `text`, listed in the kustomization's
/// `patches:` with `target`: the two files to write, and the edit that lists it.
pub(super) fn listed_patch(
    k: &Kust,
    name: &str,
    text: String,
    target: &[(&str, String)],
) -> Result<(Vec<(PathBuf, String)>, Edit), ManifestError> {
    let kust_text =
        append_patch_entry(k, name, target).map_err(|why| ManifestError::CannotEdit {
            file: k.file.clone(),
            document: 1,
            field: "patches".into(),
            reason: why,
        })?;
    let index = k.items("patches").len();
    let listing = Edit {
        file: k.file.clone(),
        document: 1,
        path: vec![
            PathSeg::Key("patches".into()),
            PathSeg::Index(index),
            PathSeg::Key("path".into()),
        ],
        old: None,
        new: name.to_string(),
        kind: ScalarKind::Text,
        insert_after: Vec::new(),
    };
    Ok((
        vec![(k.dir.join(name), text), (k.file.clone(), kust_text)],
        listing,
    ))
}

/// A new strategic-merge patch in the target root that sets the weight of `id`.
pub(super) fn new_patch(
    fs: Fs,
    k: &Kust,
    obj: &Obj,
    id: &Id,
    new: &str,
) -> Result<Change, ManifestError> {
    let name = free_name(fs, k, id, "canary-weight");
    let file = k.dir.join(&name);
    let eol = eol(k);
    let api = obj.value["apiVersion"]
        .as_str()
        .unwrap_or("networking.k8s.io/v1");
    let mut lines = vec![
        format!("apiVersion: {api}"),
        "kind: Ingress".to_string(),
        "metadata:".to_string(),
        format!("  name: {}", yaml_scalar(&id.name)),
    ];
    if let Some(ns) = &id.namespace {
        lines.push(format!("  namespace: {}", yaml_scalar(ns)));
    }
    lines.push("  annotations:".into());
    lines.push(format!("    {}: \"{new}\"", nginx::WEIGHT));
    let text = format!("{}{eol}", lines.join(eol));
    let (files, listing) = listed_patch(k, &name, text, &[])?;
    Ok(Change {
        files,
        edits: vec![
            Edit {
                file: file.clone(),
                document: 1,
                path: weight_path(None),
                old: None,
                new: new.to_string(),
                kind: ScalarKind::String,
                insert_after: Vec::new(),
            },
            listing,
        ],
        created: vec![file],
    })
}
