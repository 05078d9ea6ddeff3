//! A canary Ingress derived from a stable one (`init-canary`), as YAML text in the stable's
//! line endings.

use super::{CANARY, WEIGHT};
use crate::router::Route;

/// A YAML scalar for a name-like string: plain where that reads back as the same string.
fn scalar(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./*".contains(c))
        && !v.starts_with(['-', '.', '*'])
        && v.parse::<f64>().is_err()
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        );
    if plain {
        v.to_string()
    } else {
        serde_json::to_string(v).unwrap_or_else(|_| format!("\"{v}\""))
    }
}

/// A canary Ingress for `stable` (networking.k8s.io/v1): same class, hosts, paths, path types
/// and TLS; every backend replaced by `service` on the stable's port; `canary: "true"` and the
/// weight; no other nginx annotations, since ingress-nginx ignores them on a canary.
pub fn canary_manifest(
    stable: &Route,
    name: &str,
    namespace: Option<&str>,
    service: &str,
    weight: u32,
    eol: &str,
) -> String {
    let mut l: Vec<String> = vec![
        "apiVersion: networking.k8s.io/v1".into(),
        "kind: Ingress".into(),
        "metadata:".into(),
        format!("  name: {}", scalar(name)),
    ];
    if let Some(ns) = namespace {
        l.push(format!("  namespace: {}", scalar(ns)));
    }
    l.push("  annotations:".into());
    let legacy_class = stable
        .annotations
        .iter()
        .rev()
        .find(|(k, _)| k == "kubernetes.io/ingress.class");
    if let Some((_, class)) = legacy_class {
        l.push(format!(
            "    kubernetes.io/ingress.class: {}",
            serde_json::to_string(class).unwrap_or_default()
        ));
    }
    l.push(format!("    {CANARY}: \"true\""));
    l.push(format!("    {WEIGHT}: \"{weight}\""));
    l.push("spec:".into());
    if let (Some(class), None) = (&stable.class, legacy_class) {
        l.push(format!("  ingressClassName: {}", scalar(class)));
    }
    if !stable.tls.is_empty() {
        l.push("  tls:".into());
        for (hosts, secret) in &stable.tls {
            l.push("  - hosts:".into());
            for h in hosts {
                l.push(format!("    - {}", scalar(h)));
            }
            if let Some(sec) = secret {
                l.push(format!("    secretName: {}", scalar(sec)));
            }
        }
    }
    l.push("  rules:".into());
    let mut hosts: Vec<Option<&String>> = Vec::new();
    for b in &stable.backends {
        if !hosts.contains(&b.host.as_ref()) {
            hosts.push(b.host.as_ref());
        }
    }
    for host in hosts {
        match host {
            Some(h) => {
                l.push(format!("  - host: {}", scalar(h)));
                l.push("    http:".into());
            }
            None => l.push("  - http:".into()),
        }
        l.push("      paths:".into());
        for b in stable.backends.iter().filter(|b| b.host.as_ref() == host) {
            l.push(format!("      - path: {}", scalar(&b.path)));
            l.push(format!("        pathType: {}", scalar(&b.path_type)));
            l.push("        backend:".into());
            l.push("          service:".into());
            l.push(format!("            name: {}", scalar(service)));
            match &b.port {
                Some(p) if p.parse::<u16>().is_ok() => {
                    l.push("            port:".into());
                    l.push(format!("              number: {p}"));
                }
                Some(p) => {
                    l.push("            port:".into());
                    l.push(format!("              name: {}", scalar(p)));
                }
                None => {}
            }
        }
    }
    let mut out = l.join(eol);
    out.push_str(eol);
    out
}
