//! Workloads behind a route: Services and the Deployments their selectors match.
//!
//! The gates need to know which Deployments serve the canary and the stable, and promotion
//! needs the canary's images to give to the stable. Both are read from the same manifests the
//! routes come from, the way Kubernetes would match them: a Service selects the pods whose
//! labels include its selector, in its namespace.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Edit, PathSeg, ScalarKind, SourceFile};
use crate::yaml::{NodeId, Stream};

/// A Deployment as promotion and the gates need it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    pub file: std::path::PathBuf,
    pub document: usize,
    pub item: Option<usize>,
    pub namespace: Option<String>,
    pub name: String,
    pub pod_labels: BTreeMap<String, String>,
    /// (container name, image) in order.
    pub containers: Vec<(String, String)>,
}

impl Workload {
    pub(crate) fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A Service's selector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceInfo {
    pub namespace: Option<String>,
    pub name: String,
    pub selector: BTreeMap<String, String>,
}

fn string_map(s: &Stream, node: Option<NodeId>) -> BTreeMap<String, String> {
    node.map(|n| {
        s.entries(n)
            .iter()
            .filter_map(|(k, v)| Some((s.str(*k)?.to_string(), s.str(*v)?.to_string())))
            .collect()
    })
    .unwrap_or_default()
}

fn meta(s: &Stream, obj: NodeId) -> Option<(Option<String>, String)> {
    let m = s.get(obj, "metadata")?;
    let name = s.get(m, "name").and_then(|n| s.str(n))?.to_string();
    let ns = s
        .get(m, "namespace")
        .and_then(|n| s.str(n))
        .filter(|n| !n.is_empty())
        .map(String::from);
    Some((ns, name))
}

/// Every Deployment in the files.
pub fn workloads(files: &[SourceFile]) -> Vec<Workload> {
    let mut out = Vec::new();
    for f in files {
        let s = &f.stream;
        for (document, item, obj) in super::stream_objects(s) {
            if !s.is_map(obj) || s.get(obj, "kind").and_then(|k| s.str(k)) != Some("Deployment") {
                continue;
            }
            let Some((namespace, name)) = meta(s, obj) else {
                continue;
            };
            let template = s.path(obj, &["spec", "template"]);
            let pod_labels =
                string_map(s, template.and_then(|t| s.path(t, &["metadata", "labels"])));
            let containers = template
                .and_then(|t| s.path(t, &["spec", "containers"]))
                .map(|c| s.items(c))
                .unwrap_or(&[])
                .iter()
                .filter_map(|c| {
                    let name = s.get(*c, "name").and_then(|n| s.str(n))?.to_string();
                    let image = s.get(*c, "image").and_then(|n| s.str(n))?.to_string();
                    Some((name, image))
                })
                .collect();
            out.push(Workload {
                file: f.path.clone(),
                document,
                item,
                namespace,
                name,
                pod_labels,
                containers,
            });
        }
    }
    out
}

/// Every Service in the files.
pub fn services(files: &[SourceFile]) -> Vec<ServiceInfo> {
    let mut out = Vec::new();
    for f in files {
        let s = &f.stream;
        for (_, _, obj) in super::stream_objects(s) {
            if !s.is_map(obj) || s.get(obj, "kind").and_then(|k| s.str(k)) != Some("Service") {
                continue;
            }
            let Some((namespace, name)) = meta(s, obj) else {
                continue;
            };
            let selector = string_map(s, s.path(obj, &["spec", "selector"]));
            out.push(ServiceInfo {
                namespace,
                name,
                selector,
            });
        }
    }
    out
}

/// The Deployments whose pods a Service selects (same namespace, labels include the selector).
pub fn backing<'a>(
    workloads: &'a [Workload],
    services: &[ServiceInfo],
    namespace: Option<&str>,
    service: &str,
) -> Vec<&'a Workload> {
    let Some(svc) = services
        .iter()
        .find(|s| s.name == service && s.namespace.as_deref() == namespace)
    else {
        return Vec::new();
    };
    if svc.selector.is_empty() {
        return Vec::new();
    }
    workloads
        .iter()
        .filter(|w| w.namespace == svc.namespace)
        .filter(|w| {
            svc.selector
                .iter()
                .all(|(k, v)| w.pod_labels.get(k) == Some(v))
        })
        .collect()
}

/// Edits that give `stable` the canary's images, container by container name (a container the
/// canary does not have keeps its image). Only changed images produce an edit.
pub(crate) fn image_edits(stable: &Workload, canary: &Workload) -> Vec<Edit> {
    let mut out = Vec::new();
    for (i, (name, image)) in stable.containers.iter().enumerate() {
        let Some((_, new)) = canary.containers.iter().find(|(n, _)| n == name) else {
            continue;
        };
        if new == image {
            continue;
        }
        let mut path = Vec::new();
        if let Some(item) = stable.item {
            path.push(PathSeg::Key("items".into()));
            path.push(PathSeg::Index(item));
        }
        for k in ["spec", "template", "spec", "containers"] {
            path.push(PathSeg::Key(k.into()));
        }
        path.push(PathSeg::Index(i));
        path.push(PathSeg::Key("image".into()));
        out.push(Edit {
            file: stable.file.clone(),
            document: stable.document,
            path,
            old: Some(image.clone()),
            new: new.clone(),
            kind: ScalarKind::Text,
            insert_after: Vec::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::edit;
    use std::path::PathBuf;

    #[test]
    fn promotion_edits_only_the_image_and_keeps_it_plain() {
        let stable = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    metadata:\n      labels: {app: web, track: stable}\n    spec:\n      containers:\n        - name: web # main\n          image: ghcr.io/x/web:1.0 # pinned\n        - name: sidecar\n          image: envoy:1\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {track: stable}\n";
        let canary = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-canary\n  namespace: shop\nspec:\n  template:\n    metadata:\n      labels: {app: web, track: canary}\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/x/web:1.1\n";
        let files = vec![
            SourceFile::parse(PathBuf::from("s.yaml"), stable.into()).unwrap(),
            SourceFile::parse(PathBuf::from("c.yaml"), canary.into()).unwrap(),
        ];
        let w = workloads(&files);
        let svcs = services(&files);
        let backing_stable = backing(&w, &svcs, Some("shop"), "web");
        assert_eq!(backing_stable.len(), 1);
        assert_eq!(backing_stable[0].name, "web");
        let edits = image_edits(backing_stable[0], &w[1]);
        assert_eq!(edits.len(), 1);
        let out = edit::apply(&files[0], &edits).unwrap();
        assert_eq!(
            out.changed[0].1,
            stable.replace("web:1.0 # pinned", "web:1.1 # pinned")
        );
    }
}
