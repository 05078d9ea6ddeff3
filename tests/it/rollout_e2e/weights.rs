//! The weights a rollout scenario checks, read independently of the tool: a canary Ingress's
//! `canary-weight` annotation or an HTTPRoute canary's share of its split, from a file on the
//! base branch, from what a Kustomize root renders there (`kubectl kustomize`), or live.

use super::CanaryAt;
use crate::support::e2e::World;

use serde_json::Value;

pub(super) fn ns_name(s: &str) -> (&str, &str) {
    s.split_once('/').unwrap_or(("default", s))
}

/// The canary weight Git has on the base branch: the HelmRelease's value, the HTTPRoute's
/// split (in `file`, or as `root` renders it), or the Ingress's annotation (likewise).
pub(super) fn base_weight(w: &World, c: &CanaryAt) -> u32 {
    let (ns, name) = ns_name(&c.name);
    if let Some(path) = &c.value {
        let text = w.file_on_base(&c.file).expect("the HelmRelease file");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        let release = docs
            .iter()
            .find(|d| d["kind"] == "HelmRelease")
            .expect("a HelmRelease");
        let value = path
            .split('.')
            .fold(&release["spec"]["values"], |v, key| &v[key]);
        return value.as_u64().expect("an integer weight") as u32;
    }
    match (&c.route_service, &c.root) {
        (Some(svc), Some(root)) => rendered_route_weight(&w.rendered(root), ns, name, svc)
            .unwrap_or_else(|| panic!("{root} renders no HTTPRoute {ns}/{name}")),
        (Some(svc), None) => {
            let text = w.file_on_base(&c.file).expect("the HTTPRoute file");
            let doc: Value = serde_saphyr::from_str(&text).expect("HTTPRoute YAML");
            route_share(&doc, svc)
        }
        (None, Some(root)) => rendered_weight(&w.rendered(root), ns, name)
            .unwrap_or_else(|| panic!("{root} renders no canary {ns}/{name}")),
        (None, None) => w.base_weight(&c.file),
    }
}

/// The canary Service's percentage of an HTTPRoute's split, over the rules that split
/// between two backendRefs (a missing weight is 1; 0 when the rules carry no weight).
fn route_share(route: &Value, svc: &str) -> u32 {
    let mut total = 0u64;
    let mut canary = 0u64;
    for rule in route["spec"]["rules"].as_array().into_iter().flatten() {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        if refs.len() != 2 {
            continue;
        }
        for b in refs {
            let wt = b["weight"].as_u64().unwrap_or(1);
            total += wt;
            if b["name"] == svc {
                canary += wt;
            }
        }
    }
    (canary * 100).checked_div(total).unwrap_or(0) as u32
}

/// The object of `kind` named `ns/name` in `kubectl kustomize` output.
fn rendered_object(text: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("rendered YAML");
    docs.into_iter().find(|d| {
        d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"] == ns
    })
}

/// The weight of the Ingress `ns/name` in `kubectl kustomize` output (0 when it has no
/// annotation, None when the Ingress is absent).
pub(super) fn rendered_weight(text: &str, ns: &str, name: &str) -> Option<u32> {
    let ing = rendered_object(text, "Ingress", ns, name)?;
    Some(
        ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"]
            .as_str()
            .map_or(0, |v| v.parse().expect("an integer weight")),
    )
}

/// The share of the backendRef `svc` in the HTTPRoute `ns/name` of `kubectl kustomize`
/// output (None when the route is absent).
pub(super) fn rendered_route_weight(text: &str, ns: &str, name: &str, svc: &str) -> Option<u32> {
    rendered_object(text, "HTTPRoute", ns, name).map(|r| route_share(&r, svc))
}

/// The live share of the backendRef `svc` in the HTTPRoute `ns/name` (None when the route or
/// the backendRef is missing).
pub(super) fn live_route_weight(w: &World, ns: &str, name: &str, svc: &str) -> Option<u32> {
    let weights = w.live_route_weights(ns, name)?;
    let total: u64 = weights.values().sum();
    let canary = *weights.get(svc)?;
    Some((canary * 100).checked_div(total).unwrap_or(0) as u32)
}

/// The live canary weight: the Ingress's annotation, or the HTTPRoute canary's percentage.
pub(super) fn live_weight(w: &World, c: &CanaryAt) -> Option<u32> {
    let (ns, name) = ns_name(&c.name);
    match &c.route_service {
        Some(svc) => live_route_weight(w, ns, name, svc),
        None => w.live_weight(ns, name),
    }
}
