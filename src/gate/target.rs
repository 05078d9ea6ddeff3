//! What a stage gates, resolved once from the manifests: every canary route moving together,
//! every Deployment behind each side, and the labels the metrics of each canary carry.
//!
//! `check` and the rollout loop both build a [`Targets`] here and hand it to the one gate
//! runner, so the two never disagree on which objects a gate watches. Pure: routes and
//! workloads in, object names out.

use serde::Serialize;

use crate::gate::httproute::RouteWeights;
use crate::gate::ObjectRef;
use crate::manifest::workload::{ServiceInfo, Workload};
use crate::router::Route;

/// A canary route with the stable routes it joins.
#[derive(Debug, Clone)]
pub struct RoutePair {
    pub canary: Route,
    pub stables: Vec<Route>,
}

/// The label values ingress-nginx's metrics carry for one canary's requests: the canary is
/// merged into its stable's location, so `ingress` is the stable Ingress (in `namespace`) and
/// `canary!=""` marks the canary's share; `service` is the canary's Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsLabels {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
}

/// An HTTPRoute canary as `synced` watches it: the route and the split the base has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteTarget {
    pub route: ObjectRef,
    pub weights: RouteWeights,
}

/// Everything one stage's gates watch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Targets {
    /// Every canary Ingress (for `synced` through the live Ingress).
    pub ingresses: Vec<ObjectRef>,
    /// Every HTTPRoute canary (for `synced` through the live HTTPRoute and its status).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteTarget>,
    /// Every Deployment behind the canary routes' Services.
    pub canary: Vec<ObjectRef>,
    /// Every Deployment behind the stable routes' Services.
    pub stable: Vec<ObjectRef>,
    /// One set of metric labels per canary route.
    pub metrics: Vec<MetricsLabels>,
    /// What could not be resolved (a route without a Deployment behind it), for messages.
    pub notes: Vec<String>,
}

fn push_unique(out: &mut Vec<ObjectRef>, o: ObjectRef) {
    if !out.contains(&o) {
        out.push(o);
    }
}

/// Resolve the targets of the routes moving together. A route without a namespace is in
/// `default_namespace`; a Deployment without one is in its route's.
pub fn resolve(
    pairs: &[RoutePair],
    workloads: &[Workload],
    services: &[ServiceInfo],
    default_namespace: &str,
) -> Targets {
    let mut t = Targets::default();
    let ns_of = |r: &Route| {
        r.namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_string())
    };
    let mut behind = |route: &Route, which: &str, out: &mut Vec<ObjectRef>| {
        let found = crate::router::behind_routes(workloads, services, &[route]);
        if found.is_empty() {
            t.notes.push(format!(
                "no Deployment behind the Services of the {which} {} in the manifests",
                route.qualified_name()
            ));
        }
        for w in found {
            push_unique(
                out,
                ObjectRef::new(
                    w.namespace.clone().unwrap_or_else(|| ns_of(route)),
                    w.name.clone(),
                ),
            );
        }
    };
    let (mut canary, mut stable) = (Vec::new(), Vec::new());
    for p in pairs {
        behind(&p.canary, "canary", &mut canary);
        for s in &p.stables {
            behind(s, "stable", &mut stable);
        }
    }
    t.canary = canary;
    t.stable = stable;
    for p in pairs {
        let canary_ref = ObjectRef::new(ns_of(&p.canary), p.canary.name.clone());
        if p.canary.kind == crate::router::gateway::KIND {
            // The canary and the stable are backendRefs of one HTTPRoute.
            let stable = p.stables.first();
            let target = RouteTarget {
                route: canary_ref,
                weights: RouteWeights {
                    canary: p.canary.services().first().cloned().unwrap_or_default(),
                    stable: stable
                        .and_then(|s| s.services().first().cloned())
                        .unwrap_or_default(),
                    canary_weight: p.canary.weight,
                    stable_weight: stable.and_then(|s| s.weight),
                },
            };
            if !t.routes.contains(&target) {
                t.routes.push(target);
            }
        } else {
            push_unique(&mut t.ingresses, canary_ref);
        }
        let stable = p.stables.first().unwrap_or(&p.canary);
        let labels = MetricsLabels {
            namespace: ns_of(stable),
            ingress: stable.name.clone(),
            service: p.canary.services().first().cloned().unwrap_or_default(),
        };
        if !t.metrics.contains(&labels) {
            t.metrics.push(labels);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{workload, Repo};

    fn example() -> (Vec<RoutePair>, Vec<Workload>, Vec<ServiceInfo>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops-repo");
        let repo = Repo::load_filtered(&dir, &crate::manifest::needs_parse).unwrap();
        let pairs = crate::router::discover(&repo)
            .pairs
            .into_iter()
            .map(|p| RoutePair {
                canary: p.canary,
                stables: p.stable,
            })
            .collect();
        (
            pairs,
            workload::workloads(&repo.files),
            workload::services(&repo.files),
        )
    }

    /// Several routes moving together: every route, every Deployment on each side, the
    /// labels of each canary, not only the first of each.
    #[test]
    fn every_route_and_every_deployment_is_gated() {
        let (pairs, w, s) = example();
        assert!(pairs.len() >= 2, "the example has shop and api canaries");
        let t = resolve(&pairs, &w, &s, "default");
        assert!(t.ingresses.contains(&ObjectRef::new("shop", "web-canary")));
        assert!(t.ingresses.contains(&ObjectRef::new("api-canary", "api")));
        assert!(t.canary.contains(&ObjectRef::new("shop", "web-canary")));
        assert!(t.canary.contains(&ObjectRef::new("api-canary", "api")));
        assert!(t.stable.contains(&ObjectRef::new("shop", "web")));
        assert!(t.stable.contains(&ObjectRef::new("api", "api")));
        assert!(t.metrics.contains(&MetricsLabels {
            namespace: "shop".into(),
            ingress: "web".into(),
            service: "web-canary".into()
        }));
        assert!(t.metrics.contains(&MetricsLabels {
            namespace: "api".into(),
            ingress: "api".into(),
            service: "api".into()
        }));
        assert_eq!(t.metrics.len(), t.ingresses.len());
    }

    /// An HTTPRoute canary is watched as a route with the base's split, not as an Ingress;
    /// its metric labels name the route.
    #[test]
    fn an_httproute_canary_is_a_route_target() {
        use crate::manifest::SourceFile;
        use crate::router::Router;
        let text = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
spec:
  parentRefs:
  - name: eg
  rules:
  - backendRefs:
    - name: web
      port: 80
      weight: 70
    - name: web-canary
      port: 80
      weight: 30
"#;
        let file = SourceFile::parse("route.yaml".into(), text.to_string()).unwrap();
        let files = [file];
        let d = crate::router::gateway::GatewayApi.discover(&files, &[]);
        let pairs: Vec<RoutePair> = d
            .pairs
            .into_iter()
            .map(|p| RoutePair {
                canary: p.canary,
                stables: p.stable,
            })
            .collect();
        assert_eq!(pairs.len(), 1, "{pairs:?}");
        let t = resolve(&pairs, &[], &[], "default");
        assert!(t.ingresses.is_empty(), "{:?}", t.ingresses);
        assert_eq!(
            t.routes,
            [RouteTarget {
                route: ObjectRef::new("shop", "web"),
                weights: RouteWeights {
                    canary: "web-canary".into(),
                    stable: "web".into(),
                    canary_weight: Some(30),
                    stable_weight: Some(70),
                },
            }]
        );
        assert_eq!(
            t.metrics,
            [MetricsLabels {
                namespace: "shop".into(),
                ingress: "web".into(),
                service: "web-canary".into()
            }]
        );
    }

    #[test]
    fn one_route_resolves_to_its_own_objects() {
        let (pairs, w, s) = example();
        let shop: Vec<RoutePair> = pairs
            .into_iter()
            .filter(|p| p.canary.name == "web-canary")
            .collect();
        let t = resolve(&shop, &w, &s, "default");
        assert_eq!(t.ingresses, [ObjectRef::new("shop", "web-canary")]);
        assert_eq!(t.canary, [ObjectRef::new("shop", "web-canary")]);
        assert_eq!(t.stable, [ObjectRef::new("shop", "web")]);
        assert!(t.notes.is_empty(), "{:?}", t.notes);
    }
}
