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

mod analyze;
mod as_router;
mod init_canary;
mod read;
mod set;
#[cfg(test)]
mod tests;

pub(crate) use analyze::discover_loaded;
pub use analyze::{analyze, discover_repo, discover_routes};
pub use init_canary::init_canary;
pub use read::http_routes;
pub(crate) use read::unknown_versions;
pub use set::{
    new_weights, select, select_canary, set_weight, split_weights, weight_edits, SelectedCanary,
};
pub(crate) use set::{require_backend, selected, weight_outcome};

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Problem;
use crate::manifest::workload::{self, ServiceInfo, Workload};
use crate::manifest::{self, ManifestError, PathSeg, Repo, Skipped, SourceFile};

pub(crate) const KIND: &str = "HTTPRoute";
/// The HTTPRoute versions this router reads (the standard channel serves both).
pub(crate) const API_VERSIONS: [&str; 2] = [
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];
/// The largest weight the CRD accepts.
pub(crate) const MAX_WEIGHT: u32 = 1_000_000;
/// The suffix that marks a canary Service or Deployment.
pub(crate) const CANARY_SUFFIX: &str = "-canary";

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
    pub(crate) fn is_service(&self) -> bool {
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
    pub(crate) fn is_conditional(&self) -> bool {
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
    pub(crate) fn is_subset(&self) -> bool {
        !self.matches.is_empty() && self.matches.iter().all(RuleMatch::is_conditional)
    }

    /// A header condition on `Cookie`: the nearest thing to a cookie canary.
    pub(crate) fn matches_cookie(&self) -> bool {
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
    pub(crate) fn qualified_name(&self) -> String {
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
    pub(crate) fn backend_names(&self) -> Vec<String> {
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
    pub(crate) fn weight_path(&self, rule: usize, backend: usize) -> Vec<PathSeg> {
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
    pub(crate) fn all_problems(&self) -> impl Iterator<Item = &Problem> {
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
