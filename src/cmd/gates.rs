//! The gates after a merge, built from flags: the cluster gates (synced, rolled-out, steady)
//! and the Prometheus analysis (metrics), run in that order by one `GateRunner`.
//!
//! `check` and the rollout commands share these flags, so a gate behaves the same whether a
//! person runs it once or the rollout runs it after every stage.

use std::time::Duration;

use futures::future::BoxFuture;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::cluster::{self, GateOutcome, GateSettings, ObjectRef, Subject, SyncVia};
use crate::exit::UsageError;
use crate::gate::metrics::{queries, AnalysisConfig, Provider, Queries, QueryTemplates, Vars};
use crate::gate::target::MetricsLabels;
use crate::gate::{Gate, Verdict};
use crate::metrics::{run_analysis_with, ManualClock, PrometheusClient, SystemClock};
use crate::rollout::{GateContext, GateLine, GateReport, GateRunner};
use crate::secret::Token;

pub(crate) use crate::gate::SyncSourceKind;

/// Where `synced` looks, from the flags.
pub fn sync_via(
    kind: SyncSourceKind,
    argocd_app: Option<&str>,
    flux_kustomization: Option<&str>,
) -> Result<SyncVia, UsageError> {
    Ok(match kind {
        SyncSourceKind::Ingress => SyncVia::Ingress,
        SyncSourceKind::Argocd => {
            let app = argocd_app.ok_or_else(|| {
                UsageError::flag("--sync-source", "argocd needs --argocd-app NS/NAME")
                    .help("pass --argocd-app NAMESPACE/NAME, or set argocdApp in the config file")
            })?;
            SyncVia::ArgoCd(
                ObjectRef::parse(app, "argocd")
                    .map_err(|e| UsageError::flag("--argocd-app", e.to_string()))?,
            )
        }
        SyncSourceKind::Flux => {
            let ks = flux_kustomization.ok_or_else(|| {
                UsageError::flag("--sync-source", "flux needs --flux-kustomization NS/NAME").help(
                    "pass --flux-kustomization NAMESPACE/NAME, or set fluxKustomization in the config file",
                )
            })?;
            SyncVia::Flux(
                ObjectRef::parse(ks, "flux-system")
                    .map_err(|e| UsageError::flag("--flux-kustomization", e.to_string()))?,
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
    #[arg(long, env = "GITOPS_CANARY_MIN_SUCCESS_RATE", default_value_t = crate::gate::metrics::DEFAULT_MIN_SUCCESS_RATE)]
    pub min_success_rate: f64,
    /// Highest acceptable p99 latency of canary requests, in seconds.
    #[arg(long, env = "GITOPS_CANARY_MAX_P99_SECONDS", default_value_t = crate::gate::metrics::DEFAULT_MAX_P99_SECONDS)]
    pub max_p99_seconds: f64,
    /// Whose metrics the built-in queries read: ingress-nginx, envoy-gateway, istio,
    /// nginx-gateway-fabric, or custom (every query from --metrics-query-*).
    #[arg(long, env = "GITOPS_CANARY_METRICS_PROVIDER", value_enum)]
    pub metrics_provider: Option<Provider>,
    /// PromQL template of the canary's success rate (0..1), replacing the provider's;
    /// placeholders {{namespace}}, {{service}}, {{route}} (or {{ingress}}), {{interval}}.
    #[arg(long, env = "GITOPS_CANARY_METRICS_QUERY_SUCCESS")]
    pub metrics_query_success: Option<String>,
    /// PromQL template of the canary's p99 latency in seconds, replacing the provider's
    /// (same placeholders).
    #[arg(long, env = "GITOPS_CANARY_METRICS_QUERY_P99")]
    pub metrics_query_p99: Option<String>,
    /// PromQL template of the canary's request count in the interval (the minimum-traffic
    /// rule), replacing the provider's (same placeholders).
    #[arg(long, env = "GITOPS_CANARY_METRICS_QUERY_REQUESTS")]
    pub metrics_query_requests: Option<String>,
    /// Evaluate the analysis runs at their times without waiting for them (for data that is
    /// already stored: replays and tests).
    #[arg(long, env = "GITOPS_CANARY_METRICS_REPLAY", hide = true)]
    pub metrics_replay: bool,
}

impl MetricsArgs {
    /// The queries these flags ask for: the provider's built-ins (ingress-nginx when none is
    /// given), each replaced by its template. A missing or broken template is a usage error.
    pub fn queries(&self) -> Result<Queries, UsageError> {
        queries(
            self.metrics_provider.unwrap_or_default(),
            &QueryTemplates {
                requests: self.metrics_query_requests.clone(),
                success: self.metrics_query_success.clone(),
                p99: self.metrics_query_p99.clone(),
            },
            self.min_success_rate,
            self.max_p99_seconds,
        )
        .map_err(UsageError::new)
    }
}

/// The Prometheus analysis as a gate.
pub struct MetricsGate {
    pub client: PrometheusClient,
    pub args: MetricsArgs,
    pub queries: Queries,
}

impl MetricsGate {
    pub fn new(args: &MetricsArgs) -> anyhow::Result<Option<Self>> {
        let Some(url) = &args.prometheus_url else {
            return Ok(None);
        };
        let queries = args.queries()?;
        Ok(Some(MetricsGate {
            client: PrometheusClient::new(url, args.prometheus_token.clone())?,
            args: args.clone(),
            queries,
        }))
    }

    /// The analysis of every canary of the stage over one bake, side by side; the first
    /// canary that fails fails the gate.
    pub async fn analyse(
        &self,
        labels: &[MetricsLabels],
        bake: Duration,
    ) -> anyhow::Result<GateOutcome> {
        let started = std::time::Instant::now();
        if labels.is_empty() {
            return Ok(GateOutcome {
                gate: Gate::Metrics.as_str().into(),
                verdict: Verdict::Fail("no canary route to analyse".into()),
                last_state: String::new(),
                elapsed: started.elapsed(),
                timed_out: false,
            });
        }
        let mut runs: FuturesUnordered<_> = labels
            .iter()
            .map(|l| {
                let vars = Vars::new(
                    l.namespace.clone(),
                    l.ingress.clone(),
                    l.service.clone(),
                    self.args.metrics_interval,
                );
                self.analyse_vars(vars, bake)
            })
            .collect();
        let (mut verdicts, mut details) = (Vec::new(), Vec::new());
        while let Some(line) = runs.next().await {
            let (verdict, detail) = line?;
            let failed = matches!(verdict, Verdict::Fail(_));
            verdicts.push(verdict);
            details.push(detail);
            if failed {
                break;
            }
        }
        // A failure first, then whatever does not pass, so the verdict names its canary.
        let verdict = crate::gate::k8s::combine(verdicts);
        Ok(GateOutcome {
            gate: Gate::Metrics.as_str().into(),
            verdict,
            last_state: details.join("; "),
            elapsed: started.elapsed(),
            timed_out: false,
        })
    }

    /// The analysis for one canary's label values (namespace and name of the stable Ingress,
    /// the canary's Service): its verdict and what it saw.
    pub(crate) async fn analyse_vars(
        &self,
        vars: Vars,
        bake: Duration,
    ) -> anyhow::Result<(Verdict, String)> {
        let config = AnalysisConfig {
            interval: self.args.metrics_interval,
            bake_time: bake.max(self.args.metrics_interval),
            failure_limit: self.args.failure_limit,
            min_requests: self.args.min_requests,
            min_passing_runs: 1,
        };
        let (requests, checks) = (&self.queries.requests, &self.queries.checks);
        let report = if self.args.metrics_replay {
            let clock = ManualClock::starting_at(crate::metrics::Clock::now(&SystemClock));
            run_analysis_with(&self.client, requests, checks, &vars, &config, &clock).await?
        } else {
            run_analysis_with(&self.client, requests, checks, &vars, &config, &SystemClock).await?
        };
        let runs = serde_json::to_value(&report.analysis)
            .ok()
            .and_then(|v| v.get("runs").and_then(|r| r.as_array()).map(|a| a.len()))
            .unwrap_or(0);
        Ok((
            report.verdict().clone(),
            format!(
                "{runs} run(s) over {} of {} metrics for {}/{} (service {})",
                humantime::format_duration(config.bake_time),
                self.queries.provider,
                vars.namespace,
                vars.ingress,
                vars.service
            ),
        ))
    }
}

/// The one gate runner `check` and the rollout loop share: the cluster gates before the bake
/// (synced, rolled-out) in order, then the bake (steady) and the metrics analysis side by side
/// over the same minutes. It stops at the first gate that fails.
pub struct Runner {
    /// The cluster, when a cluster gate is asked for.
    pub client: Option<kube::Client>,
    pub settings: GateSettings,
    /// The bake of each stage (index 0 is stage 1) where it differs from `settings.bake`.
    pub stage_bakes: Vec<Option<Duration>>,
    pub metrics: Option<MetricsGate>,
}

impl Runner {
    /// The bake of a stage (1-based): its own, else the rollout's.
    pub fn bake(&self, stage: usize) -> Duration {
        stage
            .checked_sub(1)
            .and_then(|i| self.stage_bakes.get(i).copied().flatten())
            .unwrap_or(self.settings.bake)
    }

    fn cluster(&self) -> anyhow::Result<&kube::Client> {
        self.client
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("cluster gates asked for without a cluster client"))
    }

    /// Run the gates for one subject with one bake. `each` sees every outcome as it is
    /// decided (for progress output).
    pub async fn judge(
        &self,
        subject: &Subject,
        bake: Duration,
        timeout: Duration,
        each: &mut (dyn FnMut(&GateOutcome) + Send),
    ) -> anyhow::Result<Vec<GateOutcome>> {
        let gates = &self.settings.gates;
        let before: Vec<Gate> = gates
            .iter()
            .copied()
            .filter(|g| matches!(g, Gate::Synced | Gate::RolledOut))
            .collect();
        let mut outcomes = Vec::new();
        if !before.is_empty() {
            let settings = GateSettings {
                gates: before,
                timeout,
                ..self.settings.clone()
            };
            let done = cluster::run_gates(self.cluster()?, &settings, subject, |o| each(o)).await?;
            let passed = done.iter().all(GateOutcome::passed);
            outcomes.extend(done);
            if !passed {
                return Ok(outcomes);
            }
        }
        // The bake (steady) and the metrics analysis watch the same period side by side.
        let steady = async {
            if !gates.contains(&Gate::Steady) {
                return Ok(None);
            }
            let settings = GateSettings {
                gates: vec![Gate::Steady],
                bake,
                ..self.settings.clone()
            };
            let mut done = cluster::run_gates(self.cluster()?, &settings, subject, |_| {}).await?;
            Ok::<_, anyhow::Error>(done.pop())
        };
        let metrics = async {
            match (&self.metrics, gates.contains(&Gate::Metrics)) {
                (Some(m), true) => m.analyse(&subject.targets.metrics, bake).await.map(Some),
                _ => Ok(None),
            }
        };
        // A failure on either side ends the stage at once; otherwise both run to the end.
        let failed = |o: &Option<GateOutcome>| {
            o.as_ref()
                .is_some_and(|o| matches!(o.verdict, Verdict::Fail(_)))
        };
        let (steady, metrics) = {
            use futures::future::{select, Either};
            let (steady, metrics) = (Box::pin(steady), Box::pin(metrics));
            let mut seen = |o: Option<GateOutcome>| {
                if let Some(o) = &o {
                    each(o);
                }
                o
            };
            match select(steady, metrics).await {
                Either::Left((s, rest)) => {
                    let s = seen(s?);
                    let m = if failed(&s) { None } else { seen(rest.await?) };
                    (s, m)
                }
                Either::Right((m, rest)) => {
                    let m = seen(m?);
                    let s = if failed(&m) { None } else { seen(rest.await?) };
                    (s, m)
                }
            }
        };
        outcomes.extend(steady);
        outcomes.extend(metrics);
        Ok(outcomes)
    }
}

impl GateRunner for Runner {
    fn run<'a>(&'a self, ctx: &'a GateContext) -> BoxFuture<'a, anyhow::Result<GateReport>> {
        Box::pin(async move {
            let subject = Subject {
                targets: ctx.targets.clone(),
                weight: ctx.weight,
                revision: Some(ctx.revision.clone()).filter(|r| !r.is_empty()),
            };
            let outcomes = self
                .judge(
                    &subject,
                    self.bake(ctx.stage),
                    ctx.timeout.unwrap_or(self.settings.timeout),
                    &mut |_| {},
                )
                .await?;
            Ok(GateReport {
                verdict: crate::gate::k8s::combine(outcomes.iter().map(|o| o.verdict.clone())),
                gates: outcomes
                    .into_iter()
                    .map(|o| GateLine {
                        gate: o.gate,
                        verdict: o.verdict,
                        detail: o.last_state,
                        timed_out: o.timed_out,
                    })
                    .collect(),
            })
        })
    }
}

/// Everything the runner needs, resolved from flags and the config file.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub gates: Vec<Gate>,
    pub context: Option<String>,
    pub sync_via: SyncVia,
    pub sync_now: bool,
    pub timeout: Duration,
    pub bake: Duration,
    /// Per-stage bakes from the config file (index 0 is stage 1).
    pub stage_bakes: Vec<Option<Duration>>,
    pub restart_threshold: i32,
}

/// Connect (when a cluster gate is asked for) and build the runner.
pub async fn runner(s: RunnerSettings, metrics: &MetricsArgs) -> anyhow::Result<Runner> {
    let client = if s.gates.iter().any(|g| g.is_cluster()) {
        Some(cluster::connect(s.context.as_deref()).await?)
    } else {
        None
    };
    let metrics = if s.gates.contains(&Gate::Metrics) {
        Some(MetricsGate::new(metrics)?.ok_or_else(|| {
            UsageError::flag(
                "--gates",
                "the metrics gate needs --prometheus-url (GITOPS_CANARY_PROMETHEUS_URL)",
            )
            .help("pass --prometheus-url URL, or set prometheusUrl in the config file")
        })?)
    } else {
        None
    };
    Ok(Runner {
        client,
        settings: GateSettings {
            gates: s.gates,
            sync_via: s.sync_via,
            sync_now: s.sync_now,
            timeout: s.timeout,
            bake: s.bake,
            restart_threshold: s.restart_threshold,
        },
        stage_bakes: s.stage_bakes,
        metrics,
    })
}
