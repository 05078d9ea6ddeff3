//! Canaries whose weight is a Helm chart value: `weightFrom: {file, path}` names where the
//! value lives, in a values file (`PATH` from the document root), a Flux `HelmRelease`
//! (`spec.values.PATH`) or an Argo CD `Application` (`spec.source.helm.valuesObject.PATH`, or
//! the `value` of the `spec.source.helm.parameters` entry whose `name` is `PATH`; with
//! `spec.sources`, the one source with `helm`). The edit is an ordinary [`Edit`] applied by
//! `edit::apply` (the one writer, with its guard), typed to keep the value's type: a plain
//! number stays a plain number, a string stays a string (its quotes kept).
//!
//! `PATH` is written as Helm's `--set` writes it: keys joined by `.`, `\.` for a dot inside a
//! key, `[N]` for a list item. What cannot be edited byte-exactly (an `Application`'s
//! `values: |` string, an alias, a value shared through an anchor, a boolean) is refused with
//! the file, document and path; a missing path is an error, never an insertion.

mod locate;
mod templates;
#[cfg(test)]
mod tests;

pub use locate::locate;
pub use templates::{hints, template_hints, TemplateHint};

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::edit::render_path;
use crate::manifest::{edit, Edit, EditOutcome, ManifestError, PathSeg, ScalarKind, SourceFile};

/// Where a canary weight lives when it is a chart value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightFrom {
    /// A values file, a Flux HelmRelease or an Argo CD Application, relative to the repository.
    pub file: PathBuf,
    /// The value's path as Helm's `--set` writes it, e.g. `canary.weight` (`\.` for a dot in
    /// a key, `[N]` for a list item).
    pub path: String,
}

impl std::str::FromStr for WeightFrom {
    type Err = String;

    /// `FILE:PATH`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (file, path) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected FILE:PATH, e.g. values.yaml:canary.weight"))?;
        if file.is_empty() || path.is_empty() {
            return Err(format!(
                "{s:?}: expected FILE:PATH, e.g. values.yaml:canary.weight"
            ));
        }
        parse_path(path)?;
        Ok(WeightFrom {
            file: PathBuf::from(file),
            path: path.to_string(),
        })
    }
}

impl std::fmt::Display for WeightFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.path)
    }
}

/// Split a `--set` style path: `a.b\.c[0]` is `a`, `b.c`, item 0.
pub(crate) fn parse_path(s: &str) -> Result<Vec<PathSeg>, String> {
    let bad = |why: &str| format!("value path {s:?}: {why}");
    let mut out = Vec::new();
    let mut key = String::new();
    let mut chars = s.chars().peekable();
    // After `]` a key may not follow without a dot.
    let mut after_index = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => key.push(n),
                None => return Err(bad("ends with a backslash")),
            },
            '.' => {
                if key.is_empty() && !after_index {
                    return Err(bad("empty key"));
                }
                if !key.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut key)));
                }
                after_index = false;
            }
            '[' => {
                if !key.is_empty() {
                    out.push(PathSeg::Key(std::mem::take(&mut key)));
                } else if !after_index {
                    return Err(bad("an index must follow a key"));
                }
                let mut num = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(d) if d.is_ascii_digit() => num.push(d),
                        _ => return Err(bad("expected [N]")),
                    }
                }
                let i = num.parse().map_err(|_| bad("expected [N]"))?;
                out.push(PathSeg::Index(i));
                after_index = true;
            }
            c => {
                if after_index {
                    return Err(bad("expected `.` after `]`"));
                }
                key.push(c)
            }
        }
    }
    if !key.is_empty() {
        out.push(PathSeg::Key(key));
    } else if !after_index {
        return Err(bad("empty key"));
    }
    Ok(out)
}

/// Which form of chart values holds the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    ValuesFile,
    HelmRelease,
    ApplicationValuesObject,
    ApplicationParameter,
}

impl Form {
    pub fn describe(self) -> &'static str {
        match self {
            Form::ValuesFile => "values file",
            Form::HelmRelease => "HelmRelease spec.values",
            Form::ApplicationValuesObject => "Application helm.valuesObject",
            Form::ApplicationParameter => "Application helm.parameters",
        }
    }
}

/// The weight value `weightFrom` names, as found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Located {
    pub file: PathBuf,
    /// 1-based document.
    pub document: usize,
    pub form: Form,
    /// The YAML path from the document root, as people write it.
    pub field: String,
    #[serde(skip)]
    pub path: Vec<PathSeg>,
    /// 1-based line of the value.
    pub line: usize,
    /// The value as written (without quotes).
    pub raw: String,
    /// The value as a weight, when it is an integer.
    pub weight: Option<u32>,
    /// How the value is typed, so an edit keeps it.
    pub kind: ScalarKind,
}

pub(super) fn unresolved(file: &Path, reason: impl Into<String>) -> ManifestError {
    ManifestError::Unresolved {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

pub(super) fn cannot(
    file: &Path,
    document: usize,
    field: &[PathSeg],
    reason: &str,
) -> ManifestError {
    ManifestError::CannotEdit {
        file: file.to_path_buf(),
        document,
        field: render_path(field),
        reason: reason.to_string(),
    }
}

pub(super) fn keys(ks: &[&str]) -> Vec<PathSeg> {
    ks.iter().map(|k| PathSeg::Key(k.to_string())).collect()
}

pub(super) fn join(a: &[PathSeg], b: &[PathSeg]) -> Vec<PathSeg> {
    a.iter().chain(b).cloned().collect()
}

/// Read `file` (repository-relative) under `dir`.
pub fn load(dir: &Path, file: &Path) -> Result<SourceFile, ManifestError> {
    let text = std::fs::read_to_string(dir.join(file)).map_err(|source| ManifestError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    SourceFile::parse(file.to_path_buf(), text)
        .map_err(|e| unresolved(file, format!("not YAML a parser accepts ({e})")))
}

/// The edit that sets the weight `wf` names to `weight` (a value; nothing is written).
pub fn weight_edit(f: &SourceFile, wf: &WeightFrom, weight: u32) -> Result<Edit, ManifestError> {
    let l = locate(f, wf)?;
    if weight > 100 {
        return Err(ManifestError::WeightOutOfRange {
            file: l.file,
            document: l.document,
            field: l.field,
            weight,
            total: 100,
        });
    }
    Ok(Edit {
        file: l.file,
        document: l.document,
        path: l.path,
        old: Some(l.raw),
        new: weight.to_string(),
        kind: l.kind,
        insert_after: Vec::new(),
    })
}

/// Set the weight `wf` names, in the repository at `dir`. Writes nothing on error or with
/// `dry_run`.
pub fn set_weight(
    dir: &Path,
    wf: &WeightFrom,
    weight: u32,
    dry_run: bool,
) -> Result<EditOutcome, ManifestError> {
    let f = load(dir, &wf.file)?;
    let e = weight_edit(&f, wf, weight)?;
    let outcome = edit::apply(&f, std::slice::from_ref(&e))?;
    if !dry_run {
        outcome.write(dir)?;
    }
    Ok(outcome)
}

/// A configured chart-value canary as `plan` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmCanary {
    pub weight_from: WeightFrom,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub located: Option<Located>,
    /// Why the value cannot be found or edited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Resolve each configured `weightFrom`.
pub fn plan(dir: &Path, wfs: &[WeightFrom]) -> Vec<HelmCanary> {
    wfs.iter()
        .map(|wf| {
            let r = load(dir, &wf.file).and_then(|f| locate(&f, wf));
            match r {
                Ok(l) => HelmCanary {
                    weight_from: wf.clone(),
                    located: Some(l),
                    error: None,
                },
                Err(e) => HelmCanary {
                    weight_from: wf.clone(),
                    located: None,
                    error: Some(e.to_string()),
                },
            }
        })
        .collect()
}
