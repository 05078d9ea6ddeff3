//! The use cases over a repository's manifests: load what a router reads, find the canaries,
//! choose the one a selector names, set its weight, derive a new canary. They sit above both
//! `manifest` (files and byte edits) and the routers (what the bytes mean).

use std::path::Path;

use crate::manifest::workload::{self, ServiceInfo, Workload};
use crate::manifest::{
    contains, edit, shadowing, EditOutcome, ManifestError, NewFile, Repo, Selector, SourceFile,
};
use crate::router::{self, Discovery, Route, Router as _};

/// Load every YAML file that could hold a route of the default router.
pub fn load_repo(dir: &Path) -> Result<Repo, ManifestError> {
    let router = router::default_router();
    Repo::load_filtered(dir, &|bytes| router.may_contain_route(bytes))
}

/// One walk for `plan`: the repository's kustomizations, and the manifests no kustomization
/// reads that may hold a route of either router, split by router: (layout, those that may
/// hold an Ingress, those that may hold an HTTPRoute). A file that does not parse goes with
/// the routers its bytes may concern. Files a kustomization reads are shown through the roots
/// that render them (an overlay's patch is not a stray canary annotation), so they are not
/// even parsed here.
pub(crate) fn load_layout_and_routes(
    dir: &Path,
) -> Result<(router::kustomize::Layout, Repo, Repo), ManifestError> {
    let nginx = router::default_router();
    let gateway = &router::gateway::GatewayApi;
    let (layout, all) = router::kustomize::Layout::discover_with(dir, &|b| {
        nginx.may_contain_route(b) || gateway.may_contain_route(b)
    })?;
    let empty = || Repo {
        root: all.root.clone(),
        files: Vec::new(),
        skipped: Vec::new(),
    };
    let (mut ingresses, mut routes) = (empty(), empty());
    for f in all.files {
        let bytes = f.text.as_bytes();
        if gateway.may_contain_route(bytes) {
            if nginx.may_contain_route(bytes) {
                ingresses.files.push(f.clone());
            }
            routes.files.push(f);
        } else {
            ingresses.files.push(f);
        }
    }
    for s in all.skipped {
        // Skipped files are few: read again to tell whose they are.
        let bytes = std::fs::read(dir.join(&s.file)).unwrap_or_default();
        if gateway.may_contain_route(&bytes) {
            if nginx.may_contain_route(&bytes) {
                ingresses.skipped.push(s.clone());
            }
            routes.skipped.push(s);
        } else {
            ingresses.skipped.push(s);
        }
    }
    Ok((layout, ingresses, routes))
}

/// Pair canaries with stable routes and report problems, with the default router.
pub fn discover(repo: &Repo) -> Discovery {
    router::default_router().discover(&repo.files, &repo.skipped)
}

/// An object a `[NS/]NAME` selector can name.
pub(crate) trait Named {
    fn name(&self) -> &str;
    fn namespace(&self) -> Option<&str>;
    fn describe(&self) -> String;
}

impl Named for Route {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn describe(&self) -> String {
        Route::describe(self)
    }
}

/// Why no single object was chosen: none (with those of that name in other namespaces), or
/// several.
pub(crate) enum Unchosen<'a, T> {
    None { named: Vec<&'a T> },
    Many(Vec<&'a T>),
}

/// Choose the one object a selector means. `NAME` matches objects without a namespace, or,
/// when that finds none, the one object of that name in any namespace; `NS/NAME` must match
/// both. Shared by every router's `select`, which words the errors.
pub(crate) fn choose<'a, T: Named>(
    items: &'a [T],
    selector: &Selector,
) -> Result<&'a T, Unchosen<'a, T>> {
    let named: Vec<&T> = items.iter().filter(|r| r.name() == selector.name).collect();
    let chosen: Vec<&T> = match &selector.namespace {
        Some(ns) => named
            .iter()
            .copied()
            .filter(|r| r.namespace() == Some(ns.as_str()))
            .collect(),
        None => {
            let bare: Vec<&T> = named
                .iter()
                .copied()
                .filter(|r| r.namespace().is_none())
                .collect();
            if bare.is_empty() {
                named.clone()
            } else {
                bare
            }
        }
    };
    match chosen.as_slice() {
        [one] => Ok(one),
        [] => Err(Unchosen::None { named }),
        _ => Err(Unchosen::Many(chosen)),
    }
}

/// "; KIND named NAME: a, b" for a no-match error, or nothing when no object has that name.
pub(crate) fn candidates_named<T: Named>(kind: &str, name: &str, named: &[&T]) -> String {
    if named.is_empty() {
        return String::new();
    }
    format!(
        "; {kind} named {name}: {}",
        named
            .iter()
            .map(|r| r.describe())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Choose the one Ingress route a selector means (see [`choose`]). The error lists the
/// candidates with their files so the user can pick.
pub fn select<'a>(routes: &'a [Route], selector: &Selector) -> Result<&'a Route, ManifestError> {
    choose(routes, selector).map_err(|u| match u {
        Unchosen::None { named } => ManifestError::NoMatch {
            selector: selector.to_string(),
            candidates: candidates_named("Ingresses", &selector.name, &named),
        },
        Unchosen::Many(many) => ManifestError::Ambiguous {
            selector: selector.to_string(),
            candidates: many.iter().map(|r| r.describe()).collect(),
        },
    })
}

/// [`select`], refused as ambiguous when a file that does not parse names the target too.
pub fn select_known<'a>(
    repo: &Repo,
    routes: &'a [Route],
    selector: &Selector,
) -> Result<&'a Route, ManifestError> {
    let route = select(routes, selector)?;
    let broken = shadowing(repo, selector);
    if broken.is_empty() {
        return Ok(route);
    }
    let mut candidates = vec![route.describe()];
    candidates.extend(
        broken
            .iter()
            .map(|s| format!("{} (does not parse: {})", s.file.display(), s.reason)),
    );
    Err(ManifestError::Ambiguous {
        selector: selector.to_string(),
        candidates,
    })
}

/// Set the canary weight of the Ingress `selector` names, in the repository at `dir`.
/// Writes nothing on error or with `dry_run`; the outcome carries the edits and their diff.
pub fn set_weight(
    dir: &Path,
    selector: &str,
    weight: u32,
    dry_run: bool,
) -> Result<EditOutcome, ManifestError> {
    let selector = Selector::parse(selector)?;
    let repo = Repo::load_filtered(dir, &|b| may_hold(b, &selector.name))?;
    set_weight_in(dir, &repo, &selector, weight, dry_run)
}

/// May these bytes hold the Ingress named `name` (of the default router)?
pub(crate) fn may_hold(bytes: &[u8], name: &str) -> bool {
    router::default_router().may_contain_route(bytes) && contains(bytes, name.as_bytes())
}

/// [`set_weight`] over the files already loaded that may hold the target (those of the
/// default router that name it).
pub(crate) fn set_weight_in(
    dir: &Path,
    repo: &Repo,
    selector: &Selector,
    weight: u32,
    dry_run: bool,
) -> Result<EditOutcome, ManifestError> {
    let router = router::default_router();
    let routes: Vec<Route> = repo.files.iter().flat_map(|f| router.routes(f)).collect();
    let route = match select_known(repo, &routes, selector) {
        Ok(r) => r,
        Err(e @ ManifestError::NoMatch { .. }) => {
            // A file that failed to parse but names the target may be where it lives: say so
            // rather than "no match", so a broken template is not mistaken for a typo.
            if let Some(s) = repo.skipped.first() {
                return Err(ManifestError::TargetUnparsable {
                    file: s.file.clone(),
                    selector: selector.to_string(),
                    error: s.reason.clone(),
                });
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let file = repo
        .file(&route.file)
        .ok_or_else(|| ManifestError::NoMatch {
            selector: selector.to_string(),
            candidates: String::new(),
        })?;
    let edit = router.weight_edit(file, route, weight)?;
    let outcome = edit::apply(file, std::slice::from_ref(&edit))?;
    if !dry_run {
        outcome.write(dir)?;
    }
    Ok(outcome)
}

/// Derive a canary Ingress from the stable one `selector` names, in `namespace` (default:
/// the stable's), sending traffic to `service`. The file goes beside the stable's file. The
/// result must pass the checks `plan` makes, or nothing is returned to write.
pub fn init_canary(
    dir: &Path,
    selector: &str,
    service: &str,
    namespace: Option<&str>,
    weight: u32,
) -> Result<NewFile, ManifestError> {
    let sel = Selector::parse(selector)?;
    let repo = load_repo(dir)?;
    let router = router::default_router();
    let routes: Vec<Route> = repo.files.iter().flat_map(|f| router.routes(f)).collect();
    let stable = select(&routes, &sel)?;
    let src = repo.file(&stable.file);
    let create = |reason: String| ManifestError::Create {
        file: stable.file.clone(),
        reason,
    };
    if stable.canary {
        return Err(create(format!(
            "{} is a canary already",
            stable.qualified_name()
        )));
    }
    if weight > 100 {
        return Err(ManifestError::WeightOutOfRange {
            file: stable.file.clone(),
            document: stable.document,
            field: format!("metadata.annotations[{:?}]", router::nginx::WEIGHT),
            weight,
            total: 100,
        });
    }
    let namespace = namespace.or(stable.namespace.as_deref());
    let name = format!("{}-canary", stable.name);
    let eol = src.map_or("\n", |f| {
        if f.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        }
    });
    let text = router::nginx::canary_manifest(stable, &name, namespace, service, weight, eol);
    let parent = stable
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let file_name = match (namespace, &stable.namespace) {
        (Some(ns), Some(stable_ns)) if ns != stable_ns => format!("{name}.{ns}.yaml"),
        (Some(ns), None) => format!("{name}.{ns}.yaml"),
        _ => format!("{name}.yaml"),
    };
    let path = parent.join(file_name);
    if dir.join(&path).exists() {
        return Err(ManifestError::Create {
            file: path,
            reason: "exists already".into(),
        });
    }
    // Check the result the way `plan` would, with the new file in place.
    let new = SourceFile::parse(path.clone(), text.clone()).map_err(|e| ManifestError::Create {
        file: path.clone(),
        reason: format!("generated YAML does not parse: {e}"),
    })?;
    let mut files = repo.files;
    files.push(new);
    let discovery = router.discover(&files, &[]);
    let errors: Vec<String> = discovery
        .pairs
        .iter()
        .filter(|p| p.canary.file == path)
        .flat_map(|p| &p.problems)
        .filter(|p| p.severity == router::Severity::Error)
        .map(|p| format!("[{}] {}", p.code, p.message))
        .collect();
    if !errors.is_empty() {
        return Err(ManifestError::Create {
            file: path,
            reason: errors.join("; "),
        });
    }
    Ok(NewFile { path, text })
}

/// The Deployments behind every Service the routes send traffic to, each once, in order.
pub fn behind_routes<'a>(
    workloads: &'a [Workload],
    services: &[ServiceInfo],
    routes: &[&Route],
) -> Vec<&'a Workload> {
    let mut out: Vec<&Workload> = Vec::new();
    for r in routes {
        for svc in r.services() {
            for w in workload::backing(workloads, services, r.namespace.as_deref(), &svc) {
                if !out.iter().any(|x| x.qualified_name() == w.qualified_name()) {
                    out.push(w);
                }
            }
        }
    }
    out
}
