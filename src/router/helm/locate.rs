//! Finding the value `weightFrom` names: in a values file, a Flux `HelmRelease`'s
//! `spec.values` or an Argo CD `Application`'s Helm source, typed as Helm reads it, refusing
//! what cannot be edited byte-exactly (anchors, aliases, a `values: |` string).

use super::{cannot, join, keys, parse_path, unresolved, Form, Located, WeightFrom};
use crate::manifest::edit::render_path;
use crate::manifest::{ManifestError, PathSeg, ScalarKind, SourceFile};
use crate::yaml::{NodeId, NodeKind, Stream, Style};

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
