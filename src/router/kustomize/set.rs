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

use super::inline_edit::inline_splice;
use super::new_patch::new_patch;
use super::render::{render_candidates, render_some, render_with, Memo, Rendering};
use super::{display_dir, normalize, routes, Fs, Id, Kust, Layout, Loc, Obj, Refusal, Renders};
use crate::manifest::edit::{self, Edit, EditOutcome, ScalarKind};
use crate::manifest::{contains, ManifestError, Repo, Selector, SourceFile};
use crate::router::select::{candidates_named, may_hold, Named, Unchosen};
use crate::router::{self, nginx, Route};

/// What a selector can name: a canary rendered by a root, or a flat manifest's Ingress.
enum Candidate<'a> {
    Rendered {
        root: &'a Path,
        index: usize,
        route: Route,
    },
    Flat(Route),
}

impl Named for Candidate<'_> {
    fn name(&self) -> &str {
        &self.route().name
    }

    fn namespace(&self) -> Option<&str> {
        self.route().namespace.as_deref()
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

impl Candidate<'_> {
    fn route(&self) -> &Route {
        match self {
            Candidate::Rendered { route, .. } | Candidate::Flat(route) => route,
        }
    }
}

/// What a selector names in a repository with kustomizations: a canary rendered by a root, or
/// an Ingress of a flat manifest (a file no kustomization reads).
#[derive(Debug, Clone)]
pub(crate) enum Chosen {
    Rendered {
        root: PathBuf,
        /// Index of the object in the root's rendering ([`super::render_roots`]).
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
pub(crate) fn overlay_root(
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
pub(crate) fn choose(
    dir: &Path,
    layout: &Layout,
    before: &Renders,
    sel: &Selector,
    overlay: Option<&Path>,
    flat: Option<Repo>,
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
        let router = router::default_router();
        let mut repo = match flat {
            Some(repo) => repo,
            None => Repo::load_filtered(dir, &|b| may_hold(b, &sel.name))?,
        };
        repo.files.retain(|f| !layout.owns(&f.path));
        for f in &repo.files {
            cands.extend(router.routes(f).into_iter().map(Candidate::Flat));
        }
    }

    match crate::router::select::choose(&cands, sel) {
        Ok(Candidate::Rendered { root, index, route }) => Ok(Chosen::Rendered {
            root: root.to_path_buf(),
            index: *index,
            route: route.clone(),
        }),
        Ok(Candidate::Flat(route)) => Ok(Chosen::Flat(route.clone())),
        Err(Unchosen::None { named }) => {
            if let Some(refusal) = unrenderable_root(dir, layout, before, &sel.name, overlay) {
                return Err(refusal.into());
            }
            Err(ManifestError::NoMatch {
                selector: sel.to_string(),
                candidates: candidates_named("Ingresses", &sel.name, &named),
            })
        }
        Err(Unchosen::Many(many)) => Err(ManifestError::Ambiguous {
            selector: sel.to_string(),
            candidates: many.iter().map(|c| c.describe()).collect(),
        }),
    }
}

/// A root (within `overlay`) that cannot be rendered and may be where `name` lives (a file
/// it reads names it, or `--overlay` picks it): why, rather than "no match".
pub(super) fn unrenderable_root(
    dir: &Path,
    layout: &Layout,
    before: &Renders,
    name: &str,
    overlay: Option<&Path>,
) -> Option<Refusal> {
    for (root, r) in before {
        if overlay.is_some_and(|o| o != root) {
            continue;
        }
        if let Err(refusal) = r {
            let names_it = layout
                .reach(root)
                .iter()
                .any(|f| std::fs::read(dir.join(f)).is_ok_and(|b| contains(&b, name.as_bytes())));
            if names_it || overlay.is_some() {
                return Some(refusal.clone());
            }
        }
    }
    None
}

/// Set the canary weight of the Ingress `selector` names, as rendered by the root `overlay`
/// picks (needed only when the name alone is ambiguous). Repositories without kustomizations
/// go through [`crate::router::set_weight`], unchanged.
pub fn set_weight(
    dir: &Path,
    selector: &str,
    overlay: Option<&Path>,
    weight: u32,
    dry_run: bool,
) -> Result<EditOutcome, ManifestError> {
    let sel = Selector::parse(selector)?;
    // One walk: the kustomizations and, unless --overlay says the target is rendered, the
    // flat manifests that may hold it (the only files read besides the kustomizations).
    let (layout, flat) = match overlay {
        None => {
            let (layout, flat) = Layout::discover_with(dir, &|b| may_hold(b, &sel.name))?;
            (layout, Some(flat))
        }
        Some(_) => (Layout::discover(dir)?, None),
    };
    if layout.is_empty() {
        overlay_root(dir, &layout, overlay)?;
        return match flat {
            Some(repo) => crate::router::select::set_weight_in(dir, &repo, &sel, weight, dry_run),
            None => crate::router::set_weight(dir, selector, weight, dry_run),
        };
    }
    let overlay = overlay_root(dir, &layout, overlay)?;
    let no = BTreeMap::new();
    let fs = layout.fs(dir, &no);
    let before = render_candidates(fs, &layout, &["Ingress"], overlay.as_deref());
    match choose(dir, &layout, &before, &sel, overlay.as_deref(), flat)? {
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
pub(super) struct Change {
    pub(super) files: Vec<(PathBuf, String)>,
    pub(super) edits: Vec<Edit>,
    /// Files that are new (their diff is against nothing).
    pub(super) created: Vec<PathBuf>,
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
        let (file, document, path) = match obj.weight() {
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
    match obj.weight() {
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

    let expect = |v: &mut Value| {
        let ann = &mut v["metadata"]["annotations"];
        if !ann.is_object() {
            *ann = Value::Object(Default::default());
        }
        ann[nginx::WEIGHT] = Value::String(new.clone());
    };
    let target = Target {
        layout,
        before,
        root,
        index,
        kinds: &["Ingress"],
    };
    first_verified(fs, &target, &expect, tries, &kust.file)
}

/// The object an edit is for: its root and index in the root's rendering (`before`, of
/// `kinds`), in the layout.
pub(super) struct Target<'a> {
    pub(super) layout: &'a Layout,
    pub(super) before: &'a Renders,
    pub(super) root: &'a Path,
    pub(super) index: usize,
    pub(super) kinds: &'a [&'a str],
}

/// The first of `tries` that passes the rendering check (every root renders what it did, but
/// the target, which renders what `expect` makes of it), as an outcome; else the last reason.
pub(super) fn first_verified(
    fs: Fs,
    target: &Target,
    expect: &dyn Fn(&mut Value),
    tries: Vec<Result<Change, ManifestError>>,
    kustomization: &Path,
) -> Result<EditOutcome, ManifestError> {
    let mut last_err = None;
    // Renderings before the edit of the roots the candidates' edits reach, beyond `before`.
    let mut more_before = Renders::new();
    let memo = Memo::default();
    for t in tries {
        let change = match t {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("cannot set the weight there: {e}");
                last_err = Some(e);
                continue;
            }
        };
        // Only the target and the roots that read an edited file can render differently:
        // the others are neither rendered again nor compared.
        let layout = target.layout;
        let reached: Vec<&PathBuf> = layout
            .roots
            .iter()
            .filter(|r| {
                r.as_path() == target.root || change.files.iter().any(|(f, _)| layout.reads(r, f))
            })
            .collect();
        for r in &reached {
            if !target.before.contains_key(*r) && !more_before.contains_key(*r) {
                let b = render_with(fs, r, target.kinds, &memo);
                more_before.insert(r.to_path_buf(), b);
            }
        }
        let overrides: BTreeMap<PathBuf, String> = change.files.iter().cloned().collect();
        let after_fs = Fs {
            overrides: &overrides,
            ..fs
        };
        let after = render_some(after_fs, reached.into_iter(), target.kinds);
        let before = |r: &Path| target.before.get(r).or_else(|| more_before.get(r));
        match verify(target, &before, &after, expect, &change) {
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
        file: kustomization.to_path_buf(),
        reason: "no place to set the weight was found".into(),
    }))
}

pub(super) fn outcome(fs: Fs, change: Change) -> EditOutcome {
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

/// Every root rendered again (`after`: the target and the roots that read an edited file)
/// renders what it did (`before`), but the target root's one object is what `expect` makes of
/// it: the new weight.
fn verify<'b>(
    t: &Target,
    before: &dyn Fn(&Path) -> Option<&'b Rendering>,
    after: &Renders,
    expect: &dyn Fn(&mut Value),
    change: &Change,
) -> Result<(), String> {
    let (layout, target, index) = (t.layout, t.root, t.index);
    let values = |objs: &[Obj]| objs.iter().map(|o| o.value.clone()).collect::<Vec<_>>();
    for (root, a) in after {
        let Some(b) = before(root) else {
            return Err(format!(
                "{} was not rendered before the edit",
                display_dir(root)
            ));
        };
        let shown = display_dir(root);
        let reads_changed = change.files.iter().any(|(f, _)| layout.reads(root, f));
        match (b, a) {
            (Ok(b), Ok(a)) => {
                let mut want = values(b);
                if root == target {
                    if let Some(v) = want.get_mut(index) {
                        expect(v);
                    }
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

pub(super) fn parse(fs: Fs, file: &Path) -> Result<SourceFile, ManifestError> {
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
            let text = inline_splice(&src, scalar, *document, path, new, ScalarKind::String)
                .map_err(|why| ManifestError::CannotEdit {
                    file: file.to_path_buf(),
                    document: 1,
                    field: edit::render_path(scalar),
                    reason: why,
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
        path: super::render::weight_path(obj.src.item),
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
