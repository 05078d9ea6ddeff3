//! Watching one object or a set of them, and the fault rules every request to the API server
//! follows.
//!
//! [`wait_for`] runs a `kube::runtime::watcher` on a single object and re-evaluates a condition
//! on every event, so a pass is reported as soon as the API server tells us about the change (no
//! polling interval). The watcher resumes a dropped watch from the last resourceVersion and
//! relists on 410 Gone; on top of it other faults (5xx, transport) are retried with a bounded
//! backoff, and 401/403 fail at once, naming the verb and resource the RBAC role is missing. The
//! one-shot requests (get, patch) follow the same rules.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::Status;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{ClusterError, Denial, GateOutcome};
use crate::gate::Verdict;

/// Who we are watching, for error messages and RBAC hints.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) kind: String,
    /// `plural.group` as RBAC rules and `kubectl auth can-i` spell it.
    pub(super) resource: String,
    pub(super) namespace: String,
    pub(super) name: String,
}

impl Target {
    pub(super) fn of<K: Resource>(dt: &K::DynamicType, namespace: &str, name: &str) -> Self {
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

    pub(super) fn describe(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// How an error from the API server is handled.
pub(super) enum Fault {
    /// Give up now with this error.
    Fatal(ClusterError),
    /// Try again after a backoff.
    Retry(String),
    /// The watcher already recovers by itself (410 Gone: it relists); no delay needed.
    Recovering(String),
}

pub(super) fn status_fault(target: &Target, verb: &str, status: &Status) -> Fault {
    let message = status.message.clone();
    let t = target.clone();
    let denial = |t: Target, message| {
        Box::new(Denial {
            verb: verb.into(),
            resource: t.resource,
            kind: t.kind,
            namespace: t.namespace,
            name: t.name,
            message,
        })
    };
    match status.code {
        401 => Fault::Fatal(ClusterError::Unauthorized(denial(t, message))),
        403 => Fault::Fatal(ClusterError::Forbidden(denial(t, message))),
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
pub(super) struct Watch<K: Resource + Clone + Send + 'static> {
    stream: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
    pub(super) objects: BTreeMap<String, K>,
    pending: Option<BTreeMap<String, K>>,
    pub(super) listed: bool,
    pub(super) target: Target,
    backoff: ExponentialBackoff,
    last_error: Option<String>,
}

impl<K> Watch<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub(super) fn new(api: Api<K>, config: watcher::Config, target: Target) -> Self {
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
    pub(super) async fn changed(&mut self) -> Result<(), ClusterError> {
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

    pub(super) fn not_observed(&self) -> String {
        match &self.last_error {
            Some(e) => format!("{} never observed; last error: {e}", self.target.describe()),
            None => format!("{} never observed", self.target.describe()),
        }
    }
}

pub(super) fn reason_of(v: &Verdict) -> &str {
    match v {
        Verdict::Pass => "ok",
        Verdict::Wait(r) | Verdict::Fail(r) | Verdict::Inconclusive(r) => r,
    }
}

pub(super) fn state_line<K: Resource>(
    target: &Target,
    obj: Option<&K>,
    verdict: &Verdict,
) -> String {
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
pub(crate) async fn wait_for_dyn<K>(
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
pub(super) fn round_secs(d: Duration) -> Duration {
    let secs = (d.as_millis() + 500) / 1000;
    Duration::from_secs((secs as u64).max(if d.is_zero() { 0 } else { 1 }))
}

/// One request (get, patch) under the watches' fault rules: what may pass (5xx, transport) is
/// retried a bounded number of times, anything else fails at once with what it means.
async fn retrying<T, F, Fut>(target: &Target, verb: &str, attempt: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
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
                client_fault(target, verb, e),
                Fault::Retry(_) | Fault::Recovering(_)
            )
        })
        .await;
    result.map_err(|e| match client_fault(target, verb, &e) {
        Fault::Fatal(err) => err,
        Fault::Retry(message) | Fault::Recovering(message) => ClusterError::Api {
            verb: verb.into(),
            kind: target.kind.clone(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            message,
        },
    })
}

/// Fetch one object, retrying faults like the watches do.
pub(super) async fn get_with_retry<K>(api: &Api<K>, name: &str) -> Result<K, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let target = Target::of::<K>(&(), api.namespace().unwrap_or(""), name);
    retrying(&target, "get", || api.get(name)).await
}

/// Merge-patch one object, retrying faults like the watches do.
pub(super) async fn patch_with_retry(
    api: &Api<DynamicObject>,
    target: &Target,
    patch: &serde_json::Value,
) -> Result<(), ClusterError> {
    let params = PatchParams::default();
    let merge = Patch::Merge(patch);
    retrying(target, "patch", || api.patch(&target.name, &params, &merge))
        .await
        .map(|_| ())
}

/// Wait until any watch of the set saw a change. Cancel-safe like [`Watch::changed`].
pub(super) async fn any_changed<K>(watches: &mut [Watch<K>]) -> Result<(), ClusterError>
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::Ingress;

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
