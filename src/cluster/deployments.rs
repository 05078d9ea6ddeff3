//! The Deployment gates: `rolled-out` (each canary finished its rollout, each stable serves) and
//! `steady` (for the bake time no canary pod breaks, the canaries stay available and the stables
//! keep endpoints), each over every Deployment of a stage.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::core::Selector;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::watch::{any_changed, get_with_retry, reason_of, state_line, wait_for, Target, Watch};
use super::{ClusterError, GateOutcome, ObjectRef};
use crate::gate::k8s as gates;
use crate::gate::Verdict;

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
pub(crate) async fn rolled_out_all(
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

/// [`steady`] over every Deployment of a stage: the pods of each canary, each canary and each
/// stable watched together for one bake; the first that breaks fails the gate.
pub(crate) async fn steady_all(
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
