//! Readers for what CI systems read from a job, written from their documented rules, so
//! tests check reports the way the runner would rather than by comparing strings.
//!
//! - GitHub file commands (`$GITHUB_OUTPUT`): per line, `key=value`, or `key<<DELIM`
//!   followed by value lines up to a line equal to `DELIM` (the form whose `=` comes first
//!   wins); a missing delimiter is an error.
//! - GitHub workflow commands: `::name k=v,k2=v2::data` after leading blanks; data unescapes
//!   `%0D`, `%0A`, `%25`; property values also `%3A`, `%2C`.
//! - GitLab dotenv reports: `KEY=VALUE` lines, keys of ASCII letters, digits and `_`; no
//!   blank lines, no comments; quotes are kept as part of the value.

use std::collections::BTreeMap;

pub fn parse_github_file_command(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].strip_suffix('\r').unwrap_or(lines[i]);
        i += 1;
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                let (k, v) = (&line[..e], &line[e + 1..]);
                if k.is_empty() {
                    return Err(format!("empty key in {line:?}"));
                }
                out.insert(k.to_string(), v.to_string());
            }
            (_, Some(h)) => {
                let (k, delim) = (&line[..h], &line[h + 2..]);
                if k.is_empty() || delim.is_empty() {
                    return Err(format!("bad heredoc start {line:?}"));
                }
                let mut value = Vec::new();
                loop {
                    let Some(l) = lines.get(i) else {
                        return Err(format!("no closing {delim:?} for {k}"));
                    };
                    i += 1;
                    let l = l.strip_suffix('\r').unwrap_or(l);
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                out.insert(k.to_string(), value.join("\n"));
            }
            _ => return Err(format!("neither key=value nor heredoc: {line:?}")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowCommand {
    pub name: String,
    pub properties: BTreeMap<String, String>,
    pub data: String,
}

fn unescape_data(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

fn unescape_property(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

/// `Some` when the runner would take `line` as a workflow command.
pub fn parse_workflow_command(line: &str) -> Option<WorkflowCommand> {
    let rest = line.trim_start().strip_prefix("::")?;
    let end = rest.find("::")?;
    let (head, data) = (&rest[..end], &rest[end + 2..]);
    let (name, props) = match head.split_once(' ') {
        Some((n, p)) => (n, p),
        None => (head, ""),
    };
    if name.is_empty() {
        return None;
    }
    let mut properties = BTreeMap::new();
    for p in props.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=')?;
        properties.insert(k.to_string(), unescape_property(v));
    }
    Some(WorkflowCommand {
        name: name.to_string(),
        properties,
        data: unescape_data(data),
    })
}

/// Every command in a log, in order.
pub fn workflow_commands(log: &str) -> Vec<WorkflowCommand> {
    log.lines().filter_map(parse_workflow_command).collect()
}

pub fn parse_gitlab_dotenv(text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.len() >= 5 * 1024 {
        return Err(format!("{} bytes: GitLab takes less than 5 KB", text.len()));
    }
    let mut out = BTreeMap::new();
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        if line.is_empty() || line.starts_with('#') {
            return Err(format!("blank line or comment: {line:?}"));
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("no `=`: {line:?}"))?;
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad key {k:?}"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
