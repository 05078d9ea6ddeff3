//! HTTPRoutes in Kustomize layouts, as each root renders them: the rendered namespace and name
//! (after `namespace`, `namePrefix`, `nameSuffix`), the canary, splits and problems the Gateway
//! API router finds in the rendering (with the Services and Deployments the same root renders),
//! and for each weight of a split the file and line that decide it.

use serde::Serialize;

use super::object::rule_ref;
use super::plan::synthetic;
use super::{backend_ref, Obj, Origin};
use crate::manifest::{self, SourceFile};
use crate::router::gateway::{self, Context, GatewayApi, HttpRoute, RouteCanary};
use crate::router::{Problem, Router};

/// A weight of a rendered split and what decides it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteWeight {
    pub rule: usize,
    /// Index in the rule's `backendRefs`.
    pub backend_ref: usize,
    pub name: String,
    /// As rendered; `None` when absent (the gateway reads 1).
    pub weight_raw: Option<String>,
    /// The file and line that write it (`None`: absent).
    pub decided_by: Option<Origin>,
}

/// An HTTPRoute with a canary, or a split, as one root renders it: its namespace and name as
/// rendered; its file, document and lines those of the sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootRoute {
    #[serde(flatten)]
    pub canary: RouteCanary,
    /// Both weights of every split, with what decides each.
    pub weights: Vec<RouteWeight>,
}

/// A root's rendering as the Gateway API router reads it.
pub(crate) struct RenderedRoutes<'a> {
    pub objs: &'a [Obj],
    /// The Services and Deployments of the rendering.
    pub ctx: Context,
    /// Every HTTPRoute rendered, as read from the rendering (document N is `objs[N - 1]`).
    pub routes: Vec<HttpRoute>,
    file: SourceFile,
}

impl<'a> RenderedRoutes<'a> {
    pub fn new(objs: &'a [Obj]) -> Self {
        let file = synthetic(objs);
        let ctx = Context::from_files([std::slice::from_ref(&file)]);
        RenderedRoutes {
            objs,
            ctx,
            routes: gateway::http_routes(&file),
            file,
        }
    }

    /// The rendered object a route was read from.
    pub fn obj(&self, route: &HttpRoute) -> Option<&'a Obj> {
        route.document.checked_sub(1).and_then(|i| self.objs.get(i))
    }

    /// The route analyzed within the rendering, pointing at its sources.
    pub fn analyze(&self, route: &HttpRoute, canary_service: Option<&str>) -> RouteCanary {
        let mut rc = gateway::analyze(route, canary_service, &self.ctx);
        if let Some(o) = self.obj(route) {
            point_at_sources(&mut rc, o);
        }
        rc
    }

    /// HTTPRoutes of versions the router does not read, pointing at their sources.
    fn unknown_versions(&self) -> Vec<Problem> {
        let mut out = gateway::unknown_versions(&self.file);
        for p in &mut out {
            if let Some(o) = p.document.checked_sub(1).and_then(|i| self.objs.get(i)) {
                p.file = o.src.file.clone();
                p.line = o.src.line;
                p.document = o.src.document;
            }
        }
        out
    }
}

/// The origin a problem's field points at: a weight, else its backendRef, else its rule.
fn field_origin<'o>(o: &'o Obj, field: &str) -> Option<&'o Origin> {
    let rest = field.strip_prefix("spec.rules[")?;
    let (r, rest) = rest.split_once(']')?;
    let r: usize = r.parse().ok()?;
    let rule = o.origins.get(&rule_ref(r));
    let Some((b, rest)) = rest
        .strip_prefix(".backendRefs[")
        .and_then(|x| x.split_once(']'))
    else {
        return rule;
    };
    let Ok(b) = b.parse::<usize>() else {
        return rule;
    };
    let entry = o.origins.get(&backend_ref(r, b, false)).or(rule);
    if rest == ".weight" {
        o.origins.get(&backend_ref(r, b, true)).or(entry)
    } else {
        entry
    }
}

/// Point what the router read from the rendering at the files that define it: the route at
/// its resource, each rule, backendRef and weight at what wrote it, each problem at the value
/// its field names.
fn point_at_sources(rc: &mut RouteCanary, o: &Obj) {
    let src = &o.src;
    let line = |tokens: Vec<String>, or: usize| o.origins.get(&tokens).map_or(or, |x| x.line);
    let weight_line =
        |rule: usize, b: usize| o.origins.get(&backend_ref(rule, b, true)).map(|x| x.line);
    let r = &mut rc.route;
    r.file = src.file.clone();
    r.document = src.document;
    r.item = src.item;
    r.line = src.line;
    for rule in &mut r.rules {
        rule.line = line(rule_ref(rule.index), src.line);
        for b in &mut rule.backends {
            b.line = line(backend_ref(rule.index, b.index, false), rule.line);
            b.weight_line = weight_line(rule.index, b.index);
        }
    }
    for s in &mut rc.splits {
        s.line = line(rule_ref(s.rule), src.line);
        for b in [&mut s.stable, &mut s.canary] {
            b.line = line(backend_ref(s.rule, b.index, false), s.line);
            b.weight_line = weight_line(s.rule, b.index);
        }
    }
    for s in &mut rc.subset_rules {
        s.line = line(rule_ref(s.rule), src.line);
    }
    for p in &mut rc.problems {
        let (file, line) =
            field_origin(o, &p.field).map_or((&src.file, src.line), |x| (&x.file, x.line));
        p.file = file.clone();
        p.line = line;
        p.document = src.document;
    }
}

/// Both weights of every split of `rc`, with what decides each in `o`.
pub fn weights(rc: &RouteCanary, o: &Obj) -> Vec<RouteWeight> {
    rc.splits
        .iter()
        .flat_map(|s| [(s.rule, &s.stable), (s.rule, &s.canary)])
        .map(|(rule, b)| RouteWeight {
            rule,
            backend_ref: b.index,
            name: b.name.clone(),
            weight_raw: b.weight_raw.clone(),
            decided_by: o.origins.get(&backend_ref(rule, b.index, true)).cloned(),
        })
        .collect()
}

/// The HTTPRoutes a root renders with a canary or a split, and the problems of the rendering
/// not tied to one route.
pub(crate) fn root_routes(objs: &[Obj]) -> (Vec<RootRoute>, Vec<Problem>) {
    // Most roots render no HTTPRoute: nothing to read, no file to build for it.
    if objs.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let r = RenderedRoutes::new(objs);
    let routes = r
        .routes
        .iter()
        .filter_map(|h| {
            let rc = r.analyze(h, None);
            let o = r.obj(h)?;
            rc.is_listed().then(|| RootRoute {
                weights: weights(&rc, o),
                canary: rc,
            })
        })
        .collect();
    (routes, r.unknown_versions())
}

/// Whether a file may hold an HTTPRoute named `name` (for loading only those).
pub(super) fn may_name(bytes: &[u8], name: &[u8]) -> bool {
    GatewayApi.may_contain_route(bytes) && manifest::contains(bytes, name)
}
