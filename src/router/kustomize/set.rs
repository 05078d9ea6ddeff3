//! `set-weight` on a Kustomize layout: pick the rendered canary, edit the one place that
//! decides its weight in that root, and check the edit by rendering every root again.
//!
//! The place, in order: the origin of the rendered weight (the overlay's patch, or the base's
//! annotation) when no other root reads that file; else a new patch file in the target root,
//! listed in its `patches:`. Whatever is chosen is kept only if the target root renders
//! exactly what it did with the one weight changed and every other root renders exactly what
//! it did; otherwise nothing is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    display_dir, normalize, render_roots, routes, Fs, Id, Kust, Layout, Loc, Obj, Renders,
};
use crate::manifest::edit::{self, Edit, EditOutcome, PathSeg, ScalarKind};
use crate::manifest::{contains, ManifestError, Repo, Selector, SourceFile};
use crate::router::{self, nginx, Route};
use crate::yaml::{self, NodeId, NodeKind, Stream, Style};

/// What a selector can name: a canary rendered by a root, or a flat manifest's Ingress.
enum Candidate<'a> {
    Rendered {
        root: &'a Path,
        index: usize,
        route: Route,
    },
    Flat(Route),
}

impl Candidate<'_> {
    fn route(&self) -> &Route {
        match self {
            Candidate::Rendered { route, .. } | Candidate::Flat(route) => route,
        }
    }

    fn describe(&self) -> String {
        match self {
            Candidate::Rendered { root, route, .. } => format!(
                "{} (--overlay {})",
                route.qualified_name(),
                display_dir(root)
            ),
            Candidate::Flat(r) => r.describe(),
        }
    }
}

/// What a selector names in a repository with kustomizations: a canary rendered by a root, or
/// an Ingress of a flat manifest (a file no kustomization reads).
#[derive(Debug, Clone)]
pub enum Chosen {
    Rendered {
        root: PathBuf,
        /// Index of the object in the root's rendering ([`render_roots`]).
        index: usize,
        /// The rendered route, pointing at its source file and weight origin.
        route: Route,
    },
    Flat(Route),
}

impl Chosen {
    pub fn route(&self) -> &Route {
        match self {
            Chosen::Rendered { route, .. } | Chosen::Flat(route) => route,
        }
    }

    /// The root that renders it (`None`: a flat manifest).
    pub fn root(&self) -> Option<&Path> {
        match self {
            Chosen::Rendered { root, .. } => Some(root),
            Chosen::Flat(_) => None,
        }
    }
}

/// `--overlay` as a root of the layout (relative to `dir`, normalized), or why it is not one.
pub fn overlay_root(
    dir: &Path,
    layout: &Layout,
    overlay: Option<&Path>,
) -> Result<Option<PathBuf>, ManifestError> {
    let Some(o) = overlay else {
        return Ok(None);
    };
    if layout.is_empty() {
        return Err(ManifestError::Unresolved {
            file: o.to_path_buf(),
            reason: "--overlay names a kustomization, but the repository has none".into(),
        });
    }
    let rel = o.strip_prefix(dir).unwrap_or(o);
    let n = normalize(rel).ok_or_else(|| ManifestError::Unresolved {
        file: o.to_path_buf(),
        reason: "--overlay is outside the repository".into(),
    })?;
    if !layout.roots.contains(&n) {
        return Err(ManifestError::Unresolved {
            file: o.to_path_buf(),
            reason: format!(
                "--overlay is not a root kustomization; roots: {}",
                layout
                    .roots
                    .iter()
                    .map(|r| display_dir(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(Some(n))
}

/// Choose the Ingress `sel` names among what the roots render (`before`) and the flat
/// manifests, within the root `overlay` picks (already checked by [`overlay_root`]). The
/// error lists the candidates, each with the `--overlay` that picks it.
pub fn choose(
    dir: &Path,
    layout: &Layout,
    before: &Renders,
    sel: &Selector,
    overlay: Option<&Path>,
) -> Result<Chosen, ManifestError> {
    let mut cands: Vec<Candidate> = Vec::new();
    for (root, r) in before {
        if overlay.is_some_and(|o| o != root) {
            continue;
        }
        if let Ok(objs) = r {
            for (route, o) in routes(objs) {
                let index = objs.iter().position(|x| std::ptr::eq(x, o)).unwrap_or(0);
                cands.push(Candidate::Rendered { root, index, route });
            }
        }
    }
    // Flat manifests (files no kustomization reads) stay candidates unless --overlay is given.
    if overlay.is_none() {
        let name = sel.name.as_bytes().to_vec();
        let router = router::default_router();
        let mut repo =
            Repo::load_filtered(dir, &|b| router.may_contain_route(b) && contains(b, &name))?;
        repo.files.retain(|f| !layout.owns(&f.path));
        for f in &repo.files {
            cands.extend(router.routes(f).into_iter().map(Candidate::Flat));
        }
    }

    let named: Vec<&Candidate> = cands
        .iter()
        .filter(|c| c.route().name == sel.name)
        .collect();
    let chosen: Vec<&Candidate> = match &sel.namespace {
        Some(ns) => named
            .iter()
            .copied()
            .filter(|c| c.route().namespace.as_deref() == Some(ns.as_str()))
            .collect(),
        None => {
            let bare: Vec<&Candidate> = named
                .iter()
                .copied()
                .filter(|c| c.route().namespace.is_none())
                .collect();
            if bare.is_empty() {
                named.clone()
            } else {
                bare
            }
        }
    };
    match chosen.as_slice() {
        [Candidate::Rendered { root, index, route }] => Ok(Chosen::Rendered {
            root: root.to_path_buf(),
            index: *index,
            route: route.clone(),
        }),
        [Candidate::Flat(route)] => Ok(Chosen::Flat(route.clone())),
        [] => {
            // A root that cannot be rendered may be where it lives: say why, not "no match".
            for (root, r) in before {
                if overlay.is_some_and(|o| o != root) {
                    continue;
                }
                if let Err(refusal) = r {
                    let names_it = layout.reach.get(root).is_some_and(|files| {
                        files.iter().any(|f| {
                            std::fs::read(dir.join(f))
                                .is_ok_and(|b| contains(&b, sel.name.as_bytes()))
                        })
                    });
                    if names_it || overlay.is_some() {
                        return Err(refusal.clone().into());
                    }
                }
            }
            Err(ManifestError::NoMatch {
                selector: sel.to_string(),
                candidates: if named.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; Ingresses named {}: {}",
                        sel.name,
                        named
                            .iter()
                            .map(|c| c.describe())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            })
        }
        many => Err(ManifestError::Ambiguous {
            selector: sel.to_string(),
            candidates: many.iter().map(|c| c.describe()).collect(),
        }),
    }
}

/// Set the canary weight of the Ingress `selector` names, as rendered by the root `overlay`
/// picks (needed only when the name alone is ambiguous). Repositories without kustomizations
/// go through [`crate::manifest::set_weight`], unchanged.
pub fn set_weight(
    dir: &Path,
    selector: &str,
    overlay: Option<&Path>,
    weight: u32,
    dry_run: bool,
) -> Result<EditOutcome, ManifestError> {
    let layout = Layout::discover(dir)?;
    if layout.is_empty() {
        overlay_root(dir, &layout, overlay)?;
        return crate::router::set_weight(dir, selector, weight, dry_run);
    }
    let sel = Selector::parse(selector)?;
    let overlay = overlay_root(dir, &layout, overlay)?;
    let no = BTreeMap::new();
    let fs = Fs {
        root: dir,
        overrides: &no,
    };
    let before = render_roots(fs, &layout);
    match choose(dir, &layout, &before, &sel, overlay.as_deref())? {
        Chosen::Flat(route) => {
            let text = fs.read(&route.file)?;
            let file = SourceFile::parse(route.file.clone(), text).map_err(|e| {
                ManifestError::Unresolved {
                    file: route.file.clone(),
                    reason: format!("not YAML: {e}"),
                }
            })?;
            let edit = router::default_router().weight_edit(&file, &route, weight)?;
            let outcome = edit::apply(&file, std::slice::from_ref(&edit))?;
            if !dry_run {
                outcome.write(dir)?;
            }
            Ok(outcome)
        }
        Chosen::Rendered { root, index, route } => {
            let outcome = set_rendered(fs, &layout, &before, &root, index, &route, weight)?;
            if !dry_run {
                outcome.write(dir)?;
            }
            Ok(outcome)
        }
    }
}

/// A way to set the weight: the files it writes and the edits as values.
struct Change {
    files: Vec<(PathBuf, String)>,
    edits: Vec<Edit>,
    /// Files that are new (their diff is against nothing).
    created: Vec<PathBuf>,
}

fn set_rendered(
    fs: Fs,
    layout: &Layout,
    before: &Renders,
    root: &Path,
    index: usize,
    route: &Route,
    weight: u32,
) -> Result<EditOutcome, ManifestError> {
    let objs = before[root].as_ref().expect("rendered");
    let obj = &objs[index];
    if !route.canary {
        return Err(ManifestError::NotCanary {
            file: obj.src.file.clone(),
            document: obj.src.document,
            name: route.qualified_name(),
            field: format!("metadata.annotations[{:?}]", nginx::CANARY),
        });
    }
    let field = format!("metadata.annotations[{:?}]", nginx::WEIGHT);
    if weight > route.weight_total {
        return Err(ManifestError::WeightOutOfRange {
            file: obj.src.file.clone(),
            document: obj.src.document,
            field,
            weight,
            total: route.weight_total,
        });
    }
    let new = weight.to_string();
    if obj.weight_raw().as_deref() == Some(new.as_str()) {
        let (file, document, path) = match &obj.weight {
            Some(o) => match &o.loc {
                Some(Loc::Yaml { document, path }) => (o.file.clone(), *document, path.clone()),
                Some(Loc::Inline { document, path, .. }) => {
                    (o.file.clone(), *document, path.clone())
                }
                None => (o.file.clone(), 1, Vec::new()),
            },
            None => (obj.src.file.clone(), obj.src.document, Vec::new()),
        };
        return Ok(EditOutcome {
            edits: vec![Edit {
                file,
                document,
                path,
                old: Some(new.clone()),
                new,
                kind: ScalarKind::String,
                insert_after: Vec::new(),
            }],
            changed: Vec::new(),
            diff: String::new(),
        });
    }

    // The places to try, best first.
    let mut tries: Vec<Result<Change, ManifestError>> = Vec::new();
    match &obj.weight {
        Some(origin) => {
            let others = layout.other_roots_reading(root, &origin.file);
            match &origin.loc {
                None => {
                    return Err(ManifestError::Unresolved {
                        file: origin.file.clone(),
                        reason: format!(
                            "line {}: the weight of {} is copied or moved there by a JSON 6902 operation; set it with a patch instead",
                            origin.line,
                            obj.qualified_name()
                        ),
                    })
                }
                Some(loc) if others.is_empty() => {
                    tries.push(edit_in_place(fs, &origin.file, loc, obj, &new))
                }
                Some(_) => {}
            }
        }
        None => {
            if layout.other_roots_reading(root, &obj.src.file).is_empty() {
                tries.push(add_to_base(fs, obj, &new));
            }
        }
    }
    let kust = Kust::load(fs, root)?.ok_or_else(|| ManifestError::Unresolved {
        file: root.to_path_buf(),
        reason: "no kustomization".into(),
    })?;
    // Patch ids, the latest first: the first that names this object alone in the root wins.
    let mut ids: Vec<&Id> = obj.ids.iter().rev().collect();
    ids.dedup();
    for id in ids {
        tries.push(new_patch(fs, &kust, obj, id, &new));
    }

    let mut last_err = None;
    for t in tries {
        let change = match t {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("cannot set the weight there: {e}");
                last_err = Some(e);
                continue;
            }
        };
        let overrides: BTreeMap<PathBuf, String> = change.files.iter().cloned().collect();
        let after_fs = Fs {
            root: fs.root,
            overrides: &overrides,
        };
        let after = render_roots(after_fs, layout);
        match verify(layout, before, &after, root, index, &new, &change) {
            Ok(()) => return Ok(outcome(fs, change)),
            Err(why) => {
                tracing::debug!("edit refused by the rendering check: {why}");
                last_err = Some(ManifestError::Unresolved {
                    file: change
                        .edits
                        .first()
                        .map(|e| e.file.clone())
                        .unwrap_or_default(),
                    reason: format!("refusing to write: {why}"),
                })
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ManifestError::Unresolved {
        file: kust.file.clone(),
        reason: "no place to set the weight was found".into(),
    }))
}

fn outcome(fs: Fs, change: Change) -> EditOutcome {
    let mut diff = String::new();
    for (p, text) in &change.files {
        if change.created.contains(p) {
            diff.push_str(
                &similar::TextDiff::from_lines("", text.as_str())
                    .unified_diff()
                    .context_radius(3)
                    .header("/dev/null", &format!("b/{}", p.display()))
                    .to_string(),
            );
        } else {
            let old = fs.read(p).unwrap_or_default();
            diff.push_str(&edit::unified_diff(p, &old, text));
        }
    }
    EditOutcome {
        edits: change.edits,
        changed: change.files,
        diff,
    }
}

/// Every root renders what it did, but the target root's one object has the new weight.
fn verify(
    layout: &Layout,
    before: &Renders,
    after: &Renders,
    target: &Path,
    index: usize,
    new: &str,
    change: &Change,
) -> Result<(), String> {
    let values = |objs: &[Obj]| objs.iter().map(|o| o.value.clone()).collect::<Vec<_>>();
    for (root, b) in before {
        let a = &after[root];
        let shown = display_dir(root);
        let reads_changed = layout
            .reach
            .get(root)
            .is_some_and(|r| change.files.iter().any(|(f, _)| r.contains(f)));
        match (b, a) {
            (Ok(b), Ok(a)) => {
                let mut want = values(b);
                if root == target {
                    let ann = &mut want[index]["metadata"]["annotations"];
                    if !ann.is_object() {
                        *ann = Value::Object(Default::default());
                    }
                    ann[nginx::WEIGHT] = Value::String(new.to_string());
                }
                let got = values(a);
                if want != got {
                    let what = if root == target {
                        format!("{shown} would render more changes than the one weight")
                    } else {
                        format!("{shown}, another root, would render differently")
                    };
                    return Err(what);
                }
            }
            (Ok(_), Err(r)) => {
                return Err(format!(
                    "{shown} would no longer render: {}: {}",
                    r.file.display(),
                    r.reason
                ))
            }
            (Err(r), _) if reads_changed || root == target => {
                return Err(format!(
                    "{shown} reads the edited files but cannot be checked: {}: {}",
                    r.file.display(),
                    r.reason
                ))
            }
            (Err(_), _) => {}
        }
    }
    Ok(())
}

fn parse(fs: Fs, file: &Path) -> Result<SourceFile, ManifestError> {
    let text = fs.read(file)?;
    SourceFile::parse(file.to_path_buf(), text).map_err(|e| ManifestError::Unresolved {
        file: file.to_path_buf(),
        reason: format!("not YAML: {e}"),
    })
}

fn edit_in_place(
    fs: Fs,
    file: &Path,
    loc: &Loc,
    obj: &Obj,
    new: &str,
) -> Result<Change, ManifestError> {
    match loc {
        Loc::Yaml { document, path } => {
            let src = parse(fs, file)?;
            let e = Edit {
                file: file.to_path_buf(),
                document: *document,
                path: path.clone(),
                old: obj.weight_raw(),
                new: new.to_string(),
                kind: ScalarKind::String,
                insert_after: vec![nginx::CANARY.to_string()],
            };
            let out = edit::apply(&src, std::slice::from_ref(&e))?;
            Ok(Change {
                files: out.changed,
                edits: vec![e],
                created: Vec::new(),
            })
        }
        Loc::Inline {
            scalar,
            document,
            path,
        } => {
            let src = parse(fs, file)?;
            let text = inline_splice(&src, scalar, *document, path, new).map_err(|why| {
                ManifestError::CannotEdit {
                    file: file.to_path_buf(),
                    document: 1,
                    field: edit::render_path(scalar),
                    reason: why,
                }
            })?;
            Ok(Change {
                files: vec![(file.to_path_buf(), text)],
                edits: vec![Edit {
                    file: file.to_path_buf(),
                    document: 1,
                    path: scalar.iter().cloned().chain(path.iter().cloned()).collect(),
                    old: obj.weight_raw(),
                    new: new.to_string(),
                    kind: ScalarKind::String,
                    insert_after: Vec::new(),
                }],
                created: Vec::new(),
            })
        }
    }
}

/// The weight is absent everywhere: add it to the base's annotations.
fn add_to_base(fs: Fs, obj: &Obj, new: &str) -> Result<Change, ManifestError> {
    let src = parse(fs, &obj.src.file)?;
    let e = Edit {
        file: obj.src.file.clone(),
        document: obj.src.document,
        path: super::weight_path(obj.src.item),
        old: None,
        new: new.to_string(),
        kind: ScalarKind::String,
        insert_after: vec![nginx::CANARY.to_string()],
    };
    let out = edit::apply(&src, std::slice::from_ref(&e))?;
    Ok(Change {
        files: out.changed,
        edits: vec![e],
        created: Vec::new(),
    })
}

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

fn quoted(new: &str, style: Style) -> Result<String, String> {
    match style {
        Style::SingleQuoted => Ok(format!("'{new}'")),
        Style::DoubleQuoted | Style::Plain => Ok(format!("\"{new}\"")),
        Style::Literal | Style::Folded => {
            Err("the weight is a block scalar (| or >); write it as a quoted string".into())
        }
    }
}

/// Set a scalar inside an inline patch (a `|` block scalar of the kustomization), byte-exactly,
/// and check the result: the kustomization parses to what it was but the patch text, and the
/// patch text parses to what it was but the one value.
fn inline_splice(
    k: &SourceFile,
    scalar: &[PathSeg],
    document: usize,
    path: &[PathSeg],
    new: &str,
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
    let replacement = quoted(new, *style)?;
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
    let mut want_k = super::to_json(s, root);
    let mut got_k = super::to_json(&after, aroot);
    set_json(&mut want_k, scalar, Value::Null);
    set_json(&mut got_k, scalar, Value::Null);
    let mut want_p: Vec<Value> = patch
        .docs
        .iter()
        .map(|d| {
            d.root
                .map(|r| super::to_json(&patch, r))
                .unwrap_or_default()
        })
        .collect();
    set_json(
        &mut want_p[document - 1],
        path,
        Value::String(new.to_string()),
    );
    let np = yaml::parse(new_inner).map_err(|e| format!("the patch no longer parses: {e}"))?;
    let got_p: Vec<Value> = np
        .docs
        .iter()
        .map(|d| d.root.map(|r| super::to_json(&np, r)).unwrap_or_default())
        .collect();
    let others_same = s.docs.iter().zip(&after.docs).skip(1).all(|(a, b)| {
        a.root.map(|r| super::to_json(s, r)) == b.root.map(|r| super::to_json(&after, r))
    });
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

/// Add `- path: ENTRY` to the kustomization's `patches:` in the file's own style.
fn append_patch_entry(k: &Kust, entry: &str) -> Result<String, String> {
    let text = &k.text;
    let s = &k.stream;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let out = match k.get("patches") {
        Some(seq) if matches!(s.node(seq).kind, NodeKind::Seq(_)) && !s.node(seq).flow => {
            let (indent, gap) =
                dash_style(text, s, seq).ok_or("cannot tell how patches: is indented")?;
            let end = text[..max_end(s, seq)]
                .trim_end_matches([' ', '\t', '\n', '\r'])
                .len();
            let line = format!("{indent}-{gap}path: {entry}");
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
            format!("{}{sep}{{path: {entry}}}{}", &text[..close], &text[close..])
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
            t.push_str(&format!("patches:{eol}{indent}-{gap}path: {entry}{eol}"));
            t
        }
    };
    // The guard: the kustomization reads as before plus one `patches` entry.
    let after = yaml::parse(&out).map_err(|e| format!("the result does not parse: {e}"))?;
    let mut want = k
        .root
        .map(|r| super::to_json(s, r))
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
        .push(serde_json::json!({ "path": entry }));
    let got = after
        .docs
        .first()
        .and_then(|d| d.root)
        .map(|r| super::to_json(&after, r))
        .unwrap_or_default();
    if want != got || after.docs.len() != s.docs.len().max(1) {
        return Err("refusing to write, adding the patch entry would change more".into());
    }
    Ok(out)
}

fn yaml_scalar(v: &str) -> String {
    if edit::plain_safe(v) {
        v.to_string()
    } else {
        serde_json::to_string(v).unwrap_or_default()
    }
}

/// A new strategic-merge patch in the target root that sets the weight of `id`.
fn new_patch(fs: Fs, k: &Kust, obj: &Obj, id: &Id, new: &str) -> Result<Change, ManifestError> {
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
    let mut name = format!("{safe}-canary-weight.yaml");
    let mut n = 2;
    while fs.is_file(&k.dir.join(&name)) {
        name = format!("{safe}-canary-weight-{n}.yaml");
        n += 1;
    }
    let file = k.dir.join(&name);
    let eol = if k.text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
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
    let kust_text = append_patch_entry(k, &name).map_err(|why| ManifestError::CannotEdit {
        file: k.file.clone(),
        document: 1,
        field: "patches".into(),
        reason: why,
    })?;
    let index = k.items("patches").len();
    Ok(Change {
        files: vec![(file.clone(), text), (k.file.clone(), kust_text)],
        edits: vec![
            Edit {
                file: file.clone(),
                document: 1,
                path: super::weight_path(None),
                old: None,
                new: new.to_string(),
                kind: ScalarKind::String,
                insert_after: Vec::new(),
            },
            Edit {
                file: k.file.clone(),
                document: 1,
                path: vec![
                    PathSeg::Key("patches".into()),
                    PathSeg::Index(index),
                    PathSeg::Key("path".into()),
                ],
                old: None,
                new: name,
                kind: ScalarKind::Text,
                insert_after: Vec::new(),
            },
        ],
        created: vec![file],
    })
}
