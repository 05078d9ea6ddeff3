//! `plan`: every canary Ingress, its stable partners, its weight and its problems.

use crate::report::console;
use std::fmt::Write as _;

use crate::cli::{Output, RepoArgs};
use crate::exit;
use crate::manifest::kustomize::{self, Layout, RootPlan};
use crate::manifest::Repo;
use crate::router::{CanaryPair, Discovery, Problem, Severity};

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
    /// Kustomize roots (absent for a repository without kustomizations): what each renders.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub kustomize_roots: &'a [RootPlan],
}

pub fn run(args: PlanArgs) -> anyhow::Result<u8> {
    let mut repo = Repo::load(&args.repo.repo)?;
    let layout = Layout::discover(&args.repo.repo)?;
    let roots = if layout.is_empty() {
        Vec::new()
    } else {
        // Files a kustomization reads are shown through the roots that render them, never
        // as flat manifests (an overlay's patch is not a stray canary annotation).
        repo.files.retain(|f| !layout.owns(&f.path));
        repo.skipped.retain(|s| !layout.owns(&s.file));
        kustomize::plan(&args.repo.repo, &layout)
    };
    let discovery = repo.discover();
    let root_problems: Vec<&Problem> = roots
        .iter()
        .filter_map(|r| r.discovery.as_ref())
        .flat_map(|d| d.pairs.iter().flat_map(|p| &p.problems).chain(&d.problems))
        .collect();
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
            .chain(root_problems.iter().copied())
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
                kustomize_roots: &roots,
            };
            console::json(&doc)?;
        }
        Output::Human if roots.is_empty() => console::out(&render_human(&discovery)),
        Output::Human => console::out(&render_human_roots(&discovery, &roots)),
    }
    let worst = root_problems
        .iter()
        .map(|p| p.severity)
        .chain(discovery.worst())
        .max();
    Ok(if worst == Some(Severity::Error) {
        let n = discovery
            .pairs
            .iter()
            .flat_map(|pair| &pair.problems)
            .chain(&discovery.problems)
            .chain(root_problems.iter().copied())
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
        write_pair(&mut out, p, None);
    }
    write_problems(&mut out, &d.problems);
    out
}

/// The terminal report of a Kustomize repository: each canary as each root renders it (with
/// the file and line deciding its weight), then the flat manifests' canaries, then problems
/// and the roots that could not be resolved.
pub fn render_human_roots(d: &Discovery, roots: &[RootPlan]) -> String {
    let mut out = String::new();
    let rendered: usize = roots.iter().map(|r| r.canaries.len()).sum();
    let with: usize = roots.iter().filter(|r| !r.canaries.is_empty()).count();
    let n = rendered + d.pairs.len();
    let _ = writeln!(
        out,
        "{} canar{} ({}): {} rendered by {} of {} kustomize root{}",
        n,
        if n == 1 { "y" } else { "ies" },
        d.router,
        rendered,
        with,
        roots.len(),
        if roots.len() == 1 { "" } else { "s" }
    );
    let mut problems: Vec<Problem> = Vec::new();
    for r in roots {
        let Some(rd) = &r.discovery else { continue };
        for p in &rd.pairs {
            write_pair(&mut out, p, Some(r));
        }
        problems.extend(rd.problems.iter().cloned());
    }
    for p in &d.pairs {
        write_pair(&mut out, p, None);
    }
    problems.extend(d.problems.iter().cloned());
    for r in roots {
        if let Some(why) = &r.refused {
            problems.push(Problem {
                severity: Severity::Warning,
                code: "kustomize-unresolved",
                message: format!(
                    "root {} is not shown: {}",
                    kustomize::display_dir(&r.dir),
                    why.reason
                ),
                file: why.file.clone(),
                document: 1,
                line: 1,
                field: String::new(),
            });
        }
    }
    write_problems(&mut out, &problems);
    out
}

fn write_pair(out: &mut String, p: &CanaryPair, root: Option<&RootPlan>) {
    let c = &p.canary;
    let weight = match (&c.weight_raw, p.weight) {
        (_, Some(w)) => format!("{w}/{}", p.weight_total),
        (Some(raw), None) => format!("{raw:?} (invalid)/{}", p.weight_total),
        (None, None) => "-".into(),
    };
    match root {
        None => {
            let _ = writeln!(out, "\n{}  weight {}", c.qualified_name(), weight);
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "\n{}  weight {}  root {}",
                c.qualified_name(),
                weight,
                kustomize::display_dir(&r.dir)
            );
            let decided = r
                .canaries
                .iter()
                .find(|x| x.name == c.name && x.namespace == c.namespace)
                .and_then(|x| x.decided_by.as_ref());
            match decided {
                Some(o) => {
                    let _ = writeln!(
                        out,
                        "  weight  {}:{} ({})",
                        o.file.display(),
                        o.line,
                        kustomize::origin_kind(o.kind)
                    );
                }
                None => {
                    let _ = writeln!(out, "  weight  absent (0)");
                }
            }
        }
    }
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

fn write_problems(out: &mut String, problems: &[Problem]) {
    if !problems.is_empty() {
        let _ = writeln!(out);
    }
    for pr in problems {
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
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}
