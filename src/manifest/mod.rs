//! Manifests: read a GitOps repository's YAML files and change one value byte-exactly. What a
//! value means (a canary weight, a route) is the routers' business (`router`), one layer up.
//!
//! Reading is split in two so that a 20,000-file monorepo costs about what `grep` costs: the
//! walk (`walk`, on every core) reads each file's bytes once and parses only the files whose
//! bytes can hold a route (`Repo::load_filtered`). Editing is values first: `Edit` says which file, document, YAML
//! path, old and new value; `edit::apply` is the one place that turns edits into bytes, and
//! `--dry-run` renders the very same values as a diff. Nothing here talks to Git or a cluster.

pub mod edit;
mod snapshot;
mod walk;
pub(crate) use snapshot::{Seen, Snapshot};
pub(crate) use walk::{key as path_key, par_chunks, par_map, sort_by_path, PathMap, PathSet};
pub mod workload;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fault::Classify;
use crate::yaml::{self, Stream};

pub use edit::{Edit, EditOutcome, PathSeg, ScalarKind};

/// Everything that can go wrong reading or editing manifests. Each variant names the file
/// (repository-relative), and where it applies the document (1-based) and the field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{dir}: {source}")]
    Walk {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {error}; it may hold {selector}")]
    TargetUnparsable {
        file: PathBuf,
        selector: String,
        error: String,
    },
    #[error("invalid Ingress selector {selector:?}: expected NAME or NAMESPACE/NAME")]
    BadSelector { selector: String },
    #[error("no Ingress matches {selector}{candidates}")]
    NoMatch {
        selector: String,
        candidates: String,
    },
    #[error("no HTTPRoute matches {selector}{candidates}")]
    NoRoute {
        selector: String,
        candidates: String,
    },
    #[error("{selector} is ambiguous: it matches {}", candidates.join(", "))]
    Ambiguous {
        selector: String,
        candidates: Vec<String>,
    },
    #[error(
        "{file} (document {document}): Ingress {name} is not a canary: {field} is not \"true\""
    )]
    NotCanary {
        file: PathBuf,
        document: usize,
        name: String,
        field: String,
    },
    #[error("{file} (document {document}): {field}: weight {weight} is outside 0..={total}")]
    WeightOutOfRange {
        file: PathBuf,
        document: usize,
        field: String,
        weight: u32,
        total: u32,
    },
    #[error("{file} (document {document}): {field}: {reason}")]
    CannotEdit {
        file: PathBuf,
        document: usize,
        field: String,
        reason: String,
    },
    /// The edited bytes did not parse back to the original plus the one change. This is a
    /// bug in the editor, never the user's input; nothing is written.
    #[error("{file} (document {document}): {field}: refusing to write, the edit would change more than the value: {detail}")]
    Guard {
        file: PathBuf,
        document: usize,
        field: String,
        detail: String,
    },
    #[error("{file}: {reason}")]
    Create { file: PathBuf, reason: String },
    /// A Kustomize layout this tool does not resolve (a remote base, a Helm chart, a generator
    /// touching the weight), or an edit whose rendering check failed.
    #[error("{file}: {reason}")]
    Unresolved { file: PathBuf, reason: String },
}

impl Classify for ManifestError {
    fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            ManifestError::Read { .. }
                | ManifestError::Write { .. }
                | ManifestError::Walk { .. }
                | ManifestError::Guard { .. }
        )
    }
}

/// A file that was read but not used, with one line saying why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

/// One parsed YAML file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Repository-relative path.
    pub path: PathBuf,
    pub text: String,
    pub stream: Stream,
}

impl SourceFile {
    pub fn parse(path: PathBuf, text: String) -> Result<Self, yaml::ParseError> {
        let stream = yaml::parse(&text)?;
        Ok(SourceFile { path, text, stream })
    }
}

/// The parsed candidate files of a repository.
#[derive(Debug)]
pub struct Repo {
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
    pub skipped: Vec<Skipped>,
}

/// The Kubernetes objects of one document: each item of a `kind: List` (with its index), or
/// the root itself.
fn objects(
    s: &crate::yaml::Stream,
    root: crate::yaml::NodeId,
) -> Vec<(Option<usize>, crate::yaml::NodeId)> {
    if s.get(root, "kind").and_then(|k| s.str(k)) == Some("List") {
        if let Some(items) = s.get(root, "items") {
            return s
                .items(items)
                .iter()
                .enumerate()
                .map(|(i, n)| (Some(i), *n))
                .collect();
        }
    }
    vec![(None, root)]
}

/// Every Kubernetes object of a stream, as (1-based document, item of a `kind: List`, node), in
/// order: [`objects`] over each document that has content. Every reader of manifests (the
/// routers, workloads, Kustomize rendering) goes through this, so a List is read the same way
/// everywhere.
pub(crate) fn stream_objects(
    s: &crate::yaml::Stream,
) -> Vec<(usize, Option<usize>, crate::yaml::NodeId)> {
    s.docs
        .iter()
        .filter_map(|d| d.root.map(|root| (d.index, root)))
        .flat_map(|(doc, root)| {
            objects(s, root)
                .into_iter()
                .map(move |(item, node)| (doc, item, node))
        })
        .collect()
}

/// Every `*.yaml`/`*.yml` file under `dir`, skipping `.git` and what `.gitignore` ignores,
/// in a stable order (so reports and errors do not depend on the file system).
pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let found = walk::files_with(dir, &walk::is_yaml, &|_, _| Some(()))?;
    Ok(found.into_iter().map(|(path, ())| path).collect())
}

/// What loading made of one file that passed the byte filter.
enum Loaded {
    File(SourceFile),
    Skipped(Skipped),
    Unreadable(ManifestError),
}

impl Loaded {
    /// A file's bytes, parsed (or why they are skipped).
    fn parse(rel: PathBuf, bytes: &[u8]) -> Loaded {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Loaded::Skipped(Skipped {
                file: rel,
                reason: "not UTF-8".into(),
            });
        };
        match SourceFile::parse(rel.clone(), text.to_string()) {
            Ok(f) => Loaded::File(f),
            Err(e) => Loaded::Skipped(Skipped {
                file: rel,
                reason: format!("not YAML a parser accepts ({e})"),
            }),
        }
    }
}

/// A test of a file's bytes: may it matter?
pub(crate) type ByteFilter<'a> = dyn Fn(&[u8]) -> bool + Sync + 'a;

/// What one walk found: the files named one of the names asked for, each made into a value
/// where it was read, and the bytes of the YAML files that passed the byte filter (or why
/// they could not be read), both by repository-relative path in path order; and the
/// [`Snapshot`] of all it met.
pub(crate) struct Scan<T> {
    pub(crate) named: Vec<(PathBuf, T)>,
    pub(crate) kept: Vec<(PathBuf, std::io::Result<Vec<u8>>)>,
    pub(crate) seen: Snapshot,
}

/// One walk on all cores for two readers: files named one of `names` go to `make` (with
/// their repository-relative path, and their bytes or the read error) on the thread that read
/// them; with `keep`, YAML files whose bytes pass it are kept unparsed, to be parsed once it is
/// known which of them matter ([`Repo::from_scanned`]). `plan` finds the kustomizations and the
/// flat manifests this way in a single pass over the tree. Every file read is recorded in the
/// snapshot ([`Seen::of`] with `words`), every one met listed.
pub(crate) fn scan<T: Send>(
    dir: &Path,
    names: &[&str],
    make: &(dyn Fn(&Path, std::io::Result<&[u8]>) -> T + Sync),
    keep: Option<&ByteFilter<'_>>,
    words: &'static [&'static str],
) -> Result<Scan<T>, ManifestError> {
    let named = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| names.contains(&n))
    };
    // Without `keep`, no other file is even read.
    let manifest = |p: &Path| keep.is_some() && walk::is_yaml(p);
    let wanted = |p: &Path| named(p) || manifest(p);
    type Item<T> = (PathBuf, Option<T>, Option<std::io::Result<Vec<u8>>>, Seen);
    let (found, listing) = walk::files_listed(dir, &wanted, &|path, buf| -> Option<Item<T>> {
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let read = walk::read_into(path, buf);
        let made = named(path).then(|| match &read {
            Ok(()) => make(rel, Ok(buf)),
            Err(e) => make(rel, Err(std::io::Error::new(e.kind(), e.to_string()))),
        });
        let seen = match &read {
            Ok(()) => Seen::of(buf, words),
            Err(_) => Seen::Listed,
        };
        let kept = match (read, keep) {
            _ if !manifest(path) => None,
            (Ok(()), Some(keep)) => keep(buf).then(|| Ok(buf.clone())),
            (Ok(()), None) => None,
            (Err(e), _) => Some(Err(e)),
        };
        Some((rel.to_path_buf(), made, kept, seen))
    })?;
    let mut files: PathMap<Box<[u8]>, Seen> = PathMap::default();
    files.reserve(listing.files.len() + found.len());
    files.extend(listing.files.into_iter().map(|f| (f, Seen::Listed)));
    let (mut named, mut kept_files) = (Vec::new(), Vec::new());
    for (_, (rel, made, kept, seen)) in found {
        files.insert(walk::key(&rel).into(), seen);
        match (made, kept) {
            (Some(m), Some(k)) => {
                named.push((rel.clone(), m));
                kept_files.push((rel, k));
            }
            (Some(m), None) => named.push((rel, m)),
            (None, Some(k)) => kept_files.push((rel, k)),
            (None, None) => {}
        }
    }
    walk::sort_by_path(&mut named);
    walk::sort_by_path(&mut kept_files);
    Ok(Scan {
        named,
        kept: kept_files,
        seen: Snapshot::new(listing.dirs, files, words),
    })
}

impl Repo {
    /// Load the YAML files whose bytes pass `keep`; the rest are read and dropped unparsed.
    /// Files that do not parse or are not UTF-8 are skipped with a reason. The walk, the
    /// reads, `keep` and the parses run on all cores; files and skips come in path order.
    pub fn load_filtered(
        dir: &Path,
        keep: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<Repo, ManifestError> {
        Repo::load_where(dir, &|_| true, keep)
    }

    /// [`Repo::load_filtered`] over the YAML files whose repository-relative path passes
    /// `wanted`: the others are not even read (`plan` leaves out what kustomizations read).
    pub(crate) fn load_where(
        dir: &Path,
        wanted: &(dyn Fn(&Path) -> bool + Sync),
        keep: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<Repo, ManifestError> {
        let rel = |path: &Path| path.strip_prefix(dir).unwrap_or(path).to_path_buf();
        let yaml_and_wanted =
            |path: &Path| walk::is_yaml(path) && wanted(path.strip_prefix(dir).unwrap_or(path));
        let found = walk::files_with(dir, &yaml_and_wanted, &|path, buf| {
            let rel = rel(path);
            match walk::read_into(path, buf) {
                Err(source) => Some(Loaded::Unreadable(ManifestError::Read {
                    file: rel,
                    source,
                })),
                Ok(()) if !keep(buf) => None,
                Ok(()) => Some(Loaded::parse(rel, buf)),
            }
        })?;
        Repo::collect(dir, found.into_iter().map(|(_, loaded)| loaded))
    }

    /// The files of a [`scan`] (its `kept` bytes) whose path passes `wanted`, parsed on all
    /// cores, as [`Repo::load_where`] would load them.
    pub(crate) fn from_scanned(
        dir: &Path,
        kept: Vec<(PathBuf, std::io::Result<Vec<u8>>)>,
        wanted: &(dyn Fn(&Path) -> bool + Sync),
    ) -> Result<Repo, ManifestError> {
        let kept: Vec<_> = kept.into_iter().filter(|(p, _)| wanted(p)).collect();
        let loaded = par_map(&kept, |(rel, bytes)| match bytes {
            Ok(b) => Loaded::parse(rel.clone(), b),
            Err(e) => Loaded::Unreadable(ManifestError::Read {
                file: rel.clone(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            }),
        });
        Repo::collect(dir, loaded.into_iter())
    }

    fn collect(dir: &Path, loaded: impl Iterator<Item = Loaded>) -> Result<Repo, ManifestError> {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for loaded in loaded {
            match loaded {
                Loaded::File(f) => files.push(f),
                Loaded::Skipped(s) => skipped.push(s),
                // The first unreadable file in path order, as a sorted walk would meet it.
                Loaded::Unreadable(e) => return Err(e),
            }
        }
        Ok(Repo {
            root: dir.to_path_buf(),
            files,
            skipped,
        })
    }

    pub fn file(&self, path: &Path) -> Option<&SourceFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// A parsed `[NAMESPACE/]NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub namespace: Option<String>,
    pub name: String,
}

impl Selector {
    pub fn parse(s: &str) -> Result<Self, ManifestError> {
        let bad = || ManifestError::BadSelector {
            selector: s.to_string(),
        };
        let (namespace, name) = match s.split_once('/') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (None, s.to_string()),
        };
        if name.is_empty() || name.contains('/') || namespace.as_deref() == Some("") {
            return Err(bad());
        }
        Ok(Selector { namespace, name })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Files that did not parse but whose bytes name the selected object: each may be another
/// definition of it (an overlay patch, a copy being edited), so a choice made without them is
/// a guess.
pub(crate) fn shadowing<'a>(repo: &'a Repo, selector: &Selector) -> Vec<&'a Skipped> {
    repo.skipped
        .iter()
        .filter(|s| {
            std::fs::read(repo.root.join(&s.file))
                .is_ok_and(|bytes| contains(&bytes, selector.name.as_bytes()))
        })
        .collect()
}

/// Files that can hold what the rollout reads: routes, the Services they name, Deployments.
pub fn needs_parse(bytes: &[u8]) -> bool {
    ["Ingress", "Deployment", "Service"]
        .iter()
        .any(|k| contains(bytes, k.as_bytes()))
}

/// Byte substring search (memchr's two-way search: the hot loop of a big-repo scan).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A new file to write, as a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewFile {
    pub path: PathBuf,
    pub text: String,
}
