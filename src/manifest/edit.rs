//! Edits as values, and the one place that turns them into bytes.
//!
//! An `Edit` names a file, a document, a YAML path and the old and new value. `apply` splices
//! the new value into the exact byte span of the old one (keeping its quoting), or adds one
//! line (or one flow entry) where the key is missing, using the neighbours' indentation and
//! the file's line ending. Every result is parsed again and compared with the original: only
//! the target may differ, or nothing is written (the semantic guard).

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{ManifestError, SourceFile};
use crate::yaml::{NodeId, NodeKind, Stream, Style};

/// One step of a YAML path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// How the new value must be typed in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScalarKind {
    /// A string field (Kubernetes annotations): written quoted unless the old value was a
    /// quoted string already (then its quote style is kept).
    String,
    /// An integer field (Gateway API weights): written plain.
    Int,
    /// A string that keeps the old value's style: plain stays plain where the new value reads
    /// back as the same string (container images), else it is double-quoted.
    Text,
}

/// A change to one scalar, as a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub file: PathBuf,
    /// 1-based document index in the file.
    pub document: usize,
    /// From the document root.
    pub path: Vec<PathSeg>,
    /// The current value, `None` when the key is missing.
    pub old: Option<String>,
    pub new: String,
    pub kind: ScalarKind,
    /// Sibling keys after which a missing key is best added, in order of preference.
    #[serde(skip)]
    pub insert_after: Vec<String>,
}

impl Edit {
    /// `metadata.annotations["nginx.ingress.kubernetes.io/canary-weight"]` style.
    pub fn field(&self) -> String {
        render_path(&self.path)
    }
}

/// A YAML path as people write it.
pub(crate) fn render_path(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Key(k) => out.push_str(&format!("[{k:?}]")),
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The result of applying edits to one file: the new text and a unified diff.
#[derive(Debug, Clone, Serialize)]
pub struct EditOutcome {
    pub edits: Vec<Edit>,
    /// Files whose bytes change, with their new contents (empty when nothing changes).
    #[serde(skip)]
    pub changed: Vec<(PathBuf, String)>,
    pub diff: String,
}

impl EditOutcome {
    pub fn changed_files(&self) -> Vec<PathBuf> {
        self.changed.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Write the changed files under `dir` (atomically: temp file, then rename).
    pub fn write(&self, dir: &Path) -> Result<(), ManifestError> {
        for (rel, text) in &self.changed {
            let path = dir.join(rel);
            let err = |source| ManifestError::Write {
                file: rel.clone(),
                source,
            };
            let parent = path.parent().unwrap_or(dir);
            let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(err)?;
            std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
            if let Ok(meta) = std::fs::metadata(&path) {
                std::fs::set_permissions(tmp.path(), meta.permissions()).map_err(err)?;
            }
            tmp.persist(&path).map_err(|e| err(e.error))?;
        }
        Ok(())
    }
}

/// A byte range to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Splice {
    range: Range<usize>,
    text: String,
}

/// Apply edits (all to `file`), check them, and render the diff. Writes nothing.
pub fn apply(file: &SourceFile, edits: &[Edit]) -> Result<EditOutcome, ManifestError> {
    let mut splices = Vec::new();
    for edit in edits {
        if let Some(s) = splice_for(file, edit)? {
            splices.push(s);
        }
    }
    splices.sort_by_key(|s| s.range.start);
    let mut text = String::with_capacity(file.text.len() + 64);
    let mut at = 0;
    for s in &splices {
        text.push_str(&file.text[at..s.range.start]);
        text.push_str(&s.text);
        at = s.range.end;
    }
    text.push_str(&file.text[at..]);
    if splices.is_empty() || text == file.text {
        return Ok(EditOutcome {
            edits: edits.to_vec(),
            changed: Vec::new(),
            diff: String::new(),
        });
    }
    guard(file, &text, edits)?;
    let diff = unified_diff(&file.path, &file.text, &text);
    Ok(EditOutcome {
        edits: edits.to_vec(),
        changed: vec![(file.path.clone(), text)],
        diff,
    })
}

/// `diff -u` of one file, with `a/` and `b/` prefixes as git prints them.
pub(crate) fn unified_diff(path: &Path, old: &str, new: &str) -> String {
    let p = path.display();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{p}"), &format!("b/{p}"))
        .to_string()
}

fn cannot(file: &SourceFile, edit: &Edit, reason: impl Into<String>) -> ManifestError {
    ManifestError::CannotEdit {
        file: file.path.clone(),
        document: edit.document,
        field: edit.field(),
        reason: reason.into(),
    }
}

fn doc_root(file: &SourceFile, edit: &Edit) -> Result<NodeId, ManifestError> {
    file.stream
        .docs
        .get(edit.document.wrapping_sub(1))
        .and_then(|d| d.root)
        .ok_or_else(|| cannot(file, edit, "no such document"))
}

/// Render `value` as a scalar in the given style.
fn render_scalar(value: &str, kind: ScalarKind, old_style: Option<Style>) -> String {
    match (kind, old_style) {
        (ScalarKind::Int, _) => value.to_string(),
        (ScalarKind::Text, Some(Style::Plain) | None) if plain_safe(value) => value.to_string(),
        (_, Some(Style::SingleQuoted)) => format!("'{}'", value.replace('\'', "''")),
        _ => serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\"")),
    }
}

fn splice_for(file: &SourceFile, edit: &Edit) -> Result<Option<Splice>, ManifestError> {
    let s = &file.stream;
    let mut node = doc_root(file, edit)?;
    for (depth, seg) in edit.path.iter().enumerate() {
        let next = match seg {
            PathSeg::Key(k) => {
                if !s.is_map(node) {
                    return Err(cannot(
                        file,
                        edit,
                        format!("{} is not a mapping", render_path(&edit.path[..depth])),
                    ));
                }
                s.get(node, k)
            }
            PathSeg::Index(i) => s.items(node).get(*i).copied(),
        };
        match next {
            Some(n) => node = n,
            None => {
                let keys: Option<Vec<&str>> = edit.path[depth..]
                    .iter()
                    .map(|p| match p {
                        PathSeg::Key(k) => Some(k.as_str()),
                        PathSeg::Index(_) => None,
                    })
                    .collect();
                let keys = keys.ok_or_else(|| cannot(file, edit, "a sequence item is missing"))?;
                return insert(file, edit, node, &keys).map(Some);
            }
        }
    }
    if matches!(s.node(node).kind, NodeKind::Alias(_)) {
        return Err(cannot(
            file,
            edit,
            "the value is an alias (*name); edit the anchored value instead",
        ));
    }
    let n = s.node(node);
    let NodeKind::Scalar { value, style, .. } = &n.kind else {
        return Err(cannot(file, edit, "the value is not a scalar"));
    };
    if matches!(style, Style::Literal | Style::Folded) {
        return Err(cannot(
            file,
            edit,
            "the value is a block scalar (| or >); write it as a plain or quoted string",
        ));
    }
    let keep_style = match (edit.kind, style) {
        (ScalarKind::String, Style::Plain) => None,
        (_, st) => Some(*st),
    };
    let text = render_scalar(&edit.new, edit.kind, keep_style);
    if *value == edit.new && file.text.get(n.span.clone()) == Some(text.as_str()) {
        return Ok(None);
    }
    Ok(Some(Splice {
        range: n.span.clone(),
        text,
    }))
}

/// A plain scalar that YAML reads back as this same string (not a number, bool or null, no
/// indicator characters).
pub(crate) fn plain_safe(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+".contains(c))
        && !v.starts_with(['-', '.', ':', '@'])
        && !v.contains(": ")
        && v.parse::<f64>().is_err()
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
}

/// Line ending of the line holding byte `at` (or the file's first), defaulting to `\n`.
fn eol_near(text: &str, at: usize) -> &'static str {
    let rest = &text[at.min(text.len())..];
    let line_end = rest.find('\n').map(|i| at + i);
    let probe = line_end.or_else(|| text.find('\n'));
    match probe {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

/// Byte just past the line break of the line holding `at` (or the end of text).
fn next_line_start(text: &str, at: usize) -> Option<usize> {
    text[at..].find('\n').map(|i| at + i + 1)
}

/// The indentation step of the file: the smallest positive difference between a block
/// mapping key's column and its parent key's column. Two spaces when nothing tells.
fn indent_step(s: &Stream) -> usize {
    let mut best: Option<usize> = None;
    for n in &s.nodes {
        if let NodeKind::Map(entries) = &n.kind {
            if n.flow {
                continue;
            }
            for (k, v) in entries {
                let (kn, vn) = (s.node(*k), s.node(*v));
                if let NodeKind::Map(children) = &vn.kind {
                    if vn.flow {
                        continue;
                    }
                    if let Some((ck, _)) = children.first() {
                        let c = s.node(*ck).col;
                        if c > kn.col {
                            let d = c - kn.col;
                            best = Some(best.map_or(d, |b| b.min(d)));
                        }
                    }
                }
            }
        }
    }
    best.unwrap_or(2)
}

fn yaml_key(key: &str) -> String {
    // Annotation keys are plain-safe; anything odd is double-quoted.
    let plain_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !key.starts_with(['-', '.', '/']);
    if plain_ok {
        key.to_string()
    } else {
        serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\""))
    }
}

/// Add `keys` (the missing tail of the path) under the existing mapping `map`.
fn insert(
    file: &SourceFile,
    edit: &Edit,
    map: NodeId,
    keys: &[&str],
) -> Result<Splice, ManifestError> {
    let s = &file.stream;
    let text = &file.text;
    let map_node = s.node(s.resolve(map));
    if !s.is_map(map) {
        return Err(cannot(
            file,
            edit,
            format!("cannot add {:?}: its parent is not a mapping", keys[0]),
        ));
    }
    if s.resolve(map) != map || map_node.anchored {
        return Err(cannot(
            file,
            edit,
            "its parent mapping is shared through an anchor; add the key by hand",
        ));
    }
    let value = render_scalar(&edit.new, edit.kind, None);
    let entries = s.entries(map);
    if map_node.flow {
        // `{a: 1}` -> `{a: 1, key: "v"}`; nested missing keys become nested flow maps.
        let mut inner = value;
        for k in keys[1..].iter().rev() {
            inner = format!("{{{}: {inner}}}", yaml_key(k));
        }
        let entry = format!("{}: {inner}", yaml_key(keys[0]));
        return Ok(match entries.last() {
            Some((_, v)) => {
                let end = s.node(*v).span.end;
                Splice {
                    range: end..end,
                    text: format!(", {entry}"),
                }
            }
            None => {
                let close = map_node.span.end.saturating_sub(1);
                Splice {
                    range: close..close,
                    text: entry,
                }
            }
        });
    }
    let Some((first_key, _)) = entries.first() else {
        return Err(cannot(file, edit, "empty block mapping"));
    };
    let fk = s.node(*first_key);
    let indent_start = line_start(text, fk.span.start);
    let lead = &text[indent_start..fk.span.start];
    // A mapping that is a sequence item (`- name: x`) starts after its `- `; its keys line up
    // with the first one, so a new key is indented to that column and goes after a sibling.
    let item_lead = lead.contains('-')
        && lead.chars().all(|c| c == ' ' || c == '-')
        && !lead.contains("--")
        && lead.ends_with(' ');
    if !lead.chars().all(|c| c == ' ') && !item_lead {
        return Err(cannot(
            file,
            edit,
            "the mapping's first key does not start its own line; add the key by hand",
        ));
    }
    let indent = " ".repeat(fk.span.start - indent_start);
    let step = " ".repeat(indent_step(s));
    let eol = eol_near(text, fk.span.start);
    let mut lines = Vec::new();
    for (depth, k) in keys.iter().enumerate() {
        let pad = format!("{indent}{}", step.repeat(depth));
        if depth + 1 == keys.len() {
            lines.push(format!("{pad}{}: {value}", yaml_key(k)));
        } else {
            lines.push(format!("{pad}{}:", yaml_key(k)));
        }
    }
    let block = lines.join(eol);

    // Prefer to add right after a named sibling written on one line, else before the first key.
    let after = edit.insert_after.iter().find_map(|want| {
        let (k, v) = s.entry(map, want)?;
        let (kn, vn) = (s.node(k), s.node(s.resolve(v)));
        let one_line = matches!(vn.kind, NodeKind::Scalar { style, .. } if !matches!(style, Style::Literal | Style::Folded))
            && vn.line == kn.line;
        one_line.then_some(s.node(v).span.end.max(vn.span.end))
    });
    Ok(match after {
        Some(end) => match next_line_start(text, end) {
            Some(at) => Splice {
                range: at..at,
                text: format!("{block}{eol}"),
            },
            // The sibling is on the last line and the file has no final newline.
            None => Splice {
                range: text.len()..text.len(),
                text: format!("{eol}{block}"),
            },
        },
        None if item_lead => {
            return Err(cannot(
                file,
                edit,
                "the mapping starts on its sequence item's `- ` line and has no one-line sibling to add the key after; add it by hand",
            ))
        }
        None => Splice {
            range: indent_start..indent_start,
            text: format!("{block}{eol}"),
        },
    })
}

/// Parse the edited text and compare with the original: every document must be equal except
/// at each edit's path, where the new value must be.
fn guard(file: &SourceFile, new_text: &str, edits: &[Edit]) -> Result<(), ManifestError> {
    let first = edits.first();
    let fail = |detail: String| ManifestError::Guard {
        file: file.path.clone(),
        document: first.map_or(0, |e| e.document),
        field: first.map(|e| e.field()).unwrap_or_default(),
        detail,
    };
    let after =
        crate::yaml::parse(new_text).map_err(|e| fail(format!("result does not parse: {e}")))?;
    if after.docs.len() != file.stream.docs.len() {
        return Err(fail("document count changed".into()));
    }
    for (i, (a, b)) in file.stream.docs.iter().zip(&after.docs).enumerate() {
        let mut want = a.root.map(|r| file.stream.to_value(r)).unwrap_or_default();
        for e in edits.iter().filter(|e| e.document == i + 1) {
            let plain = match e.kind {
                ScalarKind::String => false,
                ScalarKind::Int => true,
                ScalarKind::Text => plain_written(&after, b.root, &e.path),
            };
            let tagged = if plain {
                format!("plain:{}", e.new)
            } else {
                format!("str:{}", e.new)
            };
            set_value(&mut want, &e.path, serde_json::Value::String(tagged));
        }
        let got = b.root.map(|r| after.to_value(r)).unwrap_or_default();
        if want != got {
            return Err(fail(format!("document {} differs beyond the edit", i + 1)));
        }
    }
    Ok(())
}

/// Was the scalar at `path` in the edited stream written plain?
fn plain_written(s: &Stream, root: Option<NodeId>, path: &[PathSeg]) -> bool {
    let Some(mut node) = root else { return false };
    for seg in path {
        let next = match seg {
            PathSeg::Key(k) => s.get(node, k),
            PathSeg::Index(i) => s.items(node).get(*i).copied(),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    matches!(
        s.node(s.resolve(node)).kind,
        NodeKind::Scalar {
            style: Style::Plain,
            ..
        }
    )
}

fn set_value(v: &mut serde_json::Value, path: &[PathSeg], new: serde_json::Value) {
    use serde_json::Value;
    let Some((head, rest)) = path.split_first() else {
        *v = new;
        return;
    };
    let child = match (head, v) {
        (PathSeg::Key(k), Value::Object(m)) => m
            .entry(k.clone())
            .or_insert(Value::Object(Default::default())),
        (PathSeg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
            Some(c) => c,
            None => return,
        },
        (PathSeg::Key(k), other) => {
            // A null (`annotations:` with no value) becomes a mapping when a key is added.
            *other = Value::Object(Default::default());
            match other {
                Value::Object(m) => m
                    .entry(k.clone())
                    .or_insert(Value::Object(Default::default())),
                _ => return,
            }
        }
        _ => return,
    };
    set_value(child, rest, new);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile::parse(PathBuf::from("f.yaml"), text.to_string()).unwrap()
    }

    fn weight_edit(doc: usize, new: &str) -> Edit {
        Edit {
            file: PathBuf::from("f.yaml"),
            document: doc,
            path: ["metadata", "annotations", "w"]
                .iter()
                .map(|k| PathSeg::Key(k.to_string()))
                .collect(),
            old: None,
            new: new.into(),
            kind: ScalarKind::String,
            insert_after: vec!["c".into()],
        }
    }

    fn run(text: &str, new: &str) -> String {
        let f = file(text);
        let out = apply(&f, &[weight_edit(1, new)]).unwrap();
        out.changed
            .first()
            .map(|(_, t)| t.clone())
            .unwrap_or(f.text)
    }

    #[test]
    fn keeps_quote_style() {
        assert_eq!(
            run("metadata:\n  annotations:\n    w: '10' # x\n", "25"),
            "metadata:\n  annotations:\n    w: '25' # x\n"
        );
        assert_eq!(
            run("metadata:\n  annotations:\n    w: \"10\"\n", "25"),
            "metadata:\n  annotations:\n    w: \"25\"\n"
        );
        assert_eq!(
            run("metadata:\n  annotations:\n    w: 10\n", "25"),
            "metadata:\n  annotations:\n    w: \"25\"\n"
        );
    }

    #[test]
    fn adds_a_missing_key_after_the_preferred_sibling_with_crlf() {
        assert_eq!(
            run("metadata:\r\n  annotations:\r\n     a: x\r\n     c: \"true\"\r\n     z: y\r\n", "5"),
            "metadata:\r\n  annotations:\r\n     a: x\r\n     c: \"true\"\r\n     w: \"5\"\r\n     z: y\r\n"
        );
    }

    #[test]
    fn adds_annotations_under_metadata() {
        assert_eq!(
            run("metadata:\n    name: x\nspec: {}\n", "5"),
            "metadata:\n    annotations:\n        w: \"5\"\n    name: x\nspec: {}\n"
        );
    }

    #[test]
    fn flow_maps_get_a_flow_entry() {
        assert_eq!(
            run("metadata: {annotations: {c: \"true\"}}\n", "5"),
            "metadata: {annotations: {c: \"true\", w: \"5\"}}\n"
        );
        assert_eq!(
            run("metadata:\n  annotations: {}\n", "5"),
            "metadata:\n  annotations: {w: \"5\"}\n"
        );
    }

    #[test]
    fn last_line_without_newline() {
        assert_eq!(
            run("metadata:\n  annotations:\n    c: \"true\"", "5"),
            "metadata:\n  annotations:\n    c: \"true\"\n    w: \"5\""
        );
    }

    #[test]
    fn same_value_changes_nothing() {
        let f = file("metadata:\n  annotations:\n    w: \"10\"\n");
        let out = apply(&f, &[weight_edit(1, "10")]).unwrap();
        assert!(out.changed.is_empty());
        assert!(out.diff.is_empty());
    }

    #[test]
    fn aliases_and_block_scalars_are_refused() {
        let f = file("x: &v \"1\"\nmetadata:\n  annotations:\n    w: *v\n");
        assert!(matches!(
            apply(&f, &[weight_edit(1, "2")]),
            Err(ManifestError::CannotEdit { .. })
        ));
        let f = file("metadata:\n  annotations:\n    w: |\n      10\n");
        assert!(matches!(
            apply(&f, &[weight_edit(1, "2")]),
            Err(ManifestError::CannotEdit { .. })
        ));
    }

    #[test]
    fn guard_catches_a_shared_anchor() {
        // The weight is anchored and reused elsewhere: changing it would change both.
        let f = file("metadata:\n  annotations:\n    w: &v \"1\"\nother: *v\n");
        assert!(matches!(
            apply(&f, &[weight_edit(1, "2")]),
            Err(ManifestError::Guard { .. })
        ));
    }

    #[test]
    fn path_renders_like_people_write_it() {
        let p = vec![
            PathSeg::Key("metadata".into()),
            PathSeg::Key("annotations".into()),
            PathSeg::Key("nginx.ingress.kubernetes.io/canary-weight".into()),
        ];
        assert_eq!(
            render_path(&p),
            "metadata.annotations[\"nginx.ingress.kubernetes.io/canary-weight\"]"
        );
    }
}
