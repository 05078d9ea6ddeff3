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
    /// Every local file each kustomization reads, through the ones it uses.
    pub reach: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// Every file some kustomization reads (the union of `reach`), and the directories whose
    /// every file one reads: asked once per manifest by [`Layout::owns`].
    owned: BTreeSet<PathBuf>,
    owned_dirs: BTreeSet<PathBuf>,
}

/// The directories holding a kustomization file, skipping `.git` and what `.gitignore` ignores.
fn kustomization_dirs(root: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    // The same parallel walk as the manifests (`.gitignore` honoured), reading no file.
    let out: BTreeSet<PathBuf> = crate::manifest::files_named(root, &FILE_NAMES)?
        .into_iter()
        .map(|p| {
            p.strip_prefix(root)
                .unwrap_or(&p)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
        .collect();
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
        let mut owned = BTreeSet::new();
        let mut owned_dirs = BTreeSet::new();
        for f in reach.values().flatten() {
            match f.file_name().filter(|n| *n == "*").and(f.parent()) {
                Some(dir) => owned_dirs.insert(dir.to_path_buf()),
                None => owned.insert(f.clone()),
            };
        }
        Ok(Layout {
            dirs: kept,
            roots,
            reach,
            owned,
            owned_dirs,
        })
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
