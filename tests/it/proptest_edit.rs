//! Property test: canary Ingresses generated in many styles (indentation, quoting, CRLF, BOM,
//! comments, flow maps, key order, missing weight, extra documents, no final newline). Setting
//! a weight changes only the value (or adds one line / one flow entry) and reads back.

use std::path::PathBuf;

use gitops_canary::manifest::{edit, SourceFile};
use gitops_canary::router::{default_router, nginx};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Style {
    indent: usize,
    quote: u8,
    crlf: bool,
    bom: bool,
    trailing: bool,
    comment: bool,
    flow: bool,
    weight: Option<u32>,
    name_first: bool,
    docs_before: usize,
    final_newline: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        1usize..5,
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0u32..=100),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(
            |(
                indent,
                quote,
                crlf,
                bom,
                trailing,
                comment,
                flow,
                weight,
                name_first,
                docs_before,
                final_newline,
            )| Style {
                indent,
                quote,
                crlf,
                bom,
                trailing,
                comment,
                flow,
                weight,
                name_first,
                docs_before,
                final_newline,
            },
        )
}

fn render(s: &Style) -> String {
    let i = " ".repeat(s.indent);
    let q = |v: &str| match s.quote {
        0 => format!("\"{v}\""),
        1 => format!("'{v}'"),
        _ => v.to_string(),
    };
    let mut lines: Vec<String> = Vec::new();
    for d in 0..s.docs_before {
        lines.push(format!(
            "kind: ConfigMap{}",
            if d == 0 { "  # first" } else { "" }
        ));
        lines.push("---".into());
    }
    lines.push("apiVersion: networking.k8s.io/v1".into());
    lines.push("kind: Ingress".into());
    lines.push("metadata:".into());
    let name = format!("{i}name: web-canary");
    if s.name_first {
        lines.push(name.clone());
    }
    let tail = format!(
        "{}{}",
        if s.comment { " # weight" } else { "" },
        if s.trailing { "  " } else { "" }
    );
    if s.flow {
        let mut entries = vec![format!("{}: \"true\"", nginx::CANARY)];
        if let Some(w) = s.weight {
            entries.push(format!("{}: {}", nginx::WEIGHT, q(&w.to_string())));
        }
        lines.push(format!("{i}annotations: {{{}}}{tail}", entries.join(", ")));
    } else {
        lines.push(format!("{i}annotations:"));
        lines.push(format!("{i}{i}# {}: \"99\"", nginx::WEIGHT));
        lines.push(format!("{i}{i}{}: \"true\"", nginx::CANARY));
        if let Some(w) = s.weight {
            lines.push(format!(
                "{i}{i}{}: {}{tail}",
                nginx::WEIGHT,
                q(&w.to_string())
            ));
        }
    }
    if !s.name_first {
        lines.push(name);
    }
    lines.push("spec:".into());
    lines.push(format!("{i}rules:"));
    lines.push(format!("{i}- host: a.example"));
    let eol = if s.crlf { "\r\n" } else { "\n" };
    let mut text = lines.join(eol);
    if s.final_newline {
        text.push_str(eol);
    }
    if s.bom {
        text.insert(0, '\u{feff}');
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn edit_changes_only_the_value(s in style(), new in 0u32..=100) {
        let text = render(&s);
        let file = SourceFile::parse(PathBuf::from("c.yaml"), text.clone()).unwrap();
        let router = default_router();
        let routes = router.routes(&file);
        prop_assert_eq!(routes.len(), 1);
        let edit = router.weight_edit(&file, &routes[0], new).unwrap();
        let out = edit::apply(&file, &[edit]).unwrap();
        let Some((_, after)) = out.changed.first() else {
            // Nothing changed: only when the weight was already `new`, written as a string.
            prop_assert_eq!(s.weight, Some(new));
            prop_assert!(s.quote < 2);
            return Ok(());
        };
        // Bytes outside the change are identical: strip the common prefix and suffix.
        let (a, b) = (text.as_bytes(), after.as_bytes());
        let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let max = a.len().min(b.len()) - pre;
        let suf = a.iter().rev().zip(b.iter().rev()).take(max).take_while(|(x, y)| x == y).count();
        let removed = &text[pre..a.len() - suf];
        let added = &after[pre..b.len() - suf];
        match s.weight {
            Some(old) => {
                // The old value's digits (and maybe its quotes) out, the new ones in.
                prop_assert!(removed.len() <= old.to_string().len() + 2, "removed {:?}", removed);
                prop_assert!(!added.contains('\n') && !removed.contains('\n'));
            }
            None => {
                prop_assert!(removed.is_empty() || s.flow, "removed {:?}", removed);
                let eol_count = added.matches('\n').count();
                prop_assert!(eol_count <= 1, "added {:?}", added);
            }
        }
        // Reads back with the new weight, everything else equal.
        let back = SourceFile::parse(PathBuf::from("c.yaml"), after.clone()).unwrap();
        let r2 = router.routes(&back);
        prop_assert_eq!(r2[0].weight, Some(new));
        prop_assert_eq!(&r2[0].name, &routes[0].name);
        prop_assert_eq!(back.stream.docs.len(), file.stream.docs.len());
        prop_assert_eq!(after.starts_with('\u{feff}'), s.bom);
        prop_assert_eq!(after.contains("\r\n"), s.crlf);
        if s.crlf {
            prop_assert!(!after.replace("\r\n", "").contains('\n'), "a bare LF was added");
        }
    }
}
