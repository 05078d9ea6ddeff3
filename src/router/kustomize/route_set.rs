//! `set-weight --route` on a Kustomize layout: choose the HTTPRoute a root renders (or a flat
//! manifest's), compute the new weights of its splits as the Gateway API router does for a
//! file, and write them in the one place that decides them for that root.
//!
//! The place, in order: where each weight is written (the overlay's patch, or the base; a
//! missing weight beside its backendRef) when no other root reads those files; else a new
//! JSON 6902 patch in the target root (`replace` or `add` of each
//! `/spec/rules/N/backendRefs/M/weight`), listed in its `patches:` with a target. A
//! strategic-merge patch could not do it: the HTTPRoute is a custom resource, so kustomize
//! replaces `spec.rules` as a whole list. Whatever is chosen is kept only if the target root
//! renders exactly what it did with the weights changed and every other root renders exactly
//! what it did; otherwise nothing is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::inline_edit::inline_splice;
use super::new_patch::{eol, free_name, listed_patch};
use super::origins::pointer;
use super::render::render_candidates;
use super::route_plan::{may_name, RenderedRoutes};
use super::set::{first_verified, overlay_root, parse, unrenderable_root, Change, Target};
use super::{
    backend_ref, display_dir, workloads, Fs, Id, Kust, Layout, Loc, Obj, Renders, HTTPROUTE_KINDS,
};
use crate::manifest::workload::{ServiceInfo, Workload};
use crate::manifest::{
    edit, Edit, EditOutcome, ManifestError, PathSeg, Repo, ScalarKind, Selector, SourceFile,
};
use crate::router::gateway::{self, Context, HttpRoute, SelectedCanary};
use crate::router::select::{candidates_named, choose, Named, Unchosen};

/// An HTTPRoute a selector can name: rendered by a root (`objs[index]` of its rendering), or
/// in a flat manifest.
struct Candidate<'a> {
    root: Option<&'a Path>,
    index: usize,
    route: HttpRoute,
}

impl Named for Candidate<'_> {
    fn name(&self) -> &str {
        &self.route.name
    }

    fn namespace(&self) -> Option<&str> {
        self.route.namespace.as_deref()
    }

    fn describe(&self) -> String {
        match self.root {
            Some(root) => format!(
                "{} (--overlay {})",
                self.route.qualified_name(),
                display_dir(root)
            ),
            None => self.route.describe(),
        }
    }
}

/// What a selector names: an HTTPRoute rendered by a root, as read from the rendering, or an
/// HTTPRoute of a flat manifest.
#[derive(Debug, Clone)]
pub(crate) enum ChosenRoute {
    Rendered {
        root: PathBuf,
        /// Index of the object in the root's rendering of [`HTTPROUTE_KINDS`].
        index: usize,
        route: HttpRoute,
    },
    Flat(HttpRoute),
}

/// Choose the HTTPRoute `sel` names among what the roots render (`before`, of
/// [`HTTPROUTE_KINDS`]) and the flat manifests, within the root `overlay` picks (already
/// checked by [`overlay_root`]). The error lists the candidates, each with the `--overlay`
/// that picks it.
pub(crate) fn choose_route(
    dir: &Path,
    layout: &Layout,
    before: &Renders,
    sel: &Selector,
    overlay: Option<&Path>,
) -> Result<ChosenRoute, ManifestError> {
    let mut cands: Vec<Candidate> = Vec::new();
    for (root, r) in before {
        if overlay.is_some_and(|o| o != root) {
            continue;
        }
        if let Ok(objs) = r {
            let rendered = RenderedRoutes::new(objs);
            cands.extend(rendered.routes.into_iter().map(|route| Candidate {
                root: Some(root),
                index: route.document - 1,
                route,
            }));
        }
    }
    // Flat manifests (files no kustomization reads) stay candidates unless --overlay is given.
    let mut broken = Vec::new();
    if overlay.is_none() {
        let name = sel.name.as_bytes().to_vec();
        let mut repo = Repo::load_filtered(dir, &|b| may_name(b, &name))?;
        repo.files.retain(|f| !layout.owns(&f.path));
        repo.skipped.retain(|s| !layout.owns(&s.file));
        for f in &repo.files {
            cands.extend(gateway::http_routes(f).into_iter().map(|route| Candidate {
                root: None,
                index: 0,
                route,
            }));
        }
        broken = repo.skipped;
    }
    match choose(&cands, sel) {
        Ok(Candidate {
            root: Some(root),
            index,
            route,
        }) => Ok(ChosenRoute::Rendered {
            root: root.to_path_buf(),
            index: *index,
            route: route.clone(),
        }),
        Ok(Candidate { route, .. }) => Ok(ChosenRoute::Flat(route.clone())),
        Err(Unchosen::None { named }) => {
            if let Some(refusal) = unrenderable_root(dir, layout, before, &sel.name, overlay) {
                return Err(refusal.into());
            }
            // A flat file that names it and does not parse may be where it lives.
            if let Some(s) = broken.first() {
                return Err(ManifestError::TargetUnparsable {
                    file: s.file.clone(),
                    selector: sel.to_string(),
                    error: s.reason.clone(),
                });
            }
            Err(ManifestError::NoRoute {
                selector: sel.to_string(),
                candidates: candidates_named("HTTPRoutes", &sel.name, &named),
            })
        }
        Err(Unchosen::Many(many)) => Err(ManifestError::Ambiguous {
            selector: sel.to_string(),
            candidates: many.iter().map(|c| c.describe()).collect(),
        }),
    }
}

/// The layout, the roots' renderings of [`HTTPROUTE_KINDS`] and the route `selector` names
/// (`None` for a repository without kustomizations).
fn load(
    dir: &Path,
    selector: &str,
    overlay: Option<&Path>,
) -> Result<Option<(Layout, Renders, ChosenRoute)>, ManifestError> {
    let layout = Layout::discover(dir)?;
    let overlay = overlay_root(dir, &layout, overlay)?;
    if layout.is_empty() {
        return Ok(None);
    }
    let sel = Selector::parse(selector)?;
    let no = BTreeMap::new();
    let fs = layout.fs(dir, &no);
    let before = render_candidates(fs, &layout, &HTTPROUTE_KINDS, overlay.as_deref());
    let chosen = choose_route(dir, &layout, &before, &sel, overlay.as_deref())?;
    Ok(Some((layout, before, chosen)))
}

/// Give the canary of the HTTPRoute `selector` names `pct` percent, as rendered by the root
/// `overlay` picks (needed only when the name alone is ambiguous). Repositories without
/// kustomizations go through [`gateway::set_weight`], unchanged. Writes nothing on error or
/// with `dry_run`.
pub fn set_weight(
    dir: &Path,
    selector: &str,
    overlay: Option<&Path>,
    canary_service: Option<&str>,
    pct: u32,
    dry_run: bool,
) -> Result<EditOutcome, ManifestError> {
    let Some((layout, before, chosen)) = load(dir, selector, overlay)? else {
        return gateway::set_weight(dir, selector, canary_service, pct, dry_run);
    };
    let no = BTreeMap::new();
    let fs = layout.fs(dir, &no);
    let outcome = match chosen {
        ChosenRoute::Flat(route) => {
            let file = parse(fs, &route.file)?;
            gateway::weight_outcome(dir, &file, &route, canary_service, pct)?
        }
        ChosenRoute::Rendered { root, index, route } => {
            let target = Target {
                layout: &layout,
                before: &before,
                root: &root,
                index,
                kinds: &HTTPROUTE_KINDS,
            };
            set_rendered(fs, &target, &route, canary_service, pct)?
        }
    };
    if !dry_run {
        outcome.write(dir)?;
    }
    Ok(outcome)
}

/// An HTTPRoute canary chosen in a repository that may have kustomizations, as the rollout
/// reads it: the canary (pointing at its sources), the root that renders it (`None`: a flat
/// manifest), and that root's Deployments and Services (empty for a flat manifest).
#[derive(Debug, Clone)]
pub(crate) struct SelectedRoute {
    pub root: Option<PathBuf>,
    pub canary: SelectedCanary,
    pub workloads: Vec<Workload>,
    pub services: Vec<ServiceInfo>,
}

/// Choose the HTTPRoute `selector` names (within the root `overlay` picks) and its canary
/// backend (`canary_service`, else by convention), refusing what `set-weight` would refuse.
pub fn select_canary(
    dir: &Path,
    selector: &str,
    overlay: Option<&Path>,
    canary_service: Option<&str>,
) -> Result<SelectedRoute, ManifestError> {
    let flat = |canary| SelectedRoute {
        root: None,
        canary,
        workloads: Vec::new(),
        services: Vec::new(),
    };
    let Some((_, before, chosen)) = load(dir, selector, overlay)? else {
        return gateway::select_canary(dir, selector, canary_service).map(flat);
    };
    match chosen {
        ChosenRoute::Flat(route) => {
            if let Some(c) = canary_service {
                gateway::require_backend(&route, c)?;
            }
            let ctx = Context::load(dir)?;
            gateway::selected(&gateway::analyze(&route, canary_service, &ctx)).map(flat)
        }
        ChosenRoute::Rendered { root, route, .. } => {
            let objs = rendering(&before, &root)?;
            let rendered = RenderedRoutes::new(objs);
            let rc = rendered.analyze(&route, canary_service);
            if let Some(c) = canary_service {
                gateway::require_backend(&rc.route, c)?;
            }
            let canary = gateway::selected(&rc)?;
            let (workloads, services) = workloads(objs);
            Ok(SelectedRoute {
                root: Some(root),
                canary,
                workloads,
                services,
            })
        }
    }
}

fn rendering<'a>(before: &'a Renders, root: &Path) -> Result<&'a [Obj], ManifestError> {
    match before.get(root) {
        Some(Ok(objs)) => Ok(objs),
        Some(Err(r)) => Err(r.clone().into()),
        None => Err(ManifestError::Unresolved {
            file: root.to_path_buf(),
            reason: "not a root kustomization".into(),
        }),
    }
}

/// One weight to write: where it is in the rendered object, the new value, and whether the
/// rendering has it (else it is added).
struct NewWeight {
    tokens: Vec<String>,
    backend: String,
    value: u32,
    present: bool,
}

fn set_rendered(
    fs: Fs,
    t: &Target,
    route: &HttpRoute,
    canary_service: Option<&str>,
    pct: u32,
) -> Result<EditOutcome, ManifestError> {
    let objs = rendering(t.before, t.root)?;
    let obj = &objs[t.index];
    let rendered = RenderedRoutes::new(objs);
    let rc = rendered.analyze(route, canary_service);
    if let Some(c) = canary_service {
        gateway::require_backend(&rc.route, c)?;
    }
    let mut weights = Vec::new();
    for (split, s, c) in gateway::split_weights(&rc, pct)? {
        for (b, value) in [(&split.stable, s), (&split.canary, c)] {
            weights.push(NewWeight {
                tokens: backend_ref(split.rule, b.index, true),
                backend: b.name.clone(),
                value,
                present: b.weight_raw.is_some(),
            });
        }
    }
    let expect = |v: &mut Value| {
        for w in &weights {
            if let Some(Value::Object(backend)) = v.pointer_mut(&pointer(&w.tokens[..5])) {
                backend.insert("weight".into(), Value::from(w.value));
            }
        }
    };
    let mut want = obj.value.clone();
    expect(&mut want);
    if want == obj.value {
        return Ok(unchanged(obj, &weights));
    }

    // The places to try, best first.
    let mut tries = Vec::new();
    if let Some(p) = places(obj, &weights)? {
        if p.files()
            .all(|f| t.layout.other_roots_reading(t.root, f).is_empty())
        {
            tries.push(write_places(fs, p));
        }
    }
    let kust = Kust::load(fs, t.root)?.ok_or_else(|| ManifestError::Unresolved {
        file: t.root.to_path_buf(),
        reason: "no kustomization".into(),
    })?;
    // Target ids, the latest first: the first that names this object alone in the root wins.
    let mut ids: Vec<&Id> = obj.ids.iter().rev().collect();
    ids.dedup();
    for id in ids {
        tries.push(new_json6902(fs, &kust, obj, id, &weights));
    }
    first_verified(fs, t, &expect, tries, &kust.file)
}

fn yaml_path(tokens: &[String]) -> Vec<PathSeg> {
    tokens
        .iter()
        .map(|t| match t.parse::<usize>() {
            Ok(i) => PathSeg::Index(i),
            Err(_) => PathSeg::Key(t.clone()),
        })
        .collect()
}

fn weight_edit(file: &Path, document: usize, path: Vec<PathSeg>, w: &NewWeight) -> Edit {
    Edit {
        file: file.to_path_buf(),
        document,
        path,
        old: w.present.then(|| w.value.to_string()),
        new: w.value.to_string(),
        kind: ScalarKind::Int,
        insert_after: ["port", "name", "namespace", "kind", "group"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// The weights are what they would be set to: nothing to write; the edits name where each is.
fn unchanged(obj: &Obj, weights: &[NewWeight]) -> EditOutcome {
    let edits = weights
        .iter()
        .map(|w| {
            let (file, document, path) = match obj.origins.get(&w.tokens) {
                Some(o) => match &o.loc {
                    Some(Loc::Yaml { document, path }) => (o.file.clone(), *document, path.clone()),
                    Some(Loc::Inline {
                        scalar,
                        document,
                        path,
                    }) => (
                        o.file.clone(),
                        *document,
                        scalar.iter().chain(path).cloned().collect(),
                    ),
                    None => (o.file.clone(), 1, yaml_path(&w.tokens)),
                },
                None => (obj.src.file.clone(), obj.src.document, yaml_path(&w.tokens)),
            };
            let mut e = weight_edit(&file, document, path, w);
            e.old = Some(e.new.clone());
            e
        })
        .collect();
    EditOutcome {
        edits,
        changed: Vec::new(),
        diff: String::new(),
    }
}

/// Where each weight is written (or, missing, beside its backendRef), per file: edits of plain
/// YAML, and values inside inline patches; and the edits as values.
struct Places<'w> {
    yaml: BTreeMap<PathBuf, Vec<Edit>>,
    inline: BTreeMap<PathBuf, Vec<(&'w Loc, &'w NewWeight)>>,
    edits: Vec<Edit>,
}

impl Places<'_> {
    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.yaml.keys().chain(self.inline.keys())
    }
}

/// The places of every weight, when each can be edited there (`None`: a missing weight whose
/// backendRef is not plain YAML); an error when a weight is moved or copied by a patch.
fn places<'w>(obj: &'w Obj, weights: &'w [NewWeight]) -> Result<Option<Places<'w>>, ManifestError> {
    let mut yaml: BTreeMap<PathBuf, Vec<Edit>> = BTreeMap::new();
    let mut inline: BTreeMap<PathBuf, Vec<(&Loc, &NewWeight)>> = BTreeMap::new();
    let mut edits = Vec::new();
    for w in weights {
        match obj.origins.get(&w.tokens) {
            Some(o) => match &o.loc {
                None => {
                    return Err(ManifestError::Unresolved {
                        file: o.file.clone(),
                        reason: format!(
                            "line {}: the weight of backendRef {} of {} is copied or moved there by a JSON 6902 operation; set it with a patch instead",
                            o.line,
                            w.backend,
                            obj.qualified_name()
                        ),
                    })
                }
                Some(Loc::Yaml { document, path }) => {
                    let e = weight_edit(&o.file, *document, path.clone(), w);
                    edits.push(e.clone());
                    yaml.entry(o.file.clone()).or_default().push(e);
                }
                Some(loc @ Loc::Inline { scalar, path, .. }) => {
                    let full = scalar.iter().chain(path).cloned().collect();
                    edits.push(weight_edit(&o.file, 1, full, w));
                    inline.entry(o.file.clone()).or_default().push((loc, w));
                }
            },
            // Missing: added beside its backendRef, when that is plain YAML.
            None => match obj.origins.get(&w.tokens[..5]) {
                Some(e) => match &e.loc {
                    Some(Loc::Yaml { document, path }) => {
                        let mut path = path.clone();
                        path.push(PathSeg::Key("weight".into()));
                        let ed = weight_edit(&e.file, *document, path, w);
                        edits.push(ed.clone());
                        yaml.entry(e.file.clone()).or_default().push(ed);
                    }
                    _ => return Ok(None),
                },
                None => return Ok(None),
            },
        }
    }
    Ok(Some(Places {
        yaml,
        inline,
        edits,
    }))
}

/// The change that writes every weight in its place.
fn write_places(fs: Fs, places: Places) -> Result<Change, ManifestError> {
    let mut written: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (file, es) in &places.yaml {
        let src = parse(fs, file)?;
        let out = edit::apply(&src, es)?;
        let text = out.changed.first().map_or(src.text, |(_, t)| t.clone());
        written.insert(file.clone(), text);
    }
    for (file, values) in &places.inline {
        let mut text = match written.get(file) {
            Some(t) => t.clone(),
            None => fs.read(file)?,
        };
        for (loc, w) in values {
            let Loc::Inline {
                scalar,
                document,
                path,
            } = loc
            else {
                continue;
            };
            let cannot = |reason: String| ManifestError::CannotEdit {
                file: file.clone(),
                document: 1,
                field: edit::render_path(scalar),
                reason,
            };
            let src = SourceFile::parse(file.clone(), text.clone())
                .map_err(|e| cannot(format!("not YAML: {e}")))?;
            let new = w.value.to_string();
            text = inline_splice(&src, scalar, *document, path, &new, ScalarKind::Int)
                .map_err(cannot)?;
        }
        written.insert(file.clone(), text);
    }
    let mut files = Vec::new();
    for (file, text) in written {
        if fs.read(&file)? != text {
            files.push((file, text));
        }
    }
    Ok(Change {
        files,
        edits: places.edits,
        created: Vec::new(),
    })
}

/// A new JSON 6902 patch in the target root setting every weight of the object `id` names.
fn new_json6902(
    fs: Fs,
    k: &Kust,
    obj: &Obj,
    id: &Id,
    weights: &[NewWeight],
) -> Result<Change, ManifestError> {
    let name = free_name(fs, k, id, "route-weights");
    let file = k.dir.join(&name);
    let eol = eol(k);
    let mut lines = Vec::new();
    let mut edits = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        lines.push(format!(
            "- op: {}",
            if w.present { "replace" } else { "add" }
        ));
        lines.push(format!("  path: {}", pointer(&w.tokens)));
        lines.push(format!("  value: {}", w.value));
        let path = vec![PathSeg::Index(i), PathSeg::Key("value".into())];
        let mut e = weight_edit(&file, 1, path, w);
        e.old = None;
        edits.push(e);
    }
    let text = format!("{}{eol}", lines.join(eol));
    let group = obj.value["apiVersion"]
        .as_str()
        .and_then(|a| a.rsplit_once('/'))
        .map_or("gateway.networking.k8s.io", |(g, _)| g);
    let mut target = vec![
        ("group", group.to_string()),
        ("kind", gateway::KIND.to_string()),
        ("name", id.name.clone()),
    ];
    if let Some(ns) = &id.namespace {
        target.push(("namespace", ns.clone()));
    }
    let (files, listing) = listed_patch(k, &name, text, &target)?;
    edits.push(listing);
    Ok(Change {
        files,
        edits,
        created: vec![file],
    })
}
