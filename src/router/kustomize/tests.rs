//! Unit tests of the Kustomize renderer: paths, and the origins of HTTPRoute weights through
//! resources, strategic-merge and JSON 6902 patches (insertions and removals shift them).

use super::*;

#[test]
fn normalizes_paths() {
    assert_eq!(normalize(Path::new("a/b/../c")), Some(PathBuf::from("a/c")));
    assert_eq!(normalize(Path::new("../x")), None);
    assert!(is_remote("github.com/org/repo//base?ref=v1"));
    assert!(is_remote("https://example.com/x.yaml"));
    assert!(!is_remote("../base"));
}

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  rules:
  - backendRefs:
    - name: web
      weight: 90
    - name: web-canary
      weight: 10
";

fn write_file(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The one rendered object of `overlay/` over a base holding `ROUTE`, and the line and file
/// of each tracked value's origin.
fn render_with(overlay: &str, files: &[(&str, &str)]) -> (Obj, Vec<(String, String, usize)>) {
    let tmp = tempfile::tempdir().unwrap();
    let write = |p: &str, t: &str| write_file(tmp.path(), p, t);
    write("base/route.yaml", ROUTE);
    write("base/kustomization.yaml", "resources:\n- route.yaml\n");
    write(
        "overlay/kustomization.yaml",
        &format!("resources:\n- ../base\n{overlay}"),
    );
    for (p, t) in files {
        write(p, t);
    }
    let no = BTreeMap::new();
    let fs = Fs {
        root: tmp.path(),
        overrides: &no,
        seen: None,
    };
    let mut objs = render_kinds(fs, Path::new("overlay"), &HTTPROUTE_KINDS).unwrap();
    let obj = objs.remove(0);
    let origins = obj
        .origins
        .iter()
        .map(|(k, o)| (k.join("/"), o.file.display().to_string(), o.line))
        .collect();
    (obj, origins)
}

fn origin_of<'a>(origins: &'a [(String, String, usize)], at: &str) -> Option<(&'a str, usize)> {
    origins
        .iter()
        .find(|(k, _, _)| k == at)
        .map(|(_, f, l)| (f.as_str(), *l))
}

#[test]
fn resource_weights_and_backend_refs_are_tracked() {
    let (_, o) = render_with("", &[]);
    let w1 = "spec/rules/0/backendRefs/1/weight";
    assert_eq!(origin_of(&o, w1), Some(("base/route.yaml", 11)));
    assert_eq!(
        origin_of(&o, "spec/rules/0/backendRefs/1"),
        Some(("base/route.yaml", 10))
    );
    assert_eq!(origin_of(&o, "spec/rules/0"), Some(("base/route.yaml", 7)));
    assert_eq!(o.len(), 5);
}

#[test]
fn a_strategic_merge_replaces_the_rules_and_their_origins() {
    let patch = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  rules:
  - backendRefs:
    - name: web-canary
";
    let (obj, o) = render_with("patches:\n- path: p.yaml\n", &[("overlay/p.yaml", patch)]);
    assert_eq!(
        obj.value["spec"]["rules"][0]["backendRefs"],
        serde_json::json!([{"name": "web-canary"}])
    );
    // The base's weights are gone with the list; the patch's backendRef has none.
    assert_eq!(
        origin_of(&o, "spec/rules/0/backendRefs/0"),
        Some(("overlay/p.yaml", 8))
    );
    assert_eq!(origin_of(&o, "spec/rules/0/backendRefs/0/weight"), None);
    assert_eq!(origin_of(&o, "spec/rules/0/backendRefs/1"), None);
}

#[test]
fn json6902_insertions_and_removals_shift_origins() {
    let ops = "patches:
- target:
    kind: HTTPRoute
  patch: |-
    - op: add
      path: /spec/rules/0/backendRefs/0
      value: {name: first, weight: 1}
    - op: remove
      path: /spec/rules/0/backendRefs/2
    - op: replace
      path: /spec/rules/0/backendRefs/1/weight
      value: 5
";
    let (obj, o) = render_with(ops, &[]);
    let names: Vec<&str> = obj.value["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "web"]);
    let k = "overlay/kustomization.yaml";
    assert_eq!(
        origin_of(&o, "spec/rules/0/backendRefs/0/weight"),
        Some((k, 9))
    );
    assert_eq!(
        origin_of(&o, "spec/rules/0/backendRefs/1/weight"),
        Some((k, 14))
    );
    // `web` moved from 0 to 1: its entry is still the base's.
    assert_eq!(
        origin_of(&o, "spec/rules/0/backendRefs/1"),
        Some(("base/route.yaml", 8))
    );
    assert_eq!(origin_of(&o, "spec/rules/0/backendRefs/2"), None);
}

#[test]
fn a_moved_weight_has_no_place_to_edit() {
    let ops = "patches:
- target:
    kind: HTTPRoute
  patch: |-
    - op: move
      from: /spec/rules/0/backendRefs/0/weight
      path: /spec/rules/0/backendRefs/1/weight
";
    let (obj, _) = render_with(ops, &[]);
    let moved = &obj.origins[&backend_ref(0, 1, true)];
    assert!(moved.loc.is_none());
    assert!(!obj.origins.contains_key(&backend_ref(0, 0, true)));
}

/// Regression: a rendered value YAML does not allow raw (a DEL, written `"\x7f"` in the
/// source) made the rendering's text unparsable, and the root silently rendered no canary.
#[test]
fn a_value_yaml_forbids_raw_still_renders_the_canary() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |p: &str, t: &str| write_file(tmp.path(), p, t);
    let ingress = |name: &str, canary: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n{canary}    note: \"odd\\x7fvalue\"\nspec:\n  rules:\n  - host: shop.example.com\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {{name: {name}, port: {{number: 80}}}}\n"
        )
    };
    write("app/stable.yaml", &ingress("shop", ""));
    write(
        "app/canary.yaml",
        &ingress(
            "shop-canary",
            "    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"10\"\n",
        ),
    );
    write(
        "app/kustomization.yaml",
        "resources:\n- stable.yaml\n- canary.yaml\n",
    );
    let layout = Layout::discover(tmp.path()).unwrap();
    let plans = plan(tmp.path(), &layout);
    assert_eq!(plans.len(), 1);
    let names: Vec<&str> = plans[0].canaries.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["shop-canary"]);
    let d = plans[0].discovery.as_ref().unwrap();
    assert_eq!(d.pairs.len(), 1, "{d:?}");
}

/// Regression: a resource whose kind is written with an escape (`"Ingr\x65ss"`) was skipped
/// unread (its bytes never say `Ingress`), so the root rendered no canary. A backslash now
/// makes the file worth reading; the walk's snapshot keeps the same rule for large files.
#[test]
fn a_kind_written_with_an_escape_is_still_rendered() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |p: &str, t: &str| write_file(tmp.path(), p, t);
    let ingress = |kind: &str, name: &str, canary: &str, pad: usize| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations:\n{canary}    pad: \"{}\"\nspec:\n  rules:\n  - host: shop.example.com\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service: {{name: {name}, port: {{number: 80}}}}\n",
            "x".repeat(pad)
        )
    };
    let canary = "    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"10\"\n";
    write("app/stable.yaml", &ingress("Ingress", "shop", "", 0));
    // Small (kept whole by the walk) and large (only its words recorded): both read.
    write(
        "app/canary.yaml",
        &ingress("\"Ingr\\x65ss\"", "shop-canary", canary, 0),
    );
    write(
        "app/big.yaml",
        &ingress("\"\\u0049ngress\"", "big-canary", canary, 8 << 10),
    );
    write(
        "app/kustomization.yaml",
        "resources:\n- stable.yaml\n- canary.yaml\n- big.yaml\n",
    );
    // As `plan` walks: every YAML file read, so the renderings read through the snapshot.
    let (layout, _) = Layout::discover_with(tmp.path(), &|_| true).unwrap();
    let plans = plan(tmp.path(), &layout);
    let mut names: Vec<&str> = plans[0].canaries.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["big-canary", "shop-canary"]);
}
