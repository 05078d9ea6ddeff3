//! One HTTPRoute looked at: which backendRef is the canary (named, else by convention),
//! which rules split between it and the stable, which send it a subset of the requests by
//! match, and what the gateway would do differently from what the author likely meant.

use std::path::Path;

use super::read::{http_routes, unknown_versions};
use super::{
    BackendRef, Context, GatewayApi, GatewayDiscovery, HttpRoute, RouteCanary, Rule, Split,
    SubsetRule, CANARY_SUFFIX,
};
use crate::manifest::{ManifestError, Repo, Skipped, SourceFile};
use crate::router::{Problem, Router, Severity};

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

impl RouteCanary {
    /// A route worth listing: it has a canary, or a rule splitting between backends.
    pub(crate) fn is_listed(&self) -> bool {
        self.canary_service.is_some()
            || self
                .problems
                .iter()
                .any(|p| p.code == "canary-unknown" || p.code == "canary-ambiguous")
    }
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
            if rc.is_listed() {
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
    discover_loaded(dir, &repo, canary_service)
}

/// [`discover_repo`] over files already loaded (those that may hold an HTTPRoute).
pub(crate) fn discover_loaded(
    dir: &Path,
    repo: &Repo,
    canary_service: Option<&str>,
) -> Result<GatewayDiscovery, ManifestError> {
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
