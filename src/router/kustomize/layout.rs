//! The layout of a repository's kustomizations: which are roots (what Argo CD / Flux render),
//! and which files each one reads through the ones it uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{is_remote, Fs, Kust, FILE_NAMES};
use crate::manifest::ManifestError;

/// Every kustomization of a repository and how they use each other.
#[derive(Debug, Default)]
pub struct Layout {
    /// Directories holding a kustomization, sorted.
    pub dirs: Vec<PathBuf>,
    /// Kustomizations no other one uses as a resource or component (and not components).
    pub roots: Vec<PathBuf>,
    /// Every local file each root reads, through the kustomizations it uses (`dir/*`: every
    /// file of a directory without a kustomization).
    pub reach: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// Every file some kustomization reads (the union of `reach`), and the directories whose
    /// every file one reads: asked once per manifest by [`Layout::owns`].
    owned: BTreeSet<PathBuf>,
    owned_dirs: BTreeSet<PathBuf>,
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

/// What a kustomization file says about the layout, read where the walk found it.
pub(crate) enum Found {
    /// A Flux `Kustomization` object: kustomize never reads it.
    Flux,
    /// A kustomization (or a file that cannot be read as one: it stays in the layout, reading
    /// only itself, and rendering it refuses with why): the kustomization directories it uses
    /// and the files it reads, itself included.
    Kustomization {
        component: bool,
        dirs: Vec<PathBuf>,
        files: Vec<PathBuf>,
    },
}

/// Read one kustomization file found under `root` at `rel`.
pub(crate) fn read(root: &Path, rel: &Path, bytes: std::io::Result<&[u8]>) -> Found {
    let broken = || Found::Kustomization {
        component: false,
        dirs: Vec::new(),
        files: vec![rel.to_path_buf()],
    };
    let Some(text) = bytes.ok().and_then(|b| std::str::from_utf8(b).ok()) else {
        return broken();
    };
    let no = BTreeMap::new();
    let fs = Fs {
        root,
        overrides: &no,
    };
    match Kust::from_text(rel.to_path_buf(), text.to_string()) {
        Ok(None) => Found::Flux,
        Ok(Some(k)) => {
            let (dirs, mut files) = references(fs, &k);
            files.push(k.file.clone());
            Found::Kustomization {
                component: k.component,
                dirs,
                files,
            }
        }
        Err(_) => broken(),
    }
}

impl Layout {
    /// Find every kustomization under `root` (a repository with none has an empty layout).
    pub fn discover(root: &Path) -> Result<Layout, ManifestError> {
        let found = crate::manifest::scan(
            root,
            &FILE_NAMES,
            &|rel, bytes| read(root, rel, bytes),
            None,
        )?;
        Ok(Layout::from_found(found.named))
    }

    /// The layout of the kustomization files a walk found, each read by [`read`] where it was
    /// found (`plan` finds them in the walk that reads its manifests).
    pub(crate) fn from_found(found: Vec<(PathBuf, Found)>) -> Layout {
        // One kustomization per directory: the first name in kustomize's order.
        let mut by_dir: BTreeMap<PathBuf, (usize, Found)> = BTreeMap::new();
        for (file, f) in found {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let rank = FILE_NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap_or(FILE_NAMES.len());
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            match by_dir.get(&dir) {
                Some((r, _)) if *r <= rank => {}
                _ => {
                    by_dir.insert(dir, (rank, f));
                }
            }
        }
        let mut uses: BTreeMap<PathBuf, (Vec<PathBuf>, Vec<PathBuf>)> = BTreeMap::new();
        let mut components = BTreeSet::new();
        let mut kept = Vec::new();
        for (d, (_, found)) in by_dir {
            match found {
                Found::Flux => {}
                Found::Kustomization {
                    component,
                    mut dirs,
                    files,
                } => {
                    if component {
                        components.insert(d.clone());
                    }
                    dirs.retain(|x| *x != d);
                    uses.insert(d.clone(), (dirs, files));
                    kept.push(d);
                }
            }
        }
        let used: BTreeSet<&PathBuf> = uses.values().flat_map(|(ds, _)| ds).collect();
        let roots: Vec<PathBuf> = kept
            .iter()
            .filter(|d| !used.contains(d) && !components.contains(*d))
            .cloned()
            .collect();
        // Every file some kustomization reads: its own references, and every file of a
        // directory it uses that has no kustomization (kustomize fails on it; its YAML files
        // are still the layout's, not flat manifests).
        let mut owned = BTreeSet::new();
        let mut owned_dirs = BTreeSet::new();
        for (ds, fs_) in uses.values() {
            owned.extend(fs_.iter().cloned());
            owned_dirs.extend(ds.iter().filter(|x| !uses.contains_key(*x)).cloned());
        }
        let reach = roots
            .iter()
            .map(|d: &PathBuf| {
                let mut seen = BTreeSet::new();
                let mut files = BTreeSet::new();
                let mut stack = vec![d];
                while let Some(x) = stack.pop() {
                    if !seen.insert(x) {
                        continue;
                    }
                    if let Some((ds, fs_)) = uses.get(x) {
                        files.extend(fs_.iter().cloned());
                        stack.extend(ds);
                    } else {
                        files.insert(x.join("*"));
                    }
                }
                (d.clone(), files)
            })
            .collect();
        Layout {
            dirs: kept,
            roots,
            reach,
            owned,
            owned_dirs,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Does some kustomization read this file (so it is not a flat manifest)?
    pub fn owns(&self, file: &Path) -> bool {
        self.owned.contains(file) || file.parent().is_some_and(|p| self.owned_dirs.contains(p))
    }

    /// Does the kustomization `dir` read `file`, through the ones it uses?
    pub(crate) fn reads(&self, dir: &Path, file: &Path) -> bool {
        self.reach.get(dir).is_some_and(|r| {
            r.contains(file) || file.parent().is_some_and(|p| r.contains(&p.join("*")))
        })
    }

    /// Roots other than `root` that read `file`.
    pub(crate) fn other_roots_reading(&self, root: &Path, file: &Path) -> Vec<PathBuf> {
        self.roots
            .iter()
            .filter(|r| r.as_path() != root)
            .filter(|r| self.reads(r, file))
            .cloned()
            .collect()
    }
}
