//! Kustomize layouts: which kustomizations are roots (what Argo CD / Flux render), what each
//! root renders as far as the canary weights are concerned, and which file and line decide
//! them.
//!
//! This is not a second kustomize. It resolves the fields that can place, rename, annotate or
//! patch an object (`resources`/`bases`, `components`, `patches`, `patchesStrategicMerge`,
//! `patchesJson6902`, `namespace`, `namePrefix`/`nameSuffix`, `commonLabels`/`labels`,
//! `commonAnnotations`) on the objects of the kinds asked for only (Ingresses; HTTPRoutes with
//! the Services and Deployments behind them), in kustomize's order, and remembers for every
//! object where each weight was last written (an [`Origin`] per path: an Ingress's
//! `canary-weight`, each HTTPRoute `backendRefs[].weight`). What it cannot resolve (a remote
//! base, a Helm chart, a generator, transformer or replacement that touches a weight) is a
//! [`Refusal`] naming the file and why, never a guess. `set` (Ingresses) and `route_set`
//! (HTTPRoutes) use the renderings to pick the one place to edit and to check every edit
//! in-process: the target root renders the new weight and every other root renders what it
//! rendered before.

mod inline_edit;
mod kust;
mod layout;
mod new_patch;
mod object;
mod origins;
pub mod patch;
mod patches;
mod plan;
mod render;
pub(crate) mod route_plan;
pub(crate) mod route_set;
pub mod set;

pub use kust::Kust;
pub use layout::Layout;
pub use object::{
    backend_ref, is_tracked, to_json, Id, Loc, Obj, Origin, OriginKind, Origins, Src,
};
pub use plan::{discover, plan, routes, workloads, RootCanary, RootPlan};
pub use render::{
    render, render_kinds, render_roots, render_roots_of, Renders, HTTPROUTE_KINDS, WORKLOAD_KINDS,
};

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::manifest::ManifestError;

/// The names kustomize looks for in a directory, in its order.
pub(crate) const FILE_NAMES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Something kustomize would do that this module does not resolve, or a layout kustomize
/// itself would fail on. `file` is repository-relative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub file: PathBuf,
    pub reason: String,
}

impl Refusal {
    pub(super) fn new(file: &Path, reason: impl Into<String>) -> Self {
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

/// The repository as the renderer reads it: the files on disk (through what the walk that
/// found the layout saw of them, when given: [`Layout::fs`]), or the pending new contents of
/// the files an edit would write (so an edit is checked before anything is written).
#[derive(Clone, Copy)]
pub struct Fs<'a> {
    pub root: &'a Path,
    pub overrides: &'a BTreeMap<PathBuf, String>,
    pub(crate) seen: Option<&'a crate::manifest::Snapshot>,
}

impl Fs<'_> {
    pub fn read(&self, rel: &Path) -> Result<String, Refusal> {
        if let Some(t) = self.overrides.get(rel) {
            return Ok(t.clone());
        }
        if let Some(t) = self.seen.and_then(|s| s.text(rel)) {
            return Ok(t.to_string());
        }
        let bytes = std::fs::read(self.root.join(rel))
            .map_err(|e| Refusal::new(rel, format!("cannot read: {e}")))?;
        String::from_utf8(bytes).map_err(|_| Refusal::new(rel, "not UTF-8"))
    }

    /// The text of `rel` if it may contain one of `words` (`None`: it contains none), not
    /// read when the walk already knows it contains none.
    pub(super) fn read_holding(
        &self,
        rel: &Path,
        words: &[&str],
    ) -> Result<Option<String>, Refusal> {
        if !self.overrides.contains_key(rel) && self.seen.is_some_and(|s| s.lacks_all(rel, words)) {
            return Ok(None);
        }
        let text = self.read(rel)?;
        let holds = words
            .iter()
            .any(|w| crate::manifest::contains(text.as_bytes(), w.as_bytes()));
        Ok(holds.then_some(text))
    }

    pub(super) fn is_file(&self, rel: &Path) -> bool {
        self.overrides.contains_key(rel)
            || self
                .seen
                .and_then(|s| s.is_file(rel))
                .unwrap_or_else(|| self.root.join(rel).is_file())
    }

    pub(super) fn is_dir(&self, rel: &Path) -> bool {
        self.seen
            .and_then(|s| s.is_dir(rel))
            .unwrap_or_else(|| self.root.join(rel).is_dir())
    }

    /// The kustomization file of `dir`, if it has one.
    pub(crate) fn kustomization_in(&self, dir: &Path) -> Option<PathBuf> {
        FILE_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| self.is_file(p))
    }
}

/// `a/b/../c` -> `a/c`, relative to the repository; `None` when it leaves the repository.
pub(crate) fn normalize(path: &Path) -> Option<PathBuf> {
    // Borrowed components, one allocation: thousands of kustomization entries go through here.
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let mut p = PathBuf::with_capacity(path.as_os_str().len());
    for s in out {
        p.push(s);
    }
    Some(p)
}

/// A kustomize reference that is not a local path (a Git URL, `github.com/...`, an HTTP file).
pub(crate) fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.contains("?ref=")
        || entry.contains("?version=")
        || ["github.com/", "gitlab.com/", "bitbucket.org/"]
            .iter()
            .any(|h| entry.starts_with(h))
}

/// A directory as people write it (`.` for the repository's root).
pub(crate) fn display_dir(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".into()
    } else {
        p.display().to_string()
    }
}

/// How an origin is named in reports.
pub(crate) fn origin_kind(k: OriginKind) -> &'static str {
    match k {
        OriginKind::Resource => "resource",
        OriginKind::Patch => "patch",
        OriginKind::Json6902 => "json6902 patch",
        OriginKind::CommonAnnotations => "commonAnnotations",
    }
}

#[cfg(test)]
mod tests;
