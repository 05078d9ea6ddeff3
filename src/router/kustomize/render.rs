//! Rendering one kustomization as kustomize does, for the objects of some kinds: resources and
//! bases, components, the patches, namespace, name prefix and suffix, labels and annotations,
//! in kustomize's order; what cannot be resolved is a [`Refusal`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::object::{ingress_weight, is_tracked};
use super::origins;
use super::{is_remote, to_json, Fs, Kust, Layout, Loc, Obj, Origin, OriginKind, Refusal, Src};
use crate::manifest::PathSeg;
use crate::router::{gateway, nginx};
use crate::yaml::{self, NodeId, Stream};

pub(super) fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.to_string())
}

pub(super) fn weight_path(item: Option<usize>) -> Vec<PathSeg> {
    let mut p = Vec::new();
    if let Some(i) = item {
        p.push(key("items"));
        p.push(PathSeg::Index(i));
    }
    p.extend([key("metadata"), key("annotations"), key(nginx::WEIGHT)]);
    p
}

/// Besides its own letters, the one thing that can write a kind: a backslash escape in a
/// double-quoted scalar (`"Ingr\x65ss"`). A file holding neither cannot hold the kind.
pub(super) const ESCAPE: &str = "\\";

/// The objects of the given kinds in one resource file, with the origins of their tracked
/// values.
fn read_resources(fs: Fs, file: &Path, kinds: &[&str]) -> Result<Vec<Obj>, Refusal> {
    let words: Vec<&str> = kinds.iter().copied().chain([ESCAPE]).collect();
    let Some(text) = fs.read_holding(file, &words)? else {
        return Ok(Vec::new());
    };
    let s = yaml::parse(&text).map_err(|e| Refusal::new(file, format!("not YAML: {e}")))?;
    let mut out = Vec::new();
    for (document, item, node) in crate::manifest::stream_objects(&s) {
        let kind = s.get(node, "kind").and_then(|k| s.str(k)).unwrap_or("");
        if !kinds.contains(&kind) {
            continue;
        }
        let value = to_json(&s, node);
        let prefix: Vec<PathSeg> = match item {
            Some(i) => vec![key("items"), PathSeg::Index(i)],
            None => Vec::new(),
        };
        let make = |n: NodeId, below: &[PathSeg]| Origin {
            file: file.to_path_buf(),
            line: s.node(n).line,
            kind: OriginKind::Resource,
            by: file.to_path_buf(),
            loc: Some(Loc::Yaml {
                document,
                path: prefix.iter().chain(below).cloned().collect(),
            }),
        };
        let mut obj = Obj {
            origins: origins::leaves(kind, &s, node, &[], &make)
                .into_iter()
                .collect(),
            value,
            ids: Vec::new(),
            src: Src {
                file: file.to_path_buf(),
                document,
                item,
                line: s.node(node).line,
            },
        };
        obj.remember_id();
        out.push(obj);
    }
    Ok(out)
}

/// The build: objects accumulated so far, and the kustomizations on the way (cycles).
pub(super) struct Build<'a> {
    pub(super) fs: Fs<'a>,
    stack: Vec<PathBuf>,
    pub(super) kinds: &'a [&'a str],
    memo: &'a Memo,
}

/// What the kustomizations used as resources render, kept across the roots rendered from one
/// [`Fs`]: in a layout of a base and three overlays per app, each base is built once, not once
/// per overlay. Only successful builds are kept: an error's message depends on the path it
/// was reached by (a cycle), and it ends the root's rendering anyway. What a kustomization
/// renders as a resource does not depend on who uses it (components, which do, are not
/// kept), so a kept build is exactly what building it again would give.
#[derive(Default)]
pub(crate) struct Memo {
    built: RefCell<HashMap<BuildKey, Vec<Obj>>>,
}

/// A kustomization's directory and the kinds built.
type BuildKey = (PathBuf, Vec<String>);

impl Memo {
    /// Builds kept at most: bases are reused by the roots beside them (roots are rendered in
    /// path order), so a bounded memo keeps the memory of a large repository flat.
    const LIMIT: usize = 512;

    fn key(dir: &Path, kinds: &[&str]) -> BuildKey {
        (
            dir.to_path_buf(),
            kinds.iter().map(|k| k.to_string()).collect(),
        )
    }

    fn get(&self, dir: &Path, kinds: &[&str]) -> Option<Vec<Obj>> {
        self.built.borrow().get(&Self::key(dir, kinds)).cloned()
    }

    fn keep(&self, dir: &Path, kinds: &[&str], objs: &[Obj]) {
        let mut built = self.built.borrow_mut();
        if built.len() >= Self::LIMIT {
            built.clear();
        }
        built.insert(Self::key(dir, kinds), objs.to_vec());
    }
}

/// Render the Ingresses of the kustomization in `dir`.
pub fn render(fs: Fs, dir: &Path) -> Result<Vec<Obj>, Refusal> {
    render_kinds(fs, dir, &["Ingress"])
}

/// The kinds an HTTPRoute canary is read with from a root: the routes, and the Services and
/// Deployments that tell which backendRef is the canary.
pub const HTTPROUTE_KINDS: [&str; 3] = [gateway::KIND, "Service", "Deployment"];

/// The kinds the rollout reads from a root: the routes and what serves them.
pub const WORKLOAD_KINDS: [&str; 3] = ["Ingress", "Service", "Deployment"];

/// Render the objects of `kinds` of the kustomization in `dir` (the rollout also needs the
/// Services and Deployments behind a rendered canary, with their rendered names).
pub fn render_kinds<'a>(fs: Fs<'a>, dir: &Path, kinds: &'a [&'a str]) -> Result<Vec<Obj>, Refusal> {
    render_with(fs, dir, kinds, &Memo::default())
}

/// [`render_kinds`] with the builds kept from earlier roots of the same `fs`.
pub(crate) fn render_with<'a>(
    fs: Fs<'a>,
    dir: &Path,
    kinds: &'a [&'a str],
    memo: &'a Memo,
) -> Result<Vec<Obj>, Refusal> {
    let mut b = Build {
        fs,
        stack: Vec::new(),
        kinds,
        memo,
    };
    b.kustomization(dir, Vec::new(), false)
}

impl Build<'_> {
    fn kustomization(
        &mut self,
        dir: &Path,
        acc: Vec<Obj>,
        as_component: bool,
    ) -> Result<Vec<Obj>, Refusal> {
        let k = Kust::load(self.fs, dir)?.ok_or_else(|| {
            Refusal::new(
                dir,
                "is used as a kustomization but has no kustomization.yaml",
            )
        })?;
        if self.stack.contains(&k.dir) {
            return Err(k.refuse(None, "cycle: this kustomization uses itself"));
        }
        if as_component && !k.component {
            return Err(k.refuse(None, "used under components: but is not kind: Component"));
        }
        if !as_component && k.component {
            return Err(k.refuse(None, "a kind: Component is used as a resource"));
        }
        self.stack.push(k.dir.clone());
        let out = self.body(&k, acc);
        self.stack.pop();
        out
    }

    /// A kustomization used as a resource: built once per memo.
    fn resource_dir(&mut self, dir: &Path) -> Result<Vec<Obj>, Refusal> {
        // A cycle is found before the memo is asked: a kept build never contains one.
        if !self.stack.iter().any(|d| d == dir) {
            if let Some(objs) = self.memo.get(dir, self.kinds) {
                return Ok(objs);
            }
        }
        let objs = self.kustomization(dir, Vec::new(), false)?;
        self.memo.keep(dir, self.kinds, &objs);
        Ok(objs)
    }

    fn body(&mut self, k: &Kust, mut objs: Vec<Obj>) -> Result<Vec<Obj>, Refusal> {
        self.refuse_unresolved(k)?;
        for key in ["resources", "bases"] {
            for (entry, node) in k.strings(key) {
                if is_remote(&entry) {
                    return Err(k.refuse(
                        Some(node),
                        format!("{key}: {entry} is a remote base; gitops-canary reads only this repository (vendor it, or render it elsewhere)"),
                    ));
                }
                let p = k.local(&entry)?;
                if self.fs.is_dir(&p) {
                    objs.extend(self.resource_dir(&p)?);
                } else if self.fs.is_file(&p) {
                    objs.extend(read_resources(self.fs, &p, self.kinds)?);
                } else {
                    return Err(k.refuse(
                        Some(node),
                        format!("{key}: {entry}: no such file or directory"),
                    ));
                }
            }
        }
        for (entry, node) in k.strings("components") {
            if is_remote(&entry) {
                return Err(k.refuse(
                    Some(node),
                    format!(
                        "components: {entry} is remote; gitops-canary reads only this repository"
                    ),
                ));
            }
            let p = k.local(&entry)?;
            if !self.fs.is_dir(&p) {
                return Err(k.refuse(
                    Some(node),
                    format!("components: {entry}: no such directory"),
                ));
            }
            objs = self.kustomization(&p, objs, true)?;
        }
        // Kustomize's order of built-in transformers.
        self.patches_strategic_merge(k, &mut objs)?;
        self.patches(k, &mut objs)?;
        if let Some(ns) = k.str("namespace").filter(|n| !n.is_empty()) {
            for o in &mut objs {
                o.meta_mut()
                    .insert("namespace".into(), Value::String(ns.to_string()));
                o.remember_id();
            }
        }
        let prefix = k.str("namePrefix").unwrap_or("").to_string();
        let suffix = k.str("nameSuffix").unwrap_or("").to_string();
        if !prefix.is_empty() || !suffix.is_empty() {
            for o in &mut objs {
                let name = format!("{prefix}{}{suffix}", o.name());
                o.meta_mut().insert("name".into(), Value::String(name));
                o.remember_id();
            }
        }
        let mut labels = Vec::new();
        if let Some(n) = k.get("commonLabels") {
            labels.extend(map_pairs(&k.stream, n));
        }
        for item in k.items("labels") {
            if let Some(p) = k.stream.get(item, "pairs") {
                labels.extend(map_pairs(&k.stream, p));
            }
        }
        if !labels.is_empty() {
            for o in &mut objs {
                o.add_to_map("labels", &labels);
            }
        }
        if let Some(n) = k.get("commonAnnotations") {
            let pairs = map_pairs(&k.stream, n);
            let weight = k.stream.entry(n, nginx::WEIGHT).map(|(_, v)| Origin {
                file: k.file.clone(),
                line: k.line(v),
                kind: OriginKind::CommonAnnotations,
                by: k.dir.clone(),
                loc: Some(Loc::Yaml {
                    document: 1,
                    path: vec![key("commonAnnotations"), key(nginx::WEIGHT)],
                }),
            });
            if !pairs.is_empty() {
                let at = ingress_weight();
                for o in &mut objs {
                    o.add_to_map("annotations", &pairs);
                    if let Some(w) = weight.as_ref().filter(|_| is_tracked(o.kind(), &at)) {
                        o.origins.insert(at.clone(), w.clone());
                    }
                }
            }
        }
        self.patches_json6902(k, &mut objs)?;
        Ok(objs)
    }

    /// Features whose effect on the weight is not resolved.
    fn refuse_unresolved(&self, k: &Kust) -> Result<(), Refusal> {
        for key in ["helmCharts", "helmChartInflationGenerator", "helmGlobals"] {
            if let Some(n) = k.get(key) {
                if !to_json(&k.stream, n).is_null() {
                    return Err(k.refuse(
                        Some(n),
                        format!("{key}: a Helm chart inflated by kustomize is not resolved (render the chart into the repository, or set the weight as a chart value)"),
                    ));
                }
            }
        }
        // The words that give away an entry touching a weight of the kinds rendered.
        let ingress = self.kinds.contains(&"Ingress");
        let route = self.kinds.contains(&gateway::KIND);
        for key in ["generators", "transformers", "replacements"] {
            let mut words: Vec<&str> = Vec::new();
            if ingress {
                words.push("canary-weight");
                if key == "generators" {
                    words.push("Ingress");
                }
            }
            if route {
                words.push(if key == "generators" {
                    gateway::KIND
                } else {
                    "backendRefs"
                });
            }
            for item in k.items(key) {
                let text = match k.stream.str(item) {
                    Some(s) if !s.contains('\n') => {
                        if is_remote(s) {
                            return Err(k.refuse(Some(item), format!("{key}: {s} is remote")));
                        }
                        let p = k.local(s)?;
                        if self.fs.is_dir(&p) {
                            dir_text(self.fs, &p)
                        } else {
                            self.fs.read(&p)?
                        }
                    }
                    Some(s) => s.to_string(),
                    None => {
                        let span = k.stream.node(item).span.clone();
                        let mut t = k.text.get(span).unwrap_or("").to_string();
                        if let Some(p) = k.stream.get(item, "path").and_then(|n| k.stream.str(n)) {
                            t.push_str(&self.fs.read(&k.local(p)?)?);
                        }
                        t
                    }
                };
                let of = |field: &str, kind: &str| {
                    key == "replacements"
                        && text.contains(field)
                        && (text.contains(kind) || !text.contains("kind"))
                };
                let annotations_of_ingress = ingress && of("annotations", "Ingress");
                let rules_of_route = route && of("rules", gateway::KIND);
                if words.iter().any(|w| text.contains(w))
                    || annotations_of_ingress
                    || rules_of_route
                {
                    return Err(k.refuse(
                        Some(item),
                        format!("{key}: this entry may touch the canary weight, which gitops-canary does not resolve; set the weight with a patch instead"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn map_pairs(s: &Stream, n: NodeId) -> Vec<(String, Value)> {
    s.entries(n)
        .iter()
        .filter_map(|(k, v)| {
            let val = match to_json(s, *v) {
                Value::String(x) => Value::String(x),
                Value::Null => Value::String(String::new()),
                other => Value::String(other.to_string()),
            };
            s.str(*k).map(|k| (k.to_string(), val))
        })
        .collect()
}

/// All YAML text under a directory, for the "does it touch the weight" test.
fn dir_text(fs: Fs, dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(files) = crate::manifest::yaml_files(&fs.root.join(dir)) {
        for f in files {
            if let Ok(t) = std::fs::read_to_string(f) {
                out.push_str(&t);
            }
        }
    }
    out
}

/// One root's rendering, or why it cannot be rendered.
pub(crate) type Rendering = Result<Vec<Obj>, Refusal>;

/// Every root's rendering (or why it cannot be rendered).
pub type Renders = BTreeMap<PathBuf, Rendering>;

/// Every root's Ingresses.
pub fn render_roots(fs: Fs, layout: &Layout) -> Renders {
    render_roots_of(fs, layout, &["Ingress"])
}

/// Every root's objects of `kinds`.
pub fn render_roots_of(fs: Fs, layout: &Layout, kinds: &[&str]) -> Renders {
    render_some(fs, layout.roots.iter(), kinds)
}

/// The objects of `kinds` of the roots a selector can pick from: the root `overlay` names
/// alone (no other root can hold the target), else every root.
pub(crate) fn render_candidates(
    fs: Fs,
    layout: &Layout,
    kinds: &[&str],
    overlay: Option<&Path>,
) -> Renders {
    match overlay {
        Some(o) => render_some(fs, layout.roots.iter().filter(|r| *r == o), kinds),
        None => render_roots_of(fs, layout, kinds),
    }
}

/// The objects of `kinds` of some roots, the bases they share built once.
pub(crate) fn render_some<'r>(
    fs: Fs,
    roots: impl Iterator<Item = &'r PathBuf>,
    kinds: &[&str],
) -> Renders {
    let memo = Memo::default();
    roots
        .map(|r| (r.clone(), render_with(fs, r, kinds, &memo)))
        .collect()
}
