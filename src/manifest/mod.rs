//! Manifests: read a GitOps repository's YAML files and change one value byte-exactly. What a
//! value means (a canary weight, a route) is the routers' business (`router`), one layer up.
//!
//! Reading is split in two so that a 20,000-file monorepo costs about what `grep` costs: the
//! walk (`walk`, on every core) reads each file's bytes once and parses only the files whose
//! bytes can hold a route (`Repo::load_filtered`). Editing is values first: `Edit` says which file, document, YAML
//! path, old and new value; `edit::apply` is the one place that turns edits into bytes, and
//! `--dry-run` renders the very same values as a diff. Nothing here talks to Git or a cluster.

pub mod edit;
mod walk;
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
#[derive(Debug)]
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
/// the root itself. Every reader of manifests (the routers, workloads, Kustomize rendering) goes
/// through this, so a List is read the same way everywhere.
pub(crate) fn objects(
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

/// Every `*.yaml`/`*.yml` file under `dir`, skipping `.git` and what `.gitignore` ignores,
/// in a stable order (so reports and errors do not depend on the file system).
pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let found = walk::files_with(dir, &walk::is_yaml, &|_, _| Some(()))?;
    Ok(found.into_iter().map(|(path, ())| path).collect())
}

/// Every file under `dir` named one of `names` (e.g. the kustomization file names), skipping
/// `.git` and what `.gitignore` ignores, in path order; a walk on all cores that reads no file.
pub(crate) fn files_named(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, ManifestError> {
    let wanted = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| names.contains(&n))
    };
    let found = walk::files_with(dir, &wanted, &|_, _| Some(()))?;
    Ok(found.into_iter().map(|(path, ())| path).collect())
}

/// What loading made of one file that passed the byte filter.
enum Loaded {
    File(SourceFile),
    Skipped(Skipped),
    Unreadable(ManifestError),
}

impl Repo {
    /// Load the YAML files whose bytes pass `keep`; the rest are read and dropped unparsed.
    /// Files that do not parse or are not UTF-8 are skipped with a reason. The walk, the
    /// reads, `keep` and the parses run on all cores; files and skips come in path order.
    pub fn load_filtered(
        dir: &Path,
        keep: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<Repo, ManifestError> {
        let rel = |path: &Path| path.strip_prefix(dir).unwrap_or(path).to_path_buf();
        let found = walk::files_with(dir, &walk::is_yaml, &|path, buf| {
            if let Err(source) = walk::read_into(path, buf) {
                let file = rel(path);
                return Some(Loaded::Unreadable(ManifestError::Read { file, source }));
            }
            if !keep(buf) {
                return None;
            }
            let rel = rel(path);
            let Ok(text) = std::str::from_utf8(buf) else {
                return Some(Loaded::Skipped(Skipped {
                    file: rel,
                    reason: "not UTF-8".into(),
                }));
            };
            Some(match SourceFile::parse(rel.clone(), text.to_string()) {
                Ok(f) => Loaded::File(f),
                Err(e) => Loaded::Skipped(Skipped {
                    file: rel,
                    reason: format!("not YAML a parser accepts ({e})"),
                }),
            })
        })?;
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for (_, loaded) in found {
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
