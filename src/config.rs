//! The rollout configuration: `.gitops-canary.yaml` in the GitOps repository, with every
//! field also settable by flag, environment variable and action input (flags win; the one
//! resolution is `cmd::settings`).
//!
//! The Rust types are the schema: `gitops-canary schema` prints the JSON Schema generated from
//! them (schemars), and unknown or mistyped fields are errors that name the file and line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fault::Classify;
use crate::plan::{Approval, Stage};

pub(crate) const DEFAULT_FILE: &str = ".gitops-canary.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for ConfigError {
    fn is_bad_input(&self) -> bool {
        !matches!(self, ConfigError::Read { .. })
    }
}

/// A stage: a bare weight, or a weight with overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StageConfig {
    Weight(u32),
    Detailed {
        weight: u32,
        /// Approval for this stage (default: the rollout's).
        #[serde(default)]
        approval: Option<Approval>,
        /// Bake time for this stage, e.g. `10m` (default: the rollout's).
        #[serde(default, rename = "bakeTime")]
        bake_time: Option<String>,
    },
}

impl StageConfig {
    pub fn weight(&self) -> u32 {
        match self {
            StageConfig::Weight(w) | StageConfig::Detailed { weight: w, .. } => *w,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum ForgeKind {
    /// GitHub (or GitHub Enterprise Server through GITHUB_API_URL).
    #[default]
    Github,
    Gitlab,
    /// No forge: direct commits only.
    None,
}

impl ForgeKind {
    /// The forge of the CI system this runs in, when its variables tell; `set` says whether a
    /// variable is set and not empty.
    pub(crate) fn from_ci(set: impl Fn(&str) -> bool) -> Option<ForgeKind> {
        if set("GITHUB_ACTIONS") || set("GITHUB_REPOSITORY") {
            Some(ForgeKind::Github)
        } else if set("GITLAB_CI") || set("CI_SERVER_URL") {
            Some(ForgeKind::Gitlab)
        } else {
            None
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// Use the cluster from KUBECONFIG or the in-cluster service account.
    #[default]
    Kube,
    /// No cluster gates (explicitly off).
    None,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackPolicy {
    /// Open the rollback PR and merge it at once where the forge allows.
    #[default]
    Auto,
    /// Open the rollback PR for a person to merge.
    PullRequest,
    /// Do not roll back; only fail the job.
    None,
}

/// The configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Rollout id, used in branch names and commit trailers (default: derived from the Ingress).
    #[serde(default)]
    pub id: Option<String>,
    /// The canary Ingress(es), `[NAMESPACE/]NAME`, moved together (with Kustomize, the
    /// rendered namespace and name).
    #[serde(default)]
    pub ingresses: Vec<String>,
    /// The Gateway API HTTPRoute(s), `[NAMESPACE/]NAME`, whose stable/canary split moves (with
    /// `ingresses`, all move together).
    #[serde(default)]
    pub routes: Vec<String>,
    /// The HTTPRoute backendRef that is the canary (default: the one named `*-canary`, or
    /// whose Service selects a canary Deployment).
    #[serde(default)]
    pub canary_service: Option<String>,
    /// With Kustomize overlays: the root kustomization (directory relative to the repository)
    /// whose rendering moves; `ingresses` then name what it renders, e.g. `shop-prod/web-canary`.
    #[serde(default)]
    pub overlay: Option<PathBuf>,
    /// Weights in order (default 10, 25, 50, 100).
    #[serde(default)]
    pub stages: Vec<StageConfig>,
    /// How each stage is approved (default `pull-request`).
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Approvals needed under the `approved` gate.
    #[serde(default)]
    pub min_approvals: Option<u32>,
    /// Bake time per stage, e.g. `5m`.
    #[serde(default)]
    pub bake_time: Option<String>,
    #[serde(default)]
    pub forge: Option<ForgeKind>,
    /// The branch Argo CD / Flux deploy from.
    #[serde(default)]
    pub base: Option<String>,
    /// `merge`, `squash` or `rebase`.
    #[serde(default)]
    pub merge_method: Option<String>,
    /// Labels put on every pull request (the first one also finds them again).
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub cluster: Option<ClusterMode>,
    /// Gates to run after each merge.
    #[serde(default)]
    pub gates: Vec<crate::gate::Gate>,
    /// Timeout for the gates of one stage, e.g. `10m`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// What shows that a merge reached the cluster: `ingress`, `argocd` or `flux`.
    #[serde(default)]
    pub sync_source: Option<crate::gate::SyncSourceKind>,
    /// The Argo CD Application, `NAMESPACE/NAME`.
    #[serde(default)]
    pub argocd_app: Option<String>,
    /// The Flux Kustomization, `NAMESPACE/NAME`.
    #[serde(default)]
    pub flux_kustomization: Option<String>,
    /// Prometheus for the metrics gate.
    #[serde(default)]
    pub prometheus_url: Option<String>,
    /// Whose metrics the metrics gate reads: `ingress-nginx` (the default), `envoy-gateway`,
    /// `istio`, `nginx-gateway-fabric` or `custom`.
    #[serde(default)]
    pub metrics_provider: Option<crate::gate::metrics::Provider>,
    #[serde(default)]
    pub rollback: Option<RollbackPolicy>,
    /// Promote the canary to stable after the last stage (default true).
    #[serde(default)]
    pub promote: Option<bool>,
    /// A canary whose weight is a Helm chart value: the file (a values file, a Flux
    /// HelmRelease or an Argo CD Application) and the value's path, e.g.
    /// `{file: apps/shop.yaml, path: canary.weight}`.
    #[serde(default)]
    pub weight_from: Option<crate::router::helm::WeightFrom>,
}

impl Config {
    /// Read `file`; a missing file is an empty config (everything from flags).
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::empty()),
            Err(source) => {
                return Err(ConfigError::Read {
                    file: file.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::empty());
        }
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    pub fn empty() -> Config {
        Config {
            id: None,
            ingresses: Vec::new(),
            routes: Vec::new(),
            canary_service: None,
            overlay: None,
            stages: Vec::new(),
            approval: None,
            min_approvals: None,
            bake_time: None,
            forge: None,
            base: None,
            merge_method: None,
            labels: Vec::new(),
            cluster: None,
            gates: Vec::new(),
            timeout: None,
            sync_source: None,
            argocd_app: None,
            flux_kustomization: None,
            prometheus_url: None,
            metrics_provider: None,
            rollback: None,
            promote: None,
            weight_from: None,
        }
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            field: field.to_string(),
            message,
        };
        check_stages(
            &self
                .stages
                .iter()
                .map(StageConfig::weight)
                .collect::<Vec<_>>(),
        )
        .map_err(|m| invalid("stages", m))?;
        for (i, s) in self.stages.iter().enumerate() {
            if let StageConfig::Detailed {
                bake_time: Some(b), ..
            } = s
            {
                parse_duration(b).map_err(|m| invalid(&format!("stages[{i}].bakeTime"), m))?;
            }
        }
        for (field, value) in [("bakeTime", &self.bake_time), ("timeout", &self.timeout)] {
            if let Some(v) = value {
                parse_duration(v).map_err(|m| invalid(field, m))?;
            }
        }
        if let Some(w) = &self.weight_from {
            crate::router::helm::parse_path(&w.path).map_err(|m| invalid("weightFrom.path", m))?;
        }
        if let Some(m) = &self.merge_method {
            if !matches!(m.as_str(), "merge" | "squash" | "rebase") {
                return Err(invalid(
                    "mergeMethod",
                    format!("{m:?} is not one of merge, squash, rebase"),
                ));
            }
        }
        Ok(())
    }

    /// The bake time of each stage that sets its own (`None`: the rollout's), in stage order.
    pub fn stage_bakes(&self) -> Vec<Option<Duration>> {
        self.stages
            .iter()
            .map(|s| match s {
                StageConfig::Detailed {
                    bake_time: Some(b), ..
                } => parse_duration(b).ok(),
                _ => None,
            })
            .collect()
    }

    /// The stages with their approval, defaults applied.
    pub fn stages(&self, default_approval: Approval) -> Vec<Stage> {
        let approval = self.approval.unwrap_or(default_approval);
        if self.stages.is_empty() {
            return DEFAULT_STAGES
                .iter()
                .map(|w| Stage {
                    weight: *w,
                    approval,
                })
                .collect();
        }
        self.stages
            .iter()
            .map(|s| match s {
                StageConfig::Weight(w) => Stage {
                    weight: *w,
                    approval,
                },
                StageConfig::Detailed {
                    weight,
                    approval: a,
                    ..
                } => Stage {
                    weight: *weight,
                    approval: a.unwrap_or(approval),
                },
            })
            .collect()
    }
}

pub(crate) const DEFAULT_STAGES: [u32; 4] = [10, 25, 50, 100];

/// Stage weights rise strictly within 1..=100.
pub(crate) fn check_stages(weights: &[u32]) -> Result<(), String> {
    let mut last = 0;
    for w in weights {
        if *w == 0 || *w > 100 {
            return Err(format!("stage weight {w} is outside 1..=100"));
        }
        if *w <= last {
            return Err(format!("stage weights must rise: {w} after {last}"));
        }
        last = *w;
    }
    Ok(())
}

/// `90s`, `5m`, `1h30m`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 90s, 5m or 1h: {e}"))
}

/// The JSON Schema of the configuration file.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let text = "id: shop-web\ningresses: [shop/web-canary]\nstages:\n  - 10\n  - weight: 50\n    approval: approved\n    bakeTime: 10m\n  - 100\napproval: pull-request\nforge: gitlab\ngates: [synced, rolled-out]\ntimeout: 10m\n";
        let c = Config::parse(Path::new("c.yaml"), text).unwrap();
        let st = c.stages(Approval::Auto);
        assert_eq!(st.len(), 3);
        assert_eq!(st[1].approval, Approval::Approved);
        assert_eq!(st[0].approval, Approval::PullRequest);
        assert_eq!(c.forge, Some(ForgeKind::Gitlab));
        assert_eq!(
            c.stage_bakes(),
            [None, Some(Duration::from_secs(600)), None],
            "a stage's own bakeTime is kept, not only validated"
        );
        assert_eq!(
            c.gates,
            [crate::gate::Gate::Synced, crate::gate::Gate::RolledOut]
        );
    }

    #[test]
    fn gates_are_one_vocabulary() {
        let e = Config::parse(Path::new("c.yaml"), "gates: [synced, healthy]\n").unwrap_err();
        assert!(e.to_string().contains("healthy"), "{e}");
        let s = schema();
        let text = s.to_string();
        for g in crate::gate::Gate::ALL {
            assert!(
                text.contains(&format!("\"{g}\"")),
                "schema lacks {g}: {text}"
            );
        }
    }

    #[test]
    fn errors_name_the_file_the_field_and_the_line() {
        let e = Config::parse(Path::new(".gitops-canary.yaml"), "stages: [10, 5]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            ".gitops-canary.yaml: stages: stage weights must rise: 5 after 10"
        );
        let e = Config::parse(Path::new("c.yaml"), "ingresses: [a]\nstagez: [1]\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.yaml: "), "{msg}");
        assert!(msg.contains("stagez"), "{msg}");
        assert!(msg.contains('2'), "the line is named: {msg}");
        let e = Config::parse(Path::new("c.yaml"), "timeout: soon\n").unwrap_err();
        assert!(e.to_string().contains("timeout"), "{e}");
    }

    #[test]
    fn weight_from_is_a_file_and_a_value_path() {
        let c = Config::parse(
            Path::new("c.yaml"),
            "weightFrom:\n  file: apps/shop.yaml\n  path: canary.weight\n",
        )
        .unwrap();
        let w = c.weight_from.unwrap();
        assert_eq!(w.file, PathBuf::from("apps/shop.yaml"));
        assert_eq!(w.path, "canary.weight");
        let e = Config::parse(
            Path::new("c.yaml"),
            "weightFrom: {file: v.yaml, path: 'a..b'}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("weightFrom.path"), "{e}");
        let e = Config::parse(Path::new("c.yaml"), "weightFrom: {file: v.yaml}\n").unwrap_err();
        assert!(e.to_string().contains("path"), "{e}");
        assert!(schema().to_string().contains("weightFrom"));
    }

    #[test]
    fn schema_names_the_fields() {
        let s = schema().to_string();
        for f in [
            "ingresses",
            "stages",
            "approval",
            "bakeTime",
            "gates",
            "rollback",
        ] {
            assert!(s.contains(f), "{f}");
        }
    }
}

#[cfg(test)]
mod readme_tests {
    use super::*;

    /// The configuration shown in the README is a valid file.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("### Configuration")
            .nth(1)
            .expect("README has a Configuration section");
        let block = section
            .split("```yaml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a yaml block");
        let c = Config::parse(Path::new("README.md"), block).unwrap();
        assert_eq!(c.stages(Approval::PullRequest).len(), 4);
        assert_eq!(c.gates.len(), 4);
    }
}
