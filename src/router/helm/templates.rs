//! Hints for `plan`: chart templates that write the canary weight annotation from a
//! `.Values` path, with the values file that path would live in.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::Repo;
use crate::router::nginx;

/// A chart template that writes the canary weight annotation from a chart value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateHint {
    pub file: PathBuf,
    pub line: usize,
    /// The `.Values` path, e.g. `canary.weight`.
    pub path: String,
    /// The chart's `values.yaml`, repository-relative, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_file: Option<PathBuf>,
}

/// Find `nginx.ingress.kubernetes.io/canary-weight: {{ ... .Values.a.b ... }}` lines in a
/// template's text.
pub fn template_hints(dir: &Path, file: &Path, text: &str) -> Vec<TemplateHint> {
    let mut out = Vec::new();
    if !text.contains(nginx::WEIGHT) || !text.contains(".Values.") {
        return out;
    }
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find(nginx::WEIGHT) else {
            continue;
        };
        let rest = &line[at + nginx::WEIGHT.len()..];
        // The annotation key itself, not `canary-weight-total`.
        if !rest.trim_start_matches(['"', '\'']).starts_with(':') {
            continue;
        }
        let Some(v) = rest.find(".Values.") else {
            continue;
        };
        let path: String = rest[v + ".Values.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let path = path.trim_end_matches('.').to_string();
        if path.is_empty() {
            continue;
        }
        out.push(TemplateHint {
            file: file.to_path_buf(),
            line: i + 1,
            path,
            values_file: chart_values(dir, file),
        });
    }
    out
}

/// Every template hint in a loaded repository: the files that parsed and those skipped as not
/// YAML (what a chart template usually is).
pub fn hints(repo: &Repo) -> Vec<TemplateHint> {
    let mut out = Vec::new();
    for f in &repo.files {
        out.extend(template_hints(&repo.root, &f.path, &f.text));
    }
    for s in &repo.skipped {
        if let Ok(text) = std::fs::read_to_string(repo.root.join(&s.file)) {
            out.extend(template_hints(&repo.root, &s.file, &text));
        }
    }
    out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out
}

/// The `values.yaml` beside the `Chart.yaml` above a template.
fn chart_values(dir: &Path, template: &Path) -> Option<PathBuf> {
    let mut p = template.parent();
    while let Some(d) = p {
        if dir.join(d).join("Chart.yaml").is_file() {
            let v = d.join("values.yaml");
            return dir.join(&v).is_file().then_some(v);
        }
        p = d.parent();
    }
    None
}
