//! What each root renders as `plan` shows it: the canary pairs of a rendering with their
//! problems pointing at the source files, and the file and line that decide each weight; the
//! root's HTTPRoutes come from `route_plan`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::render::{render_with, Memo};
use super::route_plan::{root_routes, RootRoute};
use super::{Layout, Obj, Origin, Refusal, Src, HTTPROUTE_KINDS};
use crate::manifest::SourceFile;
use crate::router::{self, gateway, nginx, Discovery, Problem};

/// The Deployments and Services of a rendering, with their rendered names and namespaces but
/// pointing at the file, document and item that define them.
pub fn workloads(
    objs: &[Obj],
) -> (
    Vec<crate::manifest::workload::Workload>,
    Vec<crate::manifest::workload::ServiceInfo>,
) {
    let file = synthetic(objs);
    let files = std::slice::from_ref(&file);
    let mut ws = crate::manifest::workload::workloads(files);
    for w in &mut ws {
        if let Some(o) = w.document.checked_sub(1).and_then(|i| objs.get(i)) {
            w.file = o.src.file.clone();
            w.document = o.src.document;
            w.item = o.src.item;
        }
    }
    (ws, crate::manifest::workload::services(files))
}

/// The rendered objects as one synthetic YAML file (JSON documents), for the router: its
/// stream is built along with the text, not parsed from it.
pub(super) fn synthetic(objs: &[Obj]) -> SourceFile {
    let (text, stream) = crate::yaml::from_json(objs.iter().map(|o| &o.value));
    SourceFile {
        path: PathBuf::from("<rendered>"),
        text,
        stream,
    }
}

/// The routes a root renders, each pointing at its source file and weight origin.
pub fn routes(objs: &[Obj]) -> Vec<(router::Route, &Obj)> {
    routes_in(objs, &synthetic(objs))
}

/// [`routes`] with the rendering's [`synthetic`] file already made.
fn routes_in<'a>(objs: &'a [Obj], file: &SourceFile) -> Vec<(router::Route, &'a Obj)> {
    router::default_router()
        .routes(file)
        .into_iter()
        .filter_map(|mut r| {
            let o = objs.get(r.document.checked_sub(1)?)?;
            fix_route(&mut r, o);
            Some((r, o))
        })
        .collect()
}

fn fix_route(r: &mut router::Route, o: &Obj) {
    r.file = o.src.file.clone();
    r.document = o.src.document;
    r.item = o.src.item;
    r.line = o.src.line;
    r.weight_line = o.weight().map(|w| w.line);
}

/// Canary pairs and problems within one root's rendering, pointing at source files (the
/// weight's problems at the file and line that decide it).
pub fn discover(objs: &[Obj]) -> Discovery {
    discover_in(objs, &synthetic(objs))
}

/// [`discover`] with the rendering's [`synthetic`] file already made.
fn discover_in(objs: &[Obj], file: &SourceFile) -> Discovery {
    discover_canaries(objs, file).0
}

/// [`discover_in`], and each canary as the root renders it: the pairs' canaries, one pair
/// per canary route in the routes' order, so this is what [`routes_in`] filtered to canaries
/// gives, without reading the routes a second time.
fn discover_canaries(objs: &[Obj], file: &SourceFile) -> (Discovery, Vec<RootCanary>) {
    let mut d = router::default_router().discover(std::slice::from_ref(file), &[]);
    let mut canaries = Vec::new();
    let obj = |doc: usize| doc.checked_sub(1).and_then(|i| objs.get(i));
    let fix_problem = |p: &mut router::Problem| {
        if let Some(o) = obj(p.document) {
            let weight_field = p.field.contains(&format!("{:?}", nginx::WEIGHT));
            match (o.weight(), weight_field) {
                (Some(w), true) => {
                    p.file = w.file.clone();
                    p.line = w.line;
                }
                _ => {
                    p.file = o.src.file.clone();
                    p.line = o.src.line;
                }
            }
            p.document = o.src.document;
        }
    };
    for pair in &mut d.pairs {
        for p in &mut pair.problems {
            fix_problem(p);
        }
        if let Some(o) = obj(pair.canary.document) {
            canaries.push(RootCanary {
                namespace: pair.canary.namespace.clone(),
                name: pair.canary.name.clone(),
                weight_raw: pair.canary.weight_raw.clone(),
                decided_by: o.weight().cloned(),
                source: o.src.clone(),
            });
            fix_route(&mut pair.canary, o);
        }
        for s in &mut pair.stable {
            if let Some(o) = obj(s.document) {
                fix_route(s, o);
            }
        }
    }
    for p in &mut d.problems {
        fix_problem(p);
    }
    (d, canaries)
}

/// One root as `plan` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootPlan {
    pub dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    pub canaries: Vec<RootCanary>,
    pub discovery: Option<Discovery>,
    /// HTTPRoutes with a canary or a split, as this root renders them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RootRoute>,
    /// Problems of the rendered HTTPRoutes not tied to one route (a version not read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route_problems: Vec<Problem>,
    /// Why the root's HTTPRoutes cannot be shown, when its Ingresses can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes_refused: Option<Refusal>,
}

/// A canary as one root renders it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootCanary {
    pub namespace: Option<String>,
    pub name: String,
    pub weight_raw: Option<String>,
    pub decided_by: Option<Origin>,
    pub source: Src,
}

/// The kinds `plan` renders every root with: Ingresses, and HTTPRoutes (whose Services and
/// Deployments are rendered only for a root that has routes).
const PLAN_KINDS: [&str; 2] = ["Ingress", gateway::KIND];

/// Every root with what it renders, for `plan`: its canary Ingresses, and its HTTPRoutes
/// (with the Services and Deployments behind them). Roots are rendered one at a time (only
/// what `plan` shows is kept), the bases they share built once.
pub fn plan(root: &Path, layout: &Layout) -> Vec<RootPlan> {
    let no = BTreeMap::new();
    let fs = layout.fs(root, &no);
    // On every core, each over neighbouring roots, which share their bases.
    crate::manifest::par_chunks(&layout.roots, |part| {
        let memo = Memo::default();
        part.iter()
            .map(|dir| {
                // One build for both routers. Objects do not affect each other's rendering, so
                // the union, split by kind, is what each kind renders alone; when it fails, each is
                // built alone to tell which of them the refusal is about.
                let (ingresses, routes) = match render_with(fs, dir, &PLAN_KINDS, &memo) {
                    Ok(objs) => {
                        let (i, r): (Vec<Obj>, Vec<Obj>) =
                            objs.into_iter().partition(|o| o.kind() == "Ingress");
                        (Ok(i), Ok(r))
                    }
                    Err(_) => (
                        render_with(fs, dir, &["Ingress"], &memo),
                        render_with(fs, dir, &[gateway::KIND], &memo),
                    ),
                };
                let mut plan = RootPlan {
                    dir: dir.clone(),
                    refused: None,
                    canaries: Vec::new(),
                    discovery: None,
                    routes: Vec::new(),
                    route_problems: Vec::new(),
                    routes_refused: None,
                };
                match ingresses {
                    Err(refusal) => plan.refused = Some(refusal),
                    Ok(objs) => {
                        let (d, canaries) = discover_canaries(&objs, &synthetic(&objs));
                        plan.discovery = Some(d);
                        plan.canaries = canaries;
                    }
                }
                // The Services and Deployments behind routes are built only for a root that
                // renders an HTTPRoute: most roots have none, and their Deployments are the
                // largest documents of a layout.
                let rendered = routes.and_then(|routes| match routes.is_empty() {
                    true => Ok(routes),
                    false => render_with(fs, dir, &HTTPROUTE_KINDS, &memo),
                });
                match rendered {
                    Ok(objs) => (plan.routes, plan.route_problems) = root_routes(&objs),
                    Err(r) if plan.refused.is_none() => plan.routes_refused = Some(r),
                    Err(_) => {}
                }
                plan
            })
            .collect()
    })
}
