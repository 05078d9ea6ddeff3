//! The one door to stdout and stderr for everything a command prints outside a CI reporter:
//! results for a person (plan tables, diffs, stage lists, URLs), warnings and the final
//! `error:`/`help:` lines.
//!
//! Text printed here is full of values from outside (manifest fields, file names, rollback
//! reasons, API error bodies, Kubernetes messages), and a CI log is a command channel: on
//! GitHub Actions a line starting with `::` (after blanks) is a workflow command and `##[` a
//! legacy one; on GitLab an escape sequence can open a section or rewrite the line before it.
//! So every line goes through [`inert`]: known secrets are scrubbed, control characters made
//! visible, a leading `::` defused and `##[` broken up. The rules are the same in every
//! environment (a terminal has escape sequences too), so what a person sees locally is what CI
//! shows. The only lines that may start a command are the reporters' own, built in
//! `report::github`/`report::gitlab` from escaped parts.

use std::io::Write;

use crate::secret::{self, Token};

/// `text` made safe to print as log lines: each line scrubbed of secrets, with control
/// characters shown as `^X`, a line that would start with `::` prefixed with `\`, and `##[`
/// written `# #[`. A trailing newline is kept.
pub(crate) fn inert(text: &str) -> String {
    let text = secret::redact(text, &[]);
    let mut out = String::with_capacity(text.len() + 8);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let shown = super::neutralise(line).replace("##[", "# #[");
        if shown.trim_start().starts_with("::") {
            out.push('\\');
        }
        out.push_str(&shown);
    }
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Print `text` (lines) on stdout, made inert.
pub fn out(text: &str) {
    write(&mut std::io::stdout().lock(), text);
}

/// Print `text` (lines) on stderr, made inert.
pub fn err(text: &str) {
    write(&mut std::io::stderr().lock(), text);
}

/// A JSON document on stdout. serde_json escapes every control character inside strings and
/// a pretty document's lines start with a blank or a bracket, so it cannot hold a command
/// line; only secrets are scrubbed, so the data stays exact.
pub fn json(value: &impl serde::Serialize) -> Result<(), serde_json::Error> {
    let text = serde_json::to_string_pretty(value)?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) is not this tool's failure.
    let _ = writeln!(stdout, "{}", secret::redact(&text, &[]));
    Ok(())
}

fn write(w: &mut dyn Write, text: &str) {
    let mut line = inert(text);
    if !line.ends_with('\n') {
        line.push('\n');
    }
    let _ = w.write_all(line.as_bytes()).and_then(|()| w.flush());
}

/// Mask the secrets in `tokens` before anything else is printed: remember them for
/// [`inert`] and every reporter, and on GitHub Actions tell the runner to mask them in this
/// and every later step's log (`::add-mask::`, the one line that carries a secret in clear).
pub fn mask_first(tokens: &[Token], github_actions: bool) {
    let mut stdout = std::io::stdout().lock();
    for t in tokens {
        if secret::register(t) && github_actions {
            // A multi-line value is masked line by line, as the runner expects.
            for part in t.expose().lines().filter(|l| l.trim().len() >= 4) {
                let _ = stdout.write_all(super::github::add_mask(&Token::new(part)).as_bytes());
            }
        }
    }
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_commands_are_defused() {
        let cases = [
            (
                "yes\n::warning title=X::injected",
                "yes\n\\::warning title=X::injected",
            ),
            ("  ::add-mask::main", "\\  ::add-mask::main"),
            ("a ##[error]b", "a # #[error]b"),
            (
                "\x1b[0Ksection_start:1:x\r\x1b[0K",
                "^[[0Ksection_start:1:x^M^[[0K",
            ),
            ("ok\n", "ok\n"),
            ("plain: text", "plain: text"),
        ];
        for (input, want) in cases {
            assert_eq!(inert(input), want, "{input:?}");
        }
    }

    #[test]
    fn no_line_of_inert_text_starts_a_command() {
        let nasty = "::a\r::b\n\t::c\r\n::stop-commands::x\n\x1b[0Ksection_start:9:s";
        for line in inert(nasty).lines() {
            assert!(!line.trim_start().starts_with("::"), "{line:?}");
            assert!(!line.contains('\x1b'), "{line:?}");
            assert!(!line.contains('\r'), "{line:?}");
        }
    }
}
