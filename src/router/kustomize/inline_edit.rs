//! Setting a value inside an inline patch (a `|` block scalar of a kustomization), byte-exactly,
//! with the guard that nothing else changes meaning.

use serde_json::Value;

use super::to_json;
use crate::manifest::{PathSeg, ScalarKind, SourceFile};
use crate::yaml::{self, NodeId, NodeKind, Stream, Style};

fn walk(s: &Stream, root: NodeId, path: &[PathSeg]) -> Option<NodeId> {
    let mut n = root;
    for seg in path {
        n = match seg {
            PathSeg::Key(k) => s.get(n, k)?,
            PathSeg::Index(i) => *s.items(n).get(*i)?,
        };
    }
    Some(n)
}

/// The new value's text: an integer plain, a string quoted (in the old value's quotes).
fn scalar_text(new: &str, kind: ScalarKind, style: Style) -> Result<String, String> {
    match (kind, style) {
        (ScalarKind::Int, Style::Literal | Style::Folded) => {
            Err("the weight is a block scalar (| or >); write it as a plain integer".into())
        }
        (ScalarKind::Int, _) => Ok(new.to_string()),
        (_, Style::SingleQuoted) => Ok(format!("'{new}'")),
        (_, Style::DoubleQuoted | Style::Plain) => Ok(format!("\"{new}\"")),
        (_, Style::Literal | Style::Folded) => {
            Err("the weight is a block scalar (| or >); write it as a quoted string".into())
        }
    }
}

/// Set a scalar inside an inline patch (a `|` block scalar of the kustomization), byte-exactly,
/// and check the result: the kustomization parses to what it was but the patch text, and the
/// patch text parses to what it was but the one value.
pub(super) fn inline_splice(
    k: &SourceFile,
    scalar: &[PathSeg],
    document: usize,
    path: &[PathSeg],
    new: &str,
    kind: ScalarKind,
) -> Result<String, String> {
    let s = &k.stream;
    let root = s.docs.first().and_then(|d| d.root).ok_or("empty file")?;
    let node = walk(s, root, scalar).ok_or("the inline patch is gone")?;
    let n = s.node(node);
    let NodeKind::Scalar {
        value: inner,
        style: Style::Literal,
        ..
    } = &n.kind
    else {
        return Err("the inline patch is not a literal block (|); move it to a file".into());
    };
    let text = &k.text;
    // The header (`|`, `|-`, `|+`) is where the scalar starts, or just before its content.
    let probe = (n.span.start + 1).min(text.len());
    let bar = text[..probe]
        .rfind('|')
        .ok_or("cannot find the inline patch's |")?;
    let header_end = text[bar..]
        .find('\n')
        .map(|i| bar + i + 1)
        .ok_or("inline patch without lines")?;
    let header = text[bar..header_end].split('#').next().unwrap_or("");
    if header.chars().any(|c| c.is_ascii_digit()) {
        return Err("the inline patch has an explicit indentation indicator".into());
    }
    // File offsets of the content lines, past their indentation.
    let mut starts = Vec::new();
    let mut indent = None;
    let mut at = header_end;
    while at < text.len() {
        let end = text[at..]
            .find('\n')
            .map(|i| at + i + 1)
            .unwrap_or(text.len());
        let line = text[at..end].trim_end_matches(['\n', '\r']);
        let spaces = line.len() - line.trim_start_matches(' ').len();
        if !line.trim().is_empty() {
            let ind = *indent.get_or_insert(spaces);
            if spaces < ind {
                break;
            }
        }
        starts.push(at);
        at = end;
    }
    let indent = indent.ok_or("empty inline patch")?;
    let patch = yaml::parse(inner).map_err(|e| e.to_string())?;
    let proot = patch
        .docs
        .get(document.wrapping_sub(1))
        .and_then(|d| d.root)
        .ok_or("no such document in the inline patch")?;
    let target = walk(&patch, proot, path).ok_or("the weight is gone from the inline patch")?;
    let t = patch.node(target);
    let NodeKind::Scalar { style, .. } = &t.kind else {
        return Err("the weight is not a scalar".into());
    };
    let replacement = scalar_text(new, kind, *style)?;
    let line_idx = inner[..t.span.start].matches('\n').count();
    let line_start = inner[..t.span.start]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    if inner[t.span.start..t.span.end].contains('\n') {
        return Err("the weight spans lines".into());
    }
    let file_at = starts.get(line_idx).ok_or("line mapping failed")? + indent;
    let from = file_at + (t.span.start - line_start);
    let to = from + (t.span.end - t.span.start);
    if text.get(from..to) != inner.get(t.span.clone()) {
        return Err("the inline patch's bytes do not map onto the file".into());
    }
    let out = format!("{}{}{}", &text[..from], replacement, &text[to..]);
    // The guard.
    let after = yaml::parse(&out).map_err(|e| format!("the result does not parse: {e}"))?;
    if after.docs.len() != s.docs.len() {
        return Err("document count changed".into());
    }
    let aroot = after.docs[0].root.ok_or("empty result")?;
    let anode = walk(&after, aroot, scalar).ok_or("the inline patch moved")?;
    let new_inner = after
        .str(anode)
        .ok_or("the inline patch is no longer text")?;
    let mut want_k = to_json(s, root);
    let mut got_k = to_json(&after, aroot);
    set_json(&mut want_k, scalar, Value::Null);
    set_json(&mut got_k, scalar, Value::Null);
    let mut want_p: Vec<Value> = patch
        .docs
        .iter()
        .map(|d| d.root.map(|r| to_json(&patch, r)).unwrap_or_default())
        .collect();
    set_json(
        &mut want_p[document - 1],
        path,
        match kind {
            ScalarKind::Int => new.parse::<i64>().map_or(Value::Null, Value::from),
            _ => Value::String(new.to_string()),
        },
    );
    let np = yaml::parse(new_inner).map_err(|e| format!("the patch no longer parses: {e}"))?;
    let got_p: Vec<Value> = np
        .docs
        .iter()
        .map(|d| d.root.map(|r| to_json(&np, r)).unwrap_or_default())
        .collect();
    let others_same = s
        .docs
        .iter()
        .zip(&after.docs)
        .skip(1)
        .all(|(a, b)| a.root.map(|r| to_json(s, r)) == b.root.map(|r| to_json(&after, r)));
    if want_k != got_k || want_p != got_p || !others_same {
        return Err("refusing to write, the edit would change more than the value".into());
    }
    Ok(out)
}

fn set_json(v: &mut Value, path: &[PathSeg], new: Value) {
    let Some((head, rest)) = path.split_first() else {
        *v = new;
        return;
    };
    let child = match (head, v) {
        (PathSeg::Key(k), Value::Object(m)) => m.entry(k.clone()).or_insert(Value::Null),
        (PathSeg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
            Some(c) => c,
            None => return,
        },
        _ => return,
    };
    set_json(child, rest, new);
}
