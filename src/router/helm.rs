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

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::edit::render_path;
use crate::manifest::{
    edit, Edit, EditOutcome, ManifestError, PathSeg, Repo, ScalarKind, SourceFile,
};
use crate::router::nginx;
use crate::yaml::{NodeId, NodeKind, Stream, Style};

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
pub fn parse_path(s: &str) -> Result<Vec<PathSeg>, String> {
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

fn unresolved(file: &Path, reason: impl Into<String>) -> ManifestError {
    ManifestError::Unresolved {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

fn cannot(file: &Path, document: usize, field: &[PathSeg], reason: &str) -> ManifestError {
    ManifestError::CannotEdit {
        file: file.to_path_buf(),
        document,
        field: render_path(field),
        reason: reason.to_string(),
    }
}

fn keys(ks: &[&str]) -> Vec<PathSeg> {
    ks.iter().map(|k| PathSeg::Key(k.to_string())).collect()
}

fn join(a: &[PathSeg], b: &[PathSeg]) -> Vec<PathSeg> {
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

/// Walk `rel` from `from`; `Ok(None)` when a key or item is missing. Aliases and anchors on
/// the way are refused: an edit there would change every place that shares the value.
fn walk(
    f: &SourceFile,
    document: usize,
    from: NodeId,
    base: &[PathSeg],
    rel: &[PathSeg],
) -> Result<Option<NodeId>, ManifestError> {
    let s = &f.stream;
    let mut node = from;
    for (i, seg) in rel.iter().enumerate() {
        let here = join(base, &rel[..i]);
        let n = s.node(node);
        if matches!(n.kind, NodeKind::Alias(_)) {
            return Err(cannot(
                &f.path,
                document,
                &here,
                "is an alias (*name): the value is shared; edit the anchored one",
            ));
        }
        let next = match seg {
            PathSeg::Key(k) => {
                if !s.is_map(node) {
                    return Ok(None);
                }
                s.get(node, k)
            }
            PathSeg::Index(i) => s.items(node).get(*i).copied(),
        };
        match next {
            Some(n) => node = n,
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

/// Check the scalar at `node` can take a weight, and say how to type it.
fn typed(
    f: &SourceFile,
    document: usize,
    node: NodeId,
    path: &[PathSeg],
) -> Result<(String, ScalarKind, usize), ManifestError> {
    let s = &f.stream;
    let n = s.node(node);
    let refuse = |why: &str| cannot(&f.path, document, path, why);
    match &n.kind {
        NodeKind::Alias(_) => Err(refuse(
            "is an alias (*name): the value is shared; edit the anchored one",
        )),
        NodeKind::Map(_) | NodeKind::Seq(_) => Err(refuse("is not a scalar value")),
        NodeKind::Scalar { .. } if n.anchored => Err(refuse(
            "carries an anchor (&name): other places may share it; edit it by hand",
        )),
        NodeKind::Scalar { tagged: true, .. } => {
            Err(refuse("has an explicit tag (!!); edit it by hand"))
        }
        NodeKind::Scalar { value, style, .. } => {
            let kind = match style {
                Style::Literal | Style::Folded => {
                    return Err(refuse(
                        "is a block scalar (| or >); write it as a plain number or a quoted string",
                    ))
                }
                Style::SingleQuoted | Style::DoubleQuoted => ScalarKind::String,
                Style::Plain => {
                    let lower = value.to_ascii_lowercase();
                    if is_number(&lower) {
                        ScalarKind::Int
                    } else if matches!(
                        lower.as_str(),
                        "" | "~"
                            | "null"
                            | "true"
                            | "false"
                            | "yes"
                            | "no"
                            | "on"
                            | "off"
                            | "y"
                            | "n"
                    ) {
                        return Err(refuse(&format!(
                            "is {value:?}, a boolean or null, not a number or a string: a weight there would change its type"
                        )));
                    } else {
                        // A plain string (`tag: 8.6.2`): the weight goes in quoted, still a string.
                        ScalarKind::String
                    }
                }
            };
            Ok((value.clone(), kind, n.line))
        }
    }
}

/// A plain scalar the Go YAML decoder Helm uses reads as a number (decimal, float, hex, octal).
fn is_number(lower: &str) -> bool {
    let digits = lower.trim_start_matches(['-', '+']);
    if let Some(hex) = digits.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(oct) = digits.strip_prefix("0o") {
        return !oct.is_empty() && oct.chars().all(|c| c.is_digit(8));
    }
    lower.parse::<f64>().is_ok() && !lower.contains("inf") && !lower.contains("nan")
}

/// A document's `apiVersion` group and `kind`.
fn kind_of(s: &Stream, root: NodeId) -> (String, String) {
    let get = |k: &str| {
        s.get(root, k)
            .and_then(|n| s.str(n))
            .unwrap_or("")
            .to_string()
    };
    let api = get("apiVersion");
    let group = api.split_once('/').map_or("", |(g, _)| g).to_string();
    (group, get("kind"))
}

fn is_helm_release(s: &Stream, root: NodeId) -> bool {
    let (group, kind) = kind_of(s, root);
    kind == "HelmRelease" && group == "helm.toolkit.fluxcd.io"
}

fn is_application(s: &Stream, root: NodeId) -> bool {
    let (group, kind) = kind_of(s, root);
    kind == "Application" && group == "argoproj.io"
}

fn name_of(s: &Stream, root: NodeId) -> String {
    s.path(root, &["metadata", "name"])
        .and_then(|n| s.str(n))
        .unwrap_or("?")
        .to_string()
}

/// Find the value `wf` names in a parsed file.
pub fn locate(f: &SourceFile, wf: &WeightFrom) -> Result<Located, ManifestError> {
    let rel = parse_path(&wf.path).map_err(|e| unresolved(&f.path, e))?;
    let s = &f.stream;
    let docs: Vec<(usize, NodeId)> = s
        .docs
        .iter()
        .filter_map(|d| d.root.map(|r| (d.index, r)))
        .collect();
    let objects: Vec<(usize, NodeId)> = docs
        .iter()
        .copied()
        .filter(|(_, r)| is_helm_release(s, *r) || is_application(s, *r))
        .collect();
    if objects.is_empty() {
        // A values file: one document, the path from its root.
        let Some(&(document, root)) = docs.first() else {
            return Err(unresolved(&f.path, "empty file: no values"));
        };
        if docs.len() > 1 {
            return Err(unresolved(
                &f.path,
                "has several documents and no HelmRelease or Application: not a values file",
            ));
        }
        return found(f, document, root, &[], &rel, Form::ValuesFile)?
            .ok_or_else(|| missing(f, document, &rel, ""));
    }
    // Several objects: the one that holds the path; several or none are errors.
    let mut results = Vec::new();
    for &(document, root) in &objects {
        results.push((document, root, locate_in(f, document, root, &rel)));
    }
    if objects.len() == 1 {
        return results
            .pop()
            .map(|(_, _, r)| r)
            .unwrap_or_else(|| Err(unresolved(&f.path, "no HelmRelease or Application")));
    }
    let ok: Vec<&(usize, NodeId, Result<Located, ManifestError>)> =
        results.iter().filter(|(_, _, r)| r.is_ok()).collect();
    match ok.as_slice() {
        [(_, _, Ok(one))] => Ok(one.clone()),
        [] => Err(unresolved(
            &f.path,
            format!(
                "no HelmRelease or Application in the file holds {}: {}",
                wf.path,
                results
                    .iter()
                    .map(|(_, _, r)| r.as_ref().err().map(|e| e.to_string()).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        many => Err(unresolved(
            &f.path,
            format!(
                "{} is ambiguous: {} objects in the file hold it ({}); put each in its own file",
                wf.path,
                many.len(),
                many.iter()
                    .map(|(d, r, _)| format!("{} (document {d})", name_of(s, *r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn missing(f: &SourceFile, document: usize, path: &[PathSeg], extra: &str) -> ManifestError {
    cannot(
        &f.path,
        document,
        path,
        &format!("no such value{extra}; nothing was written"),
    )
}

/// The scalar at `base` + `rel` under `root`, typed; `Ok(None)` when the path is missing.
fn found(
    f: &SourceFile,
    document: usize,
    from: NodeId,
    base: &[PathSeg],
    rel: &[PathSeg],
    form: Form,
) -> Result<Option<Located>, ManifestError> {
    let Some(node) = walk(f, document, from, base, rel)? else {
        return Ok(None);
    };
    let path = join(base, rel);
    let (raw, kind, line) = typed(f, document, node, &path)?;
    Ok(Some(Located {
        file: f.path.clone(),
        document,
        form,
        field: render_path(&path),
        weight: raw.parse().ok(),
        path,
        line,
        raw,
        kind,
    }))
}

fn locate_in(
    f: &SourceFile,
    document: usize,
    root: NodeId,
    rel: &[PathSeg],
) -> Result<Located, ManifestError> {
    let s = &f.stream;
    if is_helm_release(s, root) {
        let base = keys(&["spec", "values"]);
        let values = walk(f, document, root, &[], &base)?;
        let hit = match values {
            Some(v) => found(f, document, v, &base, rel, Form::HelmRelease)?,
            None => None,
        };
        return hit.ok_or_else(|| {
            let from = if s.path(root, &["spec", "valuesFrom"]).is_some() {
                " (it may come from spec.valuesFrom, a ConfigMap or Secret this tool does not edit)"
            } else {
                ""
            };
            missing(f, document, &join(&base, rel), from)
        });
    }
    // An Argo CD Application: `spec.sources` (when set, `spec.source` is ignored), else
    // `spec.source`.
    let sources = s
        .path(root, &["spec", "sources"])
        .map(|n| s.items(n).to_vec());
    let candidates: Vec<(Vec<PathSeg>, NodeId)> = match sources {
        Some(items) if !items.is_empty() => {
            let with_helm: Vec<(Vec<PathSeg>, NodeId)> = items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let h = s.get(*n, "helm")?;
                    let mut p = keys(&["spec", "sources"]);
                    p.push(PathSeg::Index(i));
                    p.push(PathSeg::Key("helm".into()));
                    Some((p, h))
                })
                .collect();
            if with_helm.is_empty() {
                return Err(cannot(
                    &f.path,
                    document,
                    &keys(&["spec", "sources"]),
                    "no source has `helm` (and Argo CD ignores spec.source when spec.sources is set)",
                ));
            }
            with_helm
        }
        _ => match s.path(root, &["spec", "source", "helm"]) {
            Some(h) => vec![(keys(&["spec", "source", "helm"]), h)],
            None => {
                return Err(cannot(
                    &f.path,
                    document,
                    &keys(&["spec", "source", "helm"]),
                    "the Application has no helm source",
                ))
            }
        },
    };
    let mut hits = Vec::new();
    let mut blocks = Vec::new();
    for (base, helm) in &candidates {
        match in_helm_source(f, document, *helm, base, rel)? {
            Some(l) => hits.push(l),
            None => {
                if let Some(v) = s.get(*helm, "values") {
                    if s.str(v).is_some() {
                        blocks.push(join(base, &[PathSeg::Key("values".into())]));
                    }
                }
            }
        }
    }
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => {
            if let Some(b) = blocks.first() {
                return Err(cannot(
                    &f.path,
                    document,
                    b,
                    &format!(
                        "{} is not in helm.valuesObject or helm.parameters, and helm.values is a YAML string (values: |) whose inside this tool does not edit; move the value to helm.valuesObject; nothing was written",
                        render_path(rel)
                    ),
                ));
            }
            let (base, _) = &candidates[0];
            let mut p = base.clone();
            p.push(PathSeg::Key("valuesObject".into()));
            Err(missing(
                f,
                document,
                &join(&p, rel),
                " (nor a helm.parameters entry of that name)",
            ))
        }
        _ => Err(unresolved(
            &f.path,
            format!(
                "{} is ambiguous: {} helm sources hold it ({})",
                render_path(rel),
                hits.len(),
                hits.iter()
                    .map(|h| h.field.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// In one `helm:` block: a `parameters` entry named by the path wins (Argo CD applies
/// parameters over valuesObject), else `valuesObject`.
fn in_helm_source(
    f: &SourceFile,
    document: usize,
    helm: NodeId,
    base: &[PathSeg],
    rel: &[PathSeg],
) -> Result<Option<Located>, ManifestError> {
    let s = &f.stream;
    if let Some(params) = s.get(helm, "parameters") {
        let mut matching = Vec::new();
        for (i, item) in s.items(params).iter().enumerate() {
            let Some(name) = s.get(*item, "name").and_then(|n| s.str(n)) else {
                continue;
            };
            if parse_path(name).as_deref() == Ok(rel) {
                matching.push(i);
            }
        }
        // Helm applies --set in order: the last entry of that name wins.
        if let Some(&i) = matching.last() {
            let mut p = base.to_vec();
            p.extend([
                PathSeg::Key("parameters".into()),
                PathSeg::Index(i),
                PathSeg::Key("value".into()),
            ]);
            let item = s.items(params)[i];
            let Some(v) = s.get(item, "value") else {
                return Err(cannot(&f.path, document, &p, "the parameter has no value"));
            };
            let (raw, kind, line) = typed(f, document, v, &p)?;
            return Ok(Some(Located {
                file: f.path.clone(),
                document,
                form: Form::ApplicationParameter,
                field: render_path(&p),
                weight: raw.parse().ok(),
                path: p,
                line,
                raw,
                kind,
            }));
        }
    }
    let mut p = base.to_vec();
    p.push(PathSeg::Key("valuesObject".into()));
    match s.get(helm, "valuesObject") {
        Some(v) => {
            let hit = found(f, document, v, &p, rel, Form::ApplicationValuesObject)?;
            Ok(hit)
        }
        None => Ok(None),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile::parse(PathBuf::from("f.yaml"), text.to_string()).unwrap()
    }

    fn wf(path: &str) -> WeightFrom {
        WeightFrom {
            file: "f.yaml".into(),
            path: path.into(),
        }
    }

    fn set(text: &str, path: &str, w: u32) -> Result<String, ManifestError> {
        let f = file(text);
        let e = weight_edit(&f, &wf(path), w)?;
        let out = edit::apply(&f, &[e])?;
        Ok(out
            .changed
            .first()
            .map(|(_, t)| t.clone())
            .unwrap_or(f.text))
    }

    #[test]
    fn paths_parse_like_helm_set() {
        assert_eq!(
            parse_path("a.b\\.c[1].d").unwrap(),
            vec![
                PathSeg::Key("a".into()),
                PathSeg::Key("b.c".into()),
                PathSeg::Index(1),
                PathSeg::Key("d".into())
            ]
        );
        for bad in ["", "a..b", ".a", "a.", "[0]", "a[x]", "a[0]b", "a\\"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        assert!("values.yaml".parse::<WeightFrom>().is_err());
        let w: WeightFrom = "charts/x/values.yaml:canary.weight".parse().unwrap();
        assert_eq!(w.file, PathBuf::from("charts/x/values.yaml"));
        assert_eq!(w.path, "canary.weight");
    }

    #[test]
    fn values_file_keeps_the_type() {
        assert_eq!(
            set("canary:\n  weight: 10 # pct\n", "canary.weight", 25).unwrap(),
            "canary:\n  weight: 25 # pct\n"
        );
        assert_eq!(
            set("canary:\n  weight: '10'\n", "canary.weight", 25).unwrap(),
            "canary:\n  weight: '25'\n"
        );
        assert_eq!(
            set("canary:\n  weight: ten\n", "canary.weight", 25).unwrap(),
            "canary:\n  weight: \"25\"\n"
        );
        assert_eq!(
            set("canary:\n  weight: 0x0a\n", "canary.weight", 25).unwrap(),
            "canary:\n  weight: 25\n"
        );
        let e = set("canary:\n  weight: true\n", "canary.weight", 25).unwrap_err();
        assert!(e.to_string().contains("boolean"), "{e}");
    }

    #[test]
    fn missing_path_names_file_document_and_path() {
        let e = set("a: 1\n", "canary.weight", 25).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yaml (document 1): canary.weight: no such value; nothing was written"
        );
        let hr = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: x\nspec:\n  valuesFrom:\n  - kind: ConfigMap\n    name: v\n  values:\n    a: 1\n";
        let e = set(hr, "canary.weight", 25).unwrap_err().to_string();
        assert!(
            e.starts_with("f.yaml (document 1): spec.values.canary.weight: no such value"),
            "{e}"
        );
        assert!(e.contains("valuesFrom"), "{e}");
    }

    #[test]
    fn helm_release_and_application_forms() {
        let hr = "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: r\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: x\nspec:\n  values:\n    canary:\n      weight: 5\n";
        assert!(set(hr, "canary.weight", 50)
            .unwrap()
            .ends_with("      weight: 50\n"));
        let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  source:\n    helm:\n      parameters:\n      - name: canary.weight\n        value: \"5\"\n      valuesObject:\n        canary:\n          weight: 5\n";
        let out = set(app, "canary.weight", 50).unwrap();
        assert!(
            out.contains("value: \"50\"") && out.contains("weight: 5\n"),
            "{out}"
        );
        let multi = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  sources:\n  - repoURL: x\n    ref: values\n  - chart: c\n    helm:\n      valuesObject: {canary: {weight: 5}}\n";
        assert!(set(multi, "canary.weight", 7)
            .unwrap()
            .contains("{canary: {weight: 7}}"));
    }

    #[test]
    fn values_string_block_is_refused_with_the_reason() {
        let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  source:\n    helm:\n      values: |\n        canary:\n          weight: 5\n";
        let e = set(app, "canary.weight", 50).unwrap_err().to_string();
        assert!(
            e.contains("spec.source.helm.values") && e.contains("valuesObject"),
            "{e}"
        );
    }

    #[test]
    fn anchors_and_aliases_are_refused() {
        let e = set("w: &w 5\ncanary:\n  weight: *w\n", "canary.weight", 9).unwrap_err();
        assert!(e.to_string().contains("alias"), "{e}");
        let e = set("canary:\n  weight: &w 5\nother: *w\n", "canary.weight", 9).unwrap_err();
        assert!(e.to_string().contains("anchor"), "{e}");
        let e = set("base: &b\n  weight: 5\ncanary: *b\n", "canary.weight", 9).unwrap_err();
        assert!(e.to_string().contains("alias"), "{e}");
    }

    #[test]
    fn template_hints_find_the_values_path() {
        let t = "metadata:\n  annotations:\n    nginx.ingress.kubernetes.io/canary-weight-total: \"100\"\n    nginx.ingress.kubernetes.io/canary-weight: {{ .Values.canary.weight | quote }}\n";
        let h = template_hints(
            Path::new("/nonexistent"),
            Path::new("c/templates/i.yaml"),
            t,
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].line, 4);
        assert_eq!(h[0].path, "canary.weight");
    }
}
