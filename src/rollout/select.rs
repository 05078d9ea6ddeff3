//! Which canaries a rollout moves and what gates them: the selection from the flags and the
//! configuration (Ingresses, HTTPRoutes, a Kustomize overlay, a Helm chart value), resolved once
//! against the manifests into routes, Deployments and gate targets. A chart value's canary
//! Ingress is rendered by Helm, so it is not looked for in the manifests: the gates watch it
//! live, by the name the selection gives.

use super::*;

pub(super) fn same_route(a: &Route, b: &Route) -> bool {
    a.file == b.file && a.document == b.document && a.item == b.item
}

/// What a rollout moves, as configured: canary Ingresses (flat, or rendered by a Kustomize
/// root), HTTPRoutes, or a Helm chart value, and the root that picks among renderings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `[NS/]NAME` of canary Ingresses, as the manifests (or a root's rendering) name them;
    /// with `weight_from`, the live canary Ingresses the chart renders (never edited).
    pub ingresses: Vec<String>,
    /// `[NS/]NAME` of HTTPRoutes whose stable/canary split moves.
    pub routes: Vec<String>,
    /// A canary whose weight is a Helm chart value: the value is what moves.
    pub weight_from: Option<WeightFrom>,
    /// The HTTPRoute backendRef that is the canary (default: by convention).
    pub canary_service: Option<String>,
    /// The Kustomize root (directory relative to the repository) whose rendering moves.
    pub overlay: Option<PathBuf>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.ingresses.is_empty() && self.routes.is_empty() && self.weight_from.is_none()
    }

    /// Every selector, for messages and the default rollout id.
    pub fn names(&self) -> Vec<String> {
        self.ingresses.iter().chain(&self.routes).cloned().collect()
    }

    /// `shop/web-canary, route shop/web (overlays/prod)`, for PR bodies.
    pub fn describe(&self) -> String {
        if let Some(wf) = &self.weight_from {
            return format!(
                "the chart value {wf} (canary Ingress {} as the chart renders it)",
                self.ingresses.join(", ")
            );
        }
        let mut parts: Vec<String> = self.ingresses.clone();
        parts.extend(self.routes.iter().map(|r| format!("HTTPRoute {r}")));
        let mut out = parts.join(", ");
        if let Some(o) = &self.overlay {
            out.push_str(&format!(" (as {} renders it)", o.display()));
        }
        out
    }

    /// Set every selected canary to `weight` percent in the checkout at `dir`: an Ingress
    /// through its Kustomize root (the edit checked by rendering every root) or its flat file,
    /// an HTTPRoute's split through the Gateway API router, a chart value through the Helm
    /// router (byte-exact, its type kept; the Ingresses it renders are not in the manifests).
    pub fn set_weight(
        &self,
        dir: &Path,
        weight: u32,
        dry_run: bool,
    ) -> anyhow::Result<Vec<manifest::EditOutcome>> {
        if let Some(wf) = &self.weight_from {
            return Ok(vec![crate::router::helm::set_weight(
                dir, wf, weight, dry_run,
            )?]);
        }
        let mut out = Vec::new();
        for sel in &self.ingresses {
            out.push(crate::router::kustomize::set::set_weight(
                dir,
                sel,
                self.overlay.as_deref(),
                weight,
                dry_run,
            )?);
        }
        for sel in &self.routes {
            out.push(crate::router::kustomize::route_set::set_weight(
                dir,
                sel,
                self.overlay.as_deref(),
                self.canary_service.as_deref(),
                weight,
                dry_run,
            )?);
        }
        Ok(out)
    }
}

/// The selected canaries as the base renders them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub canaries: Vec<Route>,
    pub stables: Vec<Route>,
    /// Each canary's rendered `NS/NAME` and weight (percent), in selection order.
    pub weights: Vec<(String, u32)>,
    pub targets: crate::gate::target::Targets,
    pub canary_workloads: Vec<workload::Workload>,
    pub stable_workloads: Vec<workload::Workload>,
}

/// Canaries with the Deployments and Services they are resolved against (one repository's
/// flat manifests, or one root's rendering).
struct Group {
    pairs: Vec<crate::gate::target::RoutePair>,
    workloads: Vec<workload::Workload>,
    services: Vec<workload::ServiceInfo>,
}

/// Resolve a selection in the checkout at `dir`: each canary by its rendered namespace/name,
/// the stable routes it pairs with, the weight Git has, and the Deployments behind each side
/// (for a rendered canary, the Deployments that same root renders). `check` and the rollout
/// loop both go through here, so the gates watch the same objects.
pub(crate) fn resolve_canaries(
    dir: &Path,
    sel: &Selection,
    default_namespace: &str,
) -> anyhow::Result<Resolved> {
    use crate::router::kustomize::{self, set, Layout};
    if let Some(wf) = &sel.weight_from {
        return resolve_chart_value(dir, sel, wf, default_namespace);
    }
    let target_err = |selector: &str, reason: String| AppError::Target {
        selector: selector.to_string(),
        reason,
    };
    let repo = Repo::load_filtered(dir, &needs_parse)?;
    let router = default_router();
    let discovery = router.discover(&repo.files, &repo.skipped);
    let routes: Vec<Route> = repo.files.iter().flat_map(|f| router.routes(f)).collect();
    let layout = Layout::discover(dir)?;
    let overlay = set::overlay_root(dir, &layout, sel.overlay.as_deref())?;
    let no = std::collections::BTreeMap::new();
    let fs = layout.fs(dir, &no);
    let before = if layout.is_empty() {
        kustomize::Renders::new()
    } else {
        kustomize::render_roots(fs, &layout)
    };
    let mut flat = Group {
        pairs: Vec::new(),
        workloads: workload::workloads(&repo.files),
        services: workload::services(&repo.files),
    };
    // Per root: what it renders (its canary pairs) and the group of selected canaries.
    let mut rendered: Vec<(PathBuf, Vec<crate::router::CanaryPair>, Group)> = Vec::new();
    let mut out = Resolved::default();
    for text in &sel.ingresses {
        let selector = Selector::parse(text)?;
        let chosen = if layout.is_empty() {
            set::Chosen::Flat(crate::router::select_known(&repo, &routes, &selector)?.clone())
        } else {
            set::choose(dir, &layout, &before, &selector, overlay.as_deref(), None)?
        };
        let route = chosen.route().clone();
        if !route.canary {
            return Err(target_err(
                text,
                format!("{} is not a canary Ingress", route.describe()),
            )
            .into());
        }
        if let (None, Some(raw)) = (route.weight, &route.weight_raw) {
            return Err(target_err(
                text,
                format!(
                    "the canary-weight of {} is not an integer: {raw:?}",
                    route.describe()
                ),
            )
            .into());
        }
        let (stables, group) = match chosen.root() {
            None => {
                let stables = discovery
                    .pairs
                    .iter()
                    .find(|p| same_route(&p.canary, &route))
                    .map(|p| p.stable.clone())
                    .unwrap_or_default();
                (stables, &mut flat)
            }
            Some(root) => {
                let i = match rendered.iter().position(|(r, _, _)| r == root) {
                    Some(i) => i,
                    None => {
                        let objs = kustomize::render_kinds(fs, root, &kustomize::WORKLOAD_KINDS)
                            .map_err(manifest::ManifestError::from)?;
                        let (workloads, services) = kustomize::workloads(&objs);
                        rendered.push((
                            root.to_path_buf(),
                            kustomize::discover(&objs).pairs,
                            Group {
                                pairs: Vec::new(),
                                workloads,
                                services,
                            },
                        ));
                        rendered.len() - 1
                    }
                };
                let (_, pairs, group) = &mut rendered[i];
                // The rendering with the Services and Deployments pairs the same canary.
                let stables = pairs
                    .iter()
                    .find(|p| {
                        p.canary.qualified_name() == route.qualified_name()
                            && same_route(&p.canary, &route)
                    })
                    .map(|p| p.stable.clone())
                    .unwrap_or_default();
                (stables, group)
            }
        };
        out.weights
            .push((route.qualified_name(), route.weight.unwrap_or(0)));
        group.pairs.push(crate::gate::target::RoutePair {
            canary: route,
            stables,
        });
    }
    for text in &sel.routes {
        // Flat or rendered by a Kustomize root (the one `overlay` picks when the name alone is
        // ambiguous), with that root's Deployments and Services.
        let picked = kustomize::route_set::select_canary(
            dir,
            text,
            sel.overlay.as_deref(),
            sel.canary_service.as_deref(),
        )?;
        let sc = picked.canary;
        let group = match picked.root {
            None => &mut flat,
            Some(root) => {
                let i = match rendered.iter().position(|(r, _, _)| *r == root) {
                    Some(i) => i,
                    None => {
                        rendered.push((
                            root,
                            Vec::new(),
                            Group {
                                pairs: Vec::new(),
                                workloads: picked.workloads,
                                services: picked.services,
                            },
                        ));
                        rendered.len() - 1
                    }
                };
                &mut rendered[i].2
            }
        };
        let Some(pct) = sc.percent else {
            return Err(target_err(
                text,
                format!(
                    "the canary's share of {} is not a whole percentage; set it with set-weight first",
                    sc.canary.describe()
                ),
            )
            .into());
        };
        out.weights.push((sc.canary.qualified_name(), pct));
        group.pairs.push(crate::gate::target::RoutePair {
            canary: sc.canary,
            stables: sc.stables,
        });
    }
    let mut groups = vec![flat];
    groups.extend(rendered.into_iter().map(|(_, _, g)| g));
    for g in &groups {
        let t =
            crate::gate::target::resolve(&g.pairs, &g.workloads, &g.services, default_namespace);
        merge_targets(&mut out.targets, t);
        for p in &g.pairs {
            out.canaries.push(p.canary.clone());
            for st in &p.stables {
                if !out
                    .stables
                    .iter()
                    .any(|x| same_route(x, st) && x.name == st.name)
                {
                    out.stables.push(st.clone());
                }
            }
            let behind = |routes: &[&Route]| -> Vec<workload::Workload> {
                crate::router::behind_routes(&g.workloads, &g.services, routes)
                    .into_iter()
                    .cloned()
                    .collect()
            };
            for w in behind(&[&p.canary]) {
                if !out
                    .canary_workloads
                    .iter()
                    .any(|x| x.qualified_name() == w.qualified_name())
                {
                    out.canary_workloads.push(w);
                }
            }
            for w in behind(&p.stables.iter().collect::<Vec<_>>()) {
                if !out
                    .stable_workloads
                    .iter()
                    .any(|x| x.qualified_name() == w.qualified_name())
                {
                    out.stable_workloads.push(w);
                }
            }
        }
    }
    Ok(out)
}

/// A canary whose weight is a chart value: the weight is the value Git has; the gates watch
/// the live canary Ingresses the selection names (Helm renders them, so they, and the
/// Deployments behind them, are not in the manifests).
fn resolve_chart_value(
    dir: &Path,
    sel: &Selection,
    wf: &WeightFrom,
    default_namespace: &str,
) -> anyhow::Result<Resolved> {
    let located = crate::router::helm::load(dir, &wf.file)
        .and_then(|f| crate::router::helm::locate(&f, wf))?;
    let Some(weight) = located.weight.filter(|w| *w <= 100) else {
        return Err(AppError::Target {
            selector: wf.to_string(),
            reason: format!(
                "the value {} ({}:{}) is {:?}, not a weight in 0..=100",
                located.field,
                located.file.display(),
                located.line,
                located.raw
            ),
        }
        .into());
    };
    let mut out = Resolved::default();
    for text in &sel.ingresses {
        let s = Selector::parse(text)?;
        let live = crate::gate::ObjectRef::new(
            s.namespace.unwrap_or_else(|| default_namespace.to_string()),
            s.name,
        );
        out.weights
            .push((format!("{}/{}", live.namespace, live.name), weight));
        if !out.targets.ingresses.contains(&live) {
            out.targets.ingresses.push(live);
        }
    }
    out.targets.notes.push(format!(
        "{wf} is a Helm chart value: the Deployments behind its canary are rendered by Helm, not in the manifests"
    ));
    Ok(out)
}

pub(super) fn merge_targets(
    into: &mut crate::gate::target::Targets,
    t: crate::gate::target::Targets,
) {
    fn add<T: PartialEq>(into: &mut Vec<T>, from: Vec<T>) {
        for x in from {
            if !into.contains(&x) {
                into.push(x);
            }
        }
    }
    add(&mut into.ingresses, t.ingresses);
    add(&mut into.routes, t.routes);
    add(&mut into.canary, t.canary);
    add(&mut into.stable, t.stable);
    add(&mut into.metrics, t.metrics);
    add(&mut into.notes, t.notes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::httproute::RouteWeights;
    use crate::gate::target::{RouteTarget, Targets};
    use crate::gate::ObjectRef;

    /// Regression: merging a group's targets dropped its HTTPRoutes, so `synced` on the live
    /// route found no canary to watch.
    #[test]
    fn merged_targets_keep_every_kind() {
        let route = RouteTarget {
            route: ObjectRef::new("shop", "web"),
            weights: RouteWeights {
                canary: "web-canary".into(),
                stable: "web".into(),
                canary_weight: Some(25),
                stable_weight: Some(75),
            },
        };
        let group = Targets {
            ingresses: vec![ObjectRef::new("shop", "web-canary")],
            routes: vec![route.clone()],
            canary: vec![ObjectRef::new("shop", "web-canary")],
            stable: vec![ObjectRef::new("shop", "web")],
            metrics: Vec::new(),
            notes: vec!["a note".into()],
        };
        let mut into = Targets::default();
        merge_targets(&mut into, group.clone());
        merge_targets(&mut into, group.clone());
        assert_eq!(into, group, "every kind once");
    }
}
