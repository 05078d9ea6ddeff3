//! Traffic routers: which objects split traffic, which field carries the canary weight, and
//! which problems the router would have with what it reads.
//!
//! ingress-nginx is one router (`nginx/`); the Gateway API's HTTPRoute
//! (`backendRefs[].weight`, `gateway/`) is the other. Everything else (walking, splicing,
//! Git, gates) only talks to this trait and these values.

pub mod gateway;
pub mod helm;
pub mod kustomize;
pub mod nginx;
pub mod select;

pub use select::{
    behind_routes, discover, init_canary, load_repo, select, select_known, set_weight,
};

use std::path::PathBuf;

use serde::Serialize;

use crate::manifest::{Edit, ManifestError, Skipped, SourceFile};

/// One backend reached by a route: host and path as the router matches them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// `None` is the catch-all server (no `host:`).
    pub host: Option<String>,
    pub path: String,
    pub path_type: String,
    pub service: Option<String>,
    pub port: Option<String>,
}

/// A traffic-routing object found in the repository (an Ingress today).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub file: PathBuf,
    /// 1-based document in the file.
    pub document: usize,
    /// Index in `items` when the object sits in a `kind: List`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// 1-based line of the object's start.
    pub line: usize,
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub class: Option<String>,
    pub canary: bool,
    pub backends: Vec<Backend>,
    /// Canary weight as written (`None` when the annotation is absent).
    pub weight_raw: Option<String>,
    /// 1-based line of the weight value, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_line: Option<usize>,
    /// The weight as the router reads it (`None` when absent or not an integer).
    pub weight: Option<u32>,
    /// The weight's YAML scalar was plain (an int to the API server, which wants a string).
    #[serde(skip)]
    pub weight_plain: bool,
    /// The total the weight is out of, as the router applies it.
    pub weight_total: u32,
    /// Header and cookie rules that route before the weight applies.
    pub rules: Vec<(String, String)>,
    /// TLS blocks (hosts, secret), copied when a canary is derived from this route.
    #[serde(skip)]
    pub tls: Vec<(Vec<String>, Option<String>)>,
    /// Router annotations on this object (name without prefix, value).
    #[serde(skip)]
    pub annotations: Vec<(String, String)>,
}

impl Route {
    /// `ns/name (file, document N)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, document {})",
            self.qualified_name(),
            self.file.display(),
            self.document
        )
    }

    pub(crate) fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Services this route sends traffic to, deduplicated, in order.
    pub fn services(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in &self.backends {
            if let Some(s) = &b.service {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// Something the router would do differently from what the author likely meant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// A stable kebab-case identifier (documented in the README).
    pub code: &'static str,
    pub message: String,
    pub file: PathBuf,
    pub document: usize,
    pub line: usize,
    pub field: String,
}

/// A canary route and the stable routes it splits traffic with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryPair {
    pub canary: Route,
    pub stable: Vec<Route>,
    /// Effective weight (0 when the annotation is absent; `None` when it is not an integer).
    pub weight: Option<u32>,
    pub weight_total: u32,
    pub problems: Vec<Problem>,
}

/// What a router found in a repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    pub router: &'static str,
    pub pairs: Vec<CanaryPair>,
    /// Problems not tied to one canary (stray canary annotations on a stable route).
    pub problems: Vec<Problem>,
    pub skipped: Vec<Skipped>,
}

impl Discovery {
    /// Every problem found: each pair's, then those tied to no canary.
    pub(crate) fn all_problems(&self) -> impl Iterator<Item = &Problem> {
        self.pairs
            .iter()
            .flat_map(|p| &p.problems)
            .chain(&self.problems)
    }
}

/// A traffic router: reads routes from parsed files and knows where the weight lives.
pub trait Router: Sync {
    /// Short name for reports, e.g. `ingress-nginx`.
    fn name(&self) -> &'static str;
    /// A cheap byte test: can this file hold a route? Files that fail it are never parsed.
    fn may_contain_route(&self, bytes: &[u8]) -> bool;
    /// Every route object in one file.
    fn routes(&self, file: &SourceFile) -> Vec<Route>;
    /// Pair canaries with stable routes and report problems.
    fn discover(&self, files: &[SourceFile], skipped: &[Skipped]) -> Discovery;
    /// The edit that sets a canary route's weight (a value; nothing is written).
    fn weight_edit(
        &self,
        file: &SourceFile,
        route: &Route,
        weight: u32,
    ) -> Result<Edit, ManifestError>;
    /// Every edit that sets a canary route's weight. One value for ingress-nginx; an HTTPRoute
    /// split writes the stable's weight too (and `weight` is the canary's percentage there).
    fn weight_edits(
        &self,
        file: &SourceFile,
        route: &Route,
        weight: u32,
    ) -> Result<Vec<Edit>, ManifestError> {
        self.weight_edit(file, route, weight).map(|e| vec![e])
    }
}

/// The router used when none is configured.
pub fn default_router() -> &'static dyn Router {
    &nginx::IngressNginx
}
