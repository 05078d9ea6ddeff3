//! Unit tests of Helm values: paths as `--set` writes them, the three forms, refusals, hints.

use super::*;

fn file(text: &str) -> SourceFile {
    SourceFile::parse(PathBuf::from("f.yaml"), text.to_string()).unwrap()
}

fn wf(path: &str) -> WeightFrom {
    WeightFrom {
        file: "f.yaml".into(),
        path: path.into(),
    }
}

fn set(text: &str, path: &str, w: u32) -> Result<String, ManifestError> {
    let f = file(text);
    let e = weight_edit(&f, &wf(path), w)?;
    let out = edit::apply(&f, &[e])?;
    Ok(out
        .changed
        .first()
        .map(|(_, t)| t.clone())
        .unwrap_or(f.text))
}

#[test]
fn paths_parse_like_helm_set() {
    assert_eq!(
        parse_path("a.b\\.c[1].d").unwrap(),
        vec![
            PathSeg::Key("a".into()),
            PathSeg::Key("b.c".into()),
            PathSeg::Index(1),
            PathSeg::Key("d".into())
        ]
    );
    for bad in ["", "a..b", ".a", "a.", "[0]", "a[x]", "a[0]b", "a\\"] {
        assert!(parse_path(bad).is_err(), "{bad}");
    }
    assert!("values.yaml".parse::<WeightFrom>().is_err());
    let w: WeightFrom = "charts/x/values.yaml:canary.weight".parse().unwrap();
    assert_eq!(w.file, PathBuf::from("charts/x/values.yaml"));
    assert_eq!(w.path, "canary.weight");
}

#[test]
fn values_file_keeps_the_type() {
    assert_eq!(
        set("canary:\n  weight: 10 # pct\n", "canary.weight", 25).unwrap(),
        "canary:\n  weight: 25 # pct\n"
    );
    assert_eq!(
        set("canary:\n  weight: '10'\n", "canary.weight", 25).unwrap(),
        "canary:\n  weight: '25'\n"
    );
    assert_eq!(
        set("canary:\n  weight: ten\n", "canary.weight", 25).unwrap(),
        "canary:\n  weight: \"25\"\n"
    );
    assert_eq!(
        set("canary:\n  weight: 0x0a\n", "canary.weight", 25).unwrap(),
        "canary:\n  weight: 25\n"
    );
    let e = set("canary:\n  weight: true\n", "canary.weight", 25).unwrap_err();
    assert!(e.to_string().contains("boolean"), "{e}");
}

#[test]
fn missing_path_names_file_document_and_path() {
    let e = set("a: 1\n", "canary.weight", 25).unwrap_err();
    assert_eq!(
        e.to_string(),
        "f.yaml (document 1): canary.weight: no such value; nothing was written"
    );
    let hr = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: x\nspec:\n  valuesFrom:\n  - kind: ConfigMap\n    name: v\n  values:\n    a: 1\n";
    let e = set(hr, "canary.weight", 25).unwrap_err().to_string();
    assert!(
        e.starts_with("f.yaml (document 1): spec.values.canary.weight: no such value"),
        "{e}"
    );
    assert!(e.contains("valuesFrom"), "{e}");
}

#[test]
fn helm_release_and_application_forms() {
    let hr = "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: r\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: x\nspec:\n  values:\n    canary:\n      weight: 5\n";
    assert!(set(hr, "canary.weight", 50)
        .unwrap()
        .ends_with("      weight: 50\n"));
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  source:\n    helm:\n      parameters:\n      - name: canary.weight\n        value: \"5\"\n      valuesObject:\n        canary:\n          weight: 5\n";
    let out = set(app, "canary.weight", 50).unwrap();
    assert!(
        out.contains("value: \"50\"") && out.contains("weight: 5\n"),
        "{out}"
    );
    let multi = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  sources:\n  - repoURL: x\n    ref: values\n  - chart: c\n    helm:\n      valuesObject: {canary: {weight: 5}}\n";
    assert!(set(multi, "canary.weight", 7)
        .unwrap()
        .contains("{canary: {weight: 7}}"));
}

#[test]
fn values_string_block_is_refused_with_the_reason() {
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  source:\n    helm:\n      values: |\n        canary:\n          weight: 5\n";
    let e = set(app, "canary.weight", 50).unwrap_err().to_string();
    assert!(
        e.contains("spec.source.helm.values") && e.contains("valuesObject"),
        "{e}"
    );
}

#[test]
fn anchors_and_aliases_are_refused() {
    let e = set("w: &w 5\ncanary:\n  weight: *w\n", "canary.weight", 9).unwrap_err();
    assert!(e.to_string().contains("alias"), "{e}");
    let e = set("canary:\n  weight: &w 5\nother: *w\n", "canary.weight", 9).unwrap_err();
    assert!(e.to_string().contains("anchor"), "{e}");
    let e = set("base: &b\n  weight: 5\ncanary: *b\n", "canary.weight", 9).unwrap_err();
    assert!(e.to_string().contains("alias"), "{e}");
}

#[test]
fn template_hints_find_the_values_path() {
    let t = "metadata:\n  annotations:\n    nginx.ingress.kubernetes.io/canary-weight-total: \"100\"\n    nginx.ingress.kubernetes.io/canary-weight: {{ .Values.canary.weight | quote }}\n";
    let h = template_hints(
        Path::new("/nonexistent"),
        Path::new("c/templates/i.yaml"),
        t,
    );
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].line, 4);
    assert_eq!(h[0].path, "canary.weight");
}
