//! The `synced` gate: the live object shows Git's change. Where it looks ([`SyncSource`]): the
//! live canary Ingress or HTTPRoute, or the Argo CD `Application` / Flux `Kustomization` that
//! applies the merged revision, which `--sync-now` first asks to reconcile at once.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};

use super::watch::{patch_with_retry, wait_for, wait_for_dyn, Target};
use super::{ClusterError, GateOutcome, ObjectRef};
use crate::gate::k8s as gates;
use crate::gate::Verdict;

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

pub(crate) fn argocd_application() -> ApiResource {
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
pub(crate) fn sync_now_patch(source: &SyncSource, now: SystemTime) -> Option<serde_json::Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
