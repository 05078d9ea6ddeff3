//! Reading HTTPRoutes from parsed YAML: each route's rules, matches and backendRefs, the
//! weights as written and as the gateway applies them, and the HTTPRoutes of versions this
//! router does not read.

use super::{BackendRef, HttpRoute, Rule, RuleMatch, API_VERSIONS, KIND, MAX_WEIGHT};
use crate::manifest::SourceFile;
use crate::router::{Problem, Severity};
use crate::yaml::{NodeId, NodeKind, Stream, Style};

fn string(s: &Stream, node: NodeId, key: &str) -> Option<String> {
    s.get(node, key).and_then(|n| s.str(n)).map(String::from)
}

fn is_null(s: &Stream, n: NodeId) -> bool {
    matches!(&s.node(s.resolve(n)).kind,
        NodeKind::Scalar { value, style: Style::Plain, .. } if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

/// A weight as read: as written, effective, its line, and why it is not valid.
type WeightRead = (
    Option<String>,
    Option<u32>,
    Option<usize>,
    Option<(&'static str, String)>,
);

fn read_weight(s: &Stream, b: NodeId) -> WeightRead {
    let Some(w) = s.get(b, "weight") else {
        return (None, Some(1), None, None);
    };
    let line = Some(s.node(w).line);
    if is_null(s, w) {
        // The API server drops a null: the weight is absent.
        return (s.str(w).map(String::from), Some(1), line, None);
    }
    let node = s.node(s.resolve(w));
    let NodeKind::Scalar { value, style, .. } = &node.kind else {
        return (
            None,
            None,
            line,
            Some(("weight-not-integer", "weight is not a scalar".into())),
        );
    };
    let raw = Some(value.clone());
    if *style != Style::Plain {
        return (
            raw,
            None,
            line,
            Some((
                "weight-not-integer",
                format!("weight {value:?} is a string; the API server wants an integer (set-weight writes it plain)"),
            )),
        );
    }
    match value.parse::<i64>() {
        Ok(v) if (0..=i64::from(MAX_WEIGHT)).contains(&v) => (raw, Some(v as u32), line, None),
        Ok(v) => (
            raw,
            None,
            line,
            Some((
                "weight-out-of-range",
                format!("weight {v} is outside 0..={MAX_WEIGHT}; the API server rejects the route"),
            )),
        ),
        Err(_) => (
            raw,
            None,
            line,
            Some((
                "weight-not-integer",
                format!("weight {value:?} is not an integer; the API server rejects the route"),
            )),
        ),
    }
}

fn read_backend(s: &Stream, b: NodeId, index: usize) -> Option<BackendRef> {
    if !s.is_map(b) {
        return None;
    }
    let (weight_raw, weight, weight_line, weight_error) = read_weight(s, b);
    Some(BackendRef {
        index,
        line: s.node(b).line,
        group: string(s, b, "group").unwrap_or_default(),
        kind: string(s, b, "kind").unwrap_or_else(|| "Service".into()),
        name: string(s, b, "name").unwrap_or_default(),
        namespace: string(s, b, "namespace").filter(|n| !n.is_empty()),
        port: string(s, b, "port"),
        weight_raw,
        weight,
        weight_line,
        weight_error,
    })
}

fn name_value(s: &Stream, n: NodeId) -> Option<String> {
    let name = string(s, n, "name")?;
    let value = string(s, n, "value").unwrap_or_default();
    let op = match string(s, n, "type").as_deref() {
        Some("RegularExpression") => "~",
        _ => "=",
    };
    Some(format!("{name}{op}{value}"))
}

fn read_match(s: &Stream, m: NodeId) -> RuleMatch {
    let path = s.get(m, "path");
    let list = |key: &str| -> Vec<String> {
        s.get(m, key)
            .map(|h| s.items(h))
            .unwrap_or(&[])
            .iter()
            .filter_map(|h| name_value(s, *h))
            .collect()
    };
    RuleMatch {
        path_type: path
            .and_then(|p| string(s, p, "type"))
            .unwrap_or_else(|| "PathPrefix".into()),
        path: path
            .and_then(|p| string(s, p, "value"))
            .unwrap_or_else(|| "/".into()),
        headers: list("headers"),
        query_params: list("queryParams"),
        method: string(s, m, "method"),
    }
}

fn read_route(
    file: &SourceFile,
    document: usize,
    item: Option<usize>,
    obj: NodeId,
) -> Option<HttpRoute> {
    let s = &file.stream;
    if !s.is_map(obj) || s.get(obj, "kind").and_then(|k| s.str(k)) != Some(KIND) {
        return None;
    }
    let api_version = string(s, obj, "apiVersion")?;
    if !API_VERSIONS.contains(&api_version.as_str()) {
        return None;
    }
    let meta = s.get(obj, "metadata")?;
    let name = string(s, meta, "name")?;
    let namespace = string(s, meta, "namespace").filter(|n| !n.is_empty());
    let spec = s.get(obj, "spec");
    let parent_refs = spec
        .and_then(|sp| s.get(sp, "parentRefs"))
        .map_or(0, |p| s.items(p).len());
    let hostnames = spec
        .and_then(|sp| s.get(sp, "hostnames"))
        .map(|h| s.items(h))
        .unwrap_or(&[])
        .iter()
        .filter_map(|h| s.str(*h).map(String::from))
        .collect();
    let rules = spec
        .and_then(|sp| s.get(sp, "rules"))
        .map(|r| s.items(r))
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(index, r)| Rule {
            index,
            line: s.node(*r).line,
            matches: s
                .get(*r, "matches")
                .map(|m| s.items(m))
                .unwrap_or(&[])
                .iter()
                .map(|m| read_match(s, *m))
                .collect(),
            backends: s
                .get(*r, "backendRefs")
                .map(|b| s.items(b))
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .filter_map(|(i, b)| read_backend(s, *b, i))
                .collect(),
        })
        .collect();
    Some(HttpRoute {
        file: file.path.clone(),
        document,
        item,
        line: s.node(obj).line,
        api_version,
        namespace,
        name,
        parent_refs,
        hostnames,
        rules,
    })
}

/// Every HTTPRoute this router reads in one file.
pub fn http_routes(file: &SourceFile) -> Vec<HttpRoute> {
    crate::manifest::stream_objects(&file.stream)
        .into_iter()
        .filter_map(|(doc, item, obj)| read_route(file, doc, item, obj))
        .collect()
}

/// HTTPRoutes of an API version this router does not read.
pub(crate) fn unknown_versions(file: &SourceFile) -> Vec<Problem> {
    let s = &file.stream;
    let mut out = Vec::new();
    for (document, item, obj) in crate::manifest::stream_objects(s) {
        if !s.is_map(obj) || s.get(obj, "kind").and_then(|k| s.str(k)) != Some(KIND) {
            continue;
        }
        let version = string(s, obj, "apiVersion").unwrap_or_default();
        if API_VERSIONS.contains(&version.as_str()) {
            continue;
        }
        let name = s
            .path(obj, &["metadata", "name"])
            .and_then(|n| s.str(n))
            .unwrap_or("?");
        out.push(Problem {
            severity: Severity::Warning,
            code: "api-version-unknown",
            message: format!(
                "HTTPRoute {name} has apiVersion {version:?}; gitops-canary reads {} and skips it",
                API_VERSIONS.join(" and ")
            ),
            file: file.path.clone(),
            document,
            line: s.node(obj).line,
            field: match item {
                Some(i) => format!("items[{i}].apiVersion"),
                None => "apiVersion".into(),
            },
        });
    }
    out
}
