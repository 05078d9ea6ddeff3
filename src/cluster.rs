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
use std::str::FromStr;
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

use crate::exit::Classify;
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

/// `[NS/]NAME` of a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parse `[NS/]NAME`, taking `default_namespace` when no namespace is given.
    pub fn parse(s: &str, default_namespace: &str) -> Result<Self, String> {
        let (ns, name) = match s.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (default_namespace, s),
        };
        if ns.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!("{s:?} is not [NAMESPACE/]NAME"));
        }
        Ok(ObjectRef::new(ns, name))
    }
}

impl FromStr for ObjectRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectRef::parse(s, "default")
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a gate concluded, with what the cluster showed last (for the failure message).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    pub gate: String,
    pub verdict: Verdict,
    pub last_state: String,
    #[serde(rename = "elapsed_ms", serialize_with = "ser_millis")]
    pub elapsed: Duration,
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

pub fn flux_kustomization() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
    ))
}

/// The merge patch that asks the controller to reconcile now (Argo CD refresh annotation,
/// Flux `requestedAt`), or `None` for the live Ingress which has no controller to poke.
pub fn sync_now_patch(source: &SyncSource, now: SystemTime) -> Option<serde_json::Value> {
    match source {
        SyncSource::Ingress { .. } => None,
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
    let start = Instant::now();
    let canary_api: Api<Deployment> = Api::namespaced(client.clone(), &canary.namespace);
    let first = wait_for(
        &canary_api,
        &canary.name,
        |d| match d {
            Some(d) => gates::deployment_rolled_out(d),
            None => Verdict::Wait("the canary Deployment does not exist yet".into()),
        },
        timeout,
    )
    .await?;
    if !first.passed() {
        return Ok(GateOutcome {
            gate: "rolled-out".into(),
            elapsed: start.elapsed(),
            ..first
        });
    }
    let stable_api: Api<Deployment> = Api::namespaced(client.clone(), &stable.namespace);
    let second = wait_for(
        &stable_api,
        &stable.name,
        |d| match d {
            Some(d) => gates::combine([
                gates::stable_has_endpoints(d),
                gates::deployment_rolled_out(d),
            ]),
            None => Verdict::Fail("the stable Deployment does not exist".into()),
        },
        timeout.saturating_sub(start.elapsed()),
    )
    .await?;
    let last_state = format!("{}; {}", first.last_state, second.last_state);
    Ok(GateOutcome {
        gate: "rolled-out".into(),
        verdict: second.verdict,
        last_state,
        elapsed: start.elapsed(),
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
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + bake;
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
    let mut pods = Watch::new(
        pods_api,
        watcher::Config::default().labels_from(&selector),
        pods_target,
    );
    let mut canary_w = Watch::new(
        canary_api,
        watcher::Config::default().fields(&format!("metadata.name={}", canary.name)),
        canary_target.clone(),
    );
    let stable_api: Api<Deployment> = Api::namespaced(client.clone(), &stable.namespace);
    let stable_target = Target::of::<Deployment>(&(), &stable.namespace, &stable.name);
    let mut stable_w = Watch::new(
        stable_api,
        watcher::Config::default().fields(&format!("metadata.name={}", stable.name)),
        stable_target.clone(),
    );

    let mut last: Option<(Verdict, String)> = None;
    loop {
        tokio::select! {
            r = pods.changed() => r?,
            r = canary_w.changed() => r?,
            r = stable_w.changed() => r?,
            _ = tokio::time::sleep_until(deadline) => break,
        }
        if !(pods.listed && canary_w.listed && stable_w.listed) {
            continue;
        }
        let pod_list: Vec<Pod> = pods.objects.values().cloned().collect();
        let canary_obj = canary_w.objects.get(&canary.name);
        let stable_obj = stable_w.objects.get(&stable.name);
        let verdicts = [
            gates::pods_steady(&pod_list, restart_threshold),
            canary_obj.map_or(
                Verdict::Fail("the canary Deployment was deleted".into()),
                gates::deployment_available,
            ),
            stable_obj.map_or(
                Verdict::Fail("the stable Deployment was deleted".into()),
                gates::stable_has_endpoints,
            ),
        ];
        let state = format!(
            "{} pods ({}); {}; {}",
            pod_list.len(),
            pod_summary(&pod_list),
            state_line(&canary_target, canary_obj, &verdicts[1]),
            state_line(&stable_target, stable_obj, &verdicts[2]),
        );
        let verdict = gates::combine(verdicts);
        if let Verdict::Fail(_) = verdict {
            return Ok(GateOutcome {
                gate: "steady".into(),
                verdict,
                last_state: state,
                elapsed: start.elapsed(),
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
            [
                pods.not_observed(),
                canary_w.not_observed(),
                stable_w.not_observed(),
            ]
            .join("; "),
        ),
    };
    Ok(GateOutcome {
        gate: "steady".into(),
        verdict,
        last_state,
        elapsed: start.elapsed(),
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

/// A cluster gate `run_gates` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterGate {
    Synced,
    RolledOut,
    Steady,
}

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
    pub gates: Vec<ClusterGate>,
    pub sync_via: SyncVia,
    pub sync_now: bool,
    /// Budget for `synced` and `rolled-out` together.
    pub timeout: Duration,
    pub bake: Duration,
    pub restart_threshold: i32,
}

/// What one stage's gates judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub ingress: ObjectRef,
    pub weight: u32,
    /// The merged commit Argo CD / Flux must show (required for those sources).
    pub revision: Option<String>,
    pub canary: Option<ObjectRef>,
    pub stable: Option<ObjectRef>,
}

/// Run the gates in order, stopping at the first that does not pass. `each` sees every
/// outcome as it is decided (for progress output). Errors are setup problems (RBAC, a
/// missing CRD or Deployment name), not gate failures.
pub async fn run_gates(
    client: &Client,
    settings: &GateSettings,
    subject: &Subject,
    mut each: impl FnMut(&GateOutcome),
) -> Result<Vec<GateOutcome>, ClusterError> {
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for gate in &settings.gates {
        let remaining = settings.timeout.saturating_sub(start.elapsed());
        let outcome = match gate {
            ClusterGate::Synced => {
                let source = sync_source(&settings.sync_via, subject)?;
                synced(client, &source, settings.sync_now, remaining).await?
            }
            ClusterGate::RolledOut => {
                let (c, s) = deployments(subject)?;
                rolled_out(client, c, s, remaining).await?
            }
            ClusterGate::Steady => {
                let (c, s) = deployments(subject)?;
                steady(client, c, s, settings.bake, settings.restart_threshold).await?
            }
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

fn sync_source(via: &SyncVia, subject: &Subject) -> Result<SyncSource, ClusterError> {
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
        SyncVia::Ingress => SyncSource::Ingress {
            ingress: subject.ingress.clone(),
            weight: subject.weight,
        },
        SyncVia::ArgoCd(app) => SyncSource::ArgoCd {
            app: app.clone(),
            revision: revision("Application", app)?,
        },
        SyncVia::Flux(ks) => SyncSource::Flux {
            kustomization: ks.clone(),
            revision: revision("Kustomization", ks)?,
        },
    })
}

fn deployments(subject: &Subject) -> Result<(&ObjectRef, &ObjectRef), ClusterError> {
    let missing = |which: &str| ClusterError::Invalid {
        kind: "Ingress".into(),
        namespace: subject.ingress.namespace.clone(),
        name: subject.ingress.name.clone(),
        detail: format!(
            "no {which} Deployment known (none found behind its Services in the manifests)"
        ),
    };
    match (&subject.canary, &subject.stable) {
        (Some(c), Some(s)) => Ok((c, s)),
        (None, _) => Err(missing("canary")),
        (_, None) => Err(missing("stable")),
    }
}

/// The rollout loop's gates, watching a real cluster.
pub struct ClusterGates {
    pub client: Client,
    pub settings: GateSettings,
}

impl ClusterGates {
    /// What the gates judge for one stage: the first canary route and the one Deployment
    /// behind each side (several would need one gate each; the loop's routes are one pair).
    pub fn subject(ctx: &crate::app::GateContext) -> Result<Subject, ClusterError> {
        let route = ctx.canaries.first().ok_or_else(|| ClusterError::Invalid {
            kind: "Ingress".into(),
            namespace: String::new(),
            name: ctx.rollout.clone(),
            detail: "no canary route to gate".into(),
        })?;
        let namespace = route.namespace.clone().unwrap_or_else(|| "default".into());
        let deployment = |ws: &[crate::manifest::workload::Workload]| {
            ws.first().map(|w| {
                ObjectRef::new(
                    w.namespace.clone().unwrap_or_else(|| namespace.clone()),
                    w.name.clone(),
                )
            })
        };
        Ok(Subject {
            ingress: ObjectRef::new(namespace.clone(), route.name.clone()),
            weight: ctx.weight,
            revision: Some(ctx.revision.clone()).filter(|r| !r.is_empty()),
            canary: deployment(&ctx.canary_workloads),
            stable: deployment(&ctx.stable_workloads),
        })
    }
}

impl crate::app::GateRunner for ClusterGates {
    fn run<'a>(
        &'a self,
        ctx: &'a crate::app::GateContext,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<crate::app::GateReport>> {
        Box::pin(async move {
            let subject = Self::subject(ctx)?;
            let outcomes = run_gates(&self.client, &self.settings, &subject, |_| {}).await?;
            let verdict = gates::combine(outcomes.iter().map(|o| o.verdict.clone()));
            let lines = outcomes
                .into_iter()
                .map(|o| crate::app::GateLine {
                    gate: o.gate,
                    verdict: o.verdict,
                    detail: o.last_state,
                })
                .collect();
            Ok(crate::app::GateReport {
                verdict,
                gates: lines,
            })
        })
    }
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
