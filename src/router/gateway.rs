//! Gateway API: a canary is a rule of an `HTTPRoute` whose `backendRefs` hold the stable
//! Service and the canary Service, each with a `weight` (the shape Argo Rollouts' Gateway API
//! plugin keeps in Git).
//!
//! Weights are proportions, not percentages: a backend gets `weight / sum(weights of the
//! rule)` of the rule's requests, a missing `weight` is 1, 0 sends nothing, 1,000,000 is the
//! most. Setting the canary to N% writes both weights explicitly: canary N and stable 100 - N
//! when the rule's total is 100, otherwise scaled to the rule's total (refused when that is
//! not exact). A rule whose weights are both absent has no total of its own yet; it gets one
//! of 100. Several rules of one route that split between the same two Services (one rule per
//! path, say) move together.
//!
//! Rules matching headers, query parameters or a method that send a subset of requests to the
//! canary (the Gateway API form of ingress-nginx's `canary-by-header`) are kept as they are
//! and shown: they win over the weighted rule by match precedence, not by their order.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Backend, CanaryPair, Discovery, Problem, Route, Router, Severity};
use crate::manifest::workload::{self, ServiceInfo, Workload};
use crate::manifest::{
    self, edit, Edit, EditOutcome, ManifestError, PathSeg, Repo, ScalarKind, Selector, Skipped,
    SourceFile,
};
use crate::yaml::{NodeId, NodeKind, Stream, Style};

pub const KIND: &str = "HTTPRoute";
/// The HTTPRoute versions this router reads (the standard channel serves both).
pub const API_VERSIONS: [&str; 2] = [
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];
/// The largest weight the CRD accepts.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// The suffix that marks a canary Service or Deployment.
pub const CANARY_SUFFIX: &str = "-canary";

/// The Gateway API HTTPRoute router.
pub struct GatewayApi;

/// One `backendRefs[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Index in the rule's `backendRefs`.
    pub index: usize,
    pub line: usize,
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// `weight` as written; `None` when absent.
    pub weight_raw: Option<String>,
    /// The weight the gateway applies: 1 when absent, `None` when not a valid weight.
    pub weight: Option<u32>,
    #[serde(skip)]
    pub weight_line: Option<usize>,
    /// Why `weight` is `None`, when it is.
    #[serde(skip)]
    pub weight_error: Option<(&'static str, String)>,
}

impl BackendRef {
    /// A core Service (the default group and kind).
    pub fn is_service(&self) -> bool {
        matches!(self.group.as_str(), "" | "core") && self.kind == "Service"
    }
}

/// One `matches[]` entry, reduced to what precedence depends on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatch {
    /// `PathPrefix /` when absent.
    pub path_type: String,
    pub path: String,
    /// `name=value` (Exact) or `name~value` (RegularExpression).
    pub headers: Vec<String>,
    pub query_params: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl RuleMatch {
    /// Matches only some requests of its path: a header, query or method condition.
    pub fn is_conditional(&self) -> bool {
        !self.headers.is_empty() || !self.query_params.is_empty() || self.method.is_some()
    }

    fn conditions(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.headers.iter().map(|h| format!("header {h}")));
        out.extend(self.query_params.iter().map(|q| format!("query {q}")));
        if let Some(m) = &self.method {
            out.push(format!("method {m}"));
        }
        out
    }
}

/// One `spec.rules[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub index: usize,
    pub line: usize,
    pub matches: Vec<RuleMatch>,
    pub backends: Vec<BackendRef>,
}

impl Rule {
    /// Every match has a header, query or method condition: the rule takes a subset of the
    /// requests of its paths, never all of them.
    pub fn is_subset(&self) -> bool {
        !self.matches.is_empty() && self.matches.iter().all(RuleMatch::is_conditional)
    }

    /// A header condition on `Cookie`: the nearest thing to a cookie canary.
    pub fn matches_cookie(&self) -> bool {
        self.matches.iter().any(|m| {
            m.headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("cookie"))
        })
    }

    /// `PathPrefix /api` of the first match (the default when there is none).
    pub fn path(&self) -> (String, String) {
        self.matches
            .first()
            .map(|m| (m.path_type.clone(), m.path.clone()))
            .unwrap_or_else(|| ("PathPrefix".into(), "/".into()))
    }

    fn backend(&self, name: &str) -> Vec<&BackendRef> {
        self.backends.iter().filter(|b| b.name == name).collect()
    }
}

/// An HTTPRoute as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    pub file: PathBuf,
    pub document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub line: usize,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    /// `spec.parentRefs` has at least one entry.
    pub parent_refs: usize,
    pub hostnames: Vec<String>,
    #[serde(skip)]
    pub rules: Vec<Rule>,
}

impl HttpRoute {
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// `ns/name (file, document N)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, document {})",
            self.qualified_name(),
            self.file.display(),
            self.document
        )
    }

    /// Distinct backendRef names, in order.
    pub fn backend_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in self.rules.iter().flat_map(|r| &r.backends) {
            if !out.contains(&b.name) {
                out.push(b.name.clone());
            }
        }
        out
    }

    fn prefix(&self) -> Vec<PathSeg> {
        match self.item {
            Some(i) => vec![PathSeg::Key("items".into()), PathSeg::Index(i)],
            None => Vec::new(),
        }
    }

    /// YAML path of a backendRef's `weight`.
    pub fn weight_path(&self, rule: usize, backend: usize) -> Vec<PathSeg> {
        let mut p = self.prefix();
        p.extend([
            PathSeg::Key("spec".into()),
            PathSeg::Key("rules".into()),
            PathSeg::Index(rule),
            PathSeg::Key("backendRefs".into()),
            PathSeg::Index(backend),
            PathSeg::Key("weight".into()),
        ]);
        p
    }

    fn field(&self, tail: &str) -> String {
        match self.item {
            Some(i) => format!("items[{i}].{tail}"),
            None => tail.to_string(),
        }
    }
}

/// One rule that splits between the stable and the canary by weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    pub rule: usize,
    pub line: usize,
    pub path_type: String,
    pub path: String,
    pub stable: BackendRef,
    pub canary: BackendRef,
    /// Sum of the two effective weights (`None` when one is invalid).
    pub total: Option<u64>,
    /// The canary's share in percent (`None` when the total is 0 or unknown).
    pub percent: Option<f64>,
}

/// A rule that sends only the requests it matches by header, query or method to the canary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubsetRule {
    pub rule: usize,
    pub line: usize,
    /// One entry per match, e.g. `header env=canary`.
    pub conditions: Vec<String>,
    pub cookie: bool,
}

/// An HTTPRoute with a canary backend (or a two-backend split without one), as `plan` shows
/// it and `set-weight` edits it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteCanary {
    #[serde(flatten)]
    pub route: HttpRoute,
    pub canary_service: Option<String>,
    pub stable_service: Option<String>,
    /// The canary's share of the first split, in percent.
    pub weight: Option<f64>,
    pub splits: Vec<Split>,
    pub subset_rules: Vec<SubsetRule>,
    pub problems: Vec<Problem>,
}

/// What the Gateway API router found in a repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayDiscovery {
    pub router: &'static str,
    pub routes: Vec<RouteCanary>,
    /// Problems not tied to one canary route (an HTTPRoute version not read).
    pub problems: Vec<Problem>,
    pub skipped: Vec<Skipped>,
}

impl GatewayDiscovery {
    pub fn worst(&self) -> Option<Severity> {
        self.all_problems().map(|p| p.severity).max()
    }

    pub fn all_problems(&self) -> impl Iterator<Item = &Problem> {
        self.routes
            .iter()
            .flat_map(|r| &r.problems)
            .chain(&self.problems)
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.problems.is_empty() && self.skipped.is_empty()
    }
}

/// Services and Deployments of the repository: which backendRefs exist and which are canaries
/// by their Deployment's name.
#[derive(Debug, Default)]
pub struct Context {
    pub services: Vec<ServiceInfo>,
    pub workloads: Vec<Workload>,
}

impl Context {
    pub fn from_files<'a>(files: impl IntoIterator<Item = &'a [SourceFile]>) -> Self {
        let mut ctx = Context::default();
        for f in files {
            ctx.services.extend(workload::services(f));
            ctx.workloads.extend(workload::workloads(f));
        }
        ctx
    }

    /// Every parseable file under `dir` that may hold a Service or a Deployment.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let repo = Repo::load_filtered(dir, &|b| {
            manifest::contains(b, b"Service") || manifest::contains(b, b"Deployment")
        })?;
        Ok(Context::from_files([repo.files.as_slice()]))
    }

    fn has_service(&self, namespace: Option<&str>, name: &str) -> bool {
        self.services.iter().any(|s| {
            s.name == name
                && match (s.namespace.as_deref(), namespace) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
    }

    /// Why `b` is a canary by convention, if it is.
    fn canary_reason(&self, route: &HttpRoute, b: &BackendRef) -> Option<String> {
        if b.name.ends_with(CANARY_SUFFIX) {
            return Some(format!("{} (name ends in {CANARY_SUFFIX})", b.name));
        }
        let ns = b.namespace.as_deref().or(route.namespace.as_deref());
        workload::backing(&self.workloads, &self.services, ns, &b.name)
            .iter()
            .find(|w| w.name.ends_with(CANARY_SUFFIX))
            .map(|w| format!("{} (selects Deployment {})", b.name, w.qualified_name()))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

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

/// HTTPRoutes of an API version this router does not read.
fn unknown_versions(file: &SourceFile) -> Vec<Problem> {
    let s = &file.stream;
    let mut out = Vec::new();
    for doc in &s.docs {
        let Some(root) = doc.root else { continue };
        for (item, obj) in objects(s, root) {
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
                document: doc.index,
                line: s.node(obj).line,
                field: match item {
                    Some(i) => format!("items[{i}].apiVersion"),
                    None => "apiVersion".into(),
                },
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Analysis

fn problem(
    r: &HttpRoute,
    severity: Severity,
    code: &'static str,
    line: usize,
    field: String,
    message: String,
) -> Problem {
    Problem {
        severity,
        code,
        message,
        file: r.file.clone(),
        document: r.document,
        line,
        field: r.field(&field),
    }
}

fn percent(stable: Option<u32>, canary: Option<u32>) -> (Option<u64>, Option<f64>) {
    match (stable, canary) {
        (Some(s), Some(c)) => {
            let total = u64::from(s) + u64::from(c);
            let pct = (total > 0).then(|| (c as f64 * 10000.0 / total as f64).round() / 100.0);
            (Some(total), pct)
        }
        _ => (None, None),
    }
}

fn fmt_pct(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

/// Look at one route: which backend is the canary (`explicit`, else by convention), which
/// rules split between it and the stable, which send it a subset, and what is wrong.
pub fn analyze(route: &HttpRoute, explicit: Option<&str>, ctx: &Context) -> RouteCanary {
    let mut problems = Vec::new();
    let names = route.backend_names();
    let canary: Option<String> = match explicit.filter(|e| names.iter().any(|n| n == e)) {
        Some(e) => Some(e.to_string()),
        None => {
            let mut reasons: Vec<(String, String)> = Vec::new();
            for b in route.rules.iter().flat_map(|r| &r.backends) {
                if reasons.iter().any(|(n, _)| *n == b.name) {
                    continue;
                }
                if let Some(why) = ctx.canary_reason(route, b) {
                    reasons.push((b.name.clone(), why));
                }
            }
            match reasons.len() {
                0 => None,
                1 => reasons.pop().map(|(n, _)| n),
                _ => {
                    problems.push(problem(
                        route,
                        Severity::Error,
                        "canary-ambiguous",
                        route.line,
                        "spec.rules".into(),
                        format!(
                            "several backendRefs look like the canary: {}; name one with --canary-service",
                            reasons.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                    None
                }
            }
        }
    };

    let mut splits = Vec::new();
    let mut subset_rules = Vec::new();
    // Rules whose backends the weight problems are reported for.
    let mut looked_at: Vec<&Rule> = Vec::new();
    match &canary {
        Some(c) => {
            for rule in &route.rules {
                let mine = rule.backend(c);
                if mine.is_empty() {
                    continue;
                }
                looked_at.push(rule);
                let others: Vec<&BackendRef> =
                    rule.backends.iter().filter(|b| b.name != *c).collect();
                let rule_field = format!("spec.rules[{}].backendRefs", rule.index);
                if mine.len() > 1 {
                    problems.push(problem(
                        route,
                        Severity::Error,
                        "backends-unclear",
                        rule.line,
                        rule_field,
                        format!(
                            "rule {} lists the canary {c} {} times",
                            rule.index,
                            mine.len()
                        ),
                    ));
                    continue;
                }
                match others.as_slice() {
                    [] if rule.is_subset() => {
                        let conditions: Vec<String> = rule
                            .matches
                            .iter()
                            .map(|m| m.conditions().join(" and "))
                            .collect();
                        let cookie = rule.matches_cookie();
                        if cookie {
                            problems.push(problem(
                                route,
                                Severity::Warning,
                                "cookie-canary",
                                rule.line,
                                format!("spec.rules[{}].matches", rule.index),
                                format!(
                                    "rule {} picks canary requests by their Cookie header: the Gateway API has no portable cookie match, and a regular expression on Cookie is implementation-specific",
                                    rule.index
                                ),
                            ));
                        }
                        subset_rules.push(SubsetRule {
                            rule: rule.index,
                            line: rule.line,
                            conditions,
                            cookie,
                        });
                    }
                    [] => problems.push(problem(
                        route,
                        Severity::Error,
                        "no-stable",
                        rule.line,
                        rule_field,
                        format!(
                            "rule {} sends every request of {} {} to the canary {c}: no stable backend beside it",
                            rule.index,
                            rule.path().0,
                            rule.path().1
                        ),
                    )),
                    [stable] => {
                        let (total, pct) = percent(stable.weight, mine[0].weight);
                        let (path_type, path) = rule.path();
                        splits.push(Split {
                            rule: rule.index,
                            line: rule.line,
                            path_type,
                            path,
                            stable: (*stable).clone(),
                            canary: mine[0].clone(),
                            total,
                            percent: pct,
                        });
                    }
                    many => problems.push(problem(
                        route,
                        Severity::Error,
                        "backends-unclear",
                        rule.line,
                        rule_field,
                        format!(
                            "rule {} sends to the canary {c} and to {}: which one is the stable is unclear",
                            rule.index,
                            many.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )),
                }
            }
        }
        None => {
            // No canary: the rules that split between exactly two backends are still worth
            // showing, so the user can name the canary.
            for rule in route.rules.iter().filter(|r| r.backends.len() >= 2) {
                looked_at.push(rule);
                let names: Vec<&str> = rule.backends.iter().map(|b| b.name.as_str()).collect();
                if problems.iter().all(|p| p.code != "canary-ambiguous") {
                    problems.push(problem(
                        route,
                        Severity::Info,
                        "canary-unknown",
                        rule.line,
                        format!("spec.rules[{}].backendRefs", rule.index),
                        format!(
                            "rule {} splits between {}, and none is a canary by convention (a name ending in {CANARY_SUFFIX}, or a Service selecting such a Deployment); name it with --canary-service",
                            rule.index,
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
    }

    let mut stable_service = None;
    if let Some(first) = splits.first() {
        let stables: Vec<&str> = splits.iter().map(|s| s.stable.name.as_str()).collect();
        if stables.iter().any(|s| *s != first.stable.name) {
            let mut distinct = stables.clone();
            distinct.dedup();
            problems.push(problem(
                route,
                Severity::Error,
                "backends-unclear",
                first.line,
                "spec.rules".into(),
                format!(
                    "the canary {} splits with different stables in different rules: {}",
                    canary.as_deref().unwrap_or_default(),
                    distinct.join(", ")
                ),
            ));
        } else {
            stable_service = Some(first.stable.name.clone());
        }
        let pcts: Vec<Option<f64>> = splits.iter().map(|s| s.percent).collect();
        if pcts.iter().any(|p| *p != pcts[0]) {
            problems.push(problem(
                route,
                Severity::Warning,
                "splits-differ",
                first.line,
                "spec.rules".into(),
                format!(
                    "the rules that split between {} and {} send different shares to the canary ({}); set-weight sets them all to the same share",
                    first.stable.name,
                    first.canary.name,
                    splits
                        .iter()
                        .map(|s| format!("rule {}: {}", s.rule, s.percent.map_or("-".into(), fmt_pct)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for s in splits.iter().filter(|s| s.total == Some(0)) {
            problems.push(problem(
                route,
                Severity::Warning,
                "weights-zero",
                s.line,
                format!("spec.rules[{}].backendRefs", s.rule),
                format!(
                    "rule {} gives both {} and {} weight 0: the gateway answers its requests with an error",
                    s.rule, s.stable.name, s.canary.name
                ),
            ));
        }
    } else if let Some(c) = &canary {
        if !subset_rules.is_empty() {
            problems.push(problem(
                route,
                Severity::Info,
                "no-weighted-rule",
                route.line,
                "spec.rules".into(),
                format!(
                    "no rule splits between a stable and {c} by weight; set-weight has nothing to set (init-canary --route adds the canary beside the stable)"
                ),
            ));
        }
    }
    if !subset_rules.is_empty() {
        let which: Vec<String> = subset_rules
            .iter()
            .map(|s| format!("rule {} ({})", s.rule, s.conditions.join("; ")))
            .collect();
        problems.push(problem(
            route,
            Severity::Info,
            "match-precedence",
            subset_rules[0].line,
            format!("spec.rules[{}].matches", subset_rules[0].rule),
            format!(
                "{} send{} the requests {} to the canary whatever the weight: the Gateway API picks the most specific match (path, then method, then the number of header and query matches), not the first rule",
                which.join(", "),
                if which.len() == 1 { "s" } else { "" },
                if which.len() == 1 { "it matches" } else { "they match" }
            ),
        ));
    }
    for rule in &looked_at {
        for b in &rule.backends {
            if let Some((code, msg)) = &b.weight_error {
                problems.push(problem(
                    route,
                    Severity::Error,
                    code,
                    b.weight_line.unwrap_or(b.line),
                    format!("spec.rules[{}].backendRefs[{}].weight", rule.index, b.index),
                    format!("{}: {msg}", b.name),
                ));
            }
        }
    }
    if canary.is_none() {
        // Only the split is worth showing; the route checks are for canary routes.
        return RouteCanary {
            route: route.clone(),
            weight: None,
            canary_service: None,
            stable_service: None,
            splits,
            subset_rules,
            problems,
        };
    }
    if route.parent_refs == 0 {
        problems.push(problem(
            route,
            Severity::Warning,
            "no-parent-refs",
            route.line,
            "spec.parentRefs".into(),
            "no parentRefs: the route attaches to no Gateway (or mesh Service) and serves nothing"
                .into(),
        ));
    }
    let mut missing: Vec<&BackendRef> = Vec::new();
    for b in looked_at.iter().flat_map(|r| &r.backends) {
        let ns = b.namespace.as_deref().or(route.namespace.as_deref());
        if b.is_service()
            && !ctx.has_service(ns, &b.name)
            && !missing.iter().any(|m| m.name == b.name)
        {
            missing.push(b);
        }
    }
    for b in missing {
        problems.push(problem(
            route,
            Severity::Warning,
            "service-not-found",
            b.line,
            "spec.rules[].backendRefs[].name".into(),
            format!(
                "backendRef {}: no Service {} in the repository{}",
                b.name,
                b.name,
                route
                    .namespace
                    .as_deref()
                    .map(|n| format!(" (namespace {n})"))
                    .unwrap_or_default()
            ),
        ));
    }
    RouteCanary {
        route: route.clone(),
        weight: splits.first().and_then(|s| s.percent),
        canary_service: canary,
        stable_service,
        splits,
        subset_rules,
        problems,
    }
}

/// A route worth listing: it has a canary, or a rule splitting between backends.
fn listed(rc: &RouteCanary) -> bool {
    rc.canary_service.is_some()
        || rc
            .problems
            .iter()
            .any(|p| p.code == "canary-unknown" || p.code == "canary-ambiguous")
}

/// Every canary HTTPRoute in `files` (Services and Deployments read from `files` and
/// `context`). `canary_service` names the canary of the routes that have such a backend.
pub fn discover_routes(
    files: &[SourceFile],
    context: &Context,
    skipped: &[Skipped],
    canary_service: Option<&str>,
) -> GatewayDiscovery {
    let mut routes = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        problems.extend(unknown_versions(f));
        for r in http_routes(f) {
            let rc = analyze(&r, canary_service, context);
            if listed(&rc) {
                routes.push(rc);
            }
        }
    }
    GatewayDiscovery {
        router: "gateway-api",
        routes,
        problems,
        skipped: skipped.to_vec(),
    }
}

/// The HTTPRoutes of the repository at `dir`, with its Services and Deployments. Files that
/// name `HTTPRoute` and do not parse are skipped with a reason.
pub fn discover_repo(
    dir: &Path,
    canary_service: Option<&str>,
) -> Result<GatewayDiscovery, ManifestError> {
    let repo = Repo::load_filtered(dir, &|b| GatewayApi.may_contain_route(b))?;
    if repo.files.is_empty() && repo.skipped.is_empty() {
        return Ok(discover_routes(&[], &Context::default(), &[], None));
    }
    let ctx = Context::load(dir)?;
    Ok(discover_routes(
        &repo.files,
        &ctx,
        &repo.skipped,
        canary_service,
    ))
}

// ---------------------------------------------------------------------------------------------
// Editing

/// The weights that give the canary `pct` percent of a split: (stable, canary).
pub fn new_weights(split: &Split, pct: u32) -> Result<(u32, u32), String> {
    if pct > 100 {
        return Err(format!("{pct}% is above 100%"));
    }
    let (Some(s), Some(c)) = (split.stable.weight, split.canary.weight) else {
        return Err("a weight of the rule is not valid; fix it first (plan says which)".into());
    };
    let written = split.stable.weight_raw.is_some() || split.canary.weight_raw.is_some();
    let total = u64::from(s) + u64::from(c);
    // Weights never written (implicit 1 and 1), or both 0: the rule has no scale of its own.
    let total = if !written || total == 0 { 100 } else { total };
    let canary = total * u64::from(pct);
    if canary % 100 != 0 {
        return Err(format!(
            "the weights of rule {} total {total} ({} {s}, {} {c}); {pct}% of {total} is not a whole weight (set a share that divides it, or write weights that total 100)",
            split.rule, split.stable.name, split.canary.name
        ));
    }
    let canary = canary / 100;
    let stable = total - canary;
    let max = u64::from(MAX_WEIGHT);
    if canary > max || stable > max {
        return Err(format!(
            "the new weights {stable}/{canary} exceed {MAX_WEIGHT}"
        ));
    }
    Ok((stable as u32, canary as u32))
}

fn weight_edit(route: &HttpRoute, rule: usize, b: &BackendRef, value: u32) -> Edit {
    Edit {
        file: route.file.clone(),
        document: route.document,
        path: route.weight_path(rule, b.index),
        old: b.weight_raw.clone(),
        new: value.to_string(),
        kind: ScalarKind::Int,
        insert_after: ["port", "name", "namespace", "kind", "group"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

fn cannot(route: &HttpRoute, field: String, reason: String) -> ManifestError {
    ManifestError::CannotEdit {
        file: route.file.clone(),
        document: route.document,
        field: route.field(&field),
        reason,
    }
}

/// The edits that give the canary of `rc` `pct` percent in every rule that splits between it
/// and the stable (both weights of each rule, written explicitly).
pub fn weight_edits(rc: &RouteCanary, pct: u32) -> Result<Vec<Edit>, ManifestError> {
    let route = &rc.route;
    if pct > 100 {
        return Err(ManifestError::WeightOutOfRange {
            file: route.file.clone(),
            document: route.document,
            field: route.field("spec.rules[].backendRefs[].weight"),
            weight: pct,
            total: 100,
        });
    }
    let Some(canary) = &rc.canary_service else {
        let names = route.backend_names();
        let why = rc
            .problems
            .iter()
            .find(|p| p.code == "canary-ambiguous")
            .map(|p| p.message.clone())
            .unwrap_or_else(|| {
                format!(
                    "no backendRef is a canary by convention (backendRefs: {}); name it with --canary-service",
                    names.join(", ")
                )
            });
        return Err(cannot(route, "spec.rules".into(), why));
    };
    let blocking: Vec<&Problem> = rc
        .problems
        .iter()
        .filter(|p| {
            matches!(
                p.code,
                "backends-unclear" | "weight-not-integer" | "weight-out-of-range"
            )
        })
        .collect();
    if let Some(p) = blocking.first() {
        return Err(ManifestError::CannotEdit {
            file: p.file.clone(),
            document: p.document,
            field: p.field.clone(),
            reason: format!("[{}] {}", p.code, p.message),
        });
    }
    if rc.splits.is_empty() {
        return Err(cannot(
            route,
            "spec.rules".into(),
            format!(
                "no rule of {} splits between a stable backend and the canary {canary}; init-canary --route {} --service {canary} adds one",
                route.qualified_name(),
                route.qualified_name()
            ),
        ));
    }
    let mut edits = Vec::new();
    for split in &rc.splits {
        let (s, c) = new_weights(split, pct).map_err(|reason| {
            cannot(
                route,
                format!("spec.rules[{}].backendRefs", split.rule),
                reason,
            )
        })?;
        edits.push(weight_edit(route, split.rule, &split.stable, s));
        edits.push(weight_edit(route, split.rule, &split.canary, c));
    }
    Ok(edits)
}

impl super::select::Named for HttpRoute {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn describe(&self) -> String {
        HttpRoute::describe(self)
    }
}

/// Choose the one HTTPRoute a selector means (the same rule as for Ingresses).
pub fn select<'a>(routes: &'a [HttpRoute], sel: &Selector) -> Result<&'a HttpRoute, ManifestError> {
    use super::select::{candidates_named, choose, Unchosen};
    choose(routes, sel).map_err(|u| match u {
        Unchosen::None { named } => ManifestError::NoRoute {
            selector: sel.to_string(),
            candidates: candidates_named("HTTPRoutes", &sel.name, &named),
        },
        Unchosen::Many(many) => ManifestError::Ambiguous {
            selector: sel.to_string(),
            candidates: many.iter().map(|r| r.describe()).collect(),
        },
    })
}

/// Load the files that may hold the HTTPRoute `selector` names, and choose it.
fn load_selected(dir: &Path, selector: &str) -> Result<(Repo, HttpRoute), ManifestError> {
    let sel = Selector::parse(selector)?;
    let name = sel.name.as_bytes().to_vec();
    let repo = Repo::load_filtered(dir, &|b| {
        GatewayApi.may_contain_route(b) && manifest::contains(b, &name)
    })?;
    let routes: Vec<HttpRoute> = repo.files.iter().flat_map(http_routes).collect();
    let route = match select(&routes, &sel) {
        Ok(r) => r.clone(),
        Err(e @ ManifestError::NoRoute { .. }) => {
            if let Some(s) = repo.skipped.first() {
                return Err(ManifestError::TargetUnparsable {
                    file: s.file.clone(),
                    selector: sel.to_string(),
                    error: s.reason.clone(),
                });
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let broken = manifest::shadowing(&repo, &sel);
    if !broken.is_empty() {
        let mut candidates = vec![route.describe()];
        candidates.extend(
            broken
                .iter()
                .map(|s| format!("{} (does not parse: {})", s.file.display(), s.reason)),
        );
        return Err(ManifestError::Ambiguous {
            selector: sel.to_string(),
            candidates,
        });
    }
    Ok((repo, route))
}

fn require_backend(route: &HttpRoute, name: &str) -> Result<(), ManifestError> {
    if route.backend_names().iter().any(|n| n == name) {
        return Ok(());
    }
    Err(cannot(
        route,
        "spec.rules[].backendRefs".into(),
        format!(
            "{} has no backendRef {name}; its backendRefs: {}",
            route.qualified_name(),
            route.backend_names().join(", ")
        ),
    ))
}

/// Give the canary of the HTTPRoute `selector` names `pct` percent, in the repository at
/// `dir`. Writes nothing on error or with `dry_run`.
pub fn set_weight(
    dir: &Path,
    selector: &str,
    canary_service: Option<&str>,
    pct: u32,
    dry_run: bool,
) -> Result<EditOutcome, ManifestError> {
    let (repo, route) = load_selected(dir, selector)?;
    if let Some(c) = canary_service {
        require_backend(&route, c)?;
    }
    let ctx = Context::load(dir)?;
    let rc = analyze(&route, canary_service, &ctx);
    let edits = weight_edits(&rc, pct)?;
    let file = repo
        .file(&route.file)
        .ok_or_else(|| ManifestError::NoRoute {
            selector: selector.to_string(),
            candidates: String::new(),
        })?;
    let outcome = edit::apply(file, &edits)?;
    if !dry_run {
        outcome.write(dir)?;
    }
    Ok(outcome)
}

/// The HTTPRoute canary `selector` names, as the rollout reads it: the canary's and the
/// stable's side as `Route`s (for gates and the Deployments behind them), the canary's
/// percentage.
#[derive(Debug, Clone)]
pub struct SelectedCanary {
    pub canary: Route,
    pub stables: Vec<Route>,
    /// The canary's share in percent, when it is a whole number.
    pub percent: Option<u32>,
}

/// Choose the HTTPRoute `selector` names and its canary backend (`canary_service`, else by
/// convention), refusing what `set-weight` would refuse.
pub fn select_canary(
    dir: &Path,
    selector: &str,
    canary_service: Option<&str>,
) -> Result<SelectedCanary, ManifestError> {
    let (_, route) = load_selected(dir, selector)?;
    if let Some(c) = canary_service {
        require_backend(&route, c)?;
    }
    let ctx = Context::load(dir)?;
    let rc = analyze(&route, canary_service, &ctx);
    let Some(canary) = rc.canary_service.clone() else {
        let mut reasons: Vec<String> = rc
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| format!("[{}] {}", p.code, p.message))
            .collect();
        if reasons.is_empty() {
            reasons.push("no backendRef is the canary; name it with --canary-service".into());
        }
        return Err(ManifestError::CannotEdit {
            file: route.file.clone(),
            document: route.document,
            field: "spec.rules[].backendRefs".into(),
            reason: reasons.join("; "),
        });
    };
    let percent = rc
        .weight
        .filter(|p| p.fract() == 0.0 && (0.0..=100.0).contains(p))
        .map(|p| p as u32);
    Ok(SelectedCanary {
        canary: to_route(&rc, Some(&canary), true),
        stables: rc
            .stable_service
            .as_deref()
            .map(|s| vec![to_route(&rc, Some(s), false)])
            .unwrap_or_default(),
        percent,
    })
}

// ---------------------------------------------------------------------------------------------
// init-canary: add the canary backendRef beside the stable

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

fn eol_of(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Byte just past the last content of a node (the last scalar of a block collection; the
/// closing bracket of a flow one).
fn content_end(s: &Stream, id: NodeId) -> usize {
    let n = s.node(id);
    match &n.kind {
        NodeKind::Map(entries) if !n.flow => entries.last().map_or(n.span.end, |(k, v)| {
            content_end(s, *v).max(s.node(*k).span.end)
        }),
        NodeKind::Seq(items) if !n.flow => items.last().map_or(n.span.end, |i| content_end(s, *i)),
        _ => n.span.end,
    }
}

/// The text of a new backendRef for `service`, copied from the stable's entry `stable` (its
/// one-line scalar keys, in order, with their bytes; `filters` and other blocks are left out),
/// with `name: service` and `weight: weight`. Returns the entries and the expected value.
fn new_backend(
    file: &SourceFile,
    stable: NodeId,
    service: &str,
    weight: u32,
) -> (Vec<String>, serde_json::Value) {
    let s = &file.stream;
    let mut entries = Vec::new();
    let mut value = serde_json::Map::new();
    let mut has_weight = false;
    for (k, v) in s.entries(stable) {
        let (kn, vn) = (s.node(*k), s.node(*v));
        let Some(key) = s.str(*k) else { continue };
        let NodeKind::Scalar { style, .. } = &vn.kind else {
            continue;
        };
        if vn.line != kn.line || matches!(style, Style::Literal | Style::Folded) {
            continue;
        }
        let key_text = &file.text[kn.span.clone()];
        match key {
            "name" => {
                let plain = *style == Style::Plain && edit::plain_safe(service);
                let text = if plain {
                    service.to_string()
                } else {
                    serde_json::to_string(service).unwrap_or_default()
                };
                entries.push(format!("{key_text}: {text}"));
                value.insert(
                    key.into(),
                    serde_json::Value::String(format!(
                        "{}:{service}",
                        if plain { "plain" } else { "str" }
                    )),
                );
            }
            "weight" => {
                has_weight = true;
                entries.push(format!("{key_text}: {weight}"));
                value.insert(
                    key.into(),
                    serde_json::Value::String(format!("plain:{weight}")),
                );
            }
            _ => {
                entries.push(format!("{key_text}: {}", &file.text[vn.span.clone()]));
                value.insert(key.into(), s.to_value(*v));
            }
        }
    }
    if !has_weight {
        entries.push(format!("weight: {weight}"));
        value.insert(
            "weight".into(),
            serde_json::Value::String(format!("plain:{weight}")),
        );
    }
    (entries, serde_json::Value::Object(value))
}

/// Add `service` as the canary of the HTTPRoute `selector` names: in every rule that sends all
/// the requests it matches (no header, query or method condition) to one stable backendRef,
/// a backendRef to `service` at `pct` and the stable's weight `100 - pct`, both written.
pub fn init_canary(
    dir: &Path,
    selector: &str,
    service: &str,
    pct: u32,
) -> Result<EditOutcome, ManifestError> {
    let (repo, route) = load_selected(dir, selector)?;
    let create = |reason: String| ManifestError::Create {
        file: route.file.clone(),
        reason,
    };
    if pct > 100 {
        return Err(ManifestError::WeightOutOfRange {
            file: route.file.clone(),
            document: route.document,
            field: route.field("spec.rules[].backendRefs[].weight"),
            weight: pct,
            total: 100,
        });
    }
    if route.backend_names().iter().any(|n| n == service) {
        return Err(create(format!(
            "{} has a backendRef {service} already (set-weight --route changes its weight)",
            route.qualified_name()
        )));
    }
    let main: Vec<&Rule> = route.rules.iter().filter(|r| !r.is_subset()).collect();
    if let Some(r) = main.iter().find(|r| r.backends.len() > 1) {
        return Err(create(format!(
            "rule {} of {} sends to several backends ({}); init-canary adds a canary beside one stable backend",
            r.index,
            route.qualified_name(),
            r.backends.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let targets: Vec<&Rule> = main.into_iter().filter(|r| r.backends.len() == 1).collect();
    let mut stables: Vec<&str> = targets
        .iter()
        .map(|r| r.backends[0].name.as_str())
        .collect();
    stables.dedup();
    match stables.as_slice() {
        [] => {
            return Err(create(format!(
                "{} has no rule that sends its requests to one backend",
                route.qualified_name()
            )))
        }
        [_] => {}
        many => {
            return Err(create(format!(
                "the rules of {} send to different backends ({}); which one the canary is for is unclear",
                route.qualified_name(),
                many.join(", ")
            )))
        }
    }
    let file = repo
        .file(&route.file)
        .ok_or_else(|| create("file not loaded".into()))?;

    // 1. The stable's weight, through the one writer.
    let stable_edits: Vec<Edit> = targets
        .iter()
        .map(|r| weight_edit(&route, r.index, &r.backends[0], 100 - pct))
        .collect();
    let step = edit::apply(file, &stable_edits)?;
    let text1 = step
        .changed
        .first()
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| file.text.clone());
    let mid = SourceFile::parse(file.path.clone(), text1.clone())
        .map_err(|e| create(format!("intermediate result does not parse: {e}")))?;

    // 2. One new backendRef per rule, after the stable's.
    let s = &mid.stream;
    let root = s.docs[route.document - 1]
        .root
        .ok_or_else(|| create("document vanished".into()))?;
    let obj = match route.item {
        Some(i) => s
            .get(root, "items")
            .and_then(|it| s.items(it).get(i).copied())
            .ok_or_else(|| create("list item vanished".into()))?,
        None => root,
    };
    let rules_node = s
        .path(obj, &["spec", "rules"])
        .ok_or_else(|| create("spec.rules vanished".into()))?;
    let eol = eol_of(&text1);
    let mut splices: Vec<(usize, String)> = Vec::new();
    let mut want = s.to_value(root);
    for r in &targets {
        let rule = s.items(rules_node)[r.index];
        let refs = s
            .get(rule, "backendRefs")
            .ok_or_else(|| create("backendRefs vanished".into()))?;
        let stable = s.items(refs)[0];
        if s.resolve(refs) != refs || s.node(refs).anchored || s.resolve(stable) != stable {
            return Err(create(format!(
                "rule {}'s backendRefs are shared through an anchor; add the canary by hand",
                r.index
            )));
        }
        let (entries, value) = new_backend(&mid, stable, service, pct);
        let flow_map = format!("{{{}}}", entries.join(", "));
        let refs_node = s.node(refs);
        let stable_node = s.node(stable);
        if refs_node.flow {
            splices.push((content_end(s, stable), format!(", {flow_map}")));
        } else {
            let first = match &stable_node.kind {
                NodeKind::Map(e) if !stable_node.flow => {
                    e.first().map(|(k, _)| s.node(*k).span.start)
                }
                _ => Some(stable_node.span.start),
            }
            .ok_or_else(|| create("empty backendRef".into()))?;
            let ls = line_start(&text1, first);
            let lead = &text1[ls..first];
            if !(lead.trim_start_matches(' ').starts_with('-')
                && lead.chars().all(|c| c == ' ' || c == '-'))
            {
                return Err(create(format!(
                    "rule {}'s backendRef does not start on its `- ` line; add the canary by hand",
                    r.index
                )));
            }
            let indent = " ".repeat(lead.len());
            let text = if stable_node.flow {
                format!("{lead}{flow_map}")
            } else {
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("{}{e}", if i == 0 { lead } else { &indent }))
                    .collect::<Vec<_>>()
                    .join(eol)
            };
            let end = content_end(s, stable);
            match text1[end..].find('\n') {
                Some(i) => splices.push((end + i + 1, format!("{text}{eol}"))),
                None => splices.push((text1.len(), format!("{eol}{text}"))),
            }
        }
        // The value the new entry must read back as.
        let mut target = &mut want;
        let mut path: Vec<PathSeg> = route.prefix();
        path.extend([
            PathSeg::Key("spec".into()),
            PathSeg::Key("rules".into()),
            PathSeg::Index(r.index),
            PathSeg::Key("backendRefs".into()),
        ]);
        for seg in &path {
            target = match seg {
                PathSeg::Key(k) => &mut target[k.as_str()],
                PathSeg::Index(i) => &mut target[*i],
            };
        }
        if let serde_json::Value::Array(a) = target {
            a.push(value);
        }
    }
    splices.sort_by_key(|(at, _)| *at);
    let mut text2 = String::with_capacity(text1.len() + 128);
    let mut at = 0;
    for (pos, t) in &splices {
        text2.push_str(&text1[at..*pos]);
        text2.push_str(t);
        at = *pos;
    }
    text2.push_str(&text1[at..]);

    // 3. The guard: every document as before, but for the stable weights and the new entries.
    let guard = |detail: String| ManifestError::Guard {
        file: route.file.clone(),
        document: route.document,
        field: route.field("spec.rules[].backendRefs"),
        detail,
    };
    let after =
        crate::yaml::parse(&text2).map_err(|e| guard(format!("result does not parse: {e}")))?;
    if after.docs.len() != s.docs.len() {
        return Err(guard("document count changed".into()));
    }
    for (i, (a, b)) in s.docs.iter().zip(&after.docs).enumerate() {
        let expected = if i + 1 == route.document {
            want.clone()
        } else {
            a.root.map(|r| s.to_value(r)).unwrap_or_default()
        };
        let got = b.root.map(|r| after.to_value(r)).unwrap_or_default();
        if expected != got {
            return Err(guard(format!("document {} differs beyond the edit", i + 1)));
        }
    }

    // 4. The result must pass what `plan` checks.
    let new_file = SourceFile::parse(file.path.clone(), text2.clone())
        .map_err(|e| create(format!("result does not parse: {e}")))?;
    let ctx = Context::load(dir)?;
    let routes = http_routes(&new_file);
    let Some(new_route) = routes
        .iter()
        .find(|r| r.document == route.document && r.item == route.item)
    else {
        return Err(create("the route is not readable after the edit".into()));
    };
    let rc = analyze(new_route, Some(service), &ctx);
    let errors: Vec<String> = rc
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| format!("[{}] {}", p.code, p.message))
        .collect();
    if !errors.is_empty() {
        return Err(create(errors.join("; ")));
    }
    let mut edits = stable_edits;
    for r in &targets {
        edits.push(Edit {
            file: route.file.clone(),
            document: route.document,
            path: route.weight_path(r.index, r.backends.len()),
            old: None,
            new: pct.to_string(),
            kind: ScalarKind::Int,
            insert_after: Vec::new(),
        });
    }
    let diff = edit::unified_diff(&file.path, &file.text, &text2);
    Ok(EditOutcome {
        edits,
        changed: vec![(file.path.clone(), text2)],
        diff,
    })
}

// ---------------------------------------------------------------------------------------------
// The Router trait: routes as `router::Route` values for the generic consumers.

fn to_route(rc: &RouteCanary, service: Option<&str>, canary: bool) -> Route {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile::parse(PathBuf::from("r.yaml"), text.to_string()).unwrap()
    }

    const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  parentRefs:\n  - name: gw\n  rules:\n  - backendRefs:\n    - name: web\n      port: 80\n      weight: 90\n    - name: web-canary\n      port: 80\n      weight: 10\n";

    fn rc(text: &str, canary: Option<&str>) -> RouteCanary {
        let f = file(text);
        let ctx = Context::from_files([std::slice::from_ref(&f)]);
        analyze(&http_routes(&f)[0], canary, &ctx)
    }

    fn codes(rc: &RouteCanary) -> Vec<&'static str> {
        rc.problems.iter().map(|p| p.code).collect()
    }

    fn set(text: &str, canary: Option<&str>, pct: u32) -> Result<String, ManifestError> {
        let f = file(text);
        let edits = weight_edits(&rc(text, canary), pct)?;
        let out = edit::apply(&f, &edits)?;
        Ok(out
            .changed
            .first()
            .map(|(_, t)| t.clone())
            .unwrap_or(f.text))
    }

    #[test]
    fn finds_the_canary_by_suffix_and_sets_both_weights() {
        let r = rc(ROUTE, None);
        assert_eq!(r.canary_service.as_deref(), Some("web-canary"));
        assert_eq!(r.stable_service.as_deref(), Some("web"));
        assert_eq!(r.weight, Some(10.0));
        assert_eq!(
            set(ROUTE, None, 25).unwrap(),
            ROUTE
                .replace("weight: 90", "weight: 75")
                .replace("weight: 10", "weight: 25")
        );
    }

    #[test]
    fn scales_to_the_rule_total_and_refuses_inexact_shares() {
        let t = ROUTE
            .replace("weight: 90", "weight: 9")
            .replace("weight: 10", "weight: 1");
        assert_eq!(
            set(&t, None, 30).unwrap(),
            t.replace("weight: 9\n", "weight: 7\n")
                .replace("weight: 1\n", "weight: 3\n")
        );
        let err = set(&t, None, 25).unwrap_err().to_string();
        assert!(err.contains("not a whole weight"), "{err}");
    }

    #[test]
    fn missing_weights_are_one_and_get_written() {
        let t = ROUTE
            .replace("      weight: 90\n", "")
            .replace("      weight: 10\n", "");
        let r = rc(&t, None);
        assert_eq!(r.weight, Some(50.0));
        // Never-written weights have no scale: out of 100.
        assert_eq!(set(&t, None, 10).unwrap(), ROUTE);
        // One written: the total is 1 + 5 = 6, and 50% of it is 3.
        let t = ROUTE
            .replace("      weight: 90\n", "")
            .replace("weight: 10", "weight: 5");
        assert!(set(&t, None, 50)
            .unwrap()
            .contains("port: 80\n      weight: 3\n"));
    }

    #[test]
    fn flow_backend_refs_get_a_flow_weight() {
        let t = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{name: web, port: 80}, {name: web-canary, port: 80}]\n";
        assert_eq!(
            set(t, None, 20).unwrap(),
            t.replace("{name: web, port: 80}", "{name: web, port: 80, weight: 80}")
                .replace(
                    "{name: web-canary, port: 80}",
                    "{name: web-canary, port: 80, weight: 20}"
                )
        );
    }

    #[test]
    fn problems() {
        // Two canaries by suffix.
        let t = ROUTE.replace("name: web\n      port", "name: a-canary\n      port");
        assert!(codes(&rc(&t, None)).contains(&"canary-ambiguous"));
        assert!(
            codes(&rc(&t, Some("web-canary"))).is_empty()
                || rc(&t, Some("web-canary")).canary_service.is_some()
        );
        // Three backends.
        let t = ROUTE.replace(
            "  - backendRefs:\n",
            "  - backendRefs:\n    - name: extra\n      port: 80\n",
        );
        assert!(codes(&rc(&t, None)).contains(&"backends-unclear"));
        assert!(set(&t, None, 10).is_err());
        // Out of range, not an integer.
        let t = ROUTE.replace("weight: 10", "weight: 1000001");
        assert!(codes(&rc(&t, None)).contains(&"weight-out-of-range"));
        let t = ROUTE.replace("weight: 10", "weight: \"10\"");
        assert!(codes(&rc(&t, None)).contains(&"weight-not-integer"));
        // No parentRefs.
        let t = ROUTE.replace("  parentRefs:\n  - name: gw\n", "");
        assert!(codes(&rc(&t, None)).contains(&"no-parent-refs"));
        // Canary alone in a rule without conditions.
        let t = ROUTE.replace("    - name: web\n      port: 80\n      weight: 90\n", "");
        assert!(codes(&rc(&t, None)).contains(&"no-stable"));
        // No Services in the file.
        assert!(codes(&rc(ROUTE, None)).contains(&"service-not-found"));
    }

    #[test]
    fn header_rules_are_subsets_shown_with_precedence() {
        let t = format!(
            "{ROUTE}  - matches:\n    - headers:\n      - name: Cookie\n        type: RegularExpression\n        value: canary=always\n    backendRefs:\n    - name: web-canary\n      port: 80\n"
        );
        let r = rc(&t, None);
        assert_eq!(r.subset_rules.len(), 1);
        assert!(r.subset_rules[0].cookie);
        let c = codes(&r);
        assert!(
            c.contains(&"match-precedence") && c.contains(&"cookie-canary"),
            "{c:?}"
        );
        assert!(!c.contains(&"no-stable"));
    }

    #[test]
    fn unknown_versions_are_reported() {
        let f = file(&ROUTE.replace("/v1\n", "/v1alpha2\n"));
        let d = discover_routes(std::slice::from_ref(&f), &Context::default(), &[], None);
        assert!(d.routes.is_empty());
        assert_eq!(d.problems[0].code, "api-version-unknown");
    }

    #[test]
    fn the_router_trait_pairs_canary_and_stable() {
        let f = vec![file(ROUTE)];
        let d = GatewayApi.discover(&f, &[]);
        assert_eq!(d.pairs.len(), 1);
        assert_eq!(d.pairs[0].canary.services(), ["web-canary"]);
        assert_eq!(d.pairs[0].stable[0].services(), ["web"]);
        assert_eq!(d.pairs[0].weight, Some(10));
        let edits = GatewayApi
            .weight_edits(&f[0], &d.pairs[0].canary, 40)
            .unwrap();
        assert_eq!(edits.len(), 2);
        assert!(GatewayApi
            .weight_edit(&f[0], &d.pairs[0].canary, 40)
            .is_err());
    }
}
