//! `plan`: every canary Ingress, its stable partners, its weight and its problems.

use crate::report::console;
use std::fmt::Write as _;

use crate::cli::{Output, RepoArgs};
use crate::exit;
use crate::manifest::Repo;
use crate::router::{Discovery, Severity};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}

/// The JSON document `plan --output json` prints (documented in the README).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanJson<'a> {
    pub schema_version: u32,
    pub repo: String,
    #[serde(flatten)]
    pub discovery: &'a Discovery,
}

pub fn run(args: PlanArgs) -> anyhow::Result<u8> {
    let repo = Repo::load(&args.repo.repo)?;
    let discovery = repo.discover();
    for s in &discovery.skipped {
        console::err(&format!(
            "warning: skipped {}: {}",
            s.file.display(),
            s.reason
        ));
    }
    // In CI, every error-level problem becomes an annotation on its file and line.
    if let Some(mut rep) = crate::report::ci() {
        let root = &args.repo.repo;
        for p in discovery
            .pairs
            .iter()
            .flat_map(|pair| &pair.problems)
            .chain(&discovery.problems)
            .filter(|p| p.severity == Severity::Error)
        {
            let file = crate::git::path_in_repository(root, &p.file);
            rep.error_at(&file, p.line, 1, &format!("[{}] {}", p.code, p.message))?;
        }
        rep.finish()?;
    }
    match args.repo.output {
        Output::Json => {
            let doc = PlanJson {
                schema_version: 1,
                repo: args.repo.repo.display().to_string(),
                discovery: &discovery,
            };
            console::json(&doc)?;
        }
        Output::Human => console::out(&render_human(&discovery)),
    }
    Ok(if discovery.worst() == Some(Severity::Error) {
        let n = discovery
            .pairs
            .iter()
            .flat_map(|pair| &pair.problems)
            .chain(&discovery.problems)
            .filter(|p| p.severity == Severity::Error)
            .count();
        console::err(&format!(
            "error: {n} error-level problem{} in {}",
            if n == 1 { "" } else { "s" },
            args.repo.repo.display()
        ));
        exit::FAILED
    } else {
        exit::OK
    })
}

/// The terminal report: one block per canary pair, then stray problems.
pub fn render_human(d: &Discovery) -> String {
    let mut out = String::new();
    let n = d.pairs.len();
    let _ = writeln!(
        out,
        "{} canar{} ({})",
        n,
        if n == 1 { "y" } else { "ies" },
        d.router
    );
    for p in &d.pairs {
        let c = &p.canary;
        let weight = match (&c.weight_raw, p.weight) {
            (_, Some(w)) => format!("{w}/{}", p.weight_total),
            (Some(raw), None) => format!("{raw:?} (invalid)/{}", p.weight_total),
            (None, None) => "-".into(),
        };
        let _ = writeln!(out, "\n{}  weight {}", c.qualified_name(), weight);
        let _ = writeln!(
            out,
            "  canary  {}:{} (document {})  service {}",
            c.file.display(),
            c.line,
            c.document,
            c.services().join(", ")
        );
        if p.stable.is_empty() {
            let _ = writeln!(out, "  stable  none");
        }
        for s in &p.stable {
            let _ = writeln!(
                out,
                "  stable  {} {}:{} (document {})  service {}",
                s.qualified_name(),
                s.file.display(),
                s.line,
                s.document,
                s.services().join(", ")
            );
        }
        for b in &c.backends {
            let _ = writeln!(
                out,
                "  route   {}{} ({})",
                b.host.as_deref().unwrap_or("*"),
                b.path,
                b.path_type
            );
        }
        for (k, v) in &c.rules {
            let _ = writeln!(out, "  rule    {k}={v}");
        }
        for pr in &p.problems {
            let _ = writeln!(
                out,
                "  {:<7} [{}] {}",
                severity(pr.severity),
                pr.code,
                pr.message
            );
        }
    }
    if !d.problems.is_empty() {
        let _ = writeln!(out);
    }
    for pr in &d.problems {
        let _ = writeln!(
            out,
            "{} {}:{} [{}] {}",
            severity(pr.severity),
            pr.file.display(),
            pr.line,
            pr.code,
            pr.message
        );
    }
    out
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}
