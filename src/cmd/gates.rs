//! The gates after a merge, built from flags: the cluster gates (synced, rolled-out, steady)
//! and the Prometheus analysis (metrics), run in that order by one `GateRunner`.
//!
//! `check` and the rollout commands share these flags, so a gate behaves the same whether a
//! person runs it once or the rollout runs it after every stage.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::app::{GateContext, GateLine, GateReport, GateRunner};
use crate::cluster::{self, ClusterGate, ClusterGates, GateSettings, ObjectRef, SyncVia};
use crate::exit::Usage;
use crate::gate::metrics::{builtin_checks, AnalysisConfig, Vars};
use crate::gate::Verdict;
use crate::metrics::{run_analysis, ManualClock, PrometheusClient, SystemClock};
use crate::secret::Token;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    clap::ValueEnum,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyncSourceKind {
    /// The live canary Ingress carries the weight Git has.
    #[default]
    Ingress,
    /// The Argo CD Application is Synced and Healthy at the merged revision.
    Argocd,
    /// The Flux Kustomization is Ready at the merged revision.
    Flux,
}

/// Where `synced` looks, from the flags.
pub fn sync_via(
    kind: SyncSourceKind,
    argocd_app: Option<&str>,
    flux_kustomization: Option<&str>,
) -> Result<SyncVia, Usage> {
    Ok(match kind {
        SyncSourceKind::Ingress => SyncVia::Ingress,
        SyncSourceKind::Argocd => {
            let app = argocd_app
                .ok_or_else(|| Usage("--sync-source argocd needs --argocd-app NS/NAME".into()))?;
            SyncVia::ArgoCd(
                ObjectRef::parse(app, "argocd").map_err(|e| Usage(format!("--argocd-app: {e}")))?,
            )
        }
        SyncSourceKind::Flux => {
            let ks = flux_kustomization.ok_or_else(|| {
                Usage("--sync-source flux needs --flux-kustomization NS/NAME".into())
            })?;
            SyncVia::Flux(
                ObjectRef::parse(ks, "flux-system")
                    .map_err(|e| Usage(format!("--flux-kustomization: {e}")))?,
            )
        }
    })
}

/// Prometheus analysis flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Prometheus base URL for the metrics gate.
    #[arg(long, env = "GITOPS_CANARY_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Bearer token for Prometheus.
    #[arg(long, env = "GITOPS_CANARY_PROMETHEUS_TOKEN", hide_env_values = true)]
    pub prometheus_token: Option<Token>,
    /// Time between analysis runs (and the PromQL range of each).
    #[arg(long, env = "GITOPS_CANARY_METRICS_INTERVAL", value_parser = humantime::parse_duration, default_value = "1m")]
    pub metrics_interval: Duration,
    /// Failed analysis runs tolerated; one more fails the gate.
    #[arg(long, env = "GITOPS_CANARY_FAILURE_LIMIT", default_value_t = 1)]
    pub failure_limit: u32,
    /// Canary requests a run needs to count (fewer is inconclusive, not a pass).
    #[arg(long, env = "GITOPS_CANARY_MIN_REQUESTS", default_value_t = 20.0)]
    pub min_requests: f64,
    /// Lowest acceptable non-5xx share of canary requests.
    #[arg(long, env = "GITOPS_CANARY_MIN_SUCCESS_RATE", default_value_t = 0.99)]
    pub min_success_rate: f64,
    /// Highest acceptable p99 latency of canary requests, in seconds.
    #[arg(long, env = "GITOPS_CANARY_MAX_P99_SECONDS", default_value_t = 0.5)]
    pub max_p99_seconds: f64,
    /// Evaluate the analysis runs at their times without waiting for them (for data that is
    /// already stored: replays and tests).
    #[arg(long, env = "GITOPS_CANARY_METRICS_REPLAY", hide = true)]
    pub metrics_replay: bool,
}

/// The Prometheus analysis as a gate.
pub struct MetricsGate {
    pub client: PrometheusClient,
    pub args: MetricsArgs,
    pub bake_time: Duration,
}

impl MetricsGate {
    pub fn new(args: &MetricsArgs, bake_time: Duration) -> anyhow::Result<Option<Self>> {
        let Some(url) = &args.prometheus_url else {
            return Ok(None);
        };
        Ok(Some(MetricsGate {
            client: PrometheusClient::new(url, args.prometheus_token.clone())?,
            args: args.clone(),
            bake_time,
        }))
    }

    /// The label values ingress-nginx's metrics carry for canary requests: the canary is merged
    /// into its stable's location, so `ingress` is the stable Ingress and `canary!=""` marks the
    /// canary's share; `service` is the canary's Service (for custom queries).
    pub fn vars(&self, ctx: &GateContext) -> Option<Vars> {
        let canary = ctx.canaries.first()?;
        let stable = ctx.stables.first().unwrap_or(canary);
        Some(Vars::new(
            stable.namespace.clone().unwrap_or_else(|| "default".into()),
            stable.name.clone(),
            canary.services().first().cloned().unwrap_or_default(),
            self.args.metrics_interval,
        ))
    }

    pub async fn analyse(&self, ctx: &GateContext) -> anyhow::Result<GateLine> {
        match self.vars(ctx) {
            Some(vars) => self.analyse_vars(vars).await,
            None => Ok(GateLine {
                gate: "metrics".into(),
                verdict: Verdict::Fail("no canary route to analyse".into()),
                detail: String::new(),
            }),
        }
    }

    /// The analysis for explicit label values (namespace and name of the stable Ingress, the
    /// canary's Service).
    pub async fn analyse_vars(&self, vars: Vars) -> anyhow::Result<GateLine> {
        let config = AnalysisConfig {
            interval: self.args.metrics_interval,
            bake_time: self.bake_time.max(self.args.metrics_interval),
            failure_limit: self.args.failure_limit,
            min_requests: self.args.min_requests,
            min_passing_runs: 1,
        };
        let checks = builtin_checks(self.args.min_success_rate, self.args.max_p99_seconds);
        let report = if self.args.metrics_replay {
            let clock = ManualClock::starting_at(crate::metrics::Clock::now(&SystemClock));
            run_analysis(&self.client, &checks, &vars, &config, &clock).await?
        } else {
            run_analysis(&self.client, &checks, &vars, &config, &SystemClock).await?
        };
        let runs = serde_json::to_value(&report.analysis)
            .ok()
            .and_then(|v| v.get("runs").and_then(|r| r.as_array()).map(|a| a.len()))
            .unwrap_or(0);
        Ok(GateLine {
            gate: "metrics".into(),
            verdict: report.verdict().clone(),
            detail: format!(
                "{runs} run(s) over {} for {}/{} (service {})",
                humantime::format_duration(config.bake_time),
                vars.namespace,
                vars.ingress,
                vars.service
            ),
        })
    }
}

/// Cluster gates, then metrics; stops at the first gate that does not pass.
pub struct Chain {
    pub cluster: Option<ClusterGates>,
    pub metrics: Option<MetricsGate>,
}

impl Chain {
    /// The cluster gates split in two: those before the bake (synced, rolled-out) and the bake
    /// itself (steady), so that the bake and the metrics analysis can share the same minutes.
    fn split(&self) -> (Option<ClusterGates>, Option<ClusterGates>) {
        let Some(c) = &self.cluster else {
            return (None, None);
        };
        let part = |keep: &dyn Fn(&ClusterGate) -> bool| {
            let gates: Vec<ClusterGate> = c
                .settings
                .gates
                .iter()
                .copied()
                .filter(|g| keep(g))
                .collect();
            (!gates.is_empty()).then(|| ClusterGates {
                client: c.client.clone(),
                settings: GateSettings {
                    gates,
                    ..c.settings.clone()
                },
            })
        };
        (
            part(&|g| *g != ClusterGate::Steady),
            part(&|g| *g == ClusterGate::Steady),
        )
    }
}

impl GateRunner for Chain {
    fn run<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, anyhow::Result<GateReport>> {
        Box::pin(async move {
            let (before, bake) = self.split();
            let mut lines = Vec::new();
            if let Some(c) = &before {
                let r = c.run(ctx).await?;
                lines.extend(r.gates);
                if r.verdict != Verdict::Pass {
                    return Ok(GateReport {
                        verdict: r.verdict,
                        gates: lines,
                    });
                }
            }
            // The bake (steady) and the metrics analysis watch the same period side by side.
            let steady = async {
                match &bake {
                    Some(c) => c.run(ctx).await.map(Some),
                    None => Ok(None),
                }
            };
            let metrics = async {
                match &self.metrics {
                    Some(m) => m.analyse(ctx).await.map(Some),
                    None => Ok(None),
                }
            };
            // A failure on either side ends the stage at once; otherwise both run to the end.
            let failed = |v: &Verdict| matches!(v, Verdict::Fail(_));
            let (steady, metrics) = {
                use futures::future::{select, Either};
                let (steady, metrics) = (Box::pin(steady), Box::pin(metrics));
                match select(steady, metrics).await {
                    Either::Left((s, rest)) => {
                        let s = s?;
                        if s.as_ref().is_some_and(|r| failed(&r.verdict)) {
                            (Some(s), None)
                        } else {
                            (Some(s), Some(rest.await?))
                        }
                    }
                    Either::Right((m, rest)) => {
                        let m = m?;
                        if m.as_ref().is_some_and(|l| failed(&l.verdict)) {
                            (None, Some(m))
                        } else {
                            (Some(rest.await?), Some(m))
                        }
                    }
                }
            };
            let mut verdicts = Vec::new();
            if let Some(r) = steady.flatten() {
                verdicts.push(r.verdict);
                lines.extend(r.gates);
            }
            if let Some(line) = metrics.flatten() {
                verdicts.push(line.verdict.clone());
                lines.push(line);
            }
            Ok(GateReport {
                verdict: crate::gate::k8s::combine(verdicts),
                gates: lines,
            })
        })
    }
}

/// The cluster gate list from names; `metrics` is handled by `MetricsGate`.
pub fn cluster_gates(names: &[String]) -> Vec<ClusterGate> {
    names
        .iter()
        .filter_map(|g| match g.as_str() {
            "synced" => Some(ClusterGate::Synced),
            "rolled-out" => Some(ClusterGate::RolledOut),
            "steady" => Some(ClusterGate::Steady),
            _ => None,
        })
        .collect()
}

/// Everything the chain needs, resolved.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    pub gates: Vec<String>,
    pub context: Option<String>,
    pub sync_via: SyncVia,
    pub sync_now: bool,
    pub timeout: Duration,
    pub bake: Duration,
    pub restart_threshold: i32,
}

/// Connect and build the chain.
pub async fn chain(s: ChainSettings, metrics: &MetricsArgs) -> anyhow::Result<Chain> {
    let wanted = cluster_gates(&s.gates);
    let cluster = if wanted.is_empty() {
        None
    } else {
        Some(ClusterGates {
            client: cluster::connect(s.context.as_deref()).await?,
            settings: GateSettings {
                gates: wanted,
                sync_via: s.sync_via,
                sync_now: s.sync_now,
                timeout: s.timeout,
                bake: s.bake,
                restart_threshold: s.restart_threshold,
            },
        })
    };
    let metrics = if s.gates.iter().any(|g| g == "metrics") {
        Some(MetricsGate::new(metrics, s.bake)?.ok_or_else(|| {
            Usage("the metrics gate needs --prometheus-url (GITOPS_CANARY_PROMETHEUS_URL)".into())
        })?)
    } else {
        None
    };
    Ok(Chain { cluster, metrics })
}
