//! The `synced` gate for an HTTPRoute canary: a pure verdict over the live HTTPRoute
//! (`gateway.networking.k8s.io/v1`, read as JSON).
//!
//! Git's change reached the cluster when the live route splits between the stable and the
//! canary Service as the base does, and the Gateways have taken that generation: every
//! `status.parents[]` entry (one per parent a controller handles, Gateway API
//! `RouteParentStatus`) has `Accepted=True` and `ResolvedRefs=True`, each condition's
//! `observedGeneration` equal to the route's `metadata.generation`. A condition about an
//! older generation says nothing about what Git has now. An empty `status.parents` means no
//! Gateway has attached the route yet (the spec's wording): waiting, not passing.

use serde::Serialize;
use serde_json::Value;

use crate::gate::Verdict;

/// The split the base has: the two Services and the weights of the first rule splitting
/// between them (`None` when Git's weight is not a valid one: the split is then not compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteWeights {
    pub canary: String,
    pub stable: String,
    pub canary_weight: Option<u32>,
    pub stable_weight: Option<u32>,
}

/// `Accepted=False` reasons that a later reconcile may still turn around.
const PENDING_ACCEPTED: &[&str] = &["Pending"];
/// `ResolvedRefs=False` reasons that a later reconcile may still turn around: a Service the
/// same sync is creating.
const PENDING_REFS: &[&str] = &["BackendNotFound"];

/// The live HTTPRoute carries the base's split and every parent accepted this generation.
pub(crate) fn httproute_synced(route: &Value, want: &RouteWeights) -> Verdict {
    if let Some(wait) = split_differs(route, want) {
        return Verdict::Wait(wait);
    }
    let Some(generation) = route
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
    else {
        return Verdict::Wait("the HTTPRoute has no metadata.generation yet".into());
    };
    let parents = route
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if parents.is_empty() {
        return Verdict::Wait(
            "no Gateway has attached the HTTPRoute yet (status.parents is empty)".into(),
        );
    }
    let mut waits = Vec::new();
    for p in parents {
        let who = parent_name(p);
        for (type_, pending) in [
            ("Accepted", PENDING_ACCEPTED),
            ("ResolvedRefs", PENDING_REFS),
        ] {
            match parent_condition(p, type_, generation, pending) {
                Verdict::Pass => {}
                Verdict::Fail(r) => return Verdict::Fail(format!("{who}: {r}")),
                Verdict::Wait(r) | Verdict::Inconclusive(r) => waits.push(format!("{who}: {r}")),
            }
        }
    }
    if waits.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Wait(waits.join("; "))
    }
}

/// Why the live split is not the base's, or `None` when every rule splitting between the two
/// Services has the base's weights (or the same proportion on a rule with another total).
fn split_differs(route: &Value, want: &RouteWeights) -> Option<String> {
    let rules = route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let weight_of = |rule: &Value, name: &str| -> Option<u64> {
        rule.get("backendRefs")?
            .as_array()?
            .iter()
            // By name, as the router pairs them (a ServiceImport backend counts too).
            .find(|b| b.get("name").and_then(Value::as_str) == Some(name))
            // An absent weight is 1 (the CRD's default).
            .map(|b| b.get("weight").and_then(Value::as_u64).unwrap_or(1))
    };
    let splits: Vec<(usize, u64, u64)> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, weight_of(r, &want.canary)?, weight_of(r, &want.stable)?)))
        .collect();
    if splits.is_empty() {
        return Some(format!(
            "no rule of the live HTTPRoute splits between {} and {} yet",
            want.stable, want.canary
        ));
    }
    let (Some(wc), Some(ws)) = (want.canary_weight, want.stable_weight) else {
        return None;
    };
    let (wc, ws) = (u64::from(wc), u64::from(ws));
    for (i, c, s) in splits {
        let same = if wc + ws == 0 || c + s == 0 {
            (c, s) == (wc, ws)
        } else {
            c * (wc + ws) == wc * (c + s)
        };
        if !same {
            return Some(format!(
                "rule {i} weighs {} {c} / {} {s}, waiting for {wc} / {ws}",
                want.canary, want.stable
            ));
        }
    }
    None
}

/// `gateway/<ns>/<name>[/<section>]` and the controller, for messages.
fn parent_name(p: &Value) -> String {
    let r = p.get("parentRef").unwrap_or(&Value::Null);
    let s = |k: &str| r.get(k).and_then(Value::as_str);
    let kind = s("kind").unwrap_or("Gateway");
    let mut name = match s("namespace") {
        Some(ns) => format!("{kind} {ns}/{}", s("name").unwrap_or("?")),
        None => format!("{kind} {}", s("name").unwrap_or("?")),
    };
    if let Some(section) = s("sectionName") {
        name.push_str(&format!(" section {section}"));
    }
    if let Some(c) = p.get("controllerName").and_then(Value::as_str) {
        name.push_str(&format!(" ({c})"));
    }
    name
}

fn parent_condition(p: &Value, type_: &str, generation: i64, pending: &[&str]) -> Verdict {
    let Some(c) = p
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        })
    else {
        return Verdict::Wait(format!("no {type_} condition yet"));
    };
    let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
    let (status, reason, message) = (field("status"), field("reason"), field("message"));
    match c.get("observedGeneration").and_then(Value::as_i64) {
        Some(g) if g == generation => {}
        Some(g) => {
            return Verdict::Wait(format!(
                "{type_} describes generation {g}, waiting for {generation}"
            ))
        }
        None => {
            return Verdict::Wait(format!(
                "{type_} has no observedGeneration, waiting for {generation}"
            ))
        }
    }
    let said = format!("{type_}={status} {reason}: {message}")
        .trim_end_matches(": ")
        .to_string();
    match status {
        "True" => Verdict::Pass,
        "False" if !pending.contains(&reason) => Verdict::Fail(said),
        _ => Verdict::Wait(said),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn want(c: u32, s: u32) -> RouteWeights {
        RouteWeights {
            canary: "web-canary".into(),
            stable: "web".into(),
            canary_weight: Some(c),
            stable_weight: Some(s),
        }
    }

    fn cond(type_: &str, status: &str, reason: &str, gen: i64) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": "",
            "observedGeneration": gen, "lastTransitionTime": "2026-11-27T00:00:00Z"})
    }

    fn parent(name: &str, section: Option<&str>, conditions: Vec<Value>) -> Value {
        let mut r = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway",
            "namespace": "infra", "name": name});
        if let Some(s) = section {
            r["sectionName"] = json!(s);
        }
        json!({"parentRef": r, "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
            "conditions": conditions})
    }

    fn accepted(gen: i64) -> Vec<Value> {
        vec![
            cond("Accepted", "True", "Accepted", gen),
            cond("ResolvedRefs", "True", "ResolvedRefs", gen),
        ]
    }

    /// The corpus's simple split (kubernetes-sigs/gateway-api examples, `simple-split`) with
    /// the canary's weights and a status as Envoy Gateway writes it.
    fn route(generation: i64, canary: u32, stable: u32, parents: Vec<Value>) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop", "generation": generation},
            "spec": {
                "parentRefs": [{"name": "eg", "namespace": "infra", "sectionName": "http"}],
                "hostnames": ["shop.example.com"],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": "web", "port": 80, "weight": stable},
                        {"name": "web-canary", "port": 80, "weight": canary}
                    ]
                }]
            },
            "status": {"parents": parents}
        })
    }

    #[test]
    fn accepted_at_the_generation_with_the_base_weights_passes() {
        let r = route(3, 10, 90, vec![parent("eg", Some("http"), accepted(3))]);
        assert_eq!(httproute_synced(&r, &want(10, 90)), Verdict::Pass);
        // Two Gateways, both current.
        let r = route(
            3,
            10,
            90,
            vec![
                parent("eg", Some("http"), accepted(3)),
                parent("eg-internal", None, accepted(3)),
            ],
        );
        assert_eq!(httproute_synced(&r, &want(10, 90)), Verdict::Pass);
    }

    #[test]
    fn other_weights_wait() {
        let r = route(3, 5, 95, vec![parent("eg", Some("http"), accepted(3))]);
        let v = httproute_synced(&r, &want(10, 90));
        assert_eq!(
            v,
            Verdict::Wait("rule 0 weighs web-canary 5 / web 95, waiting for 10 / 90".into())
        );
        // The same proportion on another total is the same split.
        let r = route(3, 100, 900, vec![parent("eg", Some("http"), accepted(3))]);
        assert_eq!(httproute_synced(&r, &want(10, 90)), Verdict::Pass);
        // 0 / 0 sends nothing anywhere: only 0 / 0 equals it.
        let r = route(3, 0, 0, vec![parent("eg", Some("http"), accepted(3))]);
        assert!(matches!(
            httproute_synced(&r, &want(0, 100)),
            Verdict::Wait(_)
        ));
        // No weight in Git to compare: only the status decides.
        let mut w = want(10, 90);
        w.canary_weight = None;
        let r = route(3, 1, 1, vec![parent("eg", Some("http"), accepted(3))]);
        assert_eq!(httproute_synced(&r, &w), Verdict::Pass);
    }

    #[test]
    fn an_absent_weight_is_one_and_a_missing_split_waits() {
        let mut r = route(2, 1, 1, vec![parent("eg", None, accepted(2))]);
        r["spec"]["rules"][0]["backendRefs"][0]
            .as_object_mut()
            .unwrap()
            .remove("weight");
        r["spec"]["rules"][0]["backendRefs"][1]
            .as_object_mut()
            .unwrap()
            .remove("weight");
        assert_eq!(httproute_synced(&r, &want(1, 1)), Verdict::Pass);
        r["spec"]["rules"][0]["backendRefs"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert!(matches!(
            httproute_synced(&r, &want(1, 1)),
            Verdict::Wait(m) if m.contains("no rule of the live HTTPRoute splits between web and web-canary")
        ));
    }

    #[test]
    fn stale_or_missing_status_waits() {
        // The controller has not looked at generation 4 yet.
        let r = route(4, 10, 90, vec![parent("eg", Some("http"), accepted(3))]);
        let Verdict::Wait(m) = httproute_synced(&r, &want(10, 90)) else {
            panic!()
        };
        assert!(
            m.starts_with("Gateway infra/eg section http (gateway.envoyproxy.io/gatewayclass-controller): Accepted describes generation 3, waiting for 4"),
            "{m}"
        );
        // One Gateway current, the other behind: still waiting, naming the one behind.
        let r = route(
            4,
            10,
            90,
            vec![
                parent("eg", None, accepted(4)),
                parent("eg-2", None, accepted(3)),
            ],
        );
        assert!(
            matches!(httproute_synced(&r, &want(10, 90)), Verdict::Wait(m) if m.contains("infra/eg-2") && !m.contains("infra/eg:"))
        );
        // No Gateway has reported.
        let r = route(1, 10, 90, vec![]);
        assert!(
            matches!(httproute_synced(&r, &want(10, 90)), Verdict::Wait(m) if m.contains("status.parents is empty"))
        );
        let mut r = route(1, 10, 90, vec![]);
        r.as_object_mut().unwrap().remove("status");
        assert!(matches!(
            httproute_synced(&r, &want(10, 90)),
            Verdict::Wait(_)
        ));
        // Accepted written, ResolvedRefs not yet.
        let r = route(
            1,
            10,
            90,
            vec![parent(
                "eg",
                None,
                vec![cond("Accepted", "True", "Accepted", 1)],
            )],
        );
        assert!(
            matches!(httproute_synced(&r, &want(10, 90)), Verdict::Wait(m) if m.contains("no ResolvedRefs condition yet"))
        );
        // A condition without observedGeneration cannot be placed in time.
        let mut c = cond("Accepted", "True", "Accepted", 1);
        c.as_object_mut().unwrap().remove("observedGeneration");
        let r = route(
            1,
            10,
            90,
            vec![parent(
                "eg",
                None,
                vec![c, cond("ResolvedRefs", "True", "ResolvedRefs", 1)],
            )],
        );
        assert!(
            matches!(httproute_synced(&r, &want(10, 90)), Verdict::Wait(m) if m.contains("no observedGeneration"))
        );
    }

    #[test]
    fn rejections_at_the_generation_fail_and_pending_ones_wait() {
        let r = route(
            2,
            10,
            90,
            vec![parent(
                "eg",
                Some("https"),
                vec![
                    json!({"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners",
                        "message": "no listener allows routes from namespace shop", "observedGeneration": 2}),
                    cond("ResolvedRefs", "True", "ResolvedRefs", 2),
                ],
            )],
        );
        assert_eq!(
            httproute_synced(&r, &want(10, 90)),
            Verdict::Fail("Gateway infra/eg section https (gateway.envoyproxy.io/gatewayclass-controller): Accepted=False NotAllowedByListeners: no listener allows routes from namespace shop".into())
        );
        let r = route(
            2,
            10,
            90,
            vec![parent(
                "eg",
                None,
                vec![
                    cond("Accepted", "True", "Accepted", 2),
                    cond("ResolvedRefs", "False", "RefNotPermitted", 2),
                ],
            )],
        );
        assert!(
            matches!(httproute_synced(&r, &want(10, 90)), Verdict::Fail(m) if m.ends_with("ResolvedRefs=False RefNotPermitted"))
        );
        // The canary Service may be on its way: BackendNotFound waits, as does Pending.
        let r = route(
            2,
            10,
            90,
            vec![parent(
                "eg",
                None,
                vec![
                    cond("Accepted", "Unknown", "Pending", 2),
                    cond("ResolvedRefs", "False", "BackendNotFound", 2),
                ],
            )],
        );
        let Verdict::Wait(m) = httproute_synced(&r, &want(10, 90)) else {
            panic!()
        };
        assert!(m.contains("Accepted=Unknown Pending"), "{m}");
        assert!(m.contains("ResolvedRefs=False BackendNotFound"), "{m}");
        // A rejection of an older generation is old news.
        let r = route(
            3,
            10,
            90,
            vec![parent(
                "eg",
                None,
                vec![
                    cond("Accepted", "False", "NotAllowedByListeners", 2),
                    cond("ResolvedRefs", "True", "ResolvedRefs", 2),
                ],
            )],
        );
        assert!(matches!(
            httproute_synced(&r, &want(10, 90)),
            Verdict::Wait(_)
        ));
    }

    /// Every two-backend route of the corpus, given the status a Gateway writes for it,
    /// passes with its own weights and waits with others.
    #[test]
    fn corpus_routes_with_status() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/httproute");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("SKIP: no corpus at {}", dir.display());
            return;
        };
        let mut seen = 0;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in text.split("\n---") {
                let Ok(mut v) = serde_saphyr::from_str::<Value>(doc) else {
                    continue;
                };
                if v.get("kind").and_then(Value::as_str) != Some("HTTPRoute") {
                    continue;
                }
                let Some(rule) =
                    v.pointer("/spec/rules")
                        .and_then(Value::as_array)
                        .and_then(|rs| {
                            rs.iter().find(|r| {
                                r.get("backendRefs")
                                    .and_then(Value::as_array)
                                    .is_some_and(|b| b.len() == 2)
                            })
                        })
                else {
                    continue;
                };
                let refs = rule["backendRefs"].as_array().unwrap().clone();
                let name = |i: usize| refs[i]["name"].as_str().unwrap_or_default().to_string();
                let weight =
                    |i: usize| refs[i].get("weight").and_then(Value::as_u64).unwrap_or(1) as u32;
                if name(0) == name(1) {
                    continue;
                }
                let w = RouteWeights {
                    canary: name(1),
                    stable: name(0),
                    canary_weight: Some(weight(1)),
                    stable_weight: Some(weight(0)),
                };
                v["metadata"]["generation"] = json!(7);
                v["status"] = json!({"parents": [parent("gw", None, accepted(7))]});
                assert_eq!(
                    httproute_synced(&v, &w),
                    Verdict::Pass,
                    "{}",
                    path.display()
                );
                // Another split: one more for the canary, or for a stable at 0 (whose canary
                // has everything at any weight).
                let other = if weight(0) == 0 {
                    RouteWeights {
                        stable_weight: Some(1),
                        ..w.clone()
                    }
                } else {
                    RouteWeights {
                        canary_weight: Some(weight(1) + 1),
                        ..w.clone()
                    }
                };
                assert!(
                    matches!(httproute_synced(&v, &other), Verdict::Wait(_)),
                    "{}",
                    path.display()
                );
                v["status"]["parents"][0]["conditions"][0]["observedGeneration"] = json!(6);
                assert!(
                    matches!(httproute_synced(&v, &w), Verdict::Wait(_)),
                    "{}",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(
            seen >= 3,
            "only {seen} two-backend routes in {}",
            dir.display()
        );
    }
}
