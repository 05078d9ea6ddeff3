//! The layout of a repository's kustomizations: which are roots (what Argo CD / Flux render),
//! and which files each one reads through the ones it uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::render::ESCAPE;
use super::{is_remote, Fs, Kust, FILE_NAMES};
use crate::manifest::{path_key, ByteFilter, ManifestError, PathMap, PathSet, Repo, Snapshot};
use crate::router::gateway;

/// What one kustomization uses and reads.
#[derive(Debug, Default)]
struct Uses {
    /// Kustomizations, by their index in [`Layout::dirs`].
    kusts: Vec<usize>,
    /// Directories without a kustomization (kustomize fails on them; their files are still
    /// the layout's).
    bare: Vec<PathBuf>,
    /// Files, its own kustomization file included.
    files: Vec<PathBuf>,
    component: bool,
}

/// Every kustomization of a repository and how they use each other.
#[derive(Debug, Default)]
pub struct Layout {
    /// Directories holding a kustomization, sorted.
    pub dirs: Vec<PathBuf>,
    /// Kustomizations no other one uses as a resource or component (and not components).
    pub roots: Vec<PathBuf>,
    /// Per kustomization of `dirs` (same index): the kustomizations it uses, the directories
    /// without one it uses, the files it reads. [`Layout::reach`] follows it for a root.
    uses: Vec<Uses>,
    /// Every file some kustomization reads, and the directories whose every file one reads
    /// (by their paths' bytes): asked once per manifest by [`Layout::owns`].
    owned: PathSet<Box<[u8]>>,
    owned_dirs: PathSet<Box<[u8]>>,
    /// What the walk that found the layout saw, for the renderings that follow it (before
    /// anything is written).
    seen: Snapshot,
}

/// The words a rendering asks of large files ([`Fs::read_holding`]): the kinds it renders, and
/// the backslash without which no kind can be written other than as itself.
pub(crate) const WORDS: &[&str] = &["Ingress", gateway::KIND, "Service", "Deployment", ESCAPE];

/// Local paths a kustomization names (kustomization directories it uses and files it reads;
/// which is which is told once the walk is over).
fn references(k: &Kust) -> Vec<PathBuf> {
    let mut refs = Vec::new();
    let mut add = |entry: &str| {
        if entry.contains('\n') || is_remote(entry) {
            return;
        }
        if let Ok(p) = k.local(entry) {
            refs.push(p);
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
    refs
}

/// What a kustomization file says about the layout, read where the walk found it.
enum Found {
    /// A Flux `Kustomization` object: kustomize never reads it.
    Flux,
    /// A kustomization (or a file that cannot be read as one: it stays in the layout, reading
    /// only itself, and rendering it refuses with why): the local paths it names, and its own
    /// file.
    Kustomization {
        component: bool,
        refs: Vec<PathBuf>,
        file: PathBuf,
    },
}

/// Read one kustomization file found at `rel`.
fn read(rel: &Path, bytes: std::io::Result<&[u8]>) -> Found {
    let broken = || Found::Kustomization {
        component: false,
        refs: Vec::new(),
        file: rel.to_path_buf(),
    };
    let Some(text) = bytes.ok().and_then(|b| std::str::from_utf8(b).ok()) else {
        return broken();
    };
    match Kust::from_text(rel.to_path_buf(), text.to_string()) {
        Ok(None) => Found::Flux,
        Ok(Some(k)) => Found::Kustomization {
            component: k.component,
            refs: references(&k),
            file: k.file,
        },
        Err(_) => broken(),
    }
}

impl Layout {
    /// Find every kustomization under `root` (a repository with none has an empty layout).
    pub fn discover(root: &Path) -> Result<Layout, ManifestError> {
        let found = crate::manifest::scan(root, &FILE_NAMES, &read, None, WORDS)?;
        Ok(Layout::from_found(root, found.named, found.seen))
    }

    /// [`Layout::discover`], and in the same walk the manifests no kustomization reads whose
    /// bytes pass `keep`, parsed (`plan` and `set-weight` walk the tree once).
    pub(crate) fn discover_with(
        root: &Path,
        keep: &ByteFilter<'_>,
    ) -> Result<(Layout, Repo), ManifestError> {
        let found = crate::manifest::scan(root, &FILE_NAMES, &read, Some(keep), WORDS)?;
        let layout = Layout::from_found(root, found.named, found.seen);
        let repo = Repo::from_scanned(root, found.kept, &|p| !layout.owns(p))?;
        Ok((layout, repo))
    }

    /// The layout of the kustomization files a walk found, each read by [`read`] where it was
    /// found, and what the walk saw.
    fn from_found(root: &Path, found: Vec<(PathBuf, Found)>, seen: Snapshot) -> Layout {
        let fs = Fs {
            root,
            overrides: &BTreeMap::new(),
            seen: Some(&seen),
        };
        // One kustomization per directory: the first name in kustomize's order (a directory
        // whose first is a Flux object has none). Directories are numbered (paths compare
        // component by component, which made a layout of thousands of kustomizations slow to
        // assemble with paths as keys throughout).
        fn dir_of(file: &Path) -> &Path {
            file.parent().unwrap_or(Path::new(""))
        }
        let mut best: PathMap<&[u8], (usize, usize)> = PathMap::default();
        for (i, (file, _)) in found.iter().enumerate() {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let rank = FILE_NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap_or(FILE_NAMES.len());
            let b = best.entry(path_key(dir_of(file))).or_insert((rank, i));
            if rank < b.0 {
                *b = (rank, i);
            }
        }
        let mut chosen = vec![false; found.len()];
        for (_, i) in best.into_values() {
            chosen[i] = true;
        }
        let mut slots: Vec<(PathBuf, Found)> = found
            .into_iter()
            .zip(chosen)
            .filter(|((_, f), c)| *c && !matches!(f, Found::Flux))
            .map(|((file, f), _)| (dir_of(&file).to_path_buf(), f))
            .collect();
        crate::manifest::sort_by_path(&mut slots);
        let (dirs, slots): (Vec<PathBuf>, Vec<Found>) = slots.into_iter().unzip();
        let slot_of: PathMap<&[u8], usize> = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| (path_key(d), i))
            .collect();
        let uses: Vec<Uses> = slots
            .into_iter()
            .enumerate()
            .map(|(i, f)| match f {
                Found::Kustomization {
                    component,
                    refs,
                    file,
                } => {
                    let mut u = Uses {
                        component,
                        ..Uses::default()
                    };
                    for p in refs {
                        if !fs.is_dir(&p) {
                            u.files.push(p);
                            continue;
                        }
                        match slot_of.get(path_key(&p)) {
                            Some(&j) if j != i => u.kusts.push(j),
                            Some(_) => {}
                            None => u.bare.push(p),
                        }
                    }
                    u.files.push(file);
                    u
                }
                Found::Flux => Uses::default(),
            })
            .collect();
        drop(slot_of);
        let mut used = vec![false; uses.len()];
        for u in &uses {
            for &j in &u.kusts {
                used[j] = true;
            }
        }
        let roots = (0..uses.len())
            .filter(|&i| !used[i] && !uses[i].component)
            .map(|i| dirs[i].clone())
            .collect();
        // Every file some kustomization reads: its own references, and every file of a
        // directory it uses that has no kustomization (kustomize fails on it; its YAML files
        // are still the layout's, not flat manifests).
        let owned = uses
            .iter()
            .flat_map(|u| &u.files)
            .map(|f| path_key(f).into())
            .collect();
        let owned_dirs = uses
            .iter()
            .flat_map(|u| &u.bare)
            .map(|d| path_key(d).into())
            .collect();
        Layout {
            dirs,
            roots,
            uses,
            owned,
            owned_dirs,
            seen,
        }
    }

    /// The repository under `root` as renderings read it before anything is written: the
    /// walk's snapshot first, the disk for what the walk did not see, `overrides` above both.
    pub(crate) fn fs<'a>(
        &'a self,
        root: &'a Path,
        overrides: &'a BTreeMap<PathBuf, String>,
    ) -> Fs<'a> {
        Fs {
            root,
            overrides,
            seen: Some(&self.seen),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Does some kustomization read this file (so it is not a flat manifest)?
    pub fn owns(&self, file: &Path) -> bool {
        self.owned.contains(path_key(file))
            || file
                .parent()
                .is_some_and(|p| self.owned_dirs.contains(path_key(p)))
    }

    /// The kustomizations `dir` uses, itself first, each once (none for a directory without
    /// a kustomization).
    fn used_by(&self, dir: &Path) -> Vec<usize> {
        let Ok(start) = self.dirs.binary_search_by(|d| d.as_path().cmp(dir)) else {
            return Vec::new();
        };
        let mut seen = vec![start];
        let mut stack = vec![start];
        while let Some(x) = stack.pop() {
            for &k in &self.uses[x].kusts {
                if !seen.contains(&k) {
                    seen.push(k);
                    stack.push(k);
                }
            }
        }
        seen
    }

    /// Every local file the kustomization `dir` reads, through the kustomizations it uses
    /// (`dir/*`: every file of a directory without a kustomization).
    pub fn reach(&self, dir: &Path) -> BTreeSet<PathBuf> {
        let mut files = BTreeSet::new();
        for k in self.used_by(dir) {
            let u = &self.uses[k];
            files.extend(u.files.iter().cloned());
            files.extend(u.bare.iter().map(|d| d.join("*")));
        }
        files
    }

    /// Does the kustomization `dir` read `file`, through the ones it uses?
    pub(crate) fn reads(&self, dir: &Path, file: &Path) -> bool {
        let parent = file.parent();
        self.used_by(dir).into_iter().any(|k| {
            let u = &self.uses[k];
            u.files.iter().any(|f| f == file) || u.bare.iter().any(|d| Some(d.as_path()) == parent)
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
