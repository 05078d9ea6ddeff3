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
    pub fn expose(&self) -> &str {
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

/// Replace every occurrence of each non-empty token in `text` with `***`.
pub fn redact(text: &str, tokens: &[&Token]) -> String {
    let mut out = text.to_string();
    for t in tokens {
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
    fn redact_scrubs_all_occurrences() {
        let t = Token::new("glpat-abcdef");
        let s = redact("https://oauth2:glpat-abcdef@x/ and glpat-abcdef", &[&t]);
        assert_eq!(s, "https://oauth2:***@x/ and ***");
    }
}
