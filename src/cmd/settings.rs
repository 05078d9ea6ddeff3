//! One command's settings: its flags, the config file and the CI's environment resolved into one
//! `Settings` value by one pure function, `resolve` (ripgrep's low-level/high-level arguments:
//! clap parses, then one function decides what every missing flag means).
//!
//! Precedence, field by field: a flag (or its `GITOPS_CANARY_*` variable: clap reads the
//! variable when the flag is absent), then the config file, then what the CI's environment
//! tells (the forge, the token, the author), then the command's default. `resolve` does no I/O:
//! the config file and the environment come in as values (`Config`, `Env`), so every rule is
//! unit-tested (`settings/tests.rs`); `load` reads them, and `connect` opens what the settings
//! name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::{CanaryArgs, GateArgs, PublishArgs, RepoArgs};
use super::check::CheckArgs;
use super::gates::{self, MetricsArgs, RunnerSettings};
use super::propose::ProposeArgs;
use super::rollout::RolloutArgs;
use crate::config::{self, ClusterMode, Config, ConfigError, ForgeKind};
use crate::exit::UsageError;
use crate::forge::MergeMethod;
use crate::gate::Gate;
use crate::git::{Auth, Author};
use crate::plan::{self, Approval};
use crate::report::Output;
use crate::rollout::{self, Selection};
use crate::secret::Token;

/// The command whose flags are resolved; each has its own defaults where it must.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmd<'a> {
    /// `run`, `reconcile`, `status`, `rollback`, `promote`.
    Rollout(&'a RolloutArgs),
    Propose(&'a ProposeArgs),
    Check(&'a CheckArgs),
}

impl Cmd<'_> {
    fn repo(&self) -> &RepoArgs {
        match self {
            Cmd::Rollout(a) => &a.repo,
            Cmd::Propose(a) => &a.repo,
            Cmd::Check(a) => &a.repo,
        }
    }

    fn config(&self) -> &Path {
        match self {
            Cmd::Rollout(a) => &a.config.config,
            Cmd::Propose(a) => &a.config.config,
            Cmd::Check(a) => &a.config.config,
        }
    }

    fn canary(&self) -> &CanaryArgs {
        match self {
            Cmd::Rollout(a) => &a.canary,
            Cmd::Propose(a) => &a.canary,
            Cmd::Check(a) => &a.canary,
        }
    }

    fn publish(&self) -> Option<&PublishArgs> {
        match self {
            Cmd::Rollout(a) => Some(&a.publish),
            Cmd::Propose(a) => Some(&a.publish),
            Cmd::Check(_) => None,
        }
    }

    fn gates(&self) -> Option<&GateArgs> {
        match self {
            Cmd::Rollout(a) => Some(&a.gates),
            Cmd::Check(a) => Some(&a.gates),
            Cmd::Propose(_) => None,
        }
    }

    /// The forge when neither a flag, the config file nor the CI names one: the rollout opens
    /// requests on GitHub; `propose` outside CI pushes a branch and opens nothing.
    fn default_forge(&self) -> ForgeKind {
        match self {
            Cmd::Propose(_) => ForgeKind::None,
            _ => ForgeKind::Github,
        }
    }

    /// The gates when neither a flag nor the config file lists them: a one-off `check` also
    /// bakes.
    fn default_gates(&self) -> Vec<Gate> {
        match self {
            Cmd::Check(_) => vec![Gate::Synced, Gate::RolledOut, Gate::Steady],
            _ => vec![Gate::Synced, Gate::RolledOut],
        }
    }
}

/// The variables of the process environment the settings read (besides the flags' own).
const VARS: [&str; 9] = [
    "GITHUB_ACTIONS",
    "GITHUB_REPOSITORY",
    "GITHUB_TOKEN",
    "GITLAB_CI",
    "CI_SERVER_URL",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "GITLAB_USER_NAME",
    "GITLAB_USER_EMAIL",
];

/// The environment as a value: the CI's variables and the checkout's Git identity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    vars: BTreeMap<String, String>,
    /// `user.name` and `user.email` of the checkout, as `git commit` would use them.
    pub checkout_identity: Option<Author>,
}

impl Env {
    /// Read the process environment and the identity of the checkout at `repo`.
    pub fn read(repo: &Path) -> Env {
        let vars = VARS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        let checkout_identity = git2::Repository::open(repo)
            .and_then(|r| r.config())
            .ok()
            .and_then(|cfg| {
                let name = cfg.get_string("user.name").ok()?;
                let email = cfg.get_string("user.email").ok()?;
                Some(Author::new(name, email))
            });
        Env {
            vars,
            checkout_identity,
        }
    }

    #[cfg(test)]
    pub(crate) fn from_vars(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            checkout_identity: None,
        }
    }

    /// A variable that is set and not empty (an empty one counts as not given).
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn token(&self, forge: ForgeKind) -> Option<Token> {
        match forge {
            ForgeKind::Github => self.var("GITHUB_TOKEN"),
            // Not CI_JOB_TOKEN: a job token cannot read or open merge requests (see `token_auth`).
            ForgeKind::Gitlab => self.var("GITLAB_TOKEN"),
            ForgeKind::None => None,
        }
        .map(Token::new)
    }

    /// Who commits when no flag says: the Actions bot on GitHub, the GitLab user in a GitLab
    /// job, the checkout's own identity elsewhere.
    fn author(&self, forge: ForgeKind) -> Author {
        if self.var("GITHUB_ACTIONS") == Some("true") || forge == ForgeKind::Github {
            return Author::github_actions_bot();
        }
        if let (Some(name), Some(email)) =
            (self.var("GITLAB_USER_NAME"), self.var("GITLAB_USER_EMAIL"))
        {
            return Author::new(name, email);
        }
        self.checkout_identity
            .clone()
            .unwrap_or_else(|| Author::new("gitops-canary", "gitops-canary@users.noreply.invalid"))
    }
}

/// Everything a command needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub repo: PathBuf,
    pub output: Output,
    /// The rollout: its id, canaries, stages, base, forge, author (what `propose` speaks too).
    pub rollout: rollout::Settings,
    /// Git and the forge, for the commands that publish (`None` for `check`).
    pub git: Option<GitSettings>,
    /// The gates, for the commands that run them (`None` for `propose`).
    pub gates: Option<GateSettings>,
}

#[derive(Debug, Clone)]
pub(crate) struct GitSettings {
    /// The remote to push to; `None`: the checkout's `origin`.
    pub remote: Option<String>,
    pub auth: Auth,
    /// The forge token (masked in CI logs).
    pub token: Option<Token>,
    /// The forge requests are opened on; `None` when nothing is requested (no forge, or
    /// `propose --gate direct`).
    pub requests: ForgeKind,
}

#[derive(Debug, Clone)]
pub(crate) struct GateSettings {
    pub cluster: ClusterMode,
    pub runner: RunnerSettings,
    pub metrics: MetricsArgs,
}

/// Read the config file and the environment, and resolve.
pub(crate) fn load(cmd: Cmd<'_>) -> anyhow::Result<Settings> {
    let repo = &cmd.repo().repo;
    let cfg = Config::load(&repo.join(cmd.config()))?;
    let env = Env::read(repo);
    resolve(cmd, &cfg, &env)
}

fn same(a: &str, b: &str) -> bool {
    a.trim() == b.trim()
}

/// `propose` joins the configured rollout when the file lists every canary the flags name (or
/// lists none); a file about other canaries is not its rollout, and is not read at all.
fn joins_config(flags: &CanaryArgs, cfg: &Config) -> bool {
    let lists_none = cfg.ingresses.is_empty() && cfg.routes.is_empty() && cfg.weight_from.is_none();
    let listed =
        |flag: &[String], file: &[String]| flag.iter().all(|f| file.iter().any(|c| same(c, f)));
    lists_none
        || (listed(&flags.ingress.ingress, &cfg.ingresses)
            && listed(&flags.route.route, &cfg.routes)
            && flags
                .weight_from
                .weight_from
                .as_ref()
                .is_none_or(|w| cfg.weight_from.as_ref() == Some(w)))
}

/// The canaries: the flags' when they name any (replacing the file's of every kind), else the
/// file's; `propose` in a rollout it joins takes the file's, so all its canaries move together.
fn selection(cmd: &Cmd<'_>, cfg: &Config) -> anyhow::Result<Selection> {
    let flags = cmd.canary();
    let file_lists =
        !cfg.ingresses.is_empty() || !cfg.routes.is_empty() || cfg.weight_from.is_some();
    let from_file = match cmd {
        Cmd::Propose(_) => file_lists,
        _ => !flags.names_any(),
    };
    let flag_service = flags.canary_service.canary_service.clone();
    let mut sel = if from_file {
        Selection {
            ingresses: cfg.ingresses.clone(),
            routes: cfg.routes.clone(),
            weight_from: cfg.weight_from.clone(),
            canary_service: flag_service.clone().or(cfg.canary_service.clone()),
            overlay: None,
        }
    } else {
        Selection {
            ingresses: flags.ingress.ingress.clone(),
            routes: flags.route.route.clone(),
            weight_from: flags.weight_from.weight_from.clone(),
            canary_service: flag_service.clone().or(cfg.canary_service.clone()),
            overlay: None,
        }
    };
    // The root picks among renderings of whichever canaries are named.
    sel.overlay = flags.overlay.clone().or(cfg.overlay.clone());
    let file = cmd.config();
    if sel.is_empty() {
        return Err(UsageError::new(format!(
            "no canary: pass --ingress or --route, or set `ingresses:` or `routes:` in {}",
            file.display()
        ))
        .help("a canary whose weight is a Helm chart value: --weight-from FILE:PATH with --ingress, the live canary Ingress the chart renders")
        .into());
    }
    if sel.routes.is_empty() && sel.canary_service.is_some() {
        if flag_service.is_some() {
            return Err(
                UsageError::flag("--canary-service", "applies to --route (an HTTPRoute)").into(),
            );
        }
        // The file's, for routes no flag names.
        sel.canary_service = None;
    }
    if sel.weight_from.is_some() {
        let (what, flag) = if from_file {
            ("weightFrom", None)
        } else {
            ("--weight-from", Some("--weight-from"))
        };
        let refuse = |field: &str, message: String| -> anyhow::Error {
            match flag {
                Some(f) => UsageError::flag(f, message).into(),
                None => ConfigError::Invalid {
                    file: file.to_path_buf(),
                    field: field.into(),
                    message,
                }
                .into(),
            }
        };
        if !sel.routes.is_empty() {
            return Err(refuse(
                "routes",
                format!("{what} moves a chart value, gated on the live canary Ingress the chart renders; HTTPRoutes do not move with it"),
            ));
        }
        if sel.overlay.is_some() || sel.canary_service.is_some() {
            return Err(refuse(
                "overlay",
                format!("{what}: --overlay and --canary-service do not apply to a Helm value"),
            ));
        }
        if sel.ingresses.is_empty() {
            return Err(match flag {
                Some(f) => UsageError::flag(f, "needs --ingress NAMESPACE/NAME, the live canary Ingress the chart renders: the synced gate reads the weight there")
                    .help("pass --ingress with the namespace and name of the canary Ingress the chart renders")
                    .into(),
                None => refuse(
                    "ingresses",
                    "weightFrom needs the live canary Ingress the chart renders: add `ingresses: [NAMESPACE/NAME]`; the synced gate reads the weight there (the Ingress is not looked for in the manifests)".into(),
                ),
            });
        }
    }
    Ok(sel)
}

/// A duration from its flag, else the file's field, else the default.
fn duration(
    flag: Option<Duration>,
    file: &Option<String>,
    default: &str,
) -> Result<Duration, UsageError> {
    match (flag, file) {
        (Some(d), _) => Ok(d),
        (None, Some(f)) => config::parse_duration(f).map_err(UsageError::new),
        (None, None) => config::parse_duration(default).map_err(UsageError::new),
    }
}

/// The pure resolution: flags over the config file over the environment over the defaults.
pub(crate) fn resolve(cmd: Cmd<'_>, cfg: &Config, env: &Env) -> anyhow::Result<Settings> {
    let empty = Config::empty();
    let cfg = match cmd {
        Cmd::Propose(_) if !joins_config(cmd.canary(), cfg) => &empty,
        _ => cfg,
    };
    let selection = selection(&cmd, cfg)?;
    let no_publish = PublishArgs::default();
    let publish = cmd.publish().unwrap_or(&no_publish);
    let mut cfg = cfg.clone();
    if !publish.stages.is_empty() {
        config::check_stages(&publish.stages).map_err(|m| UsageError::flag("--stages", m))?;
        cfg.stages = publish
            .stages
            .iter()
            .map(|w| config::StageConfig::Weight(*w))
            .collect();
    }
    if let Cmd::Rollout(a) = cmd {
        cfg.approval = a.approval.or(cfg.approval);
    }
    let forge = publish
        .forge
        .or(cfg.forge)
        .or_else(|| ForgeKind::from_ci(|k| env.var(k).is_some()))
        .unwrap_or(cmd.default_forge());
    let stages: Vec<plan::Stage> = match cmd {
        // Every change `propose` makes is approved as its --gate says.
        Cmd::Propose(a) => cfg
            .stages(a.gate)
            .into_iter()
            .map(|s| plan::Stage {
                weight: s.weight,
                approval: a.gate,
            })
            .collect(),
        _ => cfg.stages(if forge == ForgeKind::None {
            Approval::Direct
        } else {
            Approval::PullRequest
        }),
    };
    let token = publish
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| env.token(forge));
    let git = cmd.publish().map(|p| GitSettings {
        remote: p.remote.clone(),
        auth: match &p.ssh_key {
            Some(key) => Auth::ssh_key(key),
            None => crate::git::token_auth(
                token.as_ref(),
                forge == ForgeKind::Gitlab,
                env.var("CI_JOB_TOKEN").map(str::to_string),
            ),
        },
        token: token.clone(),
        requests: match cmd {
            Cmd::Propose(a) if a.gate == Approval::Direct => ForgeKind::None,
            _ => forge,
        },
    });
    let flag_method = match cmd {
        Cmd::Rollout(a) => a.merge_method,
        _ => None,
    };
    let merge_method = match (flag_method, cfg.merge_method.as_deref()) {
        (Some(m), _) => m,
        (None, Some("squash")) => MergeMethod::Squash,
        (None, Some("rebase")) => MergeMethod::Rebase,
        _ => MergeMethod::Merge,
    };
    let mut labels = if publish.labels.is_empty() {
        cfg.labels.clone()
    } else {
        publish.labels.clone()
    };
    if labels.is_empty() {
        labels.push("gitops-canary".into());
    }
    let author = match (&publish.author_name, &publish.author_email) {
        (Some(n), Some(e)) => Author::new(n.clone(), e.clone()),
        _ => env.author(forge),
    };
    let cluster = match cmd {
        Cmd::Rollout(a) => a.cluster.or(cfg.cluster).unwrap_or_default(),
        _ => ClusterMode::Kube,
    };
    let gate_list = match cmd.gates() {
        _ if cluster == ClusterMode::None => Vec::new(),
        Some(g) if !g.gates.is_empty() => g.gates.clone(),
        _ if !cfg.gates.is_empty() => cfg.gates.clone(),
        _ => cmd.default_gates(),
    };
    let gate_flags = cmd.gates();
    let gate_timeout = duration(gate_flags.and_then(|g| g.timeout), &cfg.timeout, "10m")?;
    let gates = match gate_flags {
        None => None,
        Some(g) => {
            let sync_source = g.sync_source.or(cfg.sync_source).unwrap_or_default();
            let argocd_app = g.argocd_app.clone().or(cfg.argocd_app.clone());
            let flux = g
                .flux_kustomization
                .clone()
                .or(cfg.flux_kustomization.clone());
            let mut metrics = g.metrics.clone();
            metrics.prometheus_url = metrics.prometheus_url.or(cfg.prometheus_url.clone());
            metrics.metrics_provider = metrics.metrics_provider.or(cfg.metrics_provider);
            Some(GateSettings {
                cluster,
                runner: RunnerSettings {
                    gates: gate_list.clone(),
                    context: g.context.clone(),
                    sync_via: gates::sync_via(sync_source, argocd_app.as_deref(), flux.as_deref())?,
                    sync_now: g.sync_now,
                    timeout: gate_timeout,
                    bake: duration(g.bake_time, &cfg.bake_time, "5m")?,
                    // A stage's own bakeTime wins, as its own approval does.
                    stage_bakes: cfg.stage_bakes(),
                    restart_threshold: g.restart_threshold,
                },
                metrics,
            })
        }
    };
    let (poll, max_wait) = match cmd {
        Cmd::Rollout(a) => (a.poll_interval, a.max_wait),
        _ => (Duration::from_secs(15), Duration::from_secs(24 * 3600)),
    };
    let (rollback, promote, min_approvals) = match cmd {
        Cmd::Rollout(a) => (
            a.rollback.or(cfg.rollback).unwrap_or_default(),
            a.promote.or(cfg.promote).unwrap_or(true),
            a.min_approvals.or(cfg.min_approvals).unwrap_or(1),
        ),
        _ => (
            cfg.rollback.unwrap_or_default(),
            cfg.promote.unwrap_or(true),
            cfg.min_approvals.unwrap_or(1),
        ),
    };
    let rollout = rollout::Settings {
        rollout: publish
            .rollout_id
            .clone()
            .filter(|s| !s.is_empty())
            .or(cfg.id.clone())
            .unwrap_or_else(|| plan::default_rollout_id(&selection.names()[0])),
        selection,
        stages,
        min_approvals,
        base: publish
            .base
            .clone()
            .or(cfg.base.clone())
            .unwrap_or_else(|| "main".into()),
        forge,
        merge_method,
        labels,
        rollback,
        promote,
        author,
        poll,
        max_wait,
        gate_names: gate_list.iter().map(|g| g.as_str().to_string()).collect(),
        gate_timeout,
    };
    Ok(Settings {
        repo: cmd.repo().repo.clone(),
        output: cmd.repo().output,
        rollout,
        git,
        gates,
    })
}

#[cfg(test)]
mod tests;
