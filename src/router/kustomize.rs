//! Kustomize layouts: which kustomizations are roots (what Argo CD / Flux render), what each
//! root renders as far as the canary weight is concerned, and which file and line decide it.
//!
//! This is not a second kustomize. It resolves the fields that can place, rename or annotate
//! an Ingress (`resources`/`bases`, `components`, `patches`, `patchesStrategicMerge`,
//! `patchesJson6902`, `namespace`, `namePrefix`/`nameSuffix`, `commonLabels`/`labels`,
//! `commonAnnotations`) on the Ingress objects only, in kustomize's order, and remembers for
//! every object where its `canary-weight` was last written (an [`Origin`]). What it cannot
//! resolve (a remote base, a Helm chart, a generator, transformer or replacement that touches
//! the weight) is a [`Refusal`] naming the file and why, never a guess. `set` uses the
//! renderings to pick the one place to edit and to check every edit in-process: the target
//! root renders the new weight and every other root renders what it rendered before.

pub mod patch;
pub mod set;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::manifest::{contains, ManifestError, PathSeg, SourceFile};
use crate::router::{self, nginx, Discovery};
use crate::yaml::{self, NodeId, NodeKind, Stream, Style};

/// The names kustomize looks for in a directory, in its order.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Something kustomize would do that this module does not resolve, or a layout kustomize
/// itself would fail on. `file` is repository-relative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub file: PathBuf,
    pub reason: String,
}

impl Refusal {
    fn new(file: &Path, reason: impl Into<String>) -> Self {
        Refusal {
            file: file.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl From<Refusal> for ManifestError {
    fn from(r: Refusal) -> Self {
        ManifestError::Unresolved {
            file: r.file,
            reason: r.reason,
        }
    }
}

/// The repository as the renderer reads it: the files on disk, or the pending new contents
/// of the files an edit would write (so an edit is checked before anything is written).
#[derive(Clone, Copy)]
pub struct Fs<'a> {
    pub root: &'a Path,
    pub overrides: &'a BTreeMap<PathBuf, String>,
}

impl Fs<'_> {
    pub fn read(&self, rel: &Path) -> Result<String, Refusal> {
        if let Some(t) = self.overrides.get(rel) {
            return Ok(t.clone());
        }
        let bytes = std::fs::read(self.root.join(rel))
            .map_err(|e| Refusal::new(rel, format!("cannot read: {e}")))?;
        String::from_utf8(bytes).map_err(|_| Refusal::new(rel, "not UTF-8"))
    }

    fn is_file(&self, rel: &Path) -> bool {
        self.overrides.contains_key(rel) || self.root.join(rel).is_file()
    }

    fn is_dir(&self, rel: &Path) -> bool {
        self.root.join(rel).is_dir()
    }

    /// The kustomization file of `dir`, if it has one.
    pub fn kustomization_in(&self, dir: &Path) -> Option<PathBuf> {
        FILE_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| self.is_file(p))
    }
}

/// `a/b/../c` -> `a/c`, relative to the repository; `None` when it leaves the repository.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

/// A kustomize reference that is not a local path (a Git URL, `github.com/...`, an HTTP file).
pub fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.contains("?ref=")
        || entry.contains("?version=")
        || ["github.com/", "gitlab.com/", "bitbucket.org/"]
            .iter()
            .any(|h| entry.starts_with(h))
}

/// A parsed kustomization file.
#[derive(Debug)]
pub struct Kust {
    pub dir: PathBuf,
    pub file: PathBuf,
    pub text: String,
    pub stream: Stream,
    /// The document's root mapping (`None` for an empty file).
    pub root: Option<NodeId>,
    pub component: bool,
}

impl Kust {
    /// Read the kustomization of `dir`: `None` when it has none (or its file is a Flux
    /// `Kustomization` object, which kustomize never reads).
    pub fn load(fs: Fs, dir: &Path) -> Result<Option<Kust>, Refusal> {
        let Some(file) = fs.kustomization_in(dir) else {
            return Ok(None);
        };
        let text = fs.read(&file)?;
        let stream =
            yaml::parse(&text).map_err(|e| Refusal::new(&file, format!("not YAML: {e}")))?;
        let root = stream.docs.first().and_then(|d| d.root);
        if let Some(r) = root {
            if !stream.is_map(r) {
                return Err(Refusal::new(&file, "not a mapping"));
            }
            let api = stream.get(r, "apiVersion").and_then(|v| stream.str(v));
            if api.is_some_and(|a| a.starts_with("kustomize.toolkit.fluxcd.io")) {
                return Ok(None);
            }
        }
        let component = root
            .and_then(|r| stream.get(r, "kind"))
            .and_then(|k| stream.str(k))
            == Some("Component");
        Ok(Some(Kust {
            dir: dir.to_path_buf(),
            file,
            text,
            stream,
            root,
            component,
        }))
    }

    pub fn get(&self, key: &str) -> Option<NodeId> {
        self.root.and_then(|r| self.stream.get(r, key))
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|n| self.stream.str(n))
    }

    /// Items of a list field (an absent or null field is empty).
    pub fn items(&self, key: &str) -> Vec<NodeId> {
        self.get(key)
            .map(|n| self.stream.items(n).to_vec())
            .unwrap_or_default()
    }

    /// A list field of strings, each with its node.
    fn strings(&self, key: &str) -> Vec<(String, NodeId)> {
        self.items(key)
            .into_iter()
            .filter_map(|n| self.stream.str(n).map(|s| (s.to_string(), n)))
            .collect()
    }

    /// A local path named in this kustomization, repository-relative.
    fn local(&self, entry: &str) -> Result<PathBuf, Refusal> {
        normalize(&self.dir.join(entry)).ok_or_else(|| {
            Refusal::new(
                &self.file,
                format!(
                    "{entry} is outside the repository; gitops-canary reads only this repository"
                ),
            )
        })
    }

    fn line(&self, node: NodeId) -> usize {
        self.stream.node(node).line
    }

    fn refuse(&self, node: Option<NodeId>, reason: impl Into<String>) -> Refusal {
        let reason = reason.into();
        Refusal {
            file: self.file.clone(),
            reason: match node {
                Some(n) => format!("line {}: {reason}", self.line(n)),
                None => reason,
            },
        }
    }
}

/// Every kustomization of a repository and how they use each other.
#[derive(Debug, Default)]
pub struct Layout {
    /// Directories holding a kustomization, sorted.
    pub dirs: Vec<PathBuf>,
    /// Kustomizations no other one uses as a resource or component (and not components).
    pub roots: Vec<PathBuf>,
    /// Every local file each kustomization reads, through the ones it uses.
    pub reach: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

/// The directories holding a kustomization file, skipping `.git` and what `.gitignore` ignores.
fn kustomization_dirs(root: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = BTreeSet::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| ManifestError::Walk {
            dir: root.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_some_and(|t| t.is_file()) && FILE_NAMES.contains(&name.as_ref()) {
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            out.insert(rel);
        }
    }
    Ok(out.into_iter().collect())
}

/// Local paths a kustomization names: (kustomization directories it uses, files it reads).
fn references(fs: Fs, k: &Kust) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let mut add = |entry: &str| {
        if entry.contains('\n') || is_remote(entry) {
            return;
        }
        let Ok(p) = k.local(entry) else { return };
        if fs.is_dir(&p) {
            dirs.push(p);
        } else {
            files.push(p);
        }
    };
    for key in [
        "resources",
        "bases",
        "components",
        "patchesStrategicMerge",
        "generators",
        "transformers",
        "validators",
    ] {
        for (s, _) in k.strings(key) {
            add(&s);
        }
    }
    for key in ["patches", "patchesJson6902", "replacements"] {
        for item in k.items(key) {
            if let Some(p) = k.stream.get(item, "path").and_then(|n| k.stream.str(n)) {
                add(p);
            }
        }
    }
    (dirs, files)
}

impl Layout {
    /// Find every kustomization under `root` (a repository with none has an empty layout).
    pub fn discover(root: &Path) -> Result<Layout, ManifestError> {
        let no = BTreeMap::new();
        let fs = Fs {
            root,
            overrides: &no,
        };
        let dirs = kustomization_dirs(root)?;
        let mut uses: BTreeMap<PathBuf, (Vec<PathBuf>, Vec<PathBuf>)> = BTreeMap::new();
        let mut components = BTreeSet::new();
        let mut kept = Vec::new();
        for d in &dirs {
            // Unreadable kustomizations stay in the layout: rendering them refuses with why.
            match Kust::load(fs, d) {
                Ok(Some(k)) => {
                    if k.component {
                        components.insert(d.clone());
                    }
                    let (mut ds, mut fs_) = references(fs, &k);
                    fs_.push(k.file.clone());
                    ds.retain(|x| x != d);
                    uses.insert(d.clone(), (ds, fs_));
                    kept.push(d.clone());
                }
                Ok(None) => {}
                Err(_) => {
                    let file = fs.kustomization_in(d).unwrap_or_default();
                    uses.insert(d.clone(), (Vec::new(), vec![file]));
                    kept.push(d.clone());
                }
            }
        }
        let used: BTreeSet<&PathBuf> = uses.values().flat_map(|(ds, _)| ds).collect();
        let roots = kept
            .iter()
            .filter(|d| !used.contains(d) && !components.contains(*d))
            .cloned()
            .collect();
        let mut reach = BTreeMap::new();
        for d in &kept {
            let mut seen = BTreeSet::new();
            let mut files = BTreeSet::new();
            let mut stack = vec![d.clone()];
            while let Some(x) = stack.pop() {
                if !seen.insert(x.clone()) {
                    continue;
                }
                if let Some((ds, fs_)) = uses.get(&x) {
                    files.extend(fs_.iter().cloned());
                    stack.extend(ds.iter().cloned());
                } else {
                    // A directory without a kustomization: kustomize fails on it; its YAML
                    // files are still the layout's, not flat manifests.
                    files.insert(x.join("*"));
                }
            }
            reach.insert(d.clone(), files);
        }
        Ok(Layout {
            dirs: kept,
            roots,
            reach,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Does some kustomization read this file (so it is not a flat manifest)?
    pub fn owns(&self, file: &Path) -> bool {
        self.reach
            .values()
            .any(|r| r.contains(file) || file.parent().is_some_and(|p| r.contains(&p.join("*"))))
    }

    /// Roots other than `root` that read `file`.
    pub fn other_roots_reading(&self, root: &Path, file: &Path) -> Vec<PathBuf> {
        self.roots
            .iter()
            .filter(|r| r.as_path() != root)
            .filter(|r| self.reach.get(*r).is_some_and(|s| s.contains(file)))
            .cloned()
            .collect()
    }
}

/// Where an object is defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Src {
    pub file: PathBuf,
    pub document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub line: usize,
}

/// What last wrote the weight of a rendered object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OriginKind {
    /// The resource's own annotation.
    Resource,
    /// A strategic-merge patch.
    Patch,
    /// A JSON 6902 operation.
    Json6902,
    /// A kustomization's `commonAnnotations`.
    CommonAnnotations,
}

/// Where a value lives, precisely enough to edit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// A scalar in a YAML file: document and path.
    Yaml { document: usize, path: Vec<PathSeg> },
    /// A scalar inside an inline patch: the patch is the block scalar at `scalar` in the
    /// kustomization (document 1), the value is at `document`/`path` of the patch's text.
    Inline {
        scalar: Vec<PathSeg>,
        document: usize,
        path: Vec<PathSeg>,
    },
}

/// The file and line that decide a rendered weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
    pub kind: OriginKind,
    /// The kustomization directory that applied it (the resource's own file for `resource`).
    pub by: PathBuf,
    /// `None` when the value cannot be edited where it is (a `copy`/`move` operation).
    #[serde(skip)]
    pub loc: Option<Loc>,
}

/// A namespace and name an object had (kustomize matches patches on any of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Id {
    pub namespace: Option<String>,
    pub name: String,
}

/// One rendered Ingress.
#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    pub value: Value,
    /// Every id it had, the original first, the rendered last.
    pub ids: Vec<Id>,
    pub src: Src,
    /// What wrote the rendered weight (`None`: absent, or removed).
    pub weight: Option<Origin>,
}

impl Obj {
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
    }

    pub fn qualified_name(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_string(),
        }
    }

    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn group_version(&self) -> (&str, &str) {
        split_api(self.value["apiVersion"].as_str().unwrap_or(""))
    }

    /// The rendered weight annotation as a string (numbers as written).
    pub fn weight_raw(&self) -> Option<String> {
        match &self.value["metadata"]["annotations"][nginx::WEIGHT] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    fn annotations(&self) -> Option<&serde_json::Map<String, Value>> {
        self.value["metadata"]["annotations"].as_object()
    }

    fn labels(&self) -> Option<&serde_json::Map<String, Value>> {
        self.value["metadata"]["labels"].as_object()
    }

    fn meta_mut(&mut self) -> &mut serde_json::Map<String, Value> {
        if !self.value["metadata"].is_object() {
            self.value["metadata"] = Value::Object(Default::default());
        }
        self.value["metadata"].as_object_mut().expect("object")
    }

    fn remember_id(&mut self) {
        let id = Id {
            namespace: self.namespace().map(String::from),
            name: self.name().to_string(),
        };
        if self.ids.last() != Some(&id) {
            self.ids.push(id);
        }
    }

    fn add_to_map(&mut self, key: &str, pairs: &[(String, Value)]) {
        let meta = self.meta_mut();
        let m = meta
            .entry(key.to_string())
            .or_insert(Value::Object(Default::default()));
        if !m.is_object() {
            *m = Value::Object(Default::default());
        }
        let m = m.as_object_mut().expect("object");
        for (k, v) in pairs {
            m.insert(k.clone(), v.clone());
        }
    }
}

fn split_api(api: &str) -> (&str, &str) {
    match api.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api),
    }
}

/// A YAML node as JSON, with plain scalars typed as YAML 1.2's core schema reads them.
pub fn to_json(s: &Stream, id: NodeId) -> Value {
    match &s.node(s.resolve(id)).kind {
        NodeKind::Scalar {
            value,
            style,
            tagged,
        } => {
            if *style != Style::Plain || *tagged {
                return Value::String(value.clone());
            }
            match value.as_str() {
                "" | "~" | "null" | "Null" | "NULL" => Value::Null,
                "true" | "True" | "TRUE" => Value::Bool(true),
                "false" | "False" | "FALSE" => Value::Bool(false),
                v => {
                    if let Ok(i) = v.parse::<i64>() {
                        Value::from(i)
                    } else if let Some(f) = v
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .and_then(serde_json::Number::from_f64)
                    {
                        Value::Number(f)
                    } else {
                        Value::String(v.to_string())
                    }
                }
            }
        }
        NodeKind::Seq(items) => Value::Array(items.iter().map(|i| to_json(s, *i)).collect()),
        NodeKind::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                let key = s
                    .str(*k)
                    .map(String::from)
                    .unwrap_or_else(|| to_json(s, *k).to_string());
                m.insert(key, to_json(s, *v));
            }
            Value::Object(m)
        }
        NodeKind::Alias(_) => Value::Null,
    }
}

fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.to_string())
}

fn weight_path(item: Option<usize>) -> Vec<PathSeg> {
    let mut p = Vec::new();
    if let Some(i) = item {
        p.push(key("items"));
        p.push(PathSeg::Index(i));
    }
    p.extend([key("metadata"), key("annotations"), key(nginx::WEIGHT)]);
    p
}

/// The objects of the given kinds (Ingresses for the weight) in one resource file.
fn read_resources(fs: Fs, file: &Path, kinds: &[&str]) -> Result<Vec<Obj>, Refusal> {
    let text = fs.read(file)?;
    if !kinds
        .iter()
        .any(|k| contains(text.as_bytes(), k.as_bytes()))
    {
        return Ok(Vec::new());
    }
    let s = yaml::parse(&text).map_err(|e| Refusal::new(file, format!("not YAML: {e}")))?;
    let mut out = Vec::new();
    for doc in &s.docs {
        let Some(root) = doc.root else { continue };
        let mut objs = vec![(None, root)];
        if s.get(root, "kind").and_then(|k| s.str(k)) == Some("List") {
            objs = s
                .get(root, "items")
                .map(|i| {
                    s.items(i)
                        .iter()
                        .copied()
                        .enumerate()
                        .map(|(i, n)| (Some(i), n))
                        .collect()
                })
                .unwrap_or_default();
        }
        for (item, node) in objs {
            let kind = s.get(node, "kind").and_then(|k| s.str(k)).unwrap_or("");
            if !kinds.contains(&kind) {
                continue;
            }
            let value = to_json(&s, node);
            let weight = s
                .path(node, &["metadata", "annotations", nginx::WEIGHT])
                .map(|w| Origin {
                    file: file.to_path_buf(),
                    line: s.node(s.resolve(w)).line,
                    kind: OriginKind::Resource,
                    by: file.to_path_buf(),
                    loc: Some(Loc::Yaml {
                        document: doc.index,
                        path: weight_path(item),
                    }),
                });
            let mut obj = Obj {
                value,
                ids: Vec::new(),
                src: Src {
                    file: file.to_path_buf(),
                    document: doc.index,
                    item,
                    line: s.node(node).line,
                },
                weight,
            };
            obj.remember_id();
            out.push(obj);
        }
    }
    Ok(out)
}

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

/// What a patch does to the weight: `None` untouched, `Some(None)` removed, `Some(Some(n))`
/// written by node `n` at `path` (from the document root).
type Effect = Option<Option<(NodeId, Vec<PathSeg>)>>;

fn smp_effect(s: &Stream, root: NodeId) -> Effect {
    let meta = s.get(root, "metadata")?;
    let ann = s.get(meta, "annotations")?;
    if to_json(s, ann).is_null() {
        return Some(None);
    }
    let w = s.get(ann, nginx::WEIGHT)?;
    if to_json(s, w).is_null() {
        return Some(None);
    }
    Some(Some((
        w,
        vec![key("metadata"), key("annotations"), key(nginx::WEIGHT)],
    )))
}

const WEIGHT_TOKENS: [&str; 3] = ["metadata", "annotations", nginx::WEIGHT];

fn is_prefix_of_weight(tokens: &[String]) -> bool {
    tokens.len() <= WEIGHT_TOKENS.len() && tokens.iter().zip(WEIGHT_TOKENS).all(|(a, b)| a == b)
}

/// The build: objects accumulated so far, and the kustomizations on the way (cycles).
struct Build<'a> {
    fs: Fs<'a>,
    stack: Vec<PathBuf>,
    kinds: &'a [&'a str],
}

/// Render the Ingresses of the kustomization in `dir`.
pub fn render(fs: Fs, dir: &Path) -> Result<Vec<Obj>, Refusal> {
    render_kinds(fs, dir, &["Ingress"])
}

/// The kinds the rollout reads from a root: the routes and what serves them.
pub const WORKLOAD_KINDS: [&str; 3] = ["Ingress", "Service", "Deployment"];

/// Render the objects of `kinds` of the kustomization in `dir` (the rollout also needs the
/// Services and Deployments behind a rendered canary, with their rendered names).
pub fn render_kinds<'a>(fs: Fs<'a>, dir: &Path, kinds: &'a [&'a str]) -> Result<Vec<Obj>, Refusal> {
    let mut b = Build {
        fs,
        stack: Vec::new(),
        kinds,
    };
    b.kustomization(dir, Vec::new(), false)
}

/// The Deployments and Services of a rendering, with their rendered names and namespaces but
/// pointing at the file, document and item that define them.
pub fn workloads(
    objs: &[Obj],
) -> (
    Vec<crate::manifest::workload::Workload>,
    Vec<crate::manifest::workload::ServiceInfo>,
) {
    let file = synthetic(objs);
    let files = std::slice::from_ref(&file);
    let mut ws = crate::manifest::workload::workloads(files);
    for w in &mut ws {
        if let Some(o) = w.document.checked_sub(1).and_then(|i| objs.get(i)) {
            w.file = o.src.file.clone();
            w.document = o.src.document;
            w.item = o.src.item;
        }
    }
    (ws, crate::manifest::workload::services(files))
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
                    objs.extend(self.kustomization(&p, Vec::new(), false)?);
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
                for o in &mut objs {
                    o.add_to_map("annotations", &pairs);
                    if weight.is_some() {
                        o.weight = weight.clone();
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
        for (key, words) in [
            ("generators", &["canary-weight", "Ingress"][..]),
            ("transformers", &["canary-weight"][..]),
            ("replacements", &["canary-weight"][..]),
        ] {
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
                let annotations_of_ingress = key == "replacements"
                    && text.contains("annotations")
                    && (text.contains("Ingress") || !text.contains("kind"));
                if words.iter().any(|w| text.contains(w)) || annotations_of_ingress {
                    return Err(k.refuse(
                        Some(item),
                        format!("{key}: this entry may touch the canary weight, which gitops-canary does not resolve; set the weight with a patch instead"),
                    ));
                }
            }
        }
        Ok(())
    }

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

    fn patches_strategic_merge(&self, k: &Kust, objs: &mut Vec<Obj>) -> Result<(), Refusal> {
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

    fn patches(&self, k: &Kust, objs: &mut Vec<Obj>) -> Result<(), Refusal> {
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

    fn patches_json6902(&self, k: &Kust, objs: &mut [Obj]) -> Result<(), Refusal> {
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
            let effect = smp_effect(s, root);
            let origin = |o: &Obj| -> Option<Origin> {
                let _ = o;
                effect.clone().flatten().map(|(n, path)| Origin {
                    file: p.file.clone(),
                    line: p.line(s.resolve(n)),
                    kind: OriginKind::Patch,
                    by: k.dir.clone(),
                    loc: Some(p.loc(doc.index, path)),
                })
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
                    if hits.is_empty() && value["kind"].as_str() == Some("Ingress") {
                        return Err(Refusal::new(
                            &p.file,
                            format!(
                                "document {}: the patch names Ingress {} but {} renders no such Ingress (kustomize fails here)",
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
                if effect.is_some() {
                    o.weight = origin(o);
                }
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
            // What this operation does to the weight.
            let mut effect: Option<Option<Origin>> = None;
            let touches = is_prefix_of_weight(&path);
            match op.as_str() {
                "add" | "replace" if touches => {
                    let mut node = value_node;
                    let mut yaml_path = vec![PathSeg::Index(i), key("value")];
                    for t in &WEIGHT_TOKENS[path.len()..] {
                        node = node.and_then(|n| s.get(n, t));
                        yaml_path.push(key(t));
                    }
                    effect = Some(node.filter(|n| !to_json(s, *n).is_null()).map(|n| Origin {
                        file: p.file.clone(),
                        line: p.line(s.resolve(n)),
                        kind: OriginKind::Json6902,
                        by: k.dir.clone(),
                        loc: Some(p.loc(1, yaml_path)),
                    }));
                }
                "remove" if touches => effect = Some(None),
                "move" if from.as_deref().is_some_and(is_prefix_of_weight) && !touches => {
                    effect = Some(None)
                }
                "move" | "copy" if touches => {
                    effect = Some(Some(Origin {
                        file: p.file.clone(),
                        line: p.line(*item),
                        kind: OriginKind::Json6902,
                        by: k.dir.clone(),
                        loc: None,
                    }))
                }
                _ => {}
            }
            ops.push((
                patch::Op {
                    op,
                    path,
                    from,
                    value,
                },
                effect,
                p.line(*item),
            ));
        }
        for o in objs.iter_mut().filter(|o| target.matches(o)) {
            for (op, effect, line) in &ops {
                patch::apply_op(&mut o.value, op).map_err(|why| {
                    Refusal::new(
                        &p.file,
                        format!(
                            "line {line}: JSON 6902 {} fails on Ingress {}: {why} (kustomize fails here)",
                            op.op,
                            o.qualified_name()
                        ),
                    )
                })?;
                if let Some(e) = effect {
                    o.weight = e.clone();
                }
            }
            o.remember_id();
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

/// A directory as people write it (`.` for the repository's root).
pub fn display_dir(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".into()
    } else {
        p.display().to_string()
    }
}

/// How an origin is named in reports.
pub fn origin_kind(k: OriginKind) -> &'static str {
    match k {
        OriginKind::Resource => "resource",
        OriginKind::Patch => "patch",
        OriginKind::Json6902 => "json6902 patch",
        OriginKind::CommonAnnotations => "commonAnnotations",
    }
}

/// Every root's rendering (or why it cannot be rendered).
pub type Renders = BTreeMap<PathBuf, Result<Vec<Obj>, Refusal>>;

pub fn render_roots(fs: Fs, layout: &Layout) -> Renders {
    layout
        .roots
        .iter()
        .map(|r| (r.clone(), render(fs, r)))
        .collect()
}

/// The rendered objects as one synthetic YAML file (JSON documents), for the router.
fn synthetic(objs: &[Obj]) -> SourceFile {
    let text: Vec<String> = objs
        .iter()
        .map(|o| serde_json::to_string(&o.value).unwrap_or_default())
        .collect();
    let text = format!("{}\n", text.join("\n---\n"));
    SourceFile::parse(PathBuf::from("<rendered>"), text).unwrap_or(SourceFile {
        path: PathBuf::from("<rendered>"),
        text: String::new(),
        stream: Stream::default(),
    })
}

/// The routes a root renders, each pointing at its source file and weight origin.
pub fn routes(objs: &[Obj]) -> Vec<(router::Route, &Obj)> {
    let file = synthetic(objs);
    router::default_router()
        .routes(&file)
        .into_iter()
        .filter_map(|mut r| {
            let o = objs.get(r.document.checked_sub(1)?)?;
            fix_route(&mut r, o);
            Some((r, o))
        })
        .collect()
}

fn fix_route(r: &mut router::Route, o: &Obj) {
    r.file = o.src.file.clone();
    r.document = o.src.document;
    r.item = o.src.item;
    r.line = o.src.line;
    r.weight_line = o.weight.as_ref().map(|w| w.line);
}

/// Canary pairs and problems within one root's rendering, pointing at source files (the
/// weight's problems at the file and line that decide it).
pub fn discover(objs: &[Obj]) -> Discovery {
    let file = synthetic(objs);
    let mut d = router::default_router().discover(std::slice::from_ref(&file), &[]);
    let obj = |doc: usize| doc.checked_sub(1).and_then(|i| objs.get(i));
    let fix_problem = |p: &mut router::Problem| {
        if let Some(o) = obj(p.document) {
            let weight_field = p.field.contains(&format!("{:?}", nginx::WEIGHT));
            match (&o.weight, weight_field) {
                (Some(w), true) => {
                    p.file = w.file.clone();
                    p.line = w.line;
                }
                _ => {
                    p.file = o.src.file.clone();
                    p.line = o.src.line;
                }
            }
            p.document = o.src.document;
        }
    };
    for pair in &mut d.pairs {
        for p in &mut pair.problems {
            fix_problem(p);
        }
        if let Some(o) = obj(pair.canary.document) {
            fix_route(&mut pair.canary, o);
        }
        for s in &mut pair.stable {
            if let Some(o) = obj(s.document) {
                fix_route(s, o);
            }
        }
    }
    for p in &mut d.problems {
        fix_problem(p);
    }
    d
}

/// One root as `plan` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootPlan {
    pub dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    pub canaries: Vec<RootCanary>,
    pub discovery: Option<Discovery>,
}

/// A canary as one root renders it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootCanary {
    pub namespace: Option<String>,
    pub name: String,
    pub weight_raw: Option<String>,
    pub decided_by: Option<Origin>,
    pub source: Src,
}

/// Every root with what it renders, for `plan`.
pub fn plan(root: &Path, layout: &Layout) -> Vec<RootPlan> {
    let no = BTreeMap::new();
    let fs = Fs {
        root,
        overrides: &no,
    };
    render_roots(fs, layout)
        .into_iter()
        .map(|(dir, r)| match r {
            Err(refusal) => RootPlan {
                dir,
                refused: Some(refusal),
                canaries: Vec::new(),
                discovery: None,
            },
            Ok(objs) => {
                let d = discover(&objs);
                let canaries = routes(&objs)
                    .into_iter()
                    .filter(|(r, _)| r.canary)
                    .map(|(r, o)| RootCanary {
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                        weight_raw: r.weight_raw.clone(),
                        decided_by: o.weight.clone(),
                        source: o.src.clone(),
                    })
                    .collect();
                RootPlan {
                    dir,
                    refused: None,
                    canaries,
                    discovery: Some(d),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
