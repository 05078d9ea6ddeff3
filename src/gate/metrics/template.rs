//! Rendering a query template: `{{ name }}` placeholders filled from [`Vars`], every unknown
//! name reported at once.

use std::collections::BTreeSet;

use super::Vars;

/// A template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder(s) {} in query template {template:?} (known: {{{{namespace}}}} {{{{ingress}}}} {{{{route}}}} {{{{service}}}} {{{{interval}}}})", names.iter().map(|n| format!("{{{{{n}}}}}")).collect::<Vec<_>>().join(" "))]
    Unknown {
        template: String,
        names: Vec<String>,
    },
    #[error("unclosed '{{{{' at byte {at} in query template {template:?}")]
    Unclosed { template: String, at: usize },
}

/// Substitute the placeholders (`{{ name }}`, spaces allowed). All unknown names are reported at
/// once so a user fixes a template in one go.
pub fn render(template: &str, vars: &Vars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut unknown = BTreeSet::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::Unclosed {
                template: template.to_string(),
                at: offset + open,
            });
        };
        let name = after[..close].trim();
        match name {
            "namespace" => out.push_str(&vars.namespace),
            "ingress" | "route" => out.push_str(&vars.ingress),
            "service" => out.push_str(&vars.service),
            "interval" => out.push_str(&vars.interval),
            other => {
                unknown.insert(other.to_string());
            }
        }
        let consumed = open + 2 + close + 2;
        rest = &rest[consumed..];
        offset += consumed;
    }
    out.push_str(rest);
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(TemplateError::Unknown {
            template: template.to_string(),
            names: unknown.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vars() -> Vars {
        Vars::new("shop", "web", "web-canary", Duration::from_secs(60))
    }

    #[test]
    fn render_substitutes_all_placeholders() {
        let s = render(
            "a{{namespace}}b{{ ingress }}c{{service}}d[{{interval}}]",
            &vars(),
        );
        assert_eq!(s.as_deref(), Ok("ashopbwebcweb-canaryd[60s]"));
    }

    #[test]
    fn render_names_every_unknown_placeholder() {
        let err = render("{{namespace}} {{pod}} {{ version }} {{pod}}", &vars()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Unknown {
                template: "{{namespace}} {{pod}} {{ version }} {{pod}}".into(),
                names: vec!["pod".into(), "version".into()],
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("{{pod}} {{version}}"), "{msg}");
    }

    #[test]
    fn render_rejects_unclosed() {
        let err = render("up{x=\"{{namespace\"}", &vars()).unwrap_err();
        assert!(
            matches!(err, TemplateError::Unclosed { at: 6, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn render_keeps_promql_braces() {
        let s = render("sum(x{a=\"b\"}) by (le)", &vars()).unwrap();
        assert_eq!(s, "sum(x{a=\"b\"}) by (le)");
    }
}
