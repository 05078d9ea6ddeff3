//! Secrets (forge tokens, SSH key passphrases) as a type that cannot leak by accident.
//!
//! `Token` has a redacted `Debug` and no `Display`, so a token can only reach output through
//! an explicit `expose()` call, which is grep-able. `redact` scrubs known tokens out of any
//! text that leaves the process (error chains from libraries can echo URLs with credentials).

use std::fmt;

/// A credential. Debug prints `Token(***)`; there is deliberately no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// The raw value, for the one place that sends it (an HTTP header, a git credential).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token(s.to_string()))
    }
}

/// Every secret this process knows of (from flags, the environment, remote URLs), registered
/// at start-up before the first line of output, so every writer can scrub them.
static KNOWN: std::sync::Mutex<Vec<Token>> = std::sync::Mutex::new(Vec::new());

/// Remember `token` for [`redact`]; returns false when it was already known or is too short
/// to be a real secret (scrubbing it would garble ordinary words).
pub(crate) fn register(token: &Token) -> bool {
    if token.0.len() < 4 {
        return false;
    }
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if known.contains(token) {
        return false;
    }
    known.push(token.clone());
    true
}

/// The secrets found in a command line and an environment, before any parsing: the values of
/// `--token`/`--prometheus-token` (any flag ending in `token`), of the token variables a
/// CI sets, and the password of any URL with userinfo among the arguments and `GITOPS_CANARY_*`
/// variables. A pure function, so the start-up masking is testable.
pub fn find(args: &[String], env: &[(String, String)]) -> Vec<Token> {
    const VARS: &[&str] = &[
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "GITOPS_CANARY_TOKEN",
        "GITOPS_CANARY_PROMETHEUS_TOKEN",
        "INPUT_TOKEN",
        "INPUT_PROMETHEUS-TOKEN",
    ];
    let mut out: Vec<Token> = Vec::new();
    let mut push = |v: &str| {
        let t = Token::new(v.trim());
        if t.0.len() >= 4 && !out.contains(&t) {
            out.push(t);
        }
    };
    let mut next_is_secret = false;
    for a in args {
        if next_is_secret {
            push(a);
            next_is_secret = false;
            continue;
        }
        if let Some(flag) = a.strip_prefix("--") {
            match flag.split_once('=') {
                Some((name, value)) if is_secret_flag(name) => push(value),
                None if is_secret_flag(flag) => next_is_secret = true,
                _ => {}
            }
        }
        if let Some(p) = url_password(a) {
            push(&p);
        }
    }
    for (k, v) in env {
        if VARS.contains(&k.as_str()) {
            push(v);
        }
        // An SSH key's content (not a path to it).
        if (k == "GITOPS_CANARY_SSH_KEY" || k == "INPUT_SSH-KEY")
            && v.trim_start().starts_with("-----BEGIN")
        {
            push(v);
        }
        if k.starts_with("GITOPS_CANARY_") || k.starts_with("INPUT_") {
            if let Some(p) = url_password(v) {
                push(&p);
            }
        }
    }
    out
}

fn is_secret_flag(name: &str) -> bool {
    name.ends_with("token")
}

/// The password (or lone user, which is how tokens are often written) of `scheme://user:pw@`.
fn url_password(s: &str) -> Option<String> {
    let (_, rest) = s.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    match userinfo.split_once(':') {
        Some((_, pw)) if !pw.is_empty() => Some(pw.to_string()),
        Some(_) => None,
        None => Some(userinfo.to_string()),
    }
}

/// Replace every occurrence of each non-empty token in `text`, and of every registered one,
/// with `***`.
pub(crate) fn redact(text: &str, tokens: &[&Token]) -> String {
    let mut out = text.to_string();
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for t in tokens.iter().copied().chain(known.iter()) {
        // Very short values would scrub ordinary words; real tokens are long.
        if t.0.len() >= 4 {
            out = out.replace(&t.0, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let t = Token::new("ghp_supersecretvalue");
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert!(!format!("{:?}", Some(&t)).contains("supersecret"));
    }

    #[test]
    fn secrets_are_found_in_flags_variables_and_urls() {
        let args: Vec<String> = [
            "run",
            "--token",
            "ghp_flagvalue",
            "--prometheus-token=prom_secret",
            "--remote",
            "https://oauth2:glpat-inurl@gitlab.example/x.git",
            "--ingress",
            "shop/web",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = vec![
            ("GITHUB_TOKEN".to_string(), "ghs_envvalue".to_string()),
            ("HOME".to_string(), "/root".to_string()),
            (
                "GITOPS_CANARY_PROMETHEUS_URL".to_string(),
                "https://user:prompw@prom.example".to_string(),
            ),
        ];
        let found: Vec<String> = find(&args, &env)
            .iter()
            .map(|t| t.expose().to_string())
            .collect();
        assert_eq!(
            found,
            [
                "ghp_flagvalue",
                "prom_secret",
                "glpat-inurl",
                "ghs_envvalue",
                "prompw"
            ]
        );
    }

    #[test]
    fn redact_scrubs_all_occurrences() {
        let t = Token::new("glpat-abcdef");
        let s = redact("https://oauth2:glpat-abcdef@x/ and glpat-abcdef", &[&t]);
        assert_eq!(s, "https://oauth2:***@x/ and ***");
    }
}
