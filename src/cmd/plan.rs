//! `plan`: every canary Ingress, its stable partners, its weight and its problems; then every
//! HTTPRoute with a canary backend, its splits, its header/query rules and its problems.

use crate::report::console;
use std::fmt::Write as _;

use super::args::{CanaryServiceArg, ConfigArg, RepoArgs, RouteArg, WeightFromArg};
use crate::config::Config;
use crate::exit::{self, UsageError};
use crate::manifest::Repo;
use crate::report::Output;
use crate::router::gateway::{self, GatewayDiscovery};
use crate::router::helm::{self, HelmCanary, TemplateHint};
use crate::router::kustomize::route_plan::RootRoute;
use crate::router::kustomize::{self, RootPlan};
use crate::router::{CanaryPair, Discovery, Problem, Severity};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub route: RouteArg,
    #[command(flatten)]
    pub canary_service: CanaryServiceArg,
    #[command(flatten)]
    pub weight_from: WeightFromArg,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The JSON document `plan --output json` prints (documented in the README).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlanJson<'a> {
    pub schema_version: u32,
    pub repo: String,
    #[serde(flatten)]
    pub discovery: &'a Discovery,
    /// Present when the repository has HTTPRoutes (or `--route` asks for one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_routes: Option<&'a GatewayDiscovery>,
    /// Kustomize roots (absent for a repository without kustomizations): what each renders.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub kustomize_roots: &'a [RootPlan],
    /// Canaries whose weight is a Helm chart value (`weightFrom`), as found.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub helm_values: &'a [HelmCanary],
    /// Chart templates that write the canary weight from a `.Values` path.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub helm_hints: &'a [TemplateHint],
}

/// The HTTPRoutes `plan` shows: every one with a canary, or the one `--route` names.
fn routes(args: &PlanArgs, loaded: &Repo) -> anyhow::Result<Option<GatewayDiscovery>> {
    let canary_service = args.canary_service.canary_service.as_deref();
    let mut d = gateway::discover_loaded(&args.repo.repo, loaded, canary_service)?;
    let only = match args.route.route.as_slice() {
        [] => None,
        [one] => Some(one),
        _ => return Err(UsageError::flag("--route", "plan shows one HTTPRoute, or all").into()),
    };
    if let Some(sel) = only {
        let sel = crate::manifest::Selector::parse(sel)?;
        let all: Vec<gateway::HttpRoute> = d.routes.iter().map(|r| r.route.clone()).collect();
        let chosen = gateway::select(&all, &sel).map(|r| (r.file.clone(), r.document, r.item));
        match chosen {
            Ok(key) => d
                .routes
                .retain(|r| (r.route.file.clone(), r.route.document, r.route.item) == key),
            Err(crate::manifest::ManifestError::NoRoute { .. }) => {
                // Not listed as a canary: show what the route is, or say it does not exist.
                let repo = crate::manifest::Repo::load_filtered(&args.repo.repo, &|b| {
                    crate::router::Router::may_contain_route(&gateway::GatewayApi, b)
                })?;
                let all: Vec<gateway::HttpRoute> =
                    repo.files.iter().flat_map(gateway::http_routes).collect();
                let route = gateway::select(&all, &sel)?;
                let ctx = gateway::Context::load(&args.repo.repo)?;
                d.routes = vec![gateway::analyze(route, canary_service, &ctx)];
            }
            Err(e) => return Err(e.into()),
        }
        d.problems.clear();
        return Ok(Some(d));
    }
    Ok((!d.is_empty()).then_some(d))
}

pub fn run(args: PlanArgs) -> anyhow::Result<u8> {
    let (layout, repo, route_files) =
        crate::router::select::load_layout_and_routes(&args.repo.repo)?;
    let weight_from = match &args.weight_from.weight_from {
        Some(w) => Some(w.clone()),
        None => Config::load(&args.repo.repo.join(&args.config.config))?.weight_from,
    };
    let helm_values = helm::plan(&args.repo.repo, weight_from.as_slice());
    let helm_hints = helm::hints(&repo);
    let roots = if layout.is_empty() {
        Vec::new()
    } else {
        kustomize::plan(&args.repo.repo, &layout)
    };
    let discovery = crate::router::discover(&repo);
    let http_routes = routes(&args, &route_files)?;
    let http_routes = http_routes.filter(|d| !d.routes.is_empty() || !d.skipped.is_empty());
    for s in discovery.skipped.iter().chain(
        http_routes
            .iter()
            .flat_map(|d| &d.skipped)
            .filter(|s| !discovery.skipped.iter().any(|x| x.file == s.file)),
    ) {
        console::err(&format!(
            "warning: skipped {}: {}",
            s.file.display(),
            s.reason
        ));
    }
    let root_problems = roots
        .iter()
        .filter_map(|r| r.discovery.as_ref())
        .flat_map(|d| d.all_problems())
        .chain(roots.iter().flat_map(|r| {
            r.routes
                .iter()
                .flat_map(|rr| &rr.canary.problems)
                .chain(&r.route_problems)
        }));
    let errors: Vec<&Problem> = discovery
        .all_problems()
        .chain(http_routes.iter().flat_map(|d| d.all_problems()))
        .chain(root_problems)
        .filter(|p| p.severity == Severity::Error)
        .collect();
    // In CI, every error-level problem becomes an annotation on its file and line.
    if let Some(mut rep) = crate::report::ci() {
        let root = &args.repo.repo;
        for p in &errors {
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
                http_routes: http_routes.as_ref(),
                kustomize_roots: &roots,
                helm_values: &helm_values,
                helm_hints: &helm_hints,
            };
            console::json(&doc)?;
        }
        Output::Human => {
            let mut text = if roots.is_empty() {
                render_human(&discovery)
            } else {
                render_human_roots(&discovery, &roots)
            };
            if let Some(d) = &http_routes {
                text.push('\n');
                text.push_str(&render_routes(d));
            }
            if !helm_values.is_empty() || !helm_hints.is_empty() {
                text.push('\n');
                text.push_str(&render_helm(&helm_values, &helm_hints));
            }
            console::out(&text)
        }
    }
    // Error is the worst severity: any error-level problem fails the plan.
    let n = errors.len() + helm_values.iter().filter(|h| h.error.is_some()).count();
    drop(errors);
    // The process ends with this command: freeing a large layout's tens of thousands of paths
    // and renderings one allocation at a time is time the user waits for, and the system takes
    // the memory back at once.
    std::mem::forget((layout, repo, roots, discovery));
    Ok(if n > 0 {
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
pub(crate) fn render_human(d: &Discovery) -> String {
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
pub(crate) fn render_human_roots(d: &Discovery, roots: &[RootPlan]) -> String {
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
    let routes: usize = roots.iter().map(|r| r.routes.len()).sum();
    if routes > 0 {
        let _ = writeln!(
            out,
            "{} HTTPRoute{} (gateway-api) rendered by the roots",
            routes,
            if routes == 1 { "" } else { "s" }
        );
    }
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
        for rr in &r.routes {
            write_root_route(&mut out, rr, r);
            problems.extend(rr.canary.problems.iter().cloned());
        }
        problems.extend(r.route_problems.iter().cloned());
        let dir = kustomize::display_dir(&r.dir);
        if let Some(why) = &r.routes_refused {
            problems.push(unresolved(
                format!("the HTTPRoutes of root {dir} are not shown"),
                why,
            ));
        }
        if let Some(why) = &r.refused {
            problems.push(unresolved(format!("root {dir} is not shown"), why));
        }
    }
    write_problems(&mut out, &problems);
    out
}

/// `what` (a root, or its HTTPRoutes, is not shown) as a warning on the file that says why.
fn unresolved(what: String, why: &kustomize::Refusal) -> Problem {
    Problem {
        severity: Severity::Warning,
        code: "kustomize-unresolved",
        message: format!("{what}: {}", why.reason),
        file: why.file.clone(),
        document: 1,
        line: 1,
        field: String::new(),
    }
}

/// An HTTPRoute as one root renders it: its canary share, then each weight of each split with
/// the file and line that decide it.
fn write_root_route(out: &mut String, rr: &RootRoute, root: &RootPlan) {
    let rc = &rr.canary;
    let share = match rc.weight {
        Some(p) if p.fract() == 0.0 => format!("{p:.0}%"),
        Some(p) => format!("{p}%"),
        None => "-".into(),
    };
    let _ = writeln!(
        out,
        "\nHTTPRoute {}  canary {}  root {}",
        rc.route.qualified_name(),
        share,
        kustomize::display_dir(&root.dir)
    );
    let _ = writeln!(
        out,
        "  canary  {}  stable {}",
        rc.canary_service.as_deref().unwrap_or("none"),
        rc.stable_service.as_deref().unwrap_or("none")
    );
    for w in &rr.weights {
        let value = w.weight_raw.as_deref().unwrap_or("absent (1)");
        match &w.decided_by {
            Some(o) => {
                let _ = writeln!(
                    out,
                    "  rule {} {}  weight {}  {}:{} ({})",
                    w.rule,
                    w.name,
                    value,
                    o.file.display(),
                    o.line,
                    kustomize::origin_kind(o.kind)
                );
            }
            None => {
                let _ = writeln!(out, "  rule {} {}  weight {}", w.rule, w.name, value);
            }
        }
    }
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

/// The HTTPRoute part of the terminal report: one block per route with a canary.
pub(crate) fn render_routes(d: &GatewayDiscovery) -> String {
    let mut out = String::new();
    let n = d.routes.len();
    let _ = writeln!(
        out,
        "{} HTTPRoute{} with a canary or a split ({})",
        n,
        if n == 1 { "" } else { "s" },
        d.router
    );
    for rc in &d.routes {
        let r = &rc.route;
        let weight = match rc.weight {
            Some(p) if p.fract() == 0.0 => format!("{p:.0}%"),
            Some(p) => format!("{p}%"),
            None => "-".into(),
        };
        let _ = writeln!(out, "\n{}  canary {}", r.qualified_name(), weight);
        let _ = writeln!(
            out,
            "  route   {}:{} (document {})  {}",
            r.file.display(),
            r.line,
            r.document,
            r.api_version
        );
        let _ = writeln!(
            out,
            "  canary  {}",
            rc.canary_service.as_deref().unwrap_or("none")
        );
        let _ = writeln!(
            out,
            "  stable  {}",
            rc.stable_service.as_deref().unwrap_or("none")
        );
        let show = |w: &Option<String>, eff: Option<u32>| match (w, eff) {
            (None, Some(e)) => format!("{e} (unset)"),
            (Some(_), Some(e)) => e.to_string(),
            (Some(raw), None) => format!("{raw:?} (invalid)"),
            (None, None) => "-".into(),
        };
        for s in &rc.splits {
            let _ = writeln!(
                out,
                "  split   rule {} {} {} (line {}): {} {}, {} {} of {}",
                s.rule,
                s.path_type,
                s.path,
                s.line,
                s.stable.name,
                show(&s.stable.weight_raw, s.stable.weight),
                s.canary.name,
                show(&s.canary.weight_raw, s.canary.weight),
                s.total.map_or("-".into(), |t| t.to_string())
            );
        }
        for s in &rc.subset_rules {
            let _ = writeln!(
                out,
                "  match   rule {} (line {}): {} -> canary, by match precedence",
                s.rule,
                s.line,
                s.conditions.join("; ")
            );
        }
        for pr in &rc.problems {
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

/// The Helm part of the terminal report: each configured chart-value canary, then the
/// templates that could be one.
pub(crate) fn render_helm(canaries: &[HelmCanary], hints: &[TemplateHint]) -> String {
    let mut out = String::new();
    let n = canaries.len();
    let _ = writeln!(
        out,
        "{} Helm value canar{} (weightFrom)",
        n,
        if n == 1 { "y" } else { "ies" }
    );
    for c in canaries {
        match (&c.located, &c.error) {
            (Some(l), _) => {
                let weight = match l.weight {
                    Some(w) => format!("{w}/100"),
                    None => format!("{:?} (invalid)/100", l.raw),
                };
                let _ = writeln!(out, "\n{}  weight {}", c.weight_from, weight);
                let _ = writeln!(
                    out,
                    "  value   {}:{} (document {})  {}  {}",
                    l.file.display(),
                    l.line,
                    l.document,
                    l.form.describe(),
                    l.field
                );
            }
            (None, err) => {
                let _ = writeln!(out, "\n{}  weight -", c.weight_from);
                let _ = writeln!(
                    out,
                    "  error   [helm-value] {}",
                    err.as_deref().unwrap_or("not found")
                );
            }
        }
    }
    if !hints.is_empty() {
        let _ = writeln!(out);
    }
    for h in hints {
        let file = h
            .values_file
            .as_ref()
            .map_or("VALUES_FILE".to_string(), |v| v.display().to_string());
        let _ = writeln!(
            out,
            "hint {}:{} [helm-template] writes {} from .Values.{}; drive it with weightFrom: {{file: {}, path: {}}} (or the HelmRelease/Application that sets it)",
            h.file.display(),
            h.line,
            crate::router::nginx::WEIGHT,
            h.path,
            file,
            h.path
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
