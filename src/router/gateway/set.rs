//! `set-weight --route`: the weights that give the canary a share of each split, the edits
//! that write them, and the one HTTPRoute a selector names (with its canary, for the rollout).

use std::path::Path;

use super::analyze::analyze;
use super::as_router::to_route;
use super::read::http_routes;
use super::{BackendRef, Context, GatewayApi, HttpRoute, RouteCanary, Split, MAX_WEIGHT};
use crate::manifest::{
    self, edit, Edit, EditOutcome, ManifestError, Repo, ScalarKind, Selector, SourceFile,
};
use crate::router::{Problem, Route, Router, Severity};

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

pub(super) fn weight_edit(route: &HttpRoute, rule: usize, b: &BackendRef, value: u32) -> Edit {
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

pub(super) fn cannot(route: &HttpRoute, field: String, reason: String) -> ManifestError {
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
    let mut edits = Vec::new();
    for (split, s, c) in split_weights(rc, pct)? {
        edits.push(weight_edit(&rc.route, split.rule, &split.stable, s));
        edits.push(weight_edit(&rc.route, split.rule, &split.canary, c));
    }
    Ok(edits)
}

/// A canary share asked of `route` is a percentage: at most 100.
pub(crate) fn percent_in_range(route: &HttpRoute, pct: u32) -> Result<(), ManifestError> {
    if pct > 100 {
        return Err(ManifestError::WeightOutOfRange {
            file: route.file.clone(),
            document: route.document,
            field: route.field("spec.rules[].backendRefs[].weight"),
            weight: pct,
            total: 100,
        });
    }
    Ok(())
}

/// The weights that give the canary of `rc` `pct` percent, per split (stable, canary), after
/// the checks `set-weight` makes: a canary, no blocking problem, a split, exact weights.
pub fn split_weights(rc: &RouteCanary, pct: u32) -> Result<Vec<(&Split, u32, u32)>, ManifestError> {
    let route = &rc.route;
    percent_in_range(route, pct)?;
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
    let mut out = Vec::new();
    for split in &rc.splits {
        let (s, c) = new_weights(split, pct).map_err(|reason| {
            cannot(
                route,
                format!("spec.rules[{}].backendRefs", split.rule),
                reason,
            )
        })?;
        out.push((split, s, c));
    }
    Ok(out)
}

impl crate::router::select::Named for HttpRoute {
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
    use crate::router::select::{candidates_named, choose, Unchosen};
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
pub(super) fn load_selected(
    dir: &Path,
    selector: &str,
) -> Result<(Repo, HttpRoute), ManifestError> {
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

pub(crate) fn require_backend(route: &HttpRoute, name: &str) -> Result<(), ManifestError> {
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
    let file = repo
        .file(&route.file)
        .ok_or_else(|| ManifestError::NoRoute {
            selector: selector.to_string(),
            candidates: String::new(),
        })?;
    let outcome = weight_outcome(dir, file, &route, canary_service, pct)?;
    if !dry_run {
        outcome.write(dir)?;
    }
    Ok(outcome)
}

/// The edit of `file` that gives the canary of `route` (read from it) `pct` percent, with the
/// Services and Deployments of the repository at `dir`. Writes nothing.
pub(crate) fn weight_outcome(
    dir: &Path,
    file: &SourceFile,
    route: &HttpRoute,
    canary_service: Option<&str>,
    pct: u32,
) -> Result<EditOutcome, ManifestError> {
    if let Some(c) = canary_service {
        require_backend(route, c)?;
    }
    let ctx = Context::load(dir)?;
    let rc = analyze(route, canary_service, &ctx);
    let edits = weight_edits(&rc, pct)?;
    edit::apply(file, &edits)
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
    selected(&analyze(&route, canary_service, &ctx))
}

/// The canary of an analyzed route as the rollout reads it, or why it has none.
pub(crate) fn selected(rc: &RouteCanary) -> Result<SelectedCanary, ManifestError> {
    let route = &rc.route;
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
        canary: to_route(rc, Some(&canary), true),
        stables: rc
            .stable_service
            .as_deref()
            .map(|s| vec![to_route(rc, Some(s), false)])
            .unwrap_or_default(),
        percent,
    })
}
