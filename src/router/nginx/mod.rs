//! ingress-nginx: a canary is a second Ingress for the same host and path, annotated
//! `nginx.ingress.kubernetes.io/canary: "true"`, whose `canary-weight` is the percentage (of
//! `canary-weight-total`, default 100) of requests sent to its Service.
//!
//! Pairing follows the controller: a canary joins the server and location of a non-canary
//! Ingress with the same host, path and path type, in any namespace (the "whole app in a second
//! namespace" layout). The problems reported are the ones the controller would have: a canary
//! with no stable partner is served 404, a second canary on a host+path is ignored (and the
//! admission webhook refuses it), header and cookie rules route before the weight.

mod canary_manifest;
mod problems;
#[cfg(test)]
mod tests;

pub use canary_manifest::canary_manifest;

use std::path::PathBuf;

use super::{Backend, CanaryPair, Discovery, Route, Router, Severity};
use crate::manifest::{Edit, ManifestError, PathSeg, ScalarKind, Skipped, SourceFile};
use crate::yaml::{NodeId, NodeKind, Stream, Style};
use problems::{pair_problems, problem, same_location};

pub(crate) const PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
pub const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
pub(crate) const WEIGHT_TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
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

impl Router for IngressNginx {
    fn name(&self) -> &'static str {
        "ingress-nginx"
    }

    fn may_contain_route(&self, bytes: &[u8]) -> bool {
        crate::manifest::contains(bytes, b"Ingress")
    }

    fn routes(&self, file: &SourceFile) -> Vec<Route> {
        crate::manifest::stream_objects(&file.stream)
            .into_iter()
            .filter_map(|(doc, item, obj)| read_route(file, doc, item, obj))
            .collect()
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
