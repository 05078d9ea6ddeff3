//! Health rules for workloads: a Deployment finished its rollout (as `kubectl rollout status`
//! decides), a stable Deployment serves, a Deployment keeps its availability, and no pod is
//! crash-looping, failing to pull its image or restarting past a threshold.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::gate::Verdict;

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
pub(crate) fn broken_waiting_reason(reason: &str) -> bool {
    BROKEN_WAITING_REASONS.contains(&reason)
        || reason.starts_with("Err")
        || reason.ends_with("Error")
        || reason.ends_with("BackOff")
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
pub(crate) fn stable_has_endpoints(d: &Deployment) -> Verdict {
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
pub(crate) fn deployment_available(d: &Deployment) -> Verdict {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn deploy(gen: i64, replicas: i32, status: Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "web", "generation": gen}, "spec": {"replicas": replicas, "selector": {}, "template": {}}, "status": status})).unwrap()
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
}
