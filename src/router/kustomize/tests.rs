use super::*;

#[test]
fn normalizes_paths() {
    assert_eq!(normalize(Path::new("a/b/../c")), Some(PathBuf::from("a/c")));
    assert_eq!(normalize(Path::new("../x")), None);
    assert!(is_remote("github.com/org/repo//base?ref=v1"));
    assert!(is_remote("https://example.com/x.yaml"));
    assert!(!is_remote("../base"));
}
