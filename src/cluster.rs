//! The cluster adapter: watch Kubernetes objects and feed them to the pure gates in `gate::k8s`.
//!
//! Everything here is I/O and timing. One generic waiter, [`wait_for`], runs a
//! `kube::runtime::watcher` on a single object and re-evaluates a condition on every event, so a
//! pass is reported as soon as the API server tells us about the change (no polling interval).
//! The watcher resumes a dropped watch from the last resourceVersion and relists on 410 Gone;
//! on top of it we retry other faults (5xx, transport) with a bounded backoff and fail at once
//! on 401/403, naming the verb and resource the RBAC role is missing. The gates (`synced`,
//! `rolled_out`, `steady`) are compositions of that waiter, and each returns a [`GateOutcome`]
//! with the last observed state so a failure can say what the cluster looked like.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{Selector, Status};
use kube::runtime::watcher;
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fault::Classify;
use crate::gate::k8s as gates;
use crate::gate::Verdict;

/// Restarts a container may accumulate before `steady` calls it unstable.
pub const DEFAULT_RESTART_THRESHOLD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the Kubernetes client configuration{}: {message}", context_suffix(.context))]
    Config {
        context: Option<String>,
        message: String,
    },
    #[error("forbidden: cannot {} {} in namespace {} (needed for {} {}): {}", .0.verb, .0.resource, .0.namespace, .0.kind, .0.name, .0.message)]
    Forbidden(Box<Denial>),
    #[error("unauthorized: the API server rejected the credentials to {} {} in namespace {} (for {} {}): {}", .0.verb, .0.resource, .0.namespace, .0.kind, .0.name, .0.message)]
    Unauthorized(Box<Denial>),
    #[error("the API server does not serve {resource} (needed for {kind} {namespace}/{name}): is the CRD installed and the version right?")]
    NotServed {
        resource: String,
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("{kind} {namespace}/{name}: {detail}")]
    Invalid {
        kind: String,
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("cannot {verb} {kind} {namespace}/{name}: {message}")]
    Api {
        verb: String,
        kind: String,
        namespace: String,
        name: String,
        message: String,
    },
}

/// What the API server refused (401/403): the verb and `plural.group` an RBAC rule needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub verb: String,
    pub resource: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

fn context_suffix(context: &Option<String>) -> String {
    context
        .as_ref()
        .map(|c| format!(" (context {c})"))
        .unwrap_or_default()
}

impl Classify for ClusterError {
    /// Configuration, RBAC, a missing CRD or object, a selector we cannot use: the user must
    /// change something. A plain API failure after retries is the world's state.
    fn is_bad_input(&self) -> bool {
        !matches!(self, ClusterError::Api { .. })
    }
}

pub use crate::gate::ObjectRef;

/// What a gate concluded, with what the cluster showed last (for the failure message).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    pub gate: String,
    pub verdict: Verdict,
    pub last_state: String,
    #[serde(rename = "elapsed_ms", serialize_with = "ser_millis")]
    pub elapsed: Duration,
    /// The verdict is a timeout (the budget ran out before the state decided), not a state
    /// that failed: `reconcile` waits again while the stage's window is open.
    #[serde(skip)]
    pub timed_out: bool,
}

fn ser_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl GateOutcome {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Connect the way `kubectl` does: `KUBECONFIG` or `~/.kube/config`, else the in-cluster
/// service account; with a context, that context of the kubeconfig.
fn client_from(mut config: Config, context: Option<&str>) -> Result<Client, ClusterError> {
    // kube's built-in retry layer retries 429/503/504 up to 15 times with delays growing to
    // 1000 s, invisibly: the watch loop's own bounded backoff must see every fault so a gate
    // can report it and time out on schedule.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| config_error(context, e))
}

pub async fn connect(context: Option<&str>) -> Result<Client, ClusterError> {
    let config = match context {
        Some(ctx) => {
            let options = KubeConfigOptions {
                context: Some(ctx.to_string()),
                ..Default::default()
            };
            Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_error(context, e))?
        }
        None => Config::infer()
            .await
            .map_err(|e| config_error(context, e))?,
    };
    client_from(config, context)
}

/// Connect with an explicit kubeconfig file (tests, and `--kubeconfig`-style callers).
pub async fn connect_kubeconfig(
    path: &std::path::Path,
    context: Option<&str>,
) -> Result<Client, ClusterError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| config_error(context, e))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| config_error(context, e))?;
    client_from(config, context)
}

fn config_error(context: Option<&str>, e: impl fmt::Display) -> ClusterError {
    ClusterError::Config {
        context: context.map(str::to_string),
        message: e.to_string(),
    }
}

/// Who we are watching, for error messages and RBAC hints.
#[derive(Debug, Clone)]
struct Target {
    kind: String,
    /// `plural.group` as RBAC rules and `kubectl auth can-i` spell it.
    resource: String,
    namespace: String,
    name: String,
}

impl Target {
    fn of<K: Resource>(dt: &K::DynamicType, namespace: &str, name: &str) -> Self {
        let group = K::group(dt);
        let plural = K::plural(dt);
        let resource = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        Target {
            kind: K::kind(dt).to_string(),
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn describe(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// How an error from the API server is handled.
enum Fault {
    /// Give up now with this error.
    Fatal(ClusterError),
    /// Try again after a backoff.
    Retry(String),
    /// The watcher already recovers by itself (410 Gone: it relists); no delay needed.
    Recovering(String),
}

fn status_fault(target: &Target, verb: &str, status: &Status) -> Fault {
    let message = status.message.clone();
    let t = target.clone();
    match status.code {
        401 => Fault::Fatal(ClusterError::Unauthorized(Box::new(Denial {
            verb: verb.into(),
            resource: t.resource,
            kind: t.kind,
            namespace: t.namespace,
            name: t.name,
            message,
        }))),
        403 => Fault::Fatal(ClusterError::Forbidden(Box::new(Denial {
            verb: verb.into(),
            resource: t.resource,
            kind: t.kind,
            namespace: t.namespace,
            name: t.name,
            message,
        }))),
        // A list or watch of a collection answers 404 only when the type is not served.
        404 if verb != "get" && verb != "patch" => Fault::Fatal(ClusterError::NotServed {
            resource: t.resource,
            kind: t.kind,
            namespace: t.namespace,
            name: t.name,
        }),
        404 => Fault::Fatal(ClusterError::NotFound {
            kind: t.kind,
            namespace: t.namespace,
            name: t.name,
        }),
        400 | 422 => Fault::Fatal(ClusterError::Invalid {
            kind: t.kind,
            namespace: t.namespace,
            name: t.name,
            detail: format!("{verb} rejected: {message}"),
        }),
        410 => Fault::Recovering(format!("{verb}: 410 Gone ({message}), relisting")),
        code => Fault::Retry(format!("{verb}: HTTP {code} {}: {message}", status.reason)),
    }
}

fn client_fault(target: &Target, verb: &str, err: &kube::Error) -> Fault {
    match err {
        kube::Error::Api(status) => status_fault(target, verb, status),
        other => Fault::Retry(format!("{verb}: {other}")),
    }
}

fn watcher_fault(target: &Target, err: &watcher::Error) -> Fault {
    match err {
        watcher::Error::InitialListFailed(e) => client_fault(target, "list", e),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            client_fault(target, "watch", e)
        }
        watcher::Error::WatchError(status) => status_fault(target, "watch", status),
        watcher::Error::NoResourceVersion => {
            Fault::Retry("list answered without a resourceVersion".into())
        }
    }
}

fn backoff() -> ExponentialBackoff {
    // Short first delays keep the pass latency low after a blip; the cap keeps a long outage
    // from turning into minutes between attempts. The gate timeout bounds the total.
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// One running watch over a set of objects, kept as a name -> object map.
struct Watch<K: Resource + Clone + Send + 'static> {
    stream: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
    objects: BTreeMap<String, K>,
    pending: Option<BTreeMap<String, K>>,
    listed: bool,
    target: Target,
    backoff: ExponentialBackoff,
    last_error: Option<String>,
}

impl<K> Watch<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn new(api: Api<K>, config: watcher::Config, target: Target) -> Self {
        Watch {
            stream: watcher(api, config).boxed(),
            objects: BTreeMap::new(),
            pending: None,
            listed: false,
            target,
            backoff: backoff(),
            last_error: None,
        }
    }

    /// Wait until the observed set changed (first full list, or any later event).
    /// Cancel-safe: dropping the future loses no event, the stream keeps its state.
    async fn changed(&mut self) -> Result<(), ClusterError> {
        loop {
            let item = match self.stream.next().await {
                Some(item) => item,
                // `watcher` never ends by itself; be explicit rather than spin.
                None => {
                    return Err(ClusterError::Api {
                        verb: "watch".into(),
                        kind: self.target.kind.clone(),
                        namespace: self.target.namespace.clone(),
                        name: self.target.name.clone(),
                        message: "watch stream ended".into(),
                    })
                }
            };
            match item {
                Ok(event) => {
                    // `Init` is emitted before every (re)list attempt, even one that then
                    // fails: only data proves the server is back and resets the backoff.
                    if !matches!(event, watcher::Event::Init) {
                        self.backoff = backoff();
                        self.last_error = None;
                    }
                    match event {
                        watcher::Event::Init => self.pending = Some(BTreeMap::new()),
                        watcher::Event::InitApply(obj) => {
                            if let Some(p) = self.pending.as_mut() {
                                p.insert(obj.name_any(), obj);
                            }
                        }
                        watcher::Event::InitDone => {
                            self.objects = self.pending.take().unwrap_or_default();
                            self.listed = true;
                            return Ok(());
                        }
                        watcher::Event::Apply(obj) => {
                            self.objects.insert(obj.name_any(), obj);
                            return Ok(());
                        }
                        watcher::Event::Delete(obj) => {
                            self.objects.remove(&obj.name_any());
                            return Ok(());
                        }
                    }
                }
                Err(err) => match watcher_fault(&self.target, &err) {
                    Fault::Fatal(e) => return Err(e),
                    Fault::Recovering(msg) => {
                        tracing::debug!(target = %self.target.describe(), "{msg}");
                        self.last_error = Some(msg);
                    }
                    Fault::Retry(msg) => {
                        let delay = self.backoff.next().unwrap_or(Duration::from_secs(5));
                        tracing::debug!(target = %self.target.describe(), ?delay, "retrying after {msg}");
                        self.last_error = Some(msg);
                        tokio::time::sleep(delay).await;
                    }
                },
            }
        }
    }

    fn not_observed(&self) -> String {
        match &self.last_error {
            Some(e) => format!("{} never observed; last error: {e}", self.target.describe()),
            None => format!("{} never observed", self.target.describe()),
        }
    }
}

fn reason_of(v: &Verdict) -> &str {
    match v {
        Verdict::Pass => "ok",
        Verdict::Wait(r) | Verdict::Fail(r) | Verdict::Inconclusive(r) => r,
    }
}

fn state_line<K: Resource>(target: &Target, obj: Option<&K>, verdict: &Verdict) -> String {
    match obj {
        None => format!("{} not found: {}", target.describe(), reason_of(verdict)),
        Some(o) => format!(
            "{} at resourceVersion {}: {}",
            target.describe(),
            o.meta().resource_version.as_deref().unwrap_or("?"),
            reason_of(verdict)
        ),
    }
}

/// Wait until `condition` passes or fails for the object `name`, or `timeout` runs out.
///
/// The condition sees `None` while the object does not exist. A timeout is reported as a
/// `Fail` verdict carrying the last observed state, not as an error: the gate did run.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    condition: impl Fn(Option<&K>) -> Verdict,
    timeout: Duration,
) -> Result<GateOutcome, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    wait_for_dyn(api, &(), name, condition, timeout).await
}

/// [`wait_for`] for dynamically typed objects (Argo CD, Flux) that need their `ApiResource`.
pub async fn wait_for_dyn<K>(
    api: &Api<K>,
    dt: &K::DynamicType,
    name: &str,
    condition: impl Fn(Option<&K>) -> Verdict,
    timeout: Duration,
) -> Result<GateOutcome, ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let target = Target::of::<K>(dt, api.namespace().unwrap_or(""), name);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut watch = Watch::new(api.clone(), config, target.clone());
    let mut last: Option<(Verdict, String)> = None;
    loop {
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(result) => result?,
            Err(_elapsed) => {
                let (reason, state) = match &last {
                    Some((v, s)) => (reason_of(v).to_string(), s.clone()),
                    None => ("nothing observed".to_string(), watch.not_observed()),
                };
                return Ok(GateOutcome {
                    gate: target.describe(),
                    verdict: Verdict::Fail(format!(
                        "timed out after {}: {reason}",
                        humantime::format_duration(round_secs(timeout))
                    )),
                    last_state: state,
                    elapsed: start.elapsed(),
                    timed_out: true,
                });
            }
        }
        if !watch.listed {
            continue;
        }
        let obj = watch.objects.get(name);
        let verdict = condition(obj);
        let state = state_line(&target, obj, &verdict);
        if matches!(verdict, Verdict::Pass | Verdict::Fail(_)) {
            return Ok(GateOutcome {
                gate: target.describe(),
                verdict,
                last_state: state,
                elapsed: start.elapsed(),
                timed_out: false,
            });
        }
        last = Some((verdict, state));
    }
}

/// A timeout to whole seconds for the message, to the nearest: `run_gates` hands the first gate
/// what is left of `--timeout` a few microseconds after it started, so truncating would report
/// `--timeout 5s` as 4s. Anything above zero shows as at least 1s.
fn round_secs(d: Duration) -> Duration {
    let secs = (d.as_millis() + 500) / 1000;
    Duration::from_secs((secs as u64).max(if d.is_zero() { 0 } else { 1 }))
}

/// Where the `synced` gate looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncSource {
    /// The live Ingress carries the weight Git has (works without a GitOps controller API).
    Ingress { ingress: ObjectRef, weight: u32 },
    /// The live HTTPRoute carries the split Git has and every Gateway accepted that generation.
    HttpRoute {
        route: ObjectRef,
        weights: crate::gate::httproute::RouteWeights,
    },
    /// An Argo CD `Application` is Synced and Healthy at the merged revision.
    ArgoCd { app: ObjectRef, revision: String },
    /// A Flux `Kustomization` is Ready with the merged revision applied.
    Flux {
        kustomization: ObjectRef,
        revision: String,
    },
}

pub fn argocd_application() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "Application",
    ))
}

pub fn http_route() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ))
}

pub fn flux_kustomization() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
    ))
}

/// The merge patch that asks the controller to reconcile now (Argo CD refresh annotation,
/// Flux `requestedAt`), or `None` for the live Ingress or HTTPRoute: no controller to poke.
pub fn sync_now_patch(source: &SyncSource, now: SystemTime) -> Option<serde_json::Value> {
    match source {
        SyncSource::Ingress { .. } | SyncSource::HttpRoute { .. } => None,
        SyncSource::ArgoCd { .. } => Some(serde_json::json!({
            "metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}
        })),
        SyncSource::Flux { .. } => Some(serde_json::json!({
            "metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": humantime::format_rfc3339_seconds(now).to_string()}}
        })),
    }
}

async fn patch_with_retry(
    api: &Api<DynamicObject>,
    target: &Target,
    patch: &serde_json::Value,
) -> Result<(), ClusterError> {
    let params = PatchParams::default();
    let attempt = || async { api.patch(&target.name, &params, &Patch::Merge(patch)).await };
    let result = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(6)
                .with_jitter(),
        )
        .when(|e| {
            matches!(
                client_fault(target, "patch", e),
                Fault::Retry(_) | Fault::Recovering(_)
            )
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(match client_fault(target, "patch", &e) {
            Fault::Fatal(err) => err,
            Fault::Retry(msg) | Fault::Recovering(msg) => ClusterError::Api {
                verb: "patch".into(),
                kind: target.kind.clone(),
                namespace: target.namespace.clone(),
                name: target.name.clone(),
                message: msg,
            },
        }),
    }
}

/// The `synced` gate: Git's change is what the cluster runs.
pub async fn synced(
    client: &Client,
    source: &SyncSource,
    sync_now: bool,
    timeout: Duration,
) -> Result<GateOutcome, ClusterError> {
    let mut outcome = match source {
        SyncSource::Ingress { ingress, weight } => {
            let api: Api<Ingress> = Api::namespaced(client.clone(), &ingress.namespace);
            let weight = *weight;
            wait_for(
                &api,
                &ingress.name,
                |obj| match obj {
                    Some(ing) => gates::ingress_synced(ing, weight),
                    None => Verdict::Wait("the Ingress does not exist yet".into()),
                },
                timeout,
            )
            .await?
        }
        SyncSource::HttpRoute { route, weights } => {
            let ar = http_route();
            wait_dynamic(client, &ar, route, source, false, timeout, |v| {
                crate::gate::httproute::httproute_synced(v, weights)
            })
            .await?
        }
        SyncSource::ArgoCd { app, revision } => {
            let ar = argocd_application();
            wait_dynamic(client, &ar, app, source, sync_now, timeout, |v| {
                gates::argo_synced(v, revision)
            })
            .await?
        }
        SyncSource::Flux {
            kustomization,
            revision,
        } => {
            let ar = flux_kustomization();
            wait_dynamic(client, &ar, kustomization, source, sync_now, timeout, |v| {
                gates::flux_ready(v, revision)
            })
            .await?
        }
    };
    outcome.gate = "synced".into();
    Ok(outcome)
}

async fn wait_dynamic(
    client: &Client,
    ar: &ApiResource,
    obj: &ObjectRef,
    source: &SyncSource,
    sync_now: bool,
    timeout: Duration,
    check: impl Fn(&serde_json::Value) -> Verdict,
) -> Result<GateOutcome, ClusterError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &obj.namespace, ar);
    if sync_now {
        if let Some(patch) = sync_now_patch(source, SystemTime::now()) {
            let target = Target::of::<DynamicObject>(ar, &obj.namespace, &obj.name);
            patch_with_retry(&api, &target, &patch).await?;
        }
    }
    let kind = ar.kind.clone();
    wait_for_dyn(
        &api,
        ar,
        &obj.name,
        |o| match o {
            // The condition reads metadata (generation) and status: hand it the whole object.
            Some(o) => match serde_json::to_value(o) {
                Ok(v) => check(&v),
                Err(e) => Verdict::Fail(format!("cannot read the {kind}: {e}")),
            },
            None => Verdict::Wait(format!("the {kind} does not exist yet")),
        },
        timeout,
    )
    .await
}

/// The `rolled-out` gate: the canary Deployment finished its rollout and the stable one serves.
pub async fn rolled_out(
    client: &Client,
    canary: &ObjectRef,
    stable: &ObjectRef,
    timeout: Duration,
) -> Result<GateOutcome, ClusterError> {
    rolled_out_all(
        client,
        std::slice::from_ref(canary),
        std::slice::from_ref(stable),
        timeout,
    )
    .await
}

/// [`rolled_out`] over every Deployment of a stage: each canary finished its rollout, then
/// each stable serves and finished its own, all within `timeout`; the first that does not
/// fails the gate.
pub async fn rolled_out_all(
    client: &Client,
    canaries: &[ObjectRef],
    stables: &[ObjectRef],
    timeout: Duration,
) -> Result<GateOutcome, ClusterError> {
    let start = Instant::now();
    let mut states = Vec::new();
    let sides = canaries
        .iter()
        .map(|c| (c, true))
        .chain(stables.iter().map(|s| (s, false)));
    for (dep, is_canary) in sides {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &dep.namespace);
        let outcome = wait_for(
            &api,
            &dep.name,
            |d| match (d, is_canary) {
                (Some(d), true) => gates::deployment_rolled_out(d),
                (Some(d), false) => gates::combine([
                    gates::stable_has_endpoints(d),
                    gates::deployment_rolled_out(d),
                ]),
                (None, true) => Verdict::Wait("the canary Deployment does not exist yet".into()),
                (None, false) => Verdict::Fail("the stable Deployment does not exist".into()),
            },
            timeout.saturating_sub(start.elapsed()),
        )
        .await?;
        states.push(outcome.last_state);
        if !outcome.verdict.eq(&Verdict::Pass) {
            return Ok(GateOutcome {
                gate: "rolled-out".into(),
                verdict: outcome.verdict,
                last_state: states.join("; "),
                elapsed: start.elapsed(),
                timed_out: false,
            });
        }
    }
    Ok(GateOutcome {
        gate: "rolled-out".into(),
        verdict: Verdict::Pass,
        last_state: states.join("; "),
        elapsed: start.elapsed(),
        timed_out: false,
    })
}

/// Fetch one object, retrying faults like the watches do.
async fn get_with_retry<K>(api: &Api<K>, name: &str) -> Result<K, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let target = Target::of::<K>(&(), api.namespace().unwrap_or(""), name);
    let result = (|| async { api.get(name).await })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(6)
                .with_jitter(),
        )
        .when(|e| {
            matches!(
                client_fault(&target, "get", e),
                Fault::Retry(_) | Fault::Recovering(_)
            )
        })
        .await;
    result.map_err(|e| match client_fault(&target, "get", &e) {
        Fault::Fatal(err) => err,
        Fault::Retry(message) | Fault::Recovering(message) => ClusterError::Api {
            verb: "get".into(),
            kind: target.kind.clone(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            message,
        },
    })
}

/// The `steady` gate: for the whole bake time, no canary pod crash-loops or restarts past the
/// threshold, the canary keeps available replicas and the stable keeps endpoints. Fails at
/// the first event that breaks it rather than at the end of the bake.
pub async fn steady(
    client: &Client,
    canary: &ObjectRef,
    stable: &ObjectRef,
    bake: Duration,
    restart_threshold: i32,
) -> Result<GateOutcome, ClusterError> {
    steady_all(
        client,
        std::slice::from_ref(canary),
        std::slice::from_ref(stable),
        bake,
        restart_threshold,
    )
    .await
}

/// Wait until any watch of the set saw a change. Cancel-safe like [`Watch::changed`].
async fn any_changed<K>(watches: &mut [Watch<K>]) -> Result<(), ClusterError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    if watches.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())))
        .await
        .0
}

/// [`steady`] over every Deployment of a stage: the pods of each canary, each canary and each
/// stable watched together for one bake; the first that breaks fails the gate.
pub async fn steady_all(
    client: &Client,
    canaries: &[ObjectRef],
    stables: &[ObjectRef],
    bake: Duration,
    restart_threshold: i32,
) -> Result<GateOutcome, ClusterError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + bake;
    let mut pods = Vec::new();
    let mut canary_w = Vec::new();
    for canary in canaries {
        let canary_api: Api<Deployment> = Api::namespaced(client.clone(), &canary.namespace);
        let canary_dep = get_with_retry(&canary_api, &canary.name).await?;
        let canary_target = Target::of::<Deployment>(&(), &canary.namespace, &canary.name);
        let label_selector = canary_dep
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let selector = Selector::try_from(label_selector).map_err(|e| ClusterError::Invalid {
            kind: canary_target.kind.clone(),
            namespace: canary.namespace.clone(),
            name: canary.name.clone(),
            detail: format!("unusable pod selector: {e}"),
        })?;
        if selector.selects_all() {
            return Err(ClusterError::Invalid {
                kind: canary_target.kind.clone(),
                namespace: canary.namespace.clone(),
                name: canary.name.clone(),
                detail: "empty pod selector: refusing to judge every pod in the namespace".into(),
            });
        }
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), &canary.namespace);
        let pods_target =
            Target::of::<Pod>(&(), &canary.namespace, &format!("pods matching {selector}"));
        pods.push(Watch::new(
            pods_api,
            watcher::Config::default().labels_from(&selector),
            pods_target,
        ));
        canary_w.push(Watch::new(
            canary_api,
            watcher::Config::default().fields(&format!("metadata.name={}", canary.name)),
            canary_target,
        ));
    }
    let mut stable_w: Vec<Watch<Deployment>> = stables
        .iter()
        .map(|stable| {
            let stable_api: Api<Deployment> = Api::namespaced(client.clone(), &stable.namespace);
            Watch::new(
                stable_api,
                watcher::Config::default().fields(&format!("metadata.name={}", stable.name)),
                Target::of::<Deployment>(&(), &stable.namespace, &stable.name),
            )
        })
        .collect();

    let mut last: Option<(Verdict, String)> = None;
    loop {
        tokio::select! {
            r = any_changed(&mut pods) => r?,
            r = any_changed(&mut canary_w) => r?,
            r = any_changed(&mut stable_w) => r?,
            _ = tokio::time::sleep_until(deadline) => break,
        }
        if !(pods.iter().all(|w| w.listed)
            && canary_w.iter().all(|w| w.listed)
            && stable_w.iter().all(|w| w.listed))
        {
            continue;
        }
        let mut verdicts = Vec::new();
        let mut states = Vec::new();
        for (i, canary) in canaries.iter().enumerate() {
            let pod_list: Vec<Pod> = pods[i].objects.values().cloned().collect();
            let canary_obj = canary_w[i].objects.get(&canary.name);
            let available = canary_obj.map_or(
                Verdict::Fail(format!("the canary Deployment {canary} was deleted")),
                gates::deployment_available,
            );
            states.push(format!(
                "{} pods ({}); {}",
                pod_list.len(),
                pod_summary(&pod_list),
                state_line(&canary_w[i].target, canary_obj, &available),
            ));
            verdicts.push(gates::pods_steady(&pod_list, restart_threshold));
            verdicts.push(available);
        }
        for (i, stable) in stables.iter().enumerate() {
            let stable_obj = stable_w[i].objects.get(&stable.name);
            let endpoints = stable_obj.map_or(
                Verdict::Fail(format!("the stable Deployment {stable} was deleted")),
                gates::stable_has_endpoints,
            );
            states.push(state_line(&stable_w[i].target, stable_obj, &endpoints));
            verdicts.push(endpoints);
        }
        let state = states.join("; ");
        let verdict = gates::combine(verdicts);
        if let Verdict::Fail(_) = verdict {
            return Ok(GateOutcome {
                gate: "steady".into(),
                verdict,
                last_state: state,
                elapsed: start.elapsed(),
                timed_out: false,
            });
        }
        last = Some((verdict, state));
    }
    let (verdict, last_state) = match last {
        Some((Verdict::Pass, s)) => (Verdict::Pass, s),
        Some((v, s)) => (
            Verdict::Fail(format!(
                "not steady at the end of the bake time: {}",
                reason_of(&v)
            )),
            s,
        ),
        None => (
            Verdict::Fail("nothing observed during the bake time".into()),
            pods.iter()
                .map(Watch::not_observed)
                .chain(canary_w.iter().map(Watch::not_observed))
                .chain(stable_w.iter().map(Watch::not_observed))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    Ok(GateOutcome {
        gate: "steady".into(),
        verdict,
        last_state: format!("{last_state}; bake {}", humantime::format_duration(bake)),
        elapsed: start.elapsed(),
        timed_out: false,
    })
}

fn pod_summary(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let restarts: i32 = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("Unknown");
            format!("{} {phase} restarts {restarts}", p.name_any())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub use crate::gate::Gate;

/// Where `synced` looks, before the stage's revision or weight is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncVia {
    Ingress,
    ArgoCd(ObjectRef),
    Flux(ObjectRef),
}

/// How the gates run: which, in what order, against what, for how long.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// The gates, in order; `run_gates` runs the cluster ones and skips `metrics`.
    pub gates: Vec<Gate>,
    pub sync_via: SyncVia,
    pub sync_now: bool,
    /// Budget for `synced` and `rolled-out` together.
    pub timeout: Duration,
    pub bake: Duration,
    pub restart_threshold: i32,
}

/// What one stage's gates judge: the objects resolved from the manifests, the weight the
/// canaries carry and the merged commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub targets: crate::gate::target::Targets,
    pub weight: u32,
    /// The merged commit Argo CD / Flux must show (required for those sources).
    pub revision: Option<String>,
}

/// Run the cluster gates in order, stopping at the first that does not pass. `each` sees
/// every outcome as it is decided (for progress output). Errors are setup problems (RBAC, a
/// missing CRD or Deployment name), not gate failures.
pub async fn run_gates(
    client: &Client,
    settings: &GateSettings,
    subject: &Subject,
    mut each: impl FnMut(&GateOutcome),
) -> Result<Vec<GateOutcome>, ClusterError> {
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for gate in settings.gates.iter().filter(|g| g.is_cluster()) {
        let remaining = settings.timeout.saturating_sub(start.elapsed());
        let gate_start = Instant::now();
        let outcome = match gate {
            Gate::Synced => {
                let mut seen = Vec::new();
                let mut last = None;
                for source in sync_sources(&settings.sync_via, subject)? {
                    let left = remaining.saturating_sub(gate_start.elapsed());
                    let o = synced(client, &source, settings.sync_now, left).await?;
                    seen.push(o.last_state.clone());
                    let passed = o.passed();
                    last = Some(o);
                    if !passed {
                        break;
                    }
                }
                let mut o = last.ok_or_else(|| missing(subject, "canary Ingress or HTTPRoute"))?;
                o.last_state = seen.join("; ");
                o.elapsed = gate_start.elapsed();
                o
            }
            Gate::RolledOut => {
                let (c, s) = deployments(subject)?;
                rolled_out_all(client, c, s, remaining).await?
            }
            Gate::Steady => {
                let (c, s) = deployments(subject)?;
                steady_all(client, c, s, settings.bake, settings.restart_threshold).await?
            }
            Gate::Metrics => continue,
        };
        each(&outcome);
        let passed = outcome.passed();
        outcomes.push(outcome);
        if !passed {
            break;
        }
    }
    Ok(outcomes)
}

fn missing(subject: &Subject, what: &str) -> ClusterError {
    let first = subject.targets.ingresses.first();
    ClusterError::Invalid {
        kind: "Ingress".into(),
        namespace: first.map(|i| i.namespace.clone()).unwrap_or_default(),
        name: first.map(|i| i.name.clone()).unwrap_or_default(),
        detail: if subject.targets.notes.is_empty() {
            format!("no {what} known (none found in the manifests)")
        } else {
            format!("no {what} known ({})", subject.targets.notes.join("; "))
        },
    }
}

/// Where `synced` looks: every canary Ingress and HTTPRoute, or the one Argo CD / Flux object.
fn sync_sources(via: &SyncVia, subject: &Subject) -> Result<Vec<SyncSource>, ClusterError> {
    let revision = |kind: &str, obj: &ObjectRef| {
        subject
            .revision
            .clone()
            .ok_or_else(|| ClusterError::Invalid {
                kind: kind.into(),
                namespace: obj.namespace.clone(),
                name: obj.name.clone(),
                detail: "no revision to wait for".into(),
            })
    };
    Ok(match via {
        SyncVia::Ingress => subject
            .targets
            .ingresses
            .iter()
            .map(|i| SyncSource::Ingress {
                ingress: i.clone(),
                weight: subject.weight,
            })
            .chain(
                subject
                    .targets
                    .routes
                    .iter()
                    .map(|r| SyncSource::HttpRoute {
                        route: r.route.clone(),
                        weights: r.weights.clone(),
                    }),
            )
            .collect(),
        SyncVia::ArgoCd(app) => vec![SyncSource::ArgoCd {
            app: app.clone(),
            revision: revision("Application", app)?,
        }],
        SyncVia::Flux(ks) => vec![SyncSource::Flux {
            kustomization: ks.clone(),
            revision: revision("Kustomization", ks)?,
        }],
    })
}

fn deployments(subject: &Subject) -> Result<(&[ObjectRef], &[ObjectRef]), ClusterError> {
    let t = &subject.targets;
    if t.canary.is_empty() {
        return Err(missing(subject, "canary Deployment"));
    }
    if t.stable.is_empty() {
        return Err(missing(subject, "stable Deployment"));
    }
    Ok((&t.canary, &t.stable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs_parse() {
        assert_eq!(
            ObjectRef::parse("shop/web", "default").unwrap(),
            ObjectRef::new("shop", "web")
        );
        assert_eq!(
            ObjectRef::parse("web", "apps").unwrap(),
            ObjectRef::new("apps", "web")
        );
        assert!(ObjectRef::parse("a/b/c", "x").is_err());
        assert!(ObjectRef::parse("/b", "x").is_err());
    }

    #[test]
    fn timeouts_round_to_the_nearest_second() {
        let shown = |d: Duration| humantime::format_duration(round_secs(d)).to_string();
        // What `run_gates` passes for `--timeout 5s` once a few microseconds have gone by.
        assert_eq!(
            shown(Duration::from_secs(5) - Duration::from_micros(30)),
            "5s"
        );
        assert_eq!(shown(Duration::from_secs(5)), "5s");
        assert_eq!(shown(Duration::from_millis(4400)), "4s");
        assert_eq!(shown(Duration::from_millis(300)), "1s");
        assert_eq!(shown(Duration::ZERO), "0s");
    }

    #[test]
    fn sync_now_patches() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let argo = SyncSource::ArgoCd {
            app: ObjectRef::new("argocd", "web"),
            revision: "abc".into(),
        };
        assert_eq!(
            sync_now_patch(&argo, t).unwrap()["metadata"]["annotations"]
                ["argocd.argoproj.io/refresh"],
            "normal"
        );
        let flux = SyncSource::Flux {
            kustomization: ObjectRef::new("flux-system", "web"),
            revision: "abc".into(),
        };
        assert_eq!(
            sync_now_patch(&flux, t).unwrap()["metadata"]["annotations"]
                ["reconcile.fluxcd.io/requestedAt"],
            "2023-11-14T22:13:20Z"
        );
        let ing = SyncSource::Ingress {
            ingress: ObjectRef::new("a", "b"),
            weight: 1,
        };
        assert!(sync_now_patch(&ing, t).is_none());
    }

    #[test]
    fn forbidden_names_verb_and_resource() {
        let t = Target::of::<Ingress>(&(), "shop", "web-canary");
        let status = Status {
            code: 403,
            message: "nope".into(),
            ..Default::default()
        };
        match status_fault(&t, "watch", &status) {
            Fault::Fatal(e) => assert!(
                e.to_string().starts_with(
                    "forbidden: cannot watch ingresses.networking.k8s.io in namespace shop"
                ),
                "{e}"
            ),
            _ => panic!("403 must be fatal"),
        }
        let gone = Status {
            code: 410,
            ..Default::default()
        };
        assert!(matches!(
            status_fault(&t, "watch", &gone),
            Fault::Recovering(_)
        ));
        let busy = Status {
            code: 500,
            ..Default::default()
        };
        assert!(matches!(status_fault(&t, "list", &busy), Fault::Retry(_)));
    }
}
