//! Unit tests of the ingress-nginx router: reading, pairing, problems and edits.

use super::*;

fn files(docs: &[(&str, &str)]) -> Vec<SourceFile> {
    docs.iter()
        .map(|(p, t)| SourceFile::parse(PathBuf::from(p), t.to_string()).unwrap())
        .collect()
}

fn ingress(ns: &str, name: &str, svc: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n{extra}    x: y\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: a.example\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: {svc}\n            port:\n              number: 80\n"
    )
}

fn canary_ann(w: &str) -> String {
    format!("    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: {w}\n")
}

fn codes(d: &Discovery) -> Vec<&'static str> {
    d.pairs
        .iter()
        .flat_map(|p| p.problems.iter().map(|x| x.code))
        .chain(d.problems.iter().map(|p| p.code))
        .collect()
}

#[test]
fn pairs_across_namespaces() {
    let f = files(&[
        ("stable.yaml", &ingress("shop", "web", "web", "")),
        (
            "canary.yaml",
            &ingress("shop-canary", "web", "web", &canary_ann("\"10\"")),
        ),
    ]);
    let d = IngressNginx.discover(&f, &[]);
    assert_eq!(d.pairs.len(), 1);
    assert_eq!(d.pairs[0].stable[0].namespace.as_deref(), Some("shop"));
    assert_eq!(d.pairs[0].weight, Some(10));
    // Same Service name in another namespace is another Service.
    assert!(codes(&d).is_empty(), "{:?}", codes(&d));
}

#[test]
fn reports_what_ingress_nginx_would_do() {
    let f = files(&[
        (
            "c1.yaml",
            &ingress("shop", "c1", "web", &canary_ann("\"ten\"")),
        ),
        ("c2.yaml", &ingress("shop", "c2", "web2", &canary_ann("5"))),
    ]);
    let d = IngressNginx.discover(&f, &[]);
    let c = codes(&d);
    assert!(c.contains(&"no-stable"));
    assert!(c.contains(&"duplicate-canary"));
    assert!(c.contains(&"weight-not-integer"));
    assert!(c.contains(&"weight-not-string"));
    let f = files(&[
        ("s.yaml", &ingress("shop", "web", "web", "    nginx.ingress.kubernetes.io/canary-weight: \"5\"\n")),
        ("c.yaml", &ingress("shop", "c", "web", &format!("{}    nginx.ingress.kubernetes.io/canary-by-header: X\n    nginx.ingress.kubernetes.io/canary-weight-total: \"50\"\n", canary_ann("\"10\"")))),
    ]);
    let d = IngressNginx.discover(&f, &[]);
    let c = codes(&d);
    for want in [
        "same-service",
        "rules-before-weight",
        "weight-total-ignored",
        "canary-annotation-without-canary",
    ] {
        assert!(c.contains(&want), "{want} missing in {c:?}");
    }
    assert_eq!(d.pairs[0].weight_total, 100);
}

#[test]
fn list_items_are_objects() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata:\n    name: a\n    annotations:\n      nginx.ingress.kubernetes.io/canary: \"true\"\n";
    let f = files(&[("l.yaml", list)]);
    let r = IngressNginx.routes(&f[0]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].item, Some(0));
    let e = IngressNginx.weight_edit(&f[0], &r[0], 20).unwrap();
    assert_eq!(
        e.field(),
        "items[0].metadata.annotations[\"nginx.ingress.kubernetes.io/canary-weight\"]"
    );
}
