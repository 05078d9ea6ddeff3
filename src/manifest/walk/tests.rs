use std::path::{Path, PathBuf};

use crate::manifest::{scan, yaml_files, Repo};

/// Write `files` (path, text) under a new temporary directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn relative(dir: &Path, paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// The walk before it ran on all cores: sequential, siblings sorted by name.
fn sorted_sequential_walk(dir: &Path) -> Vec<PathBuf> {
    ignore::WalkBuilder::new(dir)
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .sort_by_file_name(|a, b| a.cmp(b))
        .build()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
        .filter(|p| super::is_yaml(p))
        .collect()
}

const INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n";

/// Names whose order differs between "sort the paths as strings" and "sort the siblings":
/// `a/` before `a-b` by component, after it by bytes (`/` > `-`).
fn tricky() -> tempfile::TempDir {
    tree(&[
        ("a/z.yaml", INGRESS),
        ("a-b/x.yaml", INGRESS),
        ("a.yaml", INGRESS),
        ("a/b/c.yml", INGRESS),
        ("B.yaml", INGRESS),
        (".hidden/h.yaml", INGRESS),
        (".git/config.yaml", INGRESS),
        ("notes.txt", INGRESS),
        ("ignored/x.yaml", INGRESS),
        ("sub/.gitignore", "skip.yaml\n"),
        ("sub/skip.yaml", INGRESS),
        ("sub/keep.yaml", INGRESS),
        (".gitignore", "ignored/\n"),
    ])
}

#[test]
fn yaml_files_in_the_order_of_a_sorted_walk_with_gitignore_honoured() {
    let dir = tricky();
    let found = yaml_files(dir.path()).unwrap();
    assert_eq!(found, sorted_sequential_walk(dir.path()));
    let rel = relative(dir.path(), &found);
    assert_eq!(
        rel,
        [
            ".hidden/h.yaml",
            "B.yaml",
            "a/b/c.yml",
            "a/z.yaml",
            "a-b/x.yaml",
            "a.yaml",
            "sub/keep.yaml"
        ]
    );
}

#[test]
fn load_filtered_keeps_path_order_for_files_and_skips() {
    let mut files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("d{}/f{i}.yaml", i % 7),
                INGRESS.replace("web", &format!("web-{i}")),
            )
        })
        .collect();
    files.push(("d3/broken.yaml".into(), "kind: Ingress\n  bad: [\n".into()));
    files.push(("d1/other.yaml".into(), "kind: ConfigMap\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let dir = tree(&refs);
    std::fs::write(
        dir.path().join("d0/latin1.yaml"),
        b"kind: Ingress\nx: \xe9\n",
    )
    .unwrap();

    let repo =
        Repo::load_filtered(dir.path(), &|b| crate::manifest::contains(b, b"Ingress")).unwrap();
    let paths: Vec<PathBuf> = repo.files.iter().map(|f| f.path.clone()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(
        paths.len(),
        40,
        "the ConfigMap is filtered out, the rest parse"
    );
    assert!(paths.iter().all(|p| p.is_relative()));
    let skipped: Vec<(String, &str)> = repo
        .skipped
        .iter()
        .map(|s| (s.file.display().to_string(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped[0], ("d0/latin1.yaml".to_string(), "not UTF-8"));
    assert_eq!(skipped[1].0, "d3/broken.yaml");
    assert!(
        skipped[1].1.starts_with("not YAML a parser accepts"),
        "{skipped:?}"
    );
    assert_eq!(skipped.len(), 2);
}

#[test]
fn scan_finds_named_files_and_keeps_manifests_in_one_walk() {
    const WORDS: &[&str] = &["Ingress", "Service", "Deployment"];
    let big = format!("kind: Deployment\n# {}\n", "x".repeat(8 << 10));
    let dir = tree(&[
        (
            "overlays/prod/kustomization.yaml",
            "resources: [../../base]\n",
        ),
        ("base/Kustomization", "resources: [ingress.yaml]\n"),
        ("base/ingress.yaml", INGRESS),
        ("base/config.yaml", "kind: ConfigMap\n"),
        ("vendor/kustomization.yml", "kind: Ingress\n"),
        ("build/kustomization.yaml", ""),
        ("build/ingress.yaml", INGRESS),
        (".gitignore", "build/\n"),
        ("base/big.yaml", &big),
    ]);
    let found = scan(
        dir.path(),
        &["kustomization.yaml", "kustomization.yml", "Kustomization"],
        &|rel, bytes| (rel.to_path_buf(), bytes.map(<[u8]>::to_vec).unwrap()),
        Some(&|b| crate::manifest::contains(b, b"Ingress")),
        WORDS,
    )
    .unwrap();
    // The snapshot: what the walk met and read, and nothing it did not.
    let seen = &found.seen;
    let p = Path::new;
    assert_eq!(seen.is_dir(p("")), Some(true), "the root");
    assert_eq!(seen.is_dir(p("base")), Some(true));
    assert_eq!(seen.is_file(p("base/ingress.yaml")), Some(true));
    assert_eq!(seen.is_dir(p("base/ingress.yaml")), Some(false));
    assert_eq!(seen.is_dir(p("build")), None, "ignored: not walked");
    assert_eq!(seen.is_file(p("base/absent.yaml")), None);
    assert_eq!(seen.text(p("base/ingress.yaml")), Some(INGRESS));
    assert_eq!(seen.text(p("base/config.yaml")), Some("kind: ConfigMap\n"));
    assert_eq!(
        seen.text(p("base/big.yaml")),
        None,
        "large files are not kept"
    );
    assert!(seen.lacks_all(p("base/big.yaml"), &["Ingress", "Service"]));
    assert!(!seen.lacks_all(p("base/big.yaml"), &["Deployment"]));
    assert!(
        !seen.lacks_all(p("base/big.yaml"), &["Unrecorded"]),
        "not known"
    );
    assert!(
        !seen.lacks_all(p("base/config.yaml"), &["Ingress"]),
        "small: read it"
    );
    let named: Vec<_> = found
        .named
        .iter()
        .map(|(p, (rel, text))| {
            assert_eq!(p, rel, "make is given the repository-relative path");
            (
                p.display().to_string(),
                String::from_utf8(text.clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (
                "base/Kustomization".to_string(),
                "resources: [ingress.yaml]\n".to_string()
            ),
            (
                "overlays/prod/kustomization.yaml".into(),
                "resources: [../../base]\n".into()
            ),
            ("vendor/kustomization.yml".into(), "kind: Ingress\n".into()),
        ]
    );
    // A named YAML file that passes the filter is kept too (a Flux Kustomization may be a
    // manifest); ignored files are neither.
    let kept: Vec<_> = found
        .kept
        .iter()
        .map(|(p, b)| (p.display().to_string(), b.as_ref().unwrap().len()))
        .collect();
    assert_eq!(
        kept,
        [
            ("base/ingress.yaml".to_string(), INGRESS.len()),
            ("vendor/kustomization.yml".into(), "kind: Ingress\n".len()),
        ]
    );
    let repo = Repo::from_scanned(dir.path(), found.kept, &|p| !p.starts_with("vendor")).unwrap();
    let files: Vec<_> = repo
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert_eq!(files, ["base/ingress.yaml"]);
    // Without a byte filter only the named files are read.
    let named_only = scan(
        dir.path(),
        &["kustomization.yaml", "kustomization.yml", "Kustomization"],
        &|rel, _| rel.to_path_buf(),
        None,
        WORDS,
    )
    .unwrap();
    assert_eq!(named_only.named.len(), 3);
    assert!(named_only.kept.is_empty());
    // Listed, not read.
    let seen = &named_only.seen;
    assert_eq!(seen.is_file(p("base/ingress.yaml")), Some(true));
    assert_eq!(seen.text(p("base/ingress.yaml")), None);
    assert_eq!(
        seen.text(p("base/Kustomization")),
        Some("resources: [ingress.yaml]\n")
    );
}

#[test]
fn a_missing_directory_is_a_walk_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = yaml_files(&dir.path().join("absent")).unwrap_err();
    assert!(
        matches!(err, crate::manifest::ManifestError::Walk { .. }),
        "{err}"
    );
}

#[test]
fn sorting_by_path_bytes_is_the_order_of_components() {
    let names = [
        "a-b/x", "a/x", "a.b", "a/b/c", "ab", "a", "a/b", "a/-", "a./x", "b", "a/b-c/d", "a/b/c-d",
    ];
    let mut by_bytes: Vec<(PathBuf, ())> = names.iter().map(|n| (PathBuf::from(n), ())).collect();
    super::sort_by_path(&mut by_bytes);
    let mut by_components: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
    by_components.sort();
    let by_bytes: Vec<PathBuf> = by_bytes.into_iter().map(|(p, _)| p).collect();
    assert_eq!(by_bytes, by_components);
}
