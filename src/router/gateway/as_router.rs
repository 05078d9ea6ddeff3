//! The [`Router`] trait for HTTPRoutes: each route as `router::Route` values (the canary's
//! backendRefs and the stable's) for the generic consumers: discovery pairs, gates, fuzzing.

use super::analyze::{analyze, discover_routes};
use super::read::http_routes;
use super::set::weight_edits;
use super::{Context, GatewayApi, RouteCanary, KIND};
use crate::manifest::{self, Edit, ManifestError, Skipped, SourceFile};
use crate::router::{Backend, CanaryPair, Discovery, Route, Router};

pub(super) fn to_route(rc: &RouteCanary, service: Option<&str>, canary: bool) -> Route {
    let r = &rc.route;
    let split = rc.splits.first();
    let mut backends = Vec::new();
    for rule in &r.rules {
        let (path_type, path) = rule.path();
        for b in &rule.backends {
            if service.is_some_and(|s| s != b.name) {
                continue;
            }
            backends.push(Backend {
                host: r.hostnames.first().cloned(),
                path: path.clone(),
                path_type: path_type.clone(),
                service: Some(b.name.clone()),
                port: b.port.clone(),
            });
        }
    }
    let mine = split.map(|s| if canary { &s.canary } else { &s.stable });
    Route {
        file: r.file.clone(),
        document: r.document,
        item: r.item,
        line: r.line,
        api_version: r.api_version.clone(),
        kind: KIND.into(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        class: None,
        canary,
        backends,
        weight_raw: mine.and_then(|b| b.weight_raw.clone()),
        weight_line: mine.and_then(|b| b.weight_line),
        weight: mine.and_then(|b| b.weight),
        weight_plain: true,
        weight_total: split
            .and_then(|s| s.total)
            .map_or(100, |t| t.min(u64::from(u32::MAX)) as u32),
        rules: rc
            .subset_rules
            .iter()
            .map(|s| (format!("rule {}", s.rule), s.conditions.join("; ")))
            .collect(),
        tls: Vec::new(),
        annotations: Vec::new(),
    }
}

impl Router for GatewayApi {
    fn name(&self) -> &'static str {
        "gateway-api"
    }

    fn may_contain_route(&self, bytes: &[u8]) -> bool {
        manifest::contains(bytes, KIND.as_bytes())
    }

    fn routes(&self, file: &SourceFile) -> Vec<Route> {
        let ctx = Context::from_files([std::slice::from_ref(file)]);
        http_routes(file)
            .iter()
            .map(|r| {
                let rc = analyze(r, None, &ctx);
                let canary = rc.canary_service.is_some();
                to_route(&rc, None, canary)
            })
            .collect()
    }

    /// Each canary route as a pair: the canary `Route` holds the canary's backendRefs, the
    /// stable `Route` (the same HTTPRoute) the stable's.
    fn discover(&self, files: &[SourceFile], skipped: &[Skipped]) -> Discovery {
        let ctx = Context::from_files([files]);
        let d = discover_routes(files, &ctx, skipped, None);
        let mut problems = d.problems;
        let mut pairs = Vec::new();
        for rc in d.routes {
            match &rc.canary_service {
                Some(c) => pairs.push(CanaryPair {
                    canary: to_route(&rc, Some(c), true),
                    stable: rc
                        .stable_service
                        .as_deref()
                        .map(|s| vec![to_route(&rc, Some(s), false)])
                        .unwrap_or_default(),
                    weight: rc.splits.first().and_then(|s| s.canary.weight),
                    weight_total: rc
                        .splits
                        .first()
                        .and_then(|s| s.total)
                        .map_or(100, |t| t.min(u64::from(u32::MAX)) as u32),
                    problems: rc.problems,
                }),
                None => problems.extend(rc.problems),
            }
        }
        Discovery {
            router: self.name(),
            pairs,
            problems,
            skipped: skipped.to_vec(),
        }
    }

    /// An HTTPRoute weight is never one value: see [`Router::weight_edits`].
    fn weight_edit(
        &self,
        file: &SourceFile,
        route: &Route,
        weight: u32,
    ) -> Result<Edit, ManifestError> {
        let mut edits = self.weight_edits(file, route, weight)?;
        if edits.len() == 1 {
            return Ok(edits.remove(0));
        }
        Err(ManifestError::CannotEdit {
            file: file.path.clone(),
            document: route.document,
            field: "spec.rules[].backendRefs[].weight".into(),
            reason: format!(
                "an HTTPRoute split is {} values (the stable's weight and the canary's); use weight_edits",
                edits.len()
            ),
        })
    }

    /// `weight` is the canary's percentage; the canary is the service of a canary `route`
    /// (as `discover` makes it), else the one by convention.
    fn weight_edits(
        &self,
        file: &SourceFile,
        route: &Route,
        weight: u32,
    ) -> Result<Vec<Edit>, ManifestError> {
        let found = http_routes(file)
            .into_iter()
            .find(|r| r.document == route.document && r.item == route.item)
            .ok_or_else(|| ManifestError::NoRoute {
                selector: route.qualified_name(),
                candidates: String::new(),
            })?;
        let ctx = Context::from_files([std::slice::from_ref(file)]);
        let canary = if route.canary {
            route.services()
        } else {
            Vec::new()
        };
        let rc = analyze(&found, canary.first().map(String::as_str), &ctx);
        weight_edits(&rc, weight)
    }
}
