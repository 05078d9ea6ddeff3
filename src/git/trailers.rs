//! Commit trailers (`Key: value` lines in a message's last paragraph), as git interprets them.

// Pure helpers

/// The trailers of a commit message: the last paragraph, when the message has more than one and
/// every line of it is `Key: value` (key `[A-Za-z0-9-]+`) or an indented continuation of the
/// previous value. Stricter than git's 25% rule, which is what a tool reading its own trailers
/// wants: a prose paragraph with a colon in it is never taken for trailers.
pub(crate) fn parse_trailers(message: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = message
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.starts_with('#'))
        .collect();
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let lines = &lines[..end];
    let Some(blank) = lines.iter().rposition(|l| l.trim().is_empty()) else {
        return Vec::new();
    };
    if !lines[..blank].iter().any(|l| !l.trim().is_empty()) {
        return Vec::new();
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for line in &lines[blank + 1..] {
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, value)) => {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(line.trim());
                    continue;
                }
                None => return Vec::new(),
            }
        }
        let Some((key, value)) = line.split_once(':') else {
            return Vec::new();
        };
        let key_ok = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !key.starts_with('-');
        if !key_ok || !(value.is_empty() || value.starts_with([' ', '\t'])) {
            return Vec::new();
        }
        out.push((key.to_string(), value.trim().to_string()));
    }
    out
}
