//! Kubernetes gates: pure verdicts over one observation of cluster objects.
//!
//! Each function takes what a watch last delivered (k8s-openapi types, or a JSON value for the
//! Argo CD `Application` and Flux `Kustomization` custom resources, whose schemas we do not want
//! to vendor) and answers with a [`Verdict`]. `cluster` re-evaluates them on every watch event,
//! so these must be cheap and must never block; they decide, they never fetch.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::Value;

use crate::gate::Verdict;

pub const CANARY_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary";
pub const WEIGHT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary-weight";

/// Container waiting reasons after which a pod will not get better by itself, besides the
/// pattern in [`broken_waiting_reason`].
const BROKEN_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A container waiting reason that means the pod is broken: the fixed list, and gitops-engine's
/// rule (`pkg/health/health_pod.go` getCorev1PodHealth: a reason that starts with `Err` or ends
/// with `Error` or `BackOff` is Degraded), which also covers `RunContainerError`,
/// `ErrImageNeverPull`, `PreStartHookError` and the like.
pub fn broken_waiting_reason(reason: &str) -> bool {
    BROKEN_WAITING_REASONS.contains(&reason)
        || reason.starts_with("Err")
        || reason.ends_with("Error")
        || reason.ends_with("BackOff")
}

/// The live Ingress carries the canary annotations with the weight Git has.
pub fn ingress_synced(ingress: &Ingress, expected_weight: u32) -> Verdict {
    let annotations = ingress.metadata.annotations.as_ref();
    let get = |key: &str| annotations.and_then(|a| a.get(key)).map(|s| s.trim());
    match get(CANARY_ANNOTATION) {
        Some("true") => {}
        Some(other) => {
            return Verdict::Wait(format!(
                "annotation {CANARY_ANNOTATION} is {other:?}, waiting for \"true\""
            ))
        }
        None => return Verdict::Wait(format!("annotation {CANARY_ANNOTATION} is missing")),
    }
    match get(WEIGHT_ANNOTATION) {
        None => Verdict::Wait(format!(
            "canary-weight is missing, waiting for {expected_weight}"
        )),
        Some(raw) => match raw.parse::<u32>() {
            Ok(w) if w == expected_weight => Verdict::Pass,
            Ok(w) => Verdict::Wait(format!(
                "canary-weight is {w}, waiting for {expected_weight}"
            )),
            // Git may still carry a broken value the controller has not replaced yet.
            Err(_) => Verdict::Wait(format!(
                "canary-weight is {raw:?}, waiting for {expected_weight}"
            )),
        },
    }
}

/// Whether an observed revision names the wanted commit. Users pass short SHAs; Flux writes
/// `main@sha1:<sha>` (v2), `main/<sha>` (older), or the bare SHA.
pub fn revision_matches(observed: &str, wanted: &str) -> bool {
    let observed = observed.trim();
    let wanted = wanted.trim();
    if observed.is_empty() || wanted.is_empty() {
        return false;
    }
    let sha = observed
        .rsplit_once("sha1:")
        .or_else(|| observed.rsplit_once("sha256:"))
        .map(|(_, s)| s)
        .or_else(|| observed.rsplit_once('/').map(|(_, s)| s))
        .unwrap_or(observed);
    let (long, short) = if sha.len() >= wanted.len() {
        (sha, wanted)
    } else {
        (wanted, sha)
    };
    // A prefix of 7+ hex digits is how git itself abbreviates; shorter would be ambiguous.
    long.eq_ignore_ascii_case(short)
        || (short.len() >= 7
            && long
                .to_ascii_lowercase()
                .starts_with(&short.to_ascii_lowercase()))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

/// An Argo CD `Application` is Synced at `revision` and Healthy.
pub fn argo_synced(app: &Value, revision: &str) -> Verdict {
    let sync = str_at(app, &["status", "sync", "status"]).unwrap_or("Unknown");
    let health = str_at(app, &["status", "health", "status"]).unwrap_or("Unknown");
    let at_revision = str_at(app, &["status", "sync", "revision"])
        .is_some_and(|r| revision_matches(r, revision))
        || app
            .pointer("/status/sync/revisions")
            .and_then(Value::as_array)
            .is_some_and(|rs| {
                rs.iter()
                    .filter_map(Value::as_str)
                    .any(|r| revision_matches(r, revision))
            });
    let observed = str_at(app, &["status", "sync", "revision"])
        .map(str::to_string)
        .or_else(|| {
            app.pointer("/status/sync/revisions")
                .and_then(Value::as_array)
                .map(|rs| {
                    rs.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
        })
        .unwrap_or_else(|| "none".to_string());

    // A failed sync operation at our revision will not retry into success by itself.
    let op_phase = str_at(app, &["status", "operationState", "phase"]);
    let op_revision = str_at(app, &["status", "operationState", "syncResult", "revision"]);
    if matches!(op_phase, Some("Failed" | "Error"))
        && op_revision.is_some_and(|r| revision_matches(r, revision))
    {
        let msg = str_at(app, &["status", "operationState", "message"]).unwrap_or("");
        return Verdict::Fail(format!(
            "Argo CD sync of {revision} {}: {msg}",
            op_phase.unwrap_or_default()
        ));
    }
    // Argo CD sets sync.revision when it compares, before it syncs: OutOfSync at our revision
    // means the health beside it is still the old objects'. Degraded counts once the
    // Application is Synced at our revision, or once its sync operation for our revision ended.
    let op_finished = matches!(op_phase, Some("Failed" | "Error" | "Succeeded"))
        && op_revision.is_some_and(|r| revision_matches(r, revision));
    if health == "Degraded" && ((at_revision && sync == "Synced") || op_finished) {
        let msg = str_at(app, &["status", "health", "message"]).unwrap_or("");
        return Verdict::Fail(
            format!("Argo CD reports health Degraded at revision {revision}: {msg}")
                .trim_end_matches(": ")
                .to_string(),
        );
    }
    if !at_revision {
        return Verdict::Wait(format!(
            "sync {sync} at revision {observed}, waiting for {revision}"
        ));
    }
    if sync != "Synced" {
        return Verdict::Wait(format!("sync status {sync} at revision {revision}"));
    }
    if health != "Healthy" {
        return Verdict::Wait(format!("Synced at {revision}, health {health}"));
    }
    Verdict::Pass
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        })
}

fn condition_fields(c: Option<&Value>) -> (&str, &str, &str) {
    match c {
        Some(c) => (
            c.get("status").and_then(Value::as_str).unwrap_or("Unknown"),
            c.get("reason").and_then(Value::as_str).unwrap_or(""),
            c.get("message").and_then(Value::as_str).unwrap_or(""),
        ),
        None => ("Unknown", "", ""),
    }
}

/// A Flux `Kustomization` is Ready with `lastAppliedRevision` naming the commit.
///
/// The order is kstatus' (`pkg/kstatus/status/generic.go` checkGenericProperties): an
/// unobserved generation is in progress; `Stalled=True` is a failure whatever its reason (the
/// controller will not retry until the spec changes, and it may never record an attempted
/// revision); `Reconciling=True` is in progress. Then, as `flux reconcile` does once the
/// controller has handled the attempt (`cmd/flux/reconcile.go`), `Ready=False` is a failure
/// whatever its reason, provided the attempt was at our revision.
pub fn flux_ready(ks: &Value, revision: &str) -> Verdict {
    let applied = str_at(ks, &["status", "lastAppliedRevision"]).unwrap_or("");
    let attempted = str_at(ks, &["status", "lastAttemptedRevision"]).unwrap_or("");
    let ready = condition(ks, "Ready");
    let (status, reason, message) = condition_fields(ready);
    // Ready describes the last observed spec; a stale observedGeneration means it is old news.
    let generation = ks.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed_gen = ks
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if let (Some(g), Some(o)) = (generation, observed_gen) {
        if o < g {
            return Verdict::Wait(format!("Flux has observed generation {o} of {g}"));
        }
    }
    // The Flux CLI also reads a condition's own observedGeneration (cmd/flux/readiness.go).
    let ready_gen = ready
        .and_then(|c| c.get("observedGeneration"))
        .and_then(Value::as_i64)
        .filter(|g| *g != 0);
    if let (Some(g), Some(c)) = (generation, ready_gen) {
        if c != g {
            return Verdict::Wait(format!(
                "Flux Ready describes generation {c}, waiting for {g}"
            ));
        }
    }
    if let Some(stalled) = condition(ks, "Stalled") {
        let (s, r, m) = condition_fields(Some(stalled));
        if s == "True" {
            return Verdict::Fail(
                format!("Flux Stalled=True {r}: {m}")
                    .trim_end_matches(": ")
                    .to_string(),
            );
        }
    }
    if let Some(reconciling) = condition(ks, "Reconciling") {
        let (s, r, m) = condition_fields(Some(reconciling));
        if s == "True" {
            let state = if status == "False" {
                format!(" (Ready=False {reason}: {message})")
            } else {
                String::new()
            };
            return Verdict::Wait(format!("Flux is reconciling, {r}: {m}{state}"));
        }
    }
    if status == "False" && revision_matches(attempted, revision) {
        return Verdict::Fail(
            format!("Flux Ready=False {reason} at {attempted}: {message}")
                .trim_end_matches(": ")
                .to_string(),
        );
    }
    if !revision_matches(applied, revision) {
        let shown = if applied.is_empty() { "none" } else { applied };
        return Verdict::Wait(format!(
            "last applied revision {shown}, waiting for {revision}"
        ));
    }
    if status != "True" {
        return Verdict::Wait(
            format!("applied {applied}, Ready={status} {reason}")
                .trim_end()
                .to_string(),
        );
    }
    Verdict::Pass
}

fn desired_replicas(d: &Deployment) -> i32 {
    // The API server defaults spec.replicas to 1.
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn deployment_name(d: &Deployment) -> &str {
    d.metadata.name.as_deref().unwrap_or("<unnamed>")
}

/// A Deployment finished rolling out its current spec, as `kubectl rollout status` decides
/// (`pkg/polymorphichelpers/rollout_status.go` DeploymentStatusViewer): nothing in the status
/// counts until the controller has observed the current generation (a `ProgressDeadlineExceeded`
/// left from an older spec says nothing about the new one); then a progress deadline exceeded
/// fails, and the updated, total and available counts must reach the desired ones. Like kstatus
/// (`pkg/kstatus/status/core.go` deploymentConditions), an observed `Available=False` or a
/// `Progressing=False` for another reason keeps it waiting. A paused Deployment says so.
pub fn deployment_rolled_out(d: &Deployment) -> Verdict {
    let verdict = rollout_verdict(d);
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    match verdict {
        Verdict::Wait(reason) if paused => {
            let name = deployment_name(d);
            Verdict::Wait(format!(
                "Deployment {name} is paused (spec.paused: true), its rollout will not progress until it is resumed (kubectl rollout resume deployment/{name}): {reason}"
            ))
        }
        other => other,
    }
}

fn rollout_verdict(d: &Deployment) -> Verdict {
    let name = deployment_name(d);
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Verdict::Wait(format!(
            "Deployment {name}: waiting for the spec update to be observed (controller has observed generation {observed} of {generation})"
        ));
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c.type_ == t);
    if let Some(c) = find("Progressing") {
        if c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            let msg = c.message.as_deref().unwrap_or("");
            return Verdict::Fail(format!(
                "Deployment {name} exceeded its progress deadline: {msg}"
            ));
        }
    }
    let desired = desired_replicas(d);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let counts = format!(
        "desired {desired}, updated {updated}, ready {ready}, available {available}, total {total}"
    );
    if updated < desired {
        return Verdict::Wait(format!("Deployment {name}: {counts}"));
    }
    if total > updated {
        return Verdict::Wait(format!(
            "Deployment {name}: old replicas pending termination ({counts})"
        ));
    }
    if available < updated {
        return Verdict::Wait(format!("Deployment {name}: {counts}"));
    }
    for type_ in ["Progressing", "Available"] {
        if let Some(c) = find(type_).filter(|c| c.status == "False") {
            let reason = c.reason.as_deref().unwrap_or("");
            let msg = c.message.as_deref().unwrap_or("");
            return Verdict::Wait(
                format!("Deployment {name}: {type_}=False {reason} {msg}")
                    .trim_end()
                    .to_string(),
            );
        }
    }
    Verdict::Pass
}

/// The stable Deployment serves: ingress-nginx answers 503 to canary traffic when the primary
/// backend has no endpoints, so a stable scaled to zero breaks the canary too.
pub fn stable_has_endpoints(d: &Deployment) -> Verdict {
    let name = deployment_name(d);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if ready > 0 {
        Verdict::Pass
    } else {
        Verdict::Fail(format!(
            "stable Deployment {name} has no ready replicas (desired {}): ingress-nginx answers 503 to canary traffic without stable endpoints",
            desired_replicas(d)
        ))
    }
}

/// A Deployment that should serve has not lost all of its available replicas.
pub fn deployment_available(d: &Deployment) -> Verdict {
    let name = deployment_name(d);
    let desired = desired_replicas(d);
    let available = d
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if desired > 0 && available == 0 {
        Verdict::Fail(format!(
            "Deployment {name} has lost availability: 0 of {desired} replicas available"
        ))
    } else if available < desired {
        Verdict::Wait(format!(
            "Deployment {name}: {available} of {desired} replicas available"
        ))
    } else {
        Verdict::Pass
    }
}

/// No pod is crash-looping, failing to pull its image, or restarting more than `restart_threshold` times.
///
/// A running pod whose container has just exited with an error (its current state terminated,
/// the kubelet about to restart it) is not steady yet but not broken either: kstatus calls such
/// a pod InProgress (`pkg/kstatus/status/core.go` podConditions, "PodRunningNotReady") until it
/// is Ready again, turns CrashLoopBackOff, or passes the restart threshold.
pub fn pods_steady(pods: &[Pod], restart_threshold: i32) -> Verdict {
    let mut first_wait = None;
    for pod in pods {
        let pod_name = pod.metadata.name.as_deref().unwrap_or("<unnamed>");
        let status = match &pod.status {
            Some(s) => s,
            None => continue,
        };
        let all: Vec<&ContainerStatus> = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .collect();
        for cs in all {
            let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(reason) = waiting.and_then(|w| w.reason.as_deref()) {
                if broken_waiting_reason(reason) {
                    let msg = waiting.and_then(|w| w.message.as_deref()).unwrap_or("");
                    let tail = if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {msg}")
                    };
                    return Verdict::Fail(format!(
                        "pod {pod_name} container {} is {reason} (restarts {}){tail}",
                        cs.name, cs.restart_count
                    ));
                }
            }
            if cs.restart_count > restart_threshold {
                return Verdict::Fail(format!(
                    "pod {pod_name} container {} restarted {} times (threshold {restart_threshold})",
                    cs.name, cs.restart_count
                ));
            }
        }
        if first_wait.is_none() && status.phase.as_deref() == Some("Running") {
            let exited = status.container_statuses.iter().flatten().find_map(|cs| {
                let t = cs.state.as_ref()?.terminated.as_ref()?;
                (t.exit_code != 0).then_some((cs, t))
            });
            if let Some((cs, t)) = exited {
                first_wait = Some(Verdict::Wait(format!(
                    "pod {pod_name} container {} exited ({}, exit code {}, restarts {}), waiting for it to run again",
                    cs.name,
                    t.reason.as_deref().unwrap_or("terminated"),
                    t.exit_code,
                    cs.restart_count
                )));
            }
        }
    }
    first_wait.unwrap_or(Verdict::Pass)
}

/// The first non-pass verdict, preferring a failure over a wait: what a gate over several
/// objects reports.
pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut first_other = None;
    for v in verdicts {
        match v {
            Verdict::Fail(_) => return v,
            Verdict::Pass => {}
            other => {
                if first_other.is_none() {
                    first_other = Some(other);
                }
            }
        }
    }
    first_other.unwrap_or(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(annotations: &[(&str, &str)]) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "web-canary", "namespace": "shop",
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()}
        }))
        .unwrap()
    }

    #[test]
    fn ingress_weight_must_match() {
        let ing = ingress(&[(CANARY_ANNOTATION, "true"), (WEIGHT_ANNOTATION, "25")]);
        assert_eq!(ingress_synced(&ing, 25), Verdict::Pass);
        assert_eq!(
            ingress_synced(&ing, 50),
            Verdict::Wait("canary-weight is 25, waiting for 50".into())
        );
        let off = ingress(&[(CANARY_ANNOTATION, "false"), (WEIGHT_ANNOTATION, "25")]);
        assert!(matches!(ingress_synced(&off, 25), Verdict::Wait(r) if r.contains("\"false\"")));
        let none = ingress(&[]);
        assert!(matches!(ingress_synced(&none, 0), Verdict::Wait(r) if r.contains("missing")));
        let junk = ingress(&[(CANARY_ANNOTATION, "true"), (WEIGHT_ANNOTATION, "x")]);
        assert!(matches!(ingress_synced(&junk, 10), Verdict::Wait(_)));
    }

    #[test]
    fn revisions_match_flux_and_short_forms() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert!(revision_matches(&format!("main@sha1:{sha}"), sha));
        assert!(revision_matches(&format!("main/{sha}"), sha));
        assert!(revision_matches(sha, "0123456"));
        assert!(!revision_matches(sha, "012345"));
        assert!(!revision_matches(sha, "fedcba9"));
        assert!(!revision_matches("", sha));
        assert!(revision_matches(
            &format!("main@sha1:{sha}"),
            "0123456789ab"
        ));
    }

    fn app(sync: &str, rev: &str, health: &str) -> Value {
        json!({"status": {"sync": {"status": sync, "revision": rev}, "health": {"status": health, "message": "pod crash"}}})
    }

    #[test]
    fn argo_needs_synced_revision_and_healthy() {
        assert_eq!(
            argo_synced(&app("Synced", "abcdef1234", "Healthy"), "abcdef1234"),
            Verdict::Pass
        );
        assert!(
            matches!(argo_synced(&app("Synced", "1111111111", "Healthy"), "abcdef1234"), Verdict::Wait(r) if r.contains("waiting for abcdef1234"))
        );
        assert!(
            matches!(argo_synced(&app("OutOfSync", "abcdef1234", "Healthy"), "abcdef1234"), Verdict::Wait(r) if r.contains("OutOfSync"))
        );
        assert!(
            matches!(argo_synced(&app("Synced", "abcdef1234", "Progressing"), "abcdef1234"), Verdict::Wait(r) if r.contains("Progressing"))
        );
        assert!(
            matches!(argo_synced(&app("Synced", "abcdef1234", "Degraded"), "abcdef1234"), Verdict::Fail(r) if r.contains("Degraded") && r.contains("pod crash"))
        );
        // Degraded at an older revision is what the merge may be fixing: keep waiting.
        assert!(matches!(
            argo_synced(&app("Synced", "1111111111", "Degraded"), "abcdef1234"),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            argo_synced(&json!({}), "abcdef1"),
            Verdict::Wait(_)
        ));
        let multi = json!({"status": {"sync": {"status": "Synced", "revisions": ["9999999", "abcdef1234"]}, "health": {"status": "Healthy"}}});
        assert_eq!(argo_synced(&multi, "abcdef1234"), Verdict::Pass);
        let failed_op = json!({"status": {"sync": {"status": "OutOfSync", "revision": "abcdef1234"}, "health": {"status": "Healthy"},
            "operationState": {"phase": "Failed", "message": "one or more objects failed to apply", "syncResult": {"revision": "abcdef1234"}}}});
        assert!(
            matches!(argo_synced(&failed_op, "abcdef1234"), Verdict::Fail(r) if r.contains("failed to apply"))
        );
    }

    fn ks(ready: &str, reason: &str, applied: &str, attempted: &str) -> Value {
        json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "lastAppliedRevision": applied, "lastAttemptedRevision": attempted,
            "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": "msg"}]}})
    }

    #[test]
    fn flux_ready_at_revision() {
        let sha = "abcdef0123456789";
        let full = format!("main@sha1:{sha}");
        assert_eq!(
            flux_ready(&ks("True", "ReconciliationSucceeded", &full, &full), sha),
            Verdict::Pass
        );
        assert_eq!(
            flux_ready(&ks("True", "ReconciliationSucceeded", sha, sha), sha),
            Verdict::Pass
        );
        assert!(
            matches!(flux_ready(&ks("True", "ReconciliationSucceeded", "main@sha1:1111111111", "main@sha1:1111111111"), sha), Verdict::Wait(r) if r.contains("waiting for"))
        );
        assert!(
            matches!(flux_ready(&ks("Unknown", "Progressing", &full, &full), sha), Verdict::Wait(r) if r.contains("Ready=Unknown"))
        );
        assert!(
            matches!(flux_ready(&ks("False", "HealthCheckFailed", "main@sha1:1111111111", &full), sha), Verdict::Fail(r) if r.contains("HealthCheckFailed"))
        );
        // A failure of an older attempt says nothing about our revision yet.
        assert!(matches!(
            flux_ready(
                &ks(
                    "False",
                    "ReconciliationFailed",
                    "main@sha1:1111111111",
                    "main@sha1:1111111111"
                ),
                sha
            ),
            Verdict::Wait(_)
        ));
        let mut stale = ks("True", "ReconciliationSucceeded", &full, &full);
        stale["metadata"]["generation"] = json!(3);
        assert!(matches!(flux_ready(&stale, sha), Verdict::Wait(r) if r.contains("generation")));
    }

    fn deploy(gen: i64, replicas: i32, status: Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "web", "generation": gen}, "spec": {"replicas": replicas, "selector": {}, "template": {}}, "status": status})).unwrap()
    }

    #[test]
    fn deployment_rollout() {
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        assert_eq!(
            deployment_rolled_out(&deploy(2, 3, done.clone())),
            Verdict::Pass
        );
        assert!(
            matches!(deployment_rolled_out(&deploy(3, 3, done)), Verdict::Wait(r) if r.contains("generation 2 of 3"))
        );
        let partial = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        assert!(
            matches!(deployment_rolled_out(&deploy(2, 3, partial)), Verdict::Wait(r) if r.contains("old replicas"))
        );
        let unready = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2});
        assert!(matches!(
            deployment_rolled_out(&deploy(2, 3, unready)),
            Verdict::Wait(_)
        ));
        let stuck = json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing."}]});
        assert!(
            matches!(deployment_rolled_out(&deploy(2, 3, stuck)), Verdict::Fail(r) if r.contains("timed out progressing"))
        );
    }

    #[test]
    fn stable_endpoints_and_availability() {
        assert_eq!(
            stable_has_endpoints(&deploy(1, 2, json!({"readyReplicas": 1}))),
            Verdict::Pass
        );
        assert!(
            matches!(stable_has_endpoints(&deploy(1, 0, json!({}))), Verdict::Fail(r) if r.contains("503"))
        );
        assert!(
            matches!(deployment_available(&deploy(1, 2, json!({"availableReplicas": 0}))), Verdict::Fail(r) if r.contains("lost availability"))
        );
        assert!(matches!(
            deployment_available(&deploy(1, 2, json!({"availableReplicas": 1}))),
            Verdict::Wait(_)
        ));
        assert_eq!(
            deployment_available(&deploy(1, 2, json!({"availableReplicas": 2}))),
            Verdict::Pass
        );
        assert_eq!(
            deployment_available(&deploy(1, 0, json!({}))),
            Verdict::Pass
        );
    }

    fn pod(name: &str, restarts: i32, waiting: Option<&str>) -> Pod {
        let state = match waiting {
            Some(r) => json!({"waiting": {"reason": r, "message": "back-off 5m0s"}}),
            None => json!({"running": {}}),
        };
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"containerStatuses": [
            {"name": "app", "restartCount": restarts, "state": state, "ready": waiting.is_none(), "image": "x", "imageID": ""}]}}))
        .unwrap()
    }

    #[test]
    fn pods_crash_loop_and_restarts() {
        assert_eq!(
            pods_steady(&[pod("a", 0, None), pod("b", 1, None)], 3),
            Verdict::Pass
        );
        assert!(
            matches!(pods_steady(&[pod("a", 0, None), pod("b", 2, Some("CrashLoopBackOff"))], 3), Verdict::Fail(r) if r.contains("pod b") && r.contains("CrashLoopBackOff"))
        );
        assert!(
            matches!(pods_steady(&[pod("c", 0, Some("ImagePullBackOff"))], 3), Verdict::Fail(r) if r.contains("ImagePullBackOff"))
        );
        assert!(matches!(
            pods_steady(&[pod("c", 0, Some("ErrImagePull"))], 3),
            Verdict::Fail(_)
        ));
        assert_eq!(
            pods_steady(&[pod("c", 0, Some("ContainerCreating"))], 3),
            Verdict::Pass
        );
        assert!(
            matches!(pods_steady(&[pod("d", 4, None)], 3), Verdict::Fail(r) if r.contains("restarted 4 times"))
        );
        assert_eq!(pods_steady(&[], 0), Verdict::Pass);
    }

    #[test]
    fn stale_progress_deadline_waits_for_the_new_generation() {
        // The fix for a canary that hit its deadline is merged: generation 3 is not observed
        // yet, and the condition still describes generation 2.
        let stale = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing."}]});
        assert!(
            matches!(deployment_rolled_out(&deploy(3, 3, stale)), Verdict::Wait(r) if r.contains("waiting for the spec update to be observed")),
        );
    }

    #[test]
    fn rollout_counts_follow_kubectl() {
        // kubectl's test4: readyReplicas unset, available = updated = desired: done.
        let done = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(deployment_rolled_out(&deploy(1, 2, done)), Verdict::Pass);
        // kstatus: an observed Available=False is still in progress.
        let unavailable = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Available", "status": "False"}]});
        assert!(
            matches!(deployment_rolled_out(&deploy(1, 1, unavailable)), Verdict::Wait(r) if r.contains("Available=False"))
        );
    }

    #[test]
    fn paused_deployment_says_paused() {
        let mut d = deploy(
            2,
            3,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}),
        );
        d.spec.as_mut().unwrap().paused = Some(true);
        assert!(
            matches!(deployment_rolled_out(&d), Verdict::Wait(r) if r.contains("is paused") && r.contains("rollout resume"))
        );
    }

    #[test]
    fn argo_out_of_sync_at_the_merged_revision_is_not_yet_degraded() {
        // Argo CD compared the merged commit (sync.revision) but has not synced it: the
        // Degraded beside it is the old objects' health.
        assert!(matches!(
            argo_synced(&app("OutOfSync", "abcdef1234", "Degraded"), "abcdef1234"),
            Verdict::Wait(r) if r.contains("OutOfSync")
        ));
        // Once the sync operation for that revision finished, Degraded counts.
        let synced_op = json!({"status": {"sync": {"status": "OutOfSync", "revision": "abcdef1234"}, "health": {"status": "Degraded", "message": "pod crash"},
            "operationState": {"phase": "Succeeded", "syncResult": {"revision": "abcdef1234"}}}});
        assert!(
            matches!(argo_synced(&synced_op, "abcdef1234"), Verdict::Fail(r) if r.contains("Degraded"))
        );
        // A finished operation for another revision does not.
        let old_op = json!({"status": {"sync": {"status": "OutOfSync", "revision": "abcdef1234"}, "health": {"status": "Degraded"},
            "operationState": {"phase": "Succeeded", "syncResult": {"revision": "1111111111"}}}});
        assert!(matches!(
            argo_synced(&old_op, "abcdef1234"),
            Verdict::Wait(_)
        ));
    }

    #[test]
    fn flux_stalled_fails_without_an_attempted_revision() {
        let stalled = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "False", "reason": "InvalidCELExpression", "message": "failed to parse the CEL expression"},
            {"type": "Stalled", "status": "True", "reason": "InvalidCELExpression", "message": "failed to parse the CEL expression"}]}});
        assert!(
            matches!(flux_ready(&stalled, "abcdef0123456789"), Verdict::Fail(r) if r.contains("Stalled=True InvalidCELExpression"))
        );
        // Any Ready=False reason at our attempted revision fails, as `flux reconcile` says.
        let sha = "abcdef0123456789";
        let full = format!("main@sha1:{sha}");
        assert!(
            matches!(flux_ready(&ks("False", "AccessDenied", "main@sha1:1111111111", &full), sha), Verdict::Fail(r) if r.contains("AccessDenied"))
        );
        // Reconciling=True (a retry is coming) is in progress, as kstatus says.
        let mut retrying = ks("False", "ArtifactFailed", &full, &full);
        retrying["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Reconciling", "status": "True", "reason": "ProgressingWithRetry", "message": "Fetching manifests"}));
        assert!(
            matches!(flux_ready(&retrying, sha), Verdict::Wait(r) if r.contains("ProgressingWithRetry"))
        );
    }

    #[test]
    fn steady_uses_gitops_engines_waiting_reason_rule() {
        for reason in [
            "RunContainerError",
            "ErrImageNeverPull",
            "PreStartHookError",
        ] {
            assert!(
                matches!(pods_steady(&[pod("e", 0, Some(reason))], 3), Verdict::Fail(r) if r.contains(reason)),
                "{reason}"
            );
        }
        assert_eq!(
            pods_steady(&[pod("e", 0, Some("PodInitializing"))], 3),
            Verdict::Pass
        );
    }

    #[test]
    fn combine_prefers_failure() {
        assert_eq!(combine([Verdict::Pass, Verdict::Pass]), Verdict::Pass);
        assert_eq!(
            combine([Verdict::Wait("a".into()), Verdict::Fail("b".into())]),
            Verdict::Fail("b".into())
        );
        assert_eq!(
            combine([Verdict::Pass, Verdict::Wait("a".into())]),
            Verdict::Wait("a".into())
        );
    }
}
