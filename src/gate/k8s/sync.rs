//! The `synced` rules: the live Ingress carries Git's canary weight, an Argo CD `Application` is
//! Synced and Healthy at the merged revision, a Flux `Kustomization` is Ready with it applied.

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::Value;

use crate::gate::Verdict;

pub(crate) const CANARY_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary";
pub(crate) const WEIGHT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary-weight";

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
pub(crate) fn revision_matches(observed: &str, wanted: &str) -> bool {
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

    fn app(sync: &str, rev: &str, health: &str) -> Value {
        json!({"status": {"sync": {"status": sync, "revision": rev}, "health": {"status": health, "message": "pod crash"}}})
    }

    fn ks(ready: &str, reason: &str, applied: &str, attempted: &str) -> Value {
        json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "lastAppliedRevision": applied, "lastAttemptedRevision": attempted,
            "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": "msg"}]}})
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
}
