//! A kustomization's patches (`patches`, `patchesStrategicMerge`, `patchesJson6902`, inline
//! or in files) read, matched to the rendered objects by their target or by the object they
//! name, and applied, moving the origins of the weights with them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use super::object::split_api;
use super::origins;
use super::patch;
use super::render::{key, Build};
use super::{is_remote, to_json, Kust, Loc, Obj, Origin, OriginKind, Refusal};
use crate::manifest::PathSeg;
use crate::router::gateway;
use crate::yaml::{self, NodeId, NodeKind, Stream, Style};

/// A patch's text and where it came from.
struct PatchText {
    /// The file holding it (the kustomization for an inline patch).
    file: PathBuf,
    stream: Stream,
    /// For an inline patch: its scalar's path in the kustomization and the file line of the
    /// patch text's line 1 minus one.
    inline: Option<(Vec<PathSeg>, usize)>,
}

impl PatchText {
    fn line(&self, node: NodeId) -> usize {
        let l = self.stream.node(node).line;
        match &self.inline {
            Some((_, base)) => base + l,
            None => l,
        }
    }

    fn loc(&self, document: usize, path: Vec<PathSeg>) -> Loc {
        match &self.inline {
            Some((scalar, _)) => Loc::Inline {
                scalar: scalar.clone(),
                document,
                path,
            },
            None => Loc::Yaml { document, path },
        }
    }

    fn is_json6902(&self) -> bool {
        self.stream
            .docs
            .first()
            .and_then(|d| d.root)
            .is_some_and(|r| matches!(self.stream.node(r).kind, NodeKind::Seq(_)))
    }
}

/// A patch `target:` (or none: the patch names its object).
#[derive(Debug, Default)]
struct Selector {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<regex::Regex>,
    namespace: Option<regex::Regex>,
    labels: Vec<(String, Option<String>, bool)>,
    annotations: Vec<(String, Option<String>, bool)>,
}

fn anchored(k: &Kust, pat: &str) -> Result<regex::Regex, Refusal> {
    regex::Regex::new(&format!("^(?:{pat})$")).map_err(|e| {
        k.refuse(
            None,
            format!("target {pat:?} is not a regular expression: {e}"),
        )
    })
}

/// `a=b,c!=d,e,!f`; set-based selectors (`in`, `notin`) are refused.
fn parse_label_selector(
    k: &Kust,
    sel: &str,
) -> Result<Vec<(String, Option<String>, bool)>, Refusal> {
    let mut out = Vec::new();
    for part in sel.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains(" in ") || part.contains(" notin ") || part.contains('(') {
            return Err(k.refuse(
                None,
                format!("target selector {sel:?}: set-based selectors are not resolved"),
            ));
        }
        if let Some((a, b)) = part.split_once("!=") {
            out.push((a.trim().into(), Some(b.trim().into()), false));
        } else if let Some((a, b)) = part.split_once("==").or_else(|| part.split_once('=')) {
            out.push((a.trim().into(), Some(b.trim().into()), true));
        } else if let Some(a) = part.strip_prefix('!') {
            out.push((a.trim().into(), None, false));
        } else {
            out.push((part.into(), None, true));
        }
    }
    Ok(out)
}

fn selector_matches(
    set: &[(String, Option<String>, bool)],
    map: Option<&serde_json::Map<String, Value>>,
) -> bool {
    set.iter().all(|(k, v, eq)| {
        let have = map.and_then(|m| m.get(k)).map(|x| match x {
            Value::String(s) => s.clone(),
            o => o.to_string(),
        });
        match (v, eq) {
            (None, true) => have.is_some(),
            (None, false) => have.is_none(),
            (Some(v), true) => have.as_deref() == Some(v.as_str()),
            (Some(v), false) => have.as_deref() != Some(v.as_str()),
        }
    })
}

impl Selector {
    fn parse(k: &Kust, node: NodeId) -> Result<Selector, Refusal> {
        let s = &k.stream;
        let get = |f: &str| s.get(node, f).and_then(|n| s.str(n)).map(String::from);
        Ok(Selector {
            group: get("group"),
            version: get("version"),
            kind: get("kind"),
            name: get("name").map(|p| anchored(k, &p)).transpose()?,
            namespace: get("namespace").map(|p| anchored(k, &p)).transpose()?,
            labels: get("labelSelector")
                .map(|l| parse_label_selector(k, &l))
                .transpose()?
                .unwrap_or_default(),
            annotations: get("annotationSelector")
                .map(|l| parse_label_selector(k, &l))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Kustomize's `Select`: the original or the current id matches.
    fn matches(&self, o: &Obj) -> bool {
        let (g, v) = o.group_version();
        if self.kind.as_deref().is_some_and(|x| x != o.kind())
            || self.group.as_deref().is_some_and(|x| x != g)
            || self.version.as_deref().is_some_and(|x| x != v)
        {
            return false;
        }
        let ends = [o.ids.first(), o.ids.last()];
        if let Some(re) = &self.namespace {
            let ok = ends
                .iter()
                .flatten()
                .any(|id| re.is_match(id.namespace.as_deref().unwrap_or("default")));
            if !ok {
                return false;
            }
        }
        if let Some(re) = &self.name {
            if !ends.iter().flatten().any(|id| re.is_match(&id.name)) {
                return false;
            }
        }
        selector_matches(&self.labels, o.labels())
            && selector_matches(&self.annotations, o.annotations())
    }
}

/// Does a strategic-merge patch (its document root) name this object? Kustomize matches the
/// patch's kind, group, name and namespace against any id the object had.
fn names_object(p: &Value, o: &Obj) -> bool {
    let (pg, _) = split_api(p["apiVersion"].as_str().unwrap_or(""));
    let (og, _) = o.group_version();
    if p["kind"].as_str() != Some(o.kind()) || (pg != og) {
        return false;
    }
    let name = p["metadata"]["name"].as_str().unwrap_or("");
    let ns = p["metadata"]["namespace"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    o.ids
        .iter()
        .any(|id| id.name == name && id.namespace.as_deref().unwrap_or("default") == ns)
}

impl Build<'_> {
    fn patch_file(&self, k: &Kust, entry: &str, node: NodeId) -> Result<PatchText, Refusal> {
        if is_remote(entry) {
            return Err(k.refuse(Some(node), format!("patch {entry} is remote")));
        }
        let file = k.local(entry)?;
        if !self.fs.is_file(&file) {
            return Err(k.refuse(Some(node), format!("patch {entry}: no such file")));
        }
        let text = self.fs.read(&file)?;
        let stream =
            yaml::parse(&text).map_err(|e| Refusal::new(&file, format!("not YAML: {e}")))?;
        Ok(PatchText {
            file,
            stream,
            inline: None,
        })
    }

    fn patch_inline(
        &self,
        k: &Kust,
        node: NodeId,
        scalar: Vec<PathSeg>,
    ) -> Result<PatchText, Refusal> {
        let text = k.stream.str(node).unwrap_or("").to_string();
        let stream = yaml::parse(&text)
            .map_err(|e| k.refuse(Some(node), format!("inline patch is not YAML: {e}")))?;
        let n = k.stream.node(node);
        // A block scalar's text starts on the line after its `|` or `>` header.
        let base = match &n.kind {
            NodeKind::Scalar {
                style: Style::Literal | Style::Folded,
                ..
            } => {
                let probe = (n.span.start + 1).min(k.text.len());
                k.text[..probe]
                    .rfind(['|', '>'])
                    .map(|bar| k.text[..bar].matches('\n').count() + 1)
                    .unwrap_or(n.line)
            }
            _ => n.line - 1,
        };
        Ok(PatchText {
            file: k.file.clone(),
            stream,
            inline: Some((scalar, base)),
        })
    }

    pub(super) fn patches_strategic_merge(
        &self,
        k: &Kust,
        objs: &mut Vec<Obj>,
    ) -> Result<(), Refusal> {
        for (i, node) in k.items("patchesStrategicMerge").into_iter().enumerate() {
            let Some(s) = k.stream.str(node) else {
                return Err(k.refuse(Some(node), "patchesStrategicMerge entry is not a string"));
            };
            let p = if s.contains('\n') {
                self.patch_inline(
                    k,
                    node,
                    vec![key("patchesStrategicMerge"), PathSeg::Index(i)],
                )?
            } else {
                self.patch_file(k, s, node)?
            };
            self.apply_smp(k, &p, None, objs)?;
        }
        Ok(())
    }

    pub(super) fn patches(&self, k: &Kust, objs: &mut Vec<Obj>) -> Result<(), Refusal> {
        for (i, item) in k.items("patches").into_iter().enumerate() {
            let s = &k.stream;
            let p = if let Some(path) = s.get(item, "path").and_then(|n| s.str(n)) {
                self.patch_file(k, path, item)?
            } else if let Some(n) = s.get(item, "patch") {
                self.patch_inline(k, n, vec![key("patches"), PathSeg::Index(i), key("patch")])?
            } else {
                return Err(k.refuse(Some(item), "patches entry has neither path nor patch"));
            };
            let target = s
                .get(item, "target")
                .map(|t| Selector::parse(k, t))
                .transpose()?;
            if p.is_json6902() {
                let Some(target) = target else {
                    return Err(k.refuse(Some(item), "a JSON 6902 patch needs a target"));
                };
                self.apply_json6902(k, &p, &target, objs)?;
            } else {
                self.apply_smp(k, &p, target.as_ref(), objs)?;
            }
        }
        Ok(())
    }

    pub(super) fn patches_json6902(&self, k: &Kust, objs: &mut [Obj]) -> Result<(), Refusal> {
        for (i, item) in k.items("patchesJson6902").into_iter().enumerate() {
            let s = &k.stream;
            let p = if let Some(path) = s.get(item, "path").and_then(|n| s.str(n)) {
                self.patch_file(k, path, item)?
            } else if let Some(n) = s.get(item, "patch") {
                self.patch_inline(
                    k,
                    n,
                    vec![key("patchesJson6902"), PathSeg::Index(i), key("patch")],
                )?
            } else {
                return Err(k.refuse(
                    Some(item),
                    "patchesJson6902 entry has neither path nor patch",
                ));
            };
            let Some(t) = s.get(item, "target") else {
                return Err(k.refuse(Some(item), "a JSON 6902 patch needs a target"));
            };
            let target = Selector::parse(k, t)?;
            if !p.is_json6902() && !p.stream.docs.iter().all(|d| d.root.is_none()) {
                return Err(Refusal::new(&p.file, "not a list of JSON 6902 operations"));
            }
            self.apply_json6902(k, &p, &target, objs)?;
        }
        Ok(())
    }

    fn apply_smp(
        &self,
        k: &Kust,
        p: &PatchText,
        target: Option<&Selector>,
        objs: &mut Vec<Obj>,
    ) -> Result<(), Refusal> {
        let s = &p.stream;
        for doc in &s.docs {
            let Some(root) = doc.root else { continue };
            let mut value = to_json(s, root);
            if value.is_null() {
                continue;
            }
            let make = |n: NodeId, path: &[PathSeg]| Origin {
                file: p.file.clone(),
                line: p.line(n),
                kind: OriginKind::Patch,
                by: k.dir.clone(),
                loc: Some(p.loc(doc.index, path.to_vec())),
            };
            let chosen: Vec<usize> = match target {
                Some(sel) => {
                    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove("name");
                        meta.remove("namespace");
                    }
                    (0..objs.len()).filter(|i| sel.matches(&objs[*i])).collect()
                }
                None => {
                    let hits: Vec<usize> = (0..objs.len())
                        .filter(|i| names_object(&value, &objs[*i]))
                        .collect();
                    let kind = value["kind"].as_str().unwrap_or("");
                    if hits.is_empty()
                        && (kind == "Ingress" || kind == gateway::KIND)
                        && self.kinds.contains(&kind)
                    {
                        return Err(Refusal::new(
                            &p.file,
                            format!(
                                "document {}: the patch names {kind} {} but {} renders no such {kind} (kustomize fails here)",
                                doc.index,
                                value["metadata"]["name"].as_str().unwrap_or("?"),
                                k.dir.display()
                            ),
                        ));
                    }
                    hits
                }
            };
            let mut deleted = BTreeSet::new();
            for i in chosen {
                let o = &mut objs[i];
                if patch::strategic_merge(&mut o.value, &value) == patch::Merged::Deleted {
                    deleted.insert(i);
                    continue;
                }
                let kind = o.kind().to_string();
                origins::strategic_merge(&kind, s, root, &mut o.origins, &make);
                o.remember_id();
            }
            let mut i = 0;
            objs.retain(|_| {
                i += 1;
                !deleted.contains(&(i - 1))
            });
        }
        Ok(())
    }

    fn apply_json6902(
        &self,
        k: &Kust,
        p: &PatchText,
        target: &Selector,
        objs: &mut [Obj],
    ) -> Result<(), Refusal> {
        let s = &p.stream;
        let Some(root) = p.stream.docs.first().and_then(|d| d.root) else {
            return Ok(());
        };
        let mut ops = Vec::new();
        for (i, item) in s.items(root).iter().enumerate() {
            let get = |f: &str| s.get(*item, f).and_then(|n| s.str(n)).map(String::from);
            let bad = |why: String| Refusal::new(&p.file, format!("line {}: {why}", p.line(*item)));
            let op = get("op").ok_or_else(|| bad("operation without op".into()))?;
            let path = patch::pointer_tokens(&get("path").unwrap_or_default()).map_err(bad)?;
            let from = get("from")
                .map(|f| patch::pointer_tokens(&f))
                .transpose()
                .map_err(bad)?;
            let value_node = s.get(*item, "value");
            let value = value_node.map(|n| to_json(s, n));
            // What a `move` or `copy` writes is decided there, but cannot be edited there.
            let moved = Origin {
                file: p.file.clone(),
                line: p.line(*item),
                kind: OriginKind::Json6902,
                by: k.dir.clone(),
                loc: None,
            };
            ops.push((
                patch::Op {
                    op,
                    path,
                    from,
                    value,
                },
                i,
                value_node,
                moved,
            ));
        }
        for o in objs.iter_mut().filter(|o| target.matches(o)) {
            let kind = o.kind().to_string();
            let name = o.qualified_name();
            for (op, i, value_node, moved) in &ops {
                let make = |n: NodeId, below: &[PathSeg]| {
                    let mut path = vec![PathSeg::Index(*i), key("value")];
                    path.extend(below.iter().cloned());
                    Origin {
                        file: p.file.clone(),
                        line: p.line(n),
                        kind: OriginKind::Json6902,
                        by: k.dir.clone(),
                        loc: Some(p.loc(1, path)),
                    }
                };
                let node = value_node.map(|n| (s, n));
                origins::json6902(&kind, &mut o.value, op, node, &mut o.origins, &make, moved)
                    .map_err(|why| {
                        Refusal::new(
                            &p.file,
                            format!(
                                "line {}: JSON 6902 {} fails on {kind} {name}: {why} (kustomize fails here)",
                                moved.line, op.op,
                            ),
                        )
                    })?;
            }
            o.remember_id();
        }
        Ok(())
    }
}
