//! Unit tests of the Gateway API router: canary by convention, weights scaled and written,
//! problems, and the `Router` trait's pairs.

use super::*;
use crate::manifest::{edit, ManifestError};
use crate::router::Router;

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
