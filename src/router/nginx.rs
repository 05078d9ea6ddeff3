//! ingress-nginx: a canary is a second Ingress for the same host and path, annotated
//! `nginx.ingress.kubernetes.io/canary: "true"`, whose `canary-weight` is the percentage (of
//! `canary-weight-total`, default 100) of requests sent to its Service.
//!
//! Pairing follows the controller: a canary joins the server and location of a non-canary
//! Ingress with the same host, path and path type, in any namespace (the "whole app in a second
//! namespace" layout). The problems reported are the ones the controller would have: a canary
//! with no stable partner is served 404, a second canary on a host+path is ignored (and the
//! admission webhook refuses it), header and cookie rules route before the weight.

use std::path::PathBuf;

use super::{Backend, CanaryPair, Discovery, Problem, Route, Router, Severity};
use crate::manifest::{Edit, ManifestError, PathSeg, ScalarKind, Skipped, SourceFile};
use crate::yaml::{NodeId, NodeKind, Stream, Style};

pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
pub const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
pub const WEIGHT_TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
const API_VERSIONS: [&str; 3] = [
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "extensions/v1beta1",
];
/// Annotations that route requests before the weight is consulted.
const RULE_ANNOTATIONS: [&str; 4] = [
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
];

/// The ingress-nginx router.
pub struct IngressNginx;

/// Go's `strconv.ParseBool` truth values, which the controller uses for `canary`.
fn go_true(s: &str) -> bool {
    matches!(s, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

fn annotations_path(key: &str, item: Option<usize>) -> Vec<PathSeg> {
    let mut p = Vec::new();
    if let Some(i) = item {
        p.push(PathSeg::Key("items".into()));
        p.push(PathSeg::Index(i));
    }
    p.push(PathSeg::Key("metadata".into()));
    p.push(PathSeg::Key("annotations".into()));
    p.push(PathSeg::Key(key.into()));
    p
}

fn field(key: &str) -> String {
    format!("metadata.annotations[{key:?}]")
}

/// Objects in a document: the root, or each item of a `kind: List`.
fn objects(s: &Stream, root: NodeId) -> Vec<(Option<usize>, NodeId)> {
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

fn backend_of(s: &Stream, b: NodeId) -> (Option<String>, Option<String>) {
    // networking.k8s.io/v1: backend.service.{name,port.{number|name}}
    if let Some(svc) = s.get(b, "service") {
        let name = s.get(svc, "name").and_then(|n| s.str(n)).map(String::from);
        let port = s.get(svc, "port").and_then(|p| {
            s.get(p, "number")
                .or_else(|| s.get(p, "name"))
                .and_then(|n| s.str(n))
                .map(String::from)
        });
        return (name, port);
    }
    // v1beta1 and extensions: backend.{serviceName,servicePort}
    (
        s.get(b, "serviceName")
            .and_then(|n| s.str(n))
            .map(String::from),
        s.get(b, "servicePort")
            .and_then(|n| s.str(n))
            .map(String::from),
    )
}

fn read_route(
    file: &SourceFile,
    document: usize,
    item: Option<usize>,
    obj: NodeId,
) -> Option<Route> {
    let s = &file.stream;
    if !s.is_map(obj) || s.get(obj, "kind").and_then(|k| s.str(k)) != Some("Ingress") {
        return None;
    }
    let api_version = s.get(obj, "apiVersion").and_then(|v| s.str(v))?;
    if !API_VERSIONS.contains(&api_version) {
        return None;
    }
    let meta = s.get(obj, "metadata")?;
    let name = s.get(meta, "name").and_then(|n| s.str(n))?.to_string();
    let namespace = s
        .get(meta, "namespace")
        .and_then(|n| s.str(n))
        .filter(|n| !n.is_empty())
        .map(String::from);
    let mut annotations = Vec::new();
    let mut weight_node = None;
    if let Some(ann) = s.get(meta, "annotations") {
        for (k, v) in s.entries(ann) {
            let (Some(key), Some(val)) = (s.str(*k), s.str(*v)) else {
                continue;
            };
            if key == WEIGHT {
                weight_node = Some(s.resolve(*v));
            }
            if let Some(short) = key.strip_prefix(PREFIX) {
                annotations.push((short.to_string(), val.to_string()));
            } else if key == "kubernetes.io/ingress.class" {
                annotations.push((key.to_string(), val.to_string()));
            }
        }
    }
    let get_ann = |short: &str| {
        annotations
            .iter()
            .rev()
            .find(|(k, _)| k == short)
            .map(|(_, v)| v.clone())
    };
    let canary = get_ann("canary").is_some_and(|v| go_true(&v));
    let spec = s.get(obj, "spec");
    let class = spec
        .and_then(|sp| s.get(sp, "ingressClassName"))
        .and_then(|c| s.str(c))
        .map(String::from)
        .or_else(|| get_ann("kubernetes.io/ingress.class"));
    let mut backends = Vec::new();
    if let Some(spec) = spec {
        let rules = s.get(spec, "rules").map(|r| s.items(r)).unwrap_or(&[]);
        for rule in rules {
            let host = s
                .get(*rule, "host")
                .and_then(|h| s.str(h))
                .filter(|h| !h.is_empty())
                .map(String::from);
            let paths = s.path(*rule, &["http", "paths"]);
            for p in paths.map(|p| s.items(p)).unwrap_or(&[]) {
                let path = s
                    .get(*p, "path")
                    .and_then(|x| s.str(x))
                    .filter(|x| !x.is_empty())
                    .unwrap_or("/")
                    .to_string();
                let path_type = s
                    .get(*p, "pathType")
                    .and_then(|x| s.str(x))
                    .unwrap_or("ImplementationSpecific")
                    .to_string();
                let (service, port) = s
                    .get(*p, "backend")
                    .map(|b| backend_of(s, b))
                    .unwrap_or((None, None));
                backends.push(Backend {
                    host: host.clone(),
                    path,
                    path_type,
                    service,
                    port,
                });
            }
        }
        if let Some(def) = s
            .get(spec, "defaultBackend")
            .or_else(|| s.get(spec, "backend"))
        {
            if backends.is_empty() {
                let (service, port) = backend_of(s, def);
                backends.push(Backend {
                    host: None,
                    path: "/".into(),
                    path_type: "ImplementationSpecific".into(),
                    service,
                    port,
                });
            }
        }
    }
    let tls = spec
        .and_then(|sp| s.get(sp, "tls"))
        .map(|t| s.items(t))
        .unwrap_or(&[])
        .iter()
        .map(|t| {
            let hosts = s
                .get(*t, "hosts")
                .map(|h| s.items(h))
                .unwrap_or(&[])
                .iter()
                .filter_map(|h| s.str(*h).map(String::from))
                .collect();
            let secret = s
                .get(*t, "secretName")
                .and_then(|x| s.str(x))
                .map(String::from);
            (hosts, secret)
        })
        .collect();
    let weight_raw = get_ann("canary-weight");
    let weight = weight_raw.as_deref().and_then(|w| w.parse::<u32>().ok());
    let weight_plain = weight_node.is_some_and(|n| {
        matches!(
            s.node(n).kind,
            NodeKind::Scalar {
                style: Style::Plain,
                tagged: false,
                ..
            }
        )
    });
    let weight_total = get_ann("canary-weight-total")
        .and_then(|t| t.parse::<u32>().ok())
        .filter(|t| *t >= 100)
        .unwrap_or(100);
    let rules = RULE_ANNOTATIONS
        .iter()
        .filter_map(|r| get_ann(r).map(|v| (r.to_string(), v)))
        .collect();
    Some(Route {
        file: file.path.clone(),
        document,
        item,
        line: s.node(obj).line,
        api_version: api_version.to_string(),
        kind: "Ingress".into(),
        namespace,
        name,
        class,
        canary,
        backends,
        weight_raw,
        weight_line: weight_node.map(|n| s.node(n).line),
        weight,
        weight_plain,
        weight_total,
        rules,
        tls,
        annotations,
    })
}

fn problem(
    r: &Route,
    severity: Severity,
    code: &'static str,
    field: String,
    message: String,
) -> Problem {
    let line = if code.starts_with("weight") {
        r.weight_line.unwrap_or(r.line)
    } else {
        r.line
    };
    Problem {
        severity,
        code,
        message,
        file: r.file.clone(),
        document: r.document,
        line,
        field,
    }
}

/// Same host, path and path type (the controller's server + location).
fn same_location(a: &Backend, b: &Backend) -> bool {
    a.host == b.host && a.path == b.path && a.path_type == b.path_type
}

fn pair_problems(canary: &Route, stable: &[Route], all_canaries: &[&Route]) -> Vec<Problem> {
    let mut out = Vec::new();
    for b in &canary.backends {
        let where_ = format!("{} {}", b.host.as_deref().unwrap_or("*"), b.path);
        if !stable
            .iter()
            .any(|s| s.backends.iter().any(|sb| same_location(sb, b)))
        {
            out.push(problem(
                canary,
                Severity::Error,
                "no-stable",
                "spec.rules".into(),
                format!("no stable Ingress serves {where_} ({}); ingress-nginx answers 404 for the canary", b.path_type),
            ));
        }
        let first = all_canaries
            .iter()
            .find(|c| c.backends.iter().any(|cb| same_location(cb, b)));
        if let Some(first) = first {
            if first.file != canary.file
                || first.document != canary.document
                || first.item != canary.item
            {
                out.push(problem(
                    canary,
                    Severity::Error,
                    "duplicate-canary",
                    "spec.rules".into(),
                    format!(
                        "{where_} already has the canary {}; ingress-nginx uses only the first and its admission webhook rejects this one",
                        first.describe()
                    ),
                ));
            } else if all_canaries
                .iter()
                .filter(|c| c.backends.iter().any(|cb| same_location(cb, b)))
                .count()
                > 1
            {
                out.push(problem(
                    canary,
                    Severity::Error,
                    "duplicate-canary",
                    "spec.rules".into(),
                    format!("{where_} has more than one canary; ingress-nginx uses only this first one and its admission webhook rejects the others"),
                ));
            }
        }
    }
    for s in stable {
        let shared: Vec<String> = canary
            .services()
            .into_iter()
            .filter(|svc| s.namespace == canary.namespace && s.services().contains(svc))
            .collect();
        if !shared.is_empty() {
            out.push(problem(
                canary,
                Severity::Warning,
                "same-service",
                "spec.rules[].http.paths[].backend".into(),
                format!(
                    "the canary sends traffic to {}, which the stable {} uses too: the split changes nothing",
                    shared.join(", "),
                    s.qualified_name()
                ),
            ));
        }
        if s.class != canary.class {
            out.push(problem(
                canary,
                Severity::Warning,
                "class-mismatch",
                "spec.ingressClassName".into(),
                format!(
                    "the canary's class {:?} differs from the stable {}'s {:?}; another controller may serve one of them",
                    canary.class, s.qualified_name(), s.class
                ),
            ));
        }
    }
    match (&canary.weight_raw, canary.weight) {
        (Some(raw), None) => out.push(problem(
            canary,
            Severity::Error,
            "weight-not-integer",
            field(WEIGHT),
            format!(
                "canary-weight {raw:?} is not a non-negative integer; ingress-nginx ignores it"
            ),
        )),
        (Some(_), Some(w)) if w > canary.weight_total => out.push(problem(
            canary,
            Severity::Error,
            "weight-out-of-range",
            field(WEIGHT),
            format!(
                "canary-weight {w} is above the total {}",
                canary.weight_total
            ),
        )),
        (None, _) => out.push(problem(
            canary,
            Severity::Info,
            "weight-missing",
            field(WEIGHT),
            "no canary-weight: no requests reach the canary by weight (0)".into(),
        )),
        _ => {}
    }
    if canary.weight_raw.is_some() && canary.weight_plain {
        out.push(problem(
            canary,
            Severity::Warning,
            "weight-not-string",
            field(WEIGHT),
            "canary-weight is a YAML integer; annotations are strings and the API server rejects it (gitops-canary writes it quoted)".into(),
        ));
    }
    if let Some((_, raw)) = canary
        .annotations
        .iter()
        .rev()
        .find(|(k, _)| k == "canary-weight-total")
    {
        if raw.parse::<u32>().map_or(true, |t| t < 100) {
            out.push(problem(
                canary,
                Severity::Warning,
                "weight-total-ignored",
                field(WEIGHT_TOTAL),
                format!("canary-weight-total {raw:?} is below 100 or not an integer; ingress-nginx ignores it and uses 100"),
            ));
        }
    }
    if !canary.rules.is_empty() {
        let names: Vec<String> = canary
            .rules
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push(problem(
            canary,
            Severity::Info,
            "rules-before-weight",
            format!("metadata.annotations[\"{PREFIX}canary-by-*\"]"),
            format!(
                "{} route requests before the weight applies",
                names.join(", ")
            ),
        ));
    }
    let ignored: Vec<&str> = canary
        .annotations
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !k.starts_with("canary") && *k != "kubernetes.io/ingress.class")
        .collect();
    if !ignored.is_empty() {
        out.push(problem(
            canary,
            Severity::Info,
            "ignored-on-canary",
            "metadata.annotations".into(),
            format!(
                "ingress-nginx ignores these annotations on a canary (the stable's apply): {}",
                ignored.join(", ")
            ),
        ));
    }
    out
}

impl Router for IngressNginx {
    fn name(&self) -> &'static str {
        "ingress-nginx"
    }

    fn may_contain_route(&self, bytes: &[u8]) -> bool {
        crate::manifest::contains(bytes, b"Ingress")
    }

    fn routes(&self, file: &SourceFile) -> Vec<Route> {
        let s = &file.stream;
        let mut out = Vec::new();
        for doc in &s.docs {
            let Some(root) = doc.root else { continue };
            for (item, obj) in objects(s, root) {
                if let Some(r) = read_route(file, doc.index, item, obj) {
                    out.push(r);
                }
            }
        }
        out
    }

    fn discover(&self, files: &[SourceFile], skipped: &[Skipped]) -> Discovery {
        let routes: Vec<Route> = files.iter().flat_map(|f| self.routes(f)).collect();
        let canaries: Vec<&Route> = routes.iter().filter(|r| r.canary).collect();
        let stables: Vec<&Route> = routes.iter().filter(|r| !r.canary).collect();
        let pairs = canaries
            .iter()
            .map(|c| {
                let stable: Vec<Route> = stables
                    .iter()
                    .filter(|s| {
                        s.backends
                            .iter()
                            .any(|sb| c.backends.iter().any(|cb| same_location(sb, cb)))
                    })
                    .map(|s| (*s).clone())
                    .collect();
                let problems = pair_problems(c, &stable, &canaries);
                let weight = match &c.weight_raw {
                    None => Some(0),
                    Some(_) => c.weight,
                };
                CanaryPair {
                    canary: (*c).clone(),
                    stable,
                    weight,
                    weight_total: c.weight_total,
                    problems,
                }
            })
            .collect();
        let mut problems = Vec::new();
        for s in &stables {
            let stray: Vec<&str> = s
                .annotations
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| k.starts_with("canary") && *k != "canary")
                .collect();
            if !stray.is_empty() {
                problems.push(problem(
                    s,
                    Severity::Warning,
                    "canary-annotation-without-canary",
                    field(CANARY),
                    format!(
                        "{} set without canary: \"true\"; ingress-nginx ignores them (or: this Ingress was meant to be a canary)",
                        stray.join(", ")
                    ),
                ));
            }
        }
        Discovery {
            router: self.name(),
            pairs,
            problems,
            skipped: skipped.to_vec(),
        }
    }

    fn weight_edit(
        &self,
        file: &SourceFile,
        route: &Route,
        weight: u32,
    ) -> Result<Edit, ManifestError> {
        if !route.canary {
            return Err(ManifestError::NotCanary {
                file: file.path.clone(),
                document: route.document,
                name: route.qualified_name(),
                field: field(CANARY),
            });
        }
        if weight > route.weight_total {
            return Err(ManifestError::WeightOutOfRange {
                file: file.path.clone(),
                document: route.document,
                field: field(WEIGHT),
                weight,
                total: route.weight_total,
            });
        }
        Ok(Edit {
            file: PathBuf::from(&file.path),
            document: route.document,
            path: annotations_path(WEIGHT, route.item),
            old: route.weight_raw.clone(),
            new: weight.to_string(),
            kind: ScalarKind::String,
            insert_after: vec![CANARY.to_string()],
        })
    }
}

/// A YAML scalar for a name-like string: plain where that reads back as the same string.
fn scalar(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./*".contains(c))
        && !v.starts_with(['-', '.', '*'])
        && v.parse::<f64>().is_err()
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        );
    if plain {
        v.to_string()
    } else {
        serde_json::to_string(v).unwrap_or_else(|_| format!("\"{v}\""))
    }
}

/// A canary Ingress for `stable` (networking.k8s.io/v1): same class, hosts, paths, path types
/// and TLS; every backend replaced by `service` on the stable's port; `canary: "true"` and the
/// weight; no other nginx annotations, since ingress-nginx ignores them on a canary.
pub fn canary_manifest(
    stable: &Route,
    name: &str,
    namespace: Option<&str>,
    service: &str,
    weight: u32,
    eol: &str,
) -> String {
    let mut l: Vec<String> = vec![
        "apiVersion: networking.k8s.io/v1".into(),
        "kind: Ingress".into(),
        "metadata:".into(),
        format!("  name: {}", scalar(name)),
    ];
    if let Some(ns) = namespace {
        l.push(format!("  namespace: {}", scalar(ns)));
    }
    l.push("  annotations:".into());
    let legacy_class = stable
        .annotations
        .iter()
        .rev()
        .find(|(k, _)| k == "kubernetes.io/ingress.class");
    if let Some((_, class)) = legacy_class {
        l.push(format!(
            "    kubernetes.io/ingress.class: {}",
            serde_json::to_string(class).unwrap_or_default()
        ));
    }
    l.push(format!("    {CANARY}: \"true\""));
    l.push(format!("    {WEIGHT}: \"{weight}\""));
    l.push("spec:".into());
    if let (Some(class), None) = (&stable.class, legacy_class) {
        l.push(format!("  ingressClassName: {}", scalar(class)));
    }
    if !stable.tls.is_empty() {
        l.push("  tls:".into());
        for (hosts, secret) in &stable.tls {
            l.push("  - hosts:".into());
            for h in hosts {
                l.push(format!("    - {}", scalar(h)));
            }
            if let Some(sec) = secret {
                l.push(format!("    secretName: {}", scalar(sec)));
            }
        }
    }
    l.push("  rules:".into());
    let mut hosts: Vec<Option<&String>> = Vec::new();
    for b in &stable.backends {
        if !hosts.contains(&b.host.as_ref()) {
            hosts.push(b.host.as_ref());
        }
    }
    for host in hosts {
        match host {
            Some(h) => {
                l.push(format!("  - host: {}", scalar(h)));
                l.push("    http:".into());
            }
            None => l.push("  - http:".into()),
        }
        l.push("      paths:".into());
        for b in stable.backends.iter().filter(|b| b.host.as_ref() == host) {
            l.push(format!("      - path: {}", scalar(&b.path)));
            l.push(format!("        pathType: {}", scalar(&b.path_type)));
            l.push("        backend:".into());
            l.push("          service:".into());
            l.push(format!("            name: {}", scalar(service)));
            match &b.port {
                Some(p) if p.parse::<u16>().is_ok() => {
                    l.push("            port:".into());
                    l.push(format!("              number: {p}"));
                }
                Some(p) => {
                    l.push("            port:".into());
                    l.push(format!("              name: {}", scalar(p)));
                }
                None => {}
            }
        }
    }
    let mut out = l.join(eol);
    out.push_str(eol);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(docs: &[(&str, &str)]) -> Vec<SourceFile> {
        docs.iter()
            .map(|(p, t)| SourceFile::parse(PathBuf::from(p), t.to_string()).unwrap())
            .collect()
    }

    fn ingress(ns: &str, name: &str, svc: &str, extra: &str) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n{extra}    x: y\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: a.example\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: {svc}\n            port:\n              number: 80\n"
        )
    }

    fn canary_ann(w: &str) -> String {
        format!("    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: {w}\n")
    }

    fn codes(d: &Discovery) -> Vec<&'static str> {
        d.pairs
            .iter()
            .flat_map(|p| p.problems.iter().map(|x| x.code))
            .chain(d.problems.iter().map(|p| p.code))
            .collect()
    }

    #[test]
    fn pairs_across_namespaces() {
        let f = files(&[
            ("stable.yaml", &ingress("shop", "web", "web", "")),
            (
                "canary.yaml",
                &ingress("shop-canary", "web", "web", &canary_ann("\"10\"")),
            ),
        ]);
        let d = IngressNginx.discover(&f, &[]);
        assert_eq!(d.pairs.len(), 1);
        assert_eq!(d.pairs[0].stable[0].namespace.as_deref(), Some("shop"));
        assert_eq!(d.pairs[0].weight, Some(10));
        // Same Service name in another namespace is another Service.
        assert!(codes(&d).is_empty(), "{:?}", codes(&d));
    }

    #[test]
    fn reports_what_ingress_nginx_would_do() {
        let f = files(&[
            (
                "c1.yaml",
                &ingress("shop", "c1", "web", &canary_ann("\"ten\"")),
            ),
            ("c2.yaml", &ingress("shop", "c2", "web2", &canary_ann("5"))),
        ]);
        let d = IngressNginx.discover(&f, &[]);
        let c = codes(&d);
        assert!(c.contains(&"no-stable"));
        assert!(c.contains(&"duplicate-canary"));
        assert!(c.contains(&"weight-not-integer"));
        assert!(c.contains(&"weight-not-string"));
        let f = files(&[
            ("s.yaml", &ingress("shop", "web", "web", "    nginx.ingress.kubernetes.io/canary-weight: \"5\"\n")),
            ("c.yaml", &ingress("shop", "c", "web", &format!("{}    nginx.ingress.kubernetes.io/canary-by-header: X\n    nginx.ingress.kubernetes.io/canary-weight-total: \"50\"\n", canary_ann("\"10\"")))),
        ]);
        let d = IngressNginx.discover(&f, &[]);
        let c = codes(&d);
        for want in [
            "same-service",
            "rules-before-weight",
            "weight-total-ignored",
            "canary-annotation-without-canary",
        ] {
            assert!(c.contains(&want), "{want} missing in {c:?}");
        }
        assert_eq!(d.pairs[0].weight_total, 100);
    }

    #[test]
    fn list_items_are_objects() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata:\n    name: a\n    annotations:\n      nginx.ingress.kubernetes.io/canary: \"true\"\n";
        let f = files(&[("l.yaml", list)]);
        let r = IngressNginx.routes(&f[0]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].item, Some(0));
        let e = IngressNginx.weight_edit(&f[0], &r[0], 20).unwrap();
        assert_eq!(
            e.field(),
            "items[0].metadata.annotations[\"nginx.ingress.kubernetes.io/canary-weight\"]"
        );
    }
}
