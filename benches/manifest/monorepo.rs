//! The generated monorepos the manifest benchmark times: a flat one (every app one file) and a
//! Kustomize one (every app a base and three overlays), both of about 20,000 YAML files. Each
//! is written once under the target directory and reused while its marker says it is complete.

use std::fmt::Write as _;
use std::path::Path;

/// The overlays of every Kustomize app, with the canary weight each one patches in.
pub const OVERLAYS: [(&str, u32); 3] = [("staging", 50), ("prod", 5), ("canary", 20)];

/// `apiVersion`, `kind`, `metadata.name` and, when given, `metadata.namespace`.
fn header(out: &mut String, api: &str, kind: &str, name: &str, ns: Option<&str>) {
    let _ = write!(
        out,
        "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n"
    );
    if let Some(ns) = ns {
        let _ = writeln!(out, "  namespace: {ns}");
    }
}

fn deployment(out: &mut String, ns: Option<&str>, name: &str, i: usize) {
    header(out, "apps/v1", "Deployment", name, ns);
    let image = match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    let _ = write!(
        out,
        "  labels:\n    app: {name}\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: main\n          image: registry.example.com/{image}:1.{i}.0\n          env:\n"
    );
    for e in 0..50 {
        let _ = writeln!(out, "            - name: SETTING_{e}\n              value: \"value-{i}-{e}-lorem-ipsum-dolor-sit-amet\"");
    }
    out.push_str("          resources:\n            limits: {cpu: 500m, memory: 256Mi}\n");
}

fn service(out: &mut String, ns: Option<&str>, name: &str) {
    header(out, "v1", "Service", name, ns);
    let _ = write!(
        out,
        "spec:\n  selector:\n    app: {name}\n  ports:\n    - port: 80\n      targetPort: 8080\n"
    );
}

fn config_map(out: &mut String, ns: Option<&str>, name: &str, i: usize) {
    header(out, "v1", "ConfigMap", &format!("{name}-config"), ns);
    out.push_str("data:\n");
    for e in 0..80 {
        let _ = writeln!(
            out,
            "  key_{e}: \"config value {i} {e} with some text to make the file realistic\""
        );
    }
}

fn ingress(
    out: &mut String,
    ns: Option<&str>,
    name: &str,
    svc: &str,
    host: &str,
    canary: Option<u32>,
) {
    header(out, "networking.k8s.io/v1", "Ingress", name, ns);
    out.push_str("  annotations:\n");
    match canary {
        Some(w) => {
            let _ = write!(out, "    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"{w}\"\n");
        }
        None => out.push_str("    nginx.ingress.kubernetes.io/proxy-body-size: 8m\n"),
    }
    let _ = write!(out, "spec:\n  ingressClassName: nginx\n  rules:\n    - host: {host}\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: {svc}\n                port:\n                  number: 80\n");
}

/// The byte count of a finished tree (from its marker file); else the tree is removed and the
/// error is the marker to write once it has been written again.
fn reuse(root: &Path, files: usize) -> Result<u64, std::path::PathBuf> {
    let marker = root.join(format!(".generated-{files}"));
    match std::fs::read_to_string(&marker)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(bytes) => Ok(bytes),
        None => {
            let _ = std::fs::remove_dir_all(root);
            Err(marker)
        }
    }
}

fn write(path: &Path, text: &str, bytes: &mut u64) {
    std::fs::create_dir_all(path.parent().expect("a file under the root")).unwrap();
    std::fs::write(path, text).unwrap();
    *bytes += text.len() as u64;
}

/// Canary pairs in a tree of `files` files.
pub fn canaries(files: usize) -> usize {
    200.min(files / 100)
}

/// The flat monorepo: `files` files, one per app directory (Deployments with Services,
/// ConfigMaps, Ingresses), the first `canaries` apps stable Ingresses and the next as many
/// their canaries. Returns the bytes written.
pub fn flat(root: &Path, files: usize) -> u64 {
    let marker = match reuse(root, files) {
        Ok(bytes) => return bytes,
        Err(marker) => marker,
    };
    let pairs = canaries(files);
    let mut bytes = 0u64;
    let mut text = String::with_capacity(16 << 10);
    for i in 0..files {
        let team = format!("team-{}", i % 500);
        let ns = Some(team.as_str());
        let dir = root.join(&team).join(format!("app-{i}"));
        text.clear();
        let name = format!("app-{i}");
        let host = format!("{name}.example.com");
        let file = if i < pairs {
            ingress(&mut text, ns, &name, &name, &host, None);
            "ingress.yaml"
        } else if i < 2 * pairs {
            let j = i - pairs;
            let stable = format!("app-{j}");
            ingress(
                &mut text,
                Some(&format!("team-{}", j % 500)),
                &format!("{stable}-canary"),
                &format!("{stable}-canary"),
                &format!("{stable}.example.com"),
                Some(10),
            );
            "canary-ingress.yaml"
        } else {
            match i % 10 {
                0 => {
                    ingress(&mut text, ns, &name, &name, &host, None);
                    "ingress.yaml"
                }
                1..=4 => {
                    deployment(&mut text, ns, &name, i);
                    text.push_str("---\n");
                    service(&mut text, ns, &name);
                    "deploy.yaml"
                }
                _ => {
                    config_map(&mut text, ns, &name, i);
                    "config.yaml"
                }
            }
        };
        write(&dir.join(file), &text, &mut bytes);
    }
    std::fs::write(&marker, bytes.to_string()).unwrap();
    bytes
}

/// The directory of Kustomize app `a`, relative to the root.
pub fn app_dir(a: usize) -> String {
    format!("team-{}/app-{a}", a % 50)
}

/// The Kustomize monorepo: apps of ten files (a base with a Deployment and Service, a
/// ConfigMap and an Ingress; overlays staging, prod and canary, each a kustomization setting
/// the namespace and one patch). The first `canaries` apps also have a canary Ingress in the
/// base (weight "0") that every overlay patches to its own weight, as real layouts do; the
/// other apps' overlays patch the Deployment's replicas. Returns the bytes written.
pub fn kustomize(root: &Path, files: usize) -> u64 {
    let marker = match reuse(root, files) {
        Ok(bytes) => return bytes,
        Err(marker) => marker,
    };
    let pairs = canaries(files);
    let apps = files.saturating_sub(pairs) / 10;
    let mut bytes = 0u64;
    let mut text = String::with_capacity(16 << 10);
    for a in 0..apps {
        let dir = root.join(app_dir(a));
        let base = dir.join("base");
        let name = format!("app-{a}");
        let canary = a < pairs;
        text.clear();
        deployment(&mut text, None, &name, a);
        text.push_str("---\n");
        service(&mut text, None, &name);
        write(&base.join("deploy.yaml"), &text, &mut bytes);
        text.clear();
        config_map(&mut text, None, &name, a);
        write(&base.join("config.yaml"), &text, &mut bytes);
        text.clear();
        let host = format!("{name}.example.com");
        ingress(&mut text, None, &name, &name, &host, None);
        write(&base.join("ingress.yaml"), &text, &mut bytes);
        text.clear();
        text.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deploy.yaml\n  - config.yaml\n  - ingress.yaml\n");
        if canary {
            text.push_str("  - canary.yaml\n");
        }
        write(&base.join("kustomization.yaml"), &text, &mut bytes);
        if canary {
            text.clear();
            let c = format!("{name}-canary");
            ingress(&mut text, None, &c, &c, &host, Some(0));
            write(&base.join("canary.yaml"), &text, &mut bytes);
        }
        for (env, weight) in OVERLAYS {
            let o = dir.join("overlays").join(env);
            text.clear();
            let _ = write!(text, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: team-{}-{env}\nresources:\n  - ../../base\npatches:\n  - path: patch.yaml\n", a % 50);
            write(&o.join("kustomization.yaml"), &text, &mut bytes);
            text.clear();
            if canary {
                header(
                    &mut text,
                    "networking.k8s.io/v1",
                    "Ingress",
                    &format!("{name}-canary"),
                    None,
                );
                let _ = write!(
                    text,
                    "  annotations:\n    nginx.ingress.kubernetes.io/canary-weight: \"{weight}\"\n"
                );
            } else {
                let replicas = if env == "prod" { 6 } else { 1 };
                header(&mut text, "apps/v1", "Deployment", &name, None);
                let _ = write!(text, "spec:\n  replicas: {replicas}\n");
            }
            write(&o.join("patch.yaml"), &text, &mut bytes);
        }
    }
    std::fs::write(&marker, bytes.to_string()).unwrap();
    bytes
}
