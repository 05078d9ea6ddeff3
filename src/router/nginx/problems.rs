//! The problems the controller would have with a canary and its stable partners: no partner
//! (404), a second canary on one host and path (ignored), header and cookie rules that route
//! before the weight, a weight out of range or not an integer.

use super::{field, PREFIX, WEIGHT, WEIGHT_TOTAL};
use crate::router::{Backend, Problem, Route, Severity};

pub(super) fn problem(
    r: &Route,
    severity: Severity,
    code: &'static str,
    field: String,
    message: String,
) -> Problem {
    let line = if code.starts_with("weight") {
        r.weight_line.unwrap_or(r.line)
    } else {
        r.line
    };
    Problem {
        severity,
        code,
        message,
        file: r.file.clone(),
        document: r.document,
        line,
        field,
    }
}

/// Same host, path and path type (the controller's server + location).
pub(super) fn same_location(a: &Backend, b: &Backend) -> bool {
    a.host == b.host && a.path == b.path && a.path_type == b.path_type
}

pub(super) fn pair_problems(
    canary: &Route,
    stable: &[Route],
    all_canaries: &[&Route],
) -> Vec<Problem> {
    let mut out = Vec::new();
    for b in &canary.backends {
        let where_ = format!("{} {}", b.host.as_deref().unwrap_or("*"), b.path);
        if !stable
            .iter()
            .any(|s| s.backends.iter().any(|sb| same_location(sb, b)))
        {
            out.push(problem(
                canary,
                Severity::Error,
                "no-stable",
                "spec.rules".into(),
                format!("no stable Ingress serves {where_} ({}); ingress-nginx answers 404 for the canary", b.path_type),
            ));
        }
        let first = all_canaries
            .iter()
            .find(|c| c.backends.iter().any(|cb| same_location(cb, b)));
        if let Some(first) = first {
            if first.file != canary.file
                || first.document != canary.document
                || first.item != canary.item
            {
                out.push(problem(
                    canary,
                    Severity::Error,
                    "duplicate-canary",
                    "spec.rules".into(),
                    format!(
                        "{where_} already has the canary {}; ingress-nginx uses only the first and its admission webhook rejects this one",
                        first.describe()
                    ),
                ));
            } else if all_canaries
                .iter()
                .filter(|c| c.backends.iter().any(|cb| same_location(cb, b)))
                .count()
                > 1
            {
                out.push(problem(
                    canary,
                    Severity::Error,
                    "duplicate-canary",
                    "spec.rules".into(),
                    format!("{where_} has more than one canary; ingress-nginx uses only this first one and its admission webhook rejects the others"),
                ));
            }
        }
    }
    for s in stable {
        let shared: Vec<String> = canary
            .services()
            .into_iter()
            .filter(|svc| s.namespace == canary.namespace && s.services().contains(svc))
            .collect();
        if !shared.is_empty() {
            out.push(problem(
                canary,
                Severity::Warning,
                "same-service",
                "spec.rules[].http.paths[].backend".into(),
                format!(
                    "the canary sends traffic to {}, which the stable {} uses too: the split changes nothing",
                    shared.join(", "),
                    s.qualified_name()
                ),
            ));
        }
        if s.class != canary.class {
            out.push(problem(
                canary,
                Severity::Warning,
                "class-mismatch",
                "spec.ingressClassName".into(),
                format!(
                    "the canary's class {:?} differs from the stable {}'s {:?}; another controller may serve one of them",
                    canary.class, s.qualified_name(), s.class
                ),
            ));
        }
    }
    match (&canary.weight_raw, canary.weight) {
        (Some(raw), None) => out.push(problem(
            canary,
            Severity::Error,
            "weight-not-integer",
            field(WEIGHT),
            format!(
                "canary-weight {raw:?} is not a non-negative integer; ingress-nginx ignores it"
            ),
        )),
        (Some(_), Some(w)) if w > canary.weight_total => out.push(problem(
            canary,
            Severity::Error,
            "weight-out-of-range",
            field(WEIGHT),
            format!(
                "canary-weight {w} is above the total {}",
                canary.weight_total
            ),
        )),
        (None, _) => out.push(problem(
            canary,
            Severity::Info,
            "weight-missing",
            field(WEIGHT),
            "no canary-weight: no requests reach the canary by weight (0)".into(),
        )),
        _ => {}
    }
    if canary.weight_raw.is_some() && canary.weight_plain {
        out.push(problem(
            canary,
            Severity::Warning,
            "weight-not-string",
            field(WEIGHT),
            "canary-weight is a YAML integer; annotations are strings and the API server rejects it (gitops-canary writes it quoted)".into(),
        ));
    }
    if let Some((_, raw)) = canary
        .annotations
        .iter()
        .rev()
        .find(|(k, _)| k == "canary-weight-total")
    {
        if raw.parse::<u32>().map_or(true, |t| t < 100) {
            out.push(problem(
                canary,
                Severity::Warning,
                "weight-total-ignored",
                field(WEIGHT_TOTAL),
                format!("canary-weight-total {raw:?} is below 100 or not an integer; ingress-nginx ignores it and uses 100"),
            ));
        }
    }
    if !canary.rules.is_empty() {
        let names: Vec<String> = canary
            .rules
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push(problem(
            canary,
            Severity::Info,
            "rules-before-weight",
            format!("metadata.annotations[\"{PREFIX}canary-by-*\"]"),
            format!(
                "{} route requests before the weight applies",
                names.join(", ")
            ),
        ));
    }
    let ignored: Vec<&str> = canary
        .annotations
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !k.starts_with("canary") && *k != "kubernetes.io/ingress.class")
        .collect();
    if !ignored.is_empty() {
        out.push(problem(
            canary,
            Severity::Info,
            "ignored-on-canary",
            "metadata.annotations".into(),
            format!(
                "ingress-nginx ignores these annotations on a canary (the stable's apply): {}",
                ignored.join(", ")
            ),
        ));
    }
    out
}
