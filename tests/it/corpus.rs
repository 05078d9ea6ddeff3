//! Real-world Ingress manifests (`../shared/corpus/ingress/`, sources in its SOURCES.tsv):
//! for every canary, set a new weight and check that the only byte change is the value (or
//! one added line), and that an independent YAML parse (serde-saphyr) of the result equals
//! the original parse with the new weight.

use std::path::{Path, PathBuf};

use gitops_canary::manifest::{edit, SourceFile};
use gitops_canary::router::{default_router, nginx};

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/ingress");
    assert!(
        dir.is_dir(),
        "the corpus must sit beside the checkout at {}",
        dir.display()
    );
    dir
}

/// Byte regions that differ: (old range, new range) after trimming the common prefix/suffix.
fn changed_region(old: &[u8], new: &[u8]) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_suffix = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    (prefix..old.len() - suffix, prefix..new.len() - suffix)
}

fn docs(text: &str) -> Option<Vec<serde_json::Value>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_saphyr::from_multiple::<serde_json::Value>(text).ok()
}

fn set_annotation(doc: &mut serde_json::Value, item: Option<usize>, weight: &str) {
    let obj = match item {
        Some(i) => &mut doc["items"][i],
        None => doc,
    };
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    if ann.is_null() {
        *ann = serde_json::json!({});
    }
    ann[nginx::WEIGHT] = serde_json::Value::String(weight.to_string());
}

#[test]
fn every_corpus_canary_is_edited_byte_exactly() {
    let dir = corpus_dir();
    let router = default_router();
    let mut edited = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let file = SourceFile::parse(PathBuf::from(&name), text.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for route in router.routes(&file).into_iter().filter(|r| r.canary) {
            let new_weight = match route.weight {
                Some(37) => 38,
                _ => 37,
            };
            let e = router
                .weight_edit(&file, &route, new_weight)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let out = edit::apply(&file, &[e]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let new_text = &out.changed[0].1;
            let (old_r, new_r) = changed_region(text.as_bytes(), new_text.as_bytes());
            let old_part = &text[old_r.clone()];
            let new_part = &new_text[new_r.clone()];
            match &route.weight_raw {
                Some(raw) => {
                    // Only the value changed: the old bytes are the old value (with or without
                    // its quotes), the new bytes the new value.
                    assert!(
                        raw.contains(old_part.trim_matches(['"', '\''])),
                        "{name}: changed {old_part:?} -> {new_part:?}"
                    );
                    assert!(
                        new_part
                            .trim_matches(['"', '\''])
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '3' || c == '7'),
                        "{name}: new bytes {new_part:?}"
                    );
                    assert!(!old_part.contains('\n') && !new_part.contains('\n'));
                }
                None => {
                    // One added line (with the file's line ending) and nothing else changed.
                    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
                    let old_lines: Vec<&str> = text.split_inclusive('\n').collect();
                    let new_lines: Vec<&str> = new_text.split_inclusive('\n').collect();
                    assert_eq!(new_lines.len(), old_lines.len() + 1, "{name}");
                    let i = old_lines
                        .iter()
                        .zip(&new_lines)
                        .take_while(|(a, b)| a == b)
                        .count();
                    let added = new_lines[i];
                    let mut rest = new_lines.clone();
                    rest.remove(i);
                    assert_eq!(rest, old_lines, "{name}: more than one line changed");
                    assert!(added.ends_with(eol), "{name}: {added:?}");
                    assert!(
                        added.contains(&format!("{}: \"{new_weight}\"", nginx::WEIGHT)),
                        "{name}: {added:?}"
                    );
                    let _ = (old_r, new_r);
                }
            }
            // Independent parse: the result equals the original with the new weight.
            if let (Some(mut before), Some(after)) = (docs(&text), docs(new_text)) {
                set_annotation(
                    &mut before[route.document - 1],
                    route.item,
                    &new_weight.to_string(),
                );
                assert_eq!(before, after, "{name}: documents differ beyond the weight");
            } else {
                eprintln!("note: {name}: serde-saphyr does not read this file; the built-in guard checked it");
            }
            edited += 1;
        }
    }
    assert!(files >= 30, "only {files} corpus files");
    assert!(edited >= 28, "only {edited} canaries edited");
    eprintln!("edited {edited} canaries in {files} files");
}

#[test]
fn corpus_discovery_pairs_and_problems() {
    let repo = gitops_canary::router::load_repo(&corpus_dir()).unwrap();
    let d = gitops_canary::router::discover(&repo);
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    // The escaped-quotes file writes canary: \"true\" literally, which is not "true": the
    // controller treats that Ingress as a stable one with stray canary annotations.
    assert!(d
        .problems
        .iter()
        .any(|p| p.code == "canary-annotation-without-canary"
            && p.file.ends_with("06-escaped-quotes-1space.yaml")));
    let find = |file: &str| {
        d.pairs
            .iter()
            .find(|p| p.canary.file.to_string_lossy().contains(file))
            .unwrap_or_else(|| panic!("no canary in {file}"))
    };
    // Stable and canary in one file.
    let p = find("01-greenblue");
    assert_eq!(p.weight, Some(20));
    assert_eq!(p.stable.len(), 1);
    // Header rules route before the weight.
    assert!(find("08-header-then-weight")
        .problems
        .iter()
        .any(|p| p.code == "rules-before-weight"));
    // A plain integer weight is flagged (the API wants a string).
    assert!(find("10-v1beta1-unquoted")
        .problems
        .iter()
        .any(|p| p.code == "weight-not-string"));
    // No weight at all.
    assert_eq!(find("16-crlf-no-weight").weight, Some(0));
    assert_eq!(find("33-weight100").weight, Some(100));
}
