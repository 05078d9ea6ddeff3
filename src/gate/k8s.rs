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

/// Container waiting reasons after which a pod will not get better by itself.
const BROKEN_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Flux `Ready=False` reasons that mean the attempt at a revision failed (not merely pending).
const FLUX_FAILED_REASONS: &[&str] = &[
    "ReconciliationFailed",
    "HealthCheckFailed",
    "BuildFailed",
    "ArtifactFailed",
    "PruneFailed",
];

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
    if at_revision && health == "Degraded" {
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

/// A Flux `Kustomization` is Ready with `lastAppliedRevision` naming the commit.
pub fn flux_ready(ks: &Value, revision: &str) -> Verdict {
    let applied = str_at(ks, &["status", "lastAppliedRevision"]).unwrap_or("");
    let attempted = str_at(ks, &["status", "lastAttemptedRevision"]).unwrap_or("");
    let ready = ks
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    let (status, reason, message) = match ready {
        Some(c) => (
            c.get("status").and_then(Value::as_str).unwrap_or("Unknown"),
            c.get("reason").and_then(Value::as_str).unwrap_or(""),
            c.get("message").and_then(Value::as_str).unwrap_or(""),
        ),
        None => ("Unknown", "", ""),
    };
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
    if status == "False"
        && FLUX_FAILED_REASONS.contains(&reason)
        && revision_matches(attempted, revision)
    {
        return Verdict::Fail(format!(
            "Flux Ready=False {reason} at {attempted}: {message}"
        ));
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

/// A Deployment finished rolling out its current spec (what `kubectl rollout status` checks).
pub fn deployment_rolled_out(d: &Deployment) -> Verdict {
    let name = deployment_name(d);
    let status = d.status.clone().unwrap_or_default();
    if let Some(c) = status
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing"))
    {
        if c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            let msg = c.message.as_deref().unwrap_or("");
            return Verdict::Fail(format!(
                "Deployment {name} exceeded its progress deadline: {msg}"
            ));
        }
    }
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Verdict::Wait(format!(
            "Deployment {name}: controller has observed generation {observed} of {generation}"
        ));
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
    if ready < desired || available < desired {
        return Verdict::Wait(format!("Deployment {name}: {counts}"));
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
pub fn pods_steady(pods: &[Pod], restart_threshold: i32) -> Verdict {
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
                if BROKEN_WAITING_REASONS.contains(&reason) {
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
    }
    Verdict::Pass
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
