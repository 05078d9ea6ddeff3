//! The flags more than one command takes, each declared once: a `clap::Args` group per flag
//! (or per set of flags that always go together), flattened into every command that takes it.
//! One declaration means one environment variable, one help text and one type for a flag, so
//! `--route` is read the same way by `plan`, `set-weight`, `propose`, `check` and the rollout.
//!
//! These are the low-level arguments: what was typed, with clap's own defaults only where every
//! command shares them. What a missing flag means (the config file's field, the CI's variable,
//! the command's default) is decided once, in `settings`.

use std::path::PathBuf;
use std::time::Duration;

use super::gates::{MetricsArgs, SyncSourceKind};
use crate::config::{self, ForgeKind};
use crate::gate::Gate;
use crate::report::Output;
use crate::router::helm::WeightFrom;
use crate::secret::Token;

/// Flags every repository command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoArgs {
    /// The GitOps repository (a checkout) to read and edit.
    #[arg(long, env = "GITOPS_CANARY_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(long, env = "GITOPS_CANARY_OUTPUT", value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// `--config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The rollout configuration file, relative to --repo; a missing file is an empty one.
    #[arg(long, env = "GITOPS_CANARY_CONFIG", default_value = config::DEFAULT_FILE)]
    pub config: PathBuf,
}

/// `--ingress`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IngressArg {
    /// The canary Ingress(es), [NAMESPACE/]NAME, comma-separated, moved and gated together
    /// (with --weight-from, the live canary Ingress the chart renders; for init-canary, the
    /// stable Ingress to derive a canary from).
    #[arg(long, env = "GITOPS_CANARY_INGRESS", value_delimiter = ',')]
    pub ingress: Vec<String>,
}

/// `--route`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RouteArg {
    /// The Gateway API HTTPRoute(s), [NAMESPACE/]NAME, comma-separated, whose stable/canary
    /// split moves (the weight is the canary's percentage); with --ingress, all move together.
    /// For plan, the one route to show; for init-canary, the route to add the canary to.
    #[arg(long, env = "GITOPS_CANARY_ROUTE", value_delimiter = ',')]
    pub route: Vec<String>,
}

/// `--canary-service`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CanaryServiceArg {
    /// The HTTPRoute backendRef that is the canary; default, the only one whose Service name
    /// ends in -canary or selects a Deployment whose name does.
    #[arg(long, env = "GITOPS_CANARY_CANARY_SERVICE")]
    pub canary_service: Option<String>,
}

/// `--weight-from`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WeightFromArg {
    /// A canary whose weight is a Helm chart value: FILE:PATH, FILE a values file, a Flux
    /// HelmRelease or an Argo CD Application (relative to --repo), PATH the value as Helm's
    /// --set writes it, e.g. canary.weight (default: the config file's weightFrom). The
    /// rollout, propose and check also need --ingress, the live canary Ingress the chart
    /// renders.
    #[arg(long, env = "GITOPS_CANARY_WEIGHT_FROM")]
    pub weight_from: Option<WeightFrom>,
}

/// The canaries a command moves or gates.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CanaryArgs {
    #[command(flatten)]
    pub ingress: IngressArg,
    #[command(flatten)]
    pub route: RouteArg,
    #[command(flatten)]
    pub canary_service: CanaryServiceArg,
    /// With Kustomize overlays: the root kustomization (directory, relative to --repo) whose
    /// rendering moves (or, for check, is gated), when the Ingress or HTTPRoute name alone is
    /// ambiguous.
    #[arg(long, env = "GITOPS_CANARY_OVERLAY")]
    pub overlay: Option<PathBuf>,
    #[command(flatten)]
    pub weight_from: WeightFromArg,
}

impl CanaryArgs {
    /// Does any flag name a canary (then the config file's canaries do not apply)?
    pub(crate) fn names_any(&self) -> bool {
        !self.ingress.ingress.is_empty()
            || !self.route.route.is_empty()
            || self.weight_from.weight_from.is_some()
    }
}

/// `--weight`.
#[derive(Debug, Clone, clap::Args)]
pub struct WeightArg {
    /// The canary weight to set (0..=100; for --route, the canary's percentage); for
    /// init-canary, the initial one (default 0).
    // A negative number is taken as the value, so clap says it is out of range for --weight
    // (not that `-5` is an unknown flag).
    #[arg(long, env = "GITOPS_CANARY_WEIGHT", allow_negative_numbers = true)]
    pub weight: Option<u32>,
}

impl WeightArg {
    /// The weight, which this command cannot do without.
    pub fn required(&self) -> Result<u32, crate::exit::UsageError> {
        self.weight.ok_or_else(|| {
            crate::exit::UsageError::flag("--weight", "is required")
                .help("pass --weight N (GITOPS_CANARY_WEIGHT)")
        })
    }
}

/// `--dry-run`.
#[derive(Debug, Clone, clap::Args)]
pub struct DryRunArg {
    /// Decide and print the change; write, push and merge nothing.
    #[arg(long, env = "GITOPS_CANARY_DRY_RUN")]
    pub dry_run: bool,
}

/// How a change is published: the rollout's identity, its stages, where it goes, as whom.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PublishArgs {
    /// Rollout id for branch names and commit trailers (default: the config file's, else
    /// derived from the first canary).
    #[arg(long, env = "GITOPS_CANARY_ROLLOUT_ID")]
    pub rollout_id: Option<String>,
    /// Stage weights, comma-separated (default: the config file's, else 10,25,50,100).
    #[arg(long, env = "GITOPS_CANARY_STAGES", value_delimiter = ',')]
    pub stages: Vec<u32>,
    /// Where pull requests live (default: the config file's, else the CI's; without either,
    /// github for the rollout, none for propose).
    #[arg(long, env = "GITOPS_CANARY_FORGE", value_enum)]
    pub forge: Option<ForgeKind>,
    /// The branch Argo CD / Flux deploy from, where every change goes (default: the config
    /// file's, else main).
    #[arg(long, env = "GITOPS_CANARY_BASE")]
    pub base: Option<String>,
    /// The Git remote to push to (default: the checkout's `origin`).
    #[arg(long, env = "GITOPS_CANARY_REMOTE")]
    pub remote: Option<String>,
    /// Forge and Git token (default: GITHUB_TOKEN or GITLAB_TOKEN).
    #[arg(long, env = "GITOPS_CANARY_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,
    /// SSH private key for an SSH remote: its content (as actions/checkout's `ssh-key`), or a
    /// path to it. The host must be in ~/.ssh/known_hosts.
    #[arg(long, env = "GITOPS_CANARY_SSH_KEY", hide_env_values = true)]
    pub ssh_key: Option<String>,
    /// Labels put on every pull request (comma-separated).
    #[arg(long, env = "GITOPS_CANARY_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Commit author name (default: the GitHub Actions bot on GitHub, the GitLab user on GitLab).
    #[arg(long, env = "GITOPS_CANARY_AUTHOR_NAME")]
    pub author_name: Option<String>,
    /// Commit author e-mail.
    #[arg(long, env = "GITOPS_CANARY_AUTHOR_EMAIL")]
    pub author_email: Option<String>,
}

/// The gates after a merge and where they look.
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// Gates to run, in order, comma-separated (default: the config file's, else
    /// synced,rolled-out for the rollout and synced,rolled-out,steady for check).
    #[arg(long, env = "GITOPS_CANARY_GATES", value_enum, value_delimiter = ',')]
    pub gates: Vec<Gate>,
    /// How long `synced` and `rolled-out` may take together (default: the config file's, else 10m).
    #[arg(long, env = "GITOPS_CANARY_TIMEOUT", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// How long the canary must stay steady (default: the config file's, else 5m).
    #[arg(long, env = "GITOPS_CANARY_BAKE_TIME", value_parser = humantime::parse_duration)]
    pub bake_time: Option<Duration>,
    /// Kubeconfig context (default: the current context, or in-cluster config).
    #[arg(long, env = "GITOPS_CANARY_CONTEXT")]
    pub context: Option<String>,
    /// What shows that Git's change reached the cluster (default: the config file's, else ingress).
    #[arg(long, env = "GITOPS_CANARY_SYNC_SOURCE", value_enum)]
    pub sync_source: Option<SyncSourceKind>,
    /// The Argo CD Application (NAMESPACE/NAME; namespace defaults to argocd).
    #[arg(long, env = "GITOPS_CANARY_ARGOCD_APP")]
    pub argocd_app: Option<String>,
    /// The Flux Kustomization (NAMESPACE/NAME; namespace defaults to flux-system).
    #[arg(long, env = "GITOPS_CANARY_FLUX_KUSTOMIZATION")]
    pub flux_kustomization: Option<String>,
    /// Ask Argo CD / Flux to reconcile now instead of waiting for their poll interval.
    #[arg(long, env = "GITOPS_CANARY_SYNC_NOW")]
    pub sync_now: bool,
    /// Container restarts during the bake that count as unsteady.
    #[arg(long, env = "GITOPS_CANARY_RESTART_THRESHOLD", default_value_t = crate::cluster::DEFAULT_RESTART_THRESHOLD)]
    pub restart_threshold: i32,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}
