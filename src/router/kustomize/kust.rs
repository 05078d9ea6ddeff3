//! One kustomization file, parsed: its fields as YAML nodes (with their lines, for refusals
//! that name them) and the local paths it names.

use std::path::{Path, PathBuf};

use super::{normalize, Fs, Refusal};
use crate::yaml::{self, NodeId, Stream};

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
        Kust::from_text(file, text)
    }

    /// A kustomization from its file's path (repository-relative) and text: `None` for a
    /// Flux `Kustomization` object.
    pub fn from_text(file: PathBuf, text: String) -> Result<Option<Kust>, Refusal> {
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
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
            dir,
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

    pub(super) fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|n| self.stream.str(n))
    }

    /// Items of a list field (an absent or null field is empty).
    pub fn items(&self, key: &str) -> Vec<NodeId> {
        self.get(key)
            .map(|n| self.stream.items(n).to_vec())
            .unwrap_or_default()
    }

    /// A list field of strings, each with its node.
    pub(super) fn strings(&self, key: &str) -> Vec<(String, NodeId)> {
        self.items(key)
            .into_iter()
            .filter_map(|n| self.stream.str(n).map(|s| (s.to_string(), n)))
            .collect()
    }

    /// A local path named in this kustomization, repository-relative.
    pub(super) fn local(&self, entry: &str) -> Result<PathBuf, Refusal> {
        normalize(&self.dir.join(entry)).ok_or_else(|| {
            Refusal::new(
                &self.file,
                format!(
                    "{entry} is outside the repository; gitops-canary reads only this repository"
                ),
            )
        })
    }

    pub(super) fn line(&self, node: NodeId) -> usize {
        self.stream.node(node).line
    }

    pub(super) fn refuse(&self, node: Option<NodeId>, reason: impl Into<String>) -> Refusal {
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
