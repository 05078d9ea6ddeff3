//! Self-test of the end-to-end world (`tests/support/e2e.rs`): merges happen in real Git, the
//! sync agent applies what the base branch holds, the Deployment controller rolls out, and the
//! knobs (crash loop, scale, paused sync) do what the rollout scenarios rely on. The cluster
//! state is judged with the tool's own gate functions where they exist.

use crate::support::e2e;

use std::time::Duration;

use e2e::{Forge, Metrics, SyncAgent, World, WorldOptions};
use gitops_canary::gate::k8s::{argo_synced, flux_ready};
use gitops_canary::gate::Verdict;
use serde_json::Value;

const CANARY_FILE: &str = "apps/shop/canary.yaml";
const SOON: Duration = Duration::from_secs(5);

fn opts(forge: Forge, sync: SyncAgent) -> WorldOptions {
    WorldOptions {
        forge,
        sync,
        ..WorldOptions::default()
    }
}

fn pod_waiting_reason(p: &Value) -> Option<String> {
    p.pointer("/status/containerStatuses/0/state/waiting/reason")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[tokio::test]
async fn world_starts_synced_with_everything_available() {
    if !e2e::available() {
        return;
    }
    let w = World::start(WorldOptions::default()).await;
    let seed = w.base_sha();
    assert_eq!(w.synced_sha(), Some(seed.clone()));
    assert_eq!(w.base_weight(CANARY_FILE), 10);
    assert_eq!(w.live_weight("shop", "web-canary"), Some(10));
    assert_eq!(w.live_weight("api-canary", "api"), Some(0));
    assert_eq!(argo_synced(&w.argo_app().unwrap(), &seed), Verdict::Pass);
    for (ns, name, replicas) in [
        ("shop", "web", 3),
        ("shop", "web-canary", 1),
        ("api", "worker", 2),
    ] {
        let d = w.deployment(ns, name).unwrap();
        assert_eq!(
            d["status"]["availableReplicas"], replicas,
            "{ns}/{name}: {d}"
        );
        assert_eq!(w.pods(ns, name).len(), replicas as usize);
    }
    assert_eq!(w.branches(), vec!["main".to_string()]);
    assert_eq!(w.commits_on_base().len(), 1);
    // The environment points at the fakes and carries the token only in the token variable.
    let env = w.env();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("GITHUB_REPOSITORY").as_deref(), Some(e2e::REPO));
    assert_eq!(get("GITHUB_TOKEN").as_deref(), Some(w.token()));
    assert!(get("GITHUB_API_URL")
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert!(std::path::Path::new(&get("KUBECONFIG").unwrap()).is_file());
    assert!(get("GITOPS_CANARY_PROMETHEUS_URL").is_none());
}

#[tokio::test]
async fn github_merge_lands_in_git_and_the_cluster_follows() {
    if !e2e::available() {
        return;
    }
    let w = World::start(opts(Forge::Github, SyncAgent::Argo)).await;
    let seed = w.base_sha();
    let canary = w.deployment("shop", "web-canary").unwrap();
    let gen_before = canary["metadata"]["generation"].as_i64().unwrap();

    // A person's branch: weight 25 (the tool's own edit) and a new canary image.
    let head = w.push_branch("canary-25", "Canary at 25%", |dir| {
        gitops_canary::router::set_weight(dir, "shop/web-canary", 25, false).unwrap();
        let path = dir.join(CANARY_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("shop-web:1.5.0", "shop-web:1.5.1")).unwrap();
    });
    assert_eq!(w.weight_at("canary-25", CANARY_FILE), 25);
    let number = w.open_pr("canary-25", "Canary web-canary 25%").await;
    assert_eq!(w.github().pr(number).unwrap().head_sha, head);
    let merged = w.merge_pr(number, "merge").await;

    // A real merge commit on main, reported as the PR's merge_commit_sha.
    assert_eq!(w.base_sha(), merged);
    assert_eq!(w.parents(&merged), vec![seed.clone(), head.clone()]);
    assert!(w.message(&merged).starts_with(&format!(
        "Merge pull request #{number} from acme/canary-25\n\nCanary web-canary 25%"
    )));
    assert_eq!(
        w.github().pr(number).unwrap().merge_commit_sha,
        Some(merged.clone())
    );
    assert_eq!(w.base_weight(CANARY_FILE), 25);
    assert_eq!(
        w.commits_on_base()[0],
        (
            merged.clone(),
            format!("Merge pull request #{number} from acme/canary-25")
        )
    );

    w.wait_for("canary weight 25 live", SOON, |w| {
        w.live_weight("shop", "web-canary") == Some(25)
    })
    .await;
    w.wait_for("Argo CD Synced and Healthy at the merge", SOON, |w| {
        argo_synced(&w.argo_app().unwrap(), &merged) == Verdict::Pass
    })
    .await;
    let app = w.argo_app().unwrap();
    assert_eq!(app["status"]["sync"]["revision"], merged.as_str());
    let d = w.deployment("shop", "web-canary").unwrap();
    assert_eq!(
        d["metadata"]["generation"].as_i64().unwrap(),
        gen_before + 1
    );
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    assert_eq!(d["status"]["availableReplicas"], 1);
    let pods = w.pods("shop", "web-canary");
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0]["spec"]["containers"][0]["image"],
        "ghcr.io/example/shop-web:1.5.1"
    );
    assert_eq!(pods[0]["status"]["containerStatuses"][0]["ready"], true);
    // The stable was not touched.
    assert_eq!(
        w.deployment("shop", "web").unwrap()["metadata"]["generation"],
        1
    );
    assert_eq!(w.open_prs(), vec![]);
}

#[tokio::test]
async fn argo_reports_out_of_sync_until_the_delayed_sync_runs() {
    if !e2e::available() {
        return;
    }
    let w = World::start(WorldOptions {
        sync_delay: Duration::from_millis(600),
        ..WorldOptions::default()
    })
    .await;
    let sha = w.commit_to_base("weight 50 straight to main", |dir| {
        gitops_canary::router::set_weight(dir, "shop/web-canary", 50, false).unwrap();
    });
    w.wait_for("Argo CD noticed the commit", SOON, |w| {
        w.argo_app().unwrap()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    assert!(matches!(
        argo_synced(&w.argo_app().unwrap(), &sha),
        Verdict::Wait(_)
    ));
    assert_eq!(w.live_weight("shop", "web-canary"), Some(10));
    w.wait_for("weight 50 live", SOON, |w| {
        w.live_weight("shop", "web-canary") == Some(50)
    })
    .await;
    w.wait_for("Synced", SOON, |w| {
        argo_synced(&w.argo_app().unwrap(), &sha) == Verdict::Pass
    })
    .await;
}

#[tokio::test]
async fn squash_merge_and_a_conflicting_pr() {
    if !e2e::available() {
        return;
    }
    let w = World::start(WorldOptions::default()).await;
    let seed = w.base_sha();
    w.push_weight_branch("a", "shop/web-canary", 25);
    w.push_weight_branch("b", "shop/web-canary", 50);
    let a = w.open_pr("a", "Canary 25%").await;
    let b = w.open_pr("b", "Canary 50%").await;
    let sha = w.merge_pr(a, "squash").await;
    assert_eq!(w.parents(&sha), vec![seed]);
    assert!(w.message(&sha).starts_with(&format!("Canary 25% (#{a})")));
    assert_eq!(w.base_weight(CANARY_FILE), 25);
    // Both edited the same line: GitHub now calls `b` unmergeable and refuses to merge it.
    w.wait_for("b unmergeable", SOON, |w| {
        w.github().pr(b).unwrap().mergeable == Some(false)
    })
    .await;
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/repos/{}/pulls/{b}/merge",
            w.github().api_url(),
            e2e::REPO
        ))
        .bearer_auth(w.token())
        .json(&serde_json::json!({"merge_method": "merge"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(w.base_sha(), sha);
    assert_eq!(w.open_prs().len(), 1);
    assert!(w.duplicate_prs().is_empty());
    w.wait_synced(&sha, SOON).await;
    assert_eq!(w.live_weight("shop", "web-canary"), Some(25));
}

#[tokio::test]
async fn crash_loop_knob_breaks_the_canary_and_argo_goes_degraded() {
    if !e2e::available() {
        return;
    }
    let w = World::start(WorldOptions {
        progress_deadline: Duration::from_millis(500),
        ..WorldOptions::default()
    })
    .await;
    let seed = w.base_sha();
    w.crash_loop("shop", "web-canary", true);
    w.wait_for("canary pods crash-looping", SOON, |w| {
        let pods = w.pods("shop", "web-canary");
        !pods.is_empty()
            && pods.iter().all(|p| {
                pod_waiting_reason(p).as_deref() == Some("CrashLoopBackOff")
                    && p["status"]["containerStatuses"][0]["restartCount"] == e2e::CRASH_RESTARTS
            })
    })
    .await;
    // The world updates the Deployment's status a tick after its pods: wait for it too (under
    // load the test read it in between).
    w.wait_for(
        "the canary Deployment has no available replica",
        SOON,
        |w| {
            w.deployment("shop", "web-canary")
                .is_some_and(|d| d["status"]["availableReplicas"] == 0)
        },
    )
    .await;
    // The tool's pod gate sees it as broken.
    let pods: Vec<k8s_openapi::api::core::v1::Pod> = w
        .pods("shop", "web-canary")
        .into_iter()
        .map(|p| serde_json::from_value(p).unwrap())
        .collect();
    assert!(matches!(
        gitops_canary::gate::k8s::pods_steady(&pods, 3),
        Verdict::Fail(_)
    ));
    w.wait_for("Argo CD Degraded", SOON, |w| {
        matches!(argo_synced(&w.argo_app().unwrap(), &seed), Verdict::Fail(_))
    })
    .await;
    // The stable is unaffected; recovering brings the canary back.
    assert!(w
        .pods("shop", "web")
        .iter()
        .all(|p| pod_waiting_reason(p).is_none()));
    w.crash_loop("shop", "web-canary", false);
    w.wait_for("Argo CD Healthy again", SOON, |w| {
        argo_synced(&w.argo_app().unwrap(), &seed) == Verdict::Pass
    })
    .await;
}

#[tokio::test]
async fn scale_and_pause_knobs() {
    if !e2e::available() {
        return;
    }
    let w = World::start(opts(Forge::None, SyncAgent::IngressOnly)).await;
    w.scale("shop", "web", 0);
    w.wait_for("stable scaled to 0", SOON, |w| {
        let d = w.deployment("shop", "web").unwrap();
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["availableReplicas"] == 0
    })
    .await;
    assert!(w.pods("shop", "web").is_empty());

    w.pause_sync(true);
    w.commit_to_base("weight 100", |dir| {
        gitops_canary::router::set_weight(dir, "shop/web-canary", 100, false).unwrap();
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.live_weight("shop", "web-canary"), Some(10));
    w.pause_sync(false);
    w.wait_for("weight 100 live", SOON, |w| {
        w.live_weight("shop", "web-canary") == Some(100)
    })
    .await;
}

#[tokio::test]
async fn pruned_objects_leave_the_cluster() {
    if !e2e::available() {
        return;
    }
    let w = World::start(opts(Forge::None, SyncAgent::IngressOnly)).await;
    assert_eq!(w.pods("shop", "web-canary").len(), 1);
    let pod = w.pods("shop", "web-canary")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    w.commit_to_base("promote: drop the canary", |dir| {
        std::fs::remove_file(dir.join(CANARY_FILE)).unwrap();
    });
    w.wait_for("canary objects pruned", SOON, |w| {
        w.deployment("shop", "web-canary").is_none()
            && w.kube()
                .get("networking.k8s.io/v1", "Ingress", "shop", "web-canary")
                .is_none()
            && w.kube().get("v1", "Pod", "shop", &pod).is_none()
    })
    .await;
    assert!(w.deployment("shop", "web").is_some());
}

#[tokio::test]
async fn flux_reports_the_applied_revision() {
    if !e2e::available() {
        return;
    }
    let w = World::start(opts(Forge::Github, SyncAgent::Flux)).await;
    let ks = w.flux_kustomization().unwrap();
    assert_eq!(flux_ready(&ks, &w.base_sha()), Verdict::Pass);
    let sha = w.commit_to_base("weight 25", |dir| {
        gitops_canary::router::set_weight(dir, "shop/web-canary", 25, false).unwrap();
    });
    w.wait_for("Flux Ready at the commit", SOON, |w| {
        flux_ready(&w.flux_kustomization().unwrap(), &sha) == Verdict::Pass
    })
    .await;
    let ks = w.flux_kustomization().unwrap();
    assert_eq!(
        ks["status"]["lastAppliedRevision"],
        format!("main@sha1:{sha}")
    );
    assert_eq!(w.live_weight("shop", "web-canary"), Some(25));

    // A manifest that does not parse: Flux says BuildFailed at that revision, nothing applied.
    let bad = w.commit_to_base("broken", |dir| {
        std::fs::write(dir.join("apps/shop/broken.yaml"), "kind: [unclosed\n").unwrap();
    });
    w.wait_for("Flux BuildFailed", SOON, |w| {
        matches!(
            flux_ready(&w.flux_kustomization().unwrap(), &bad),
            Verdict::Fail(_)
        )
    })
    .await;
    assert_eq!(w.sync_errors().len(), 1);
}

#[tokio::test]
async fn gitlab_squash_merge_request() {
    if !e2e::available() {
        return;
    }
    let w = World::start(opts(Forge::Gitlab, SyncAgent::Argo)).await;
    let seed = w.base_sha();
    let env = w.env();
    assert!(env
        .iter()
        .any(|(k, v)| k == "GITLAB_TOKEN" && v == w.token()));
    assert!(env.iter().any(|(k, _)| k == "CI_SERVER_URL"));
    let head = w.push_weight_branch("canary-50", "shop/web-canary", 50);
    let iid = w.open_pr("canary-50", "Canary 50%").await;
    let merged = w.merge_pr(iid, "squash").await;
    assert_eq!(w.base_sha(), merged);
    let parents = w.parents(&merged);
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0], seed);
    assert_ne!(parents[1], head, "the second parent is the squash commit");
    assert!(w
        .message(&merged)
        .starts_with("Merge branch 'canary-50' into 'main'"));
    w.wait_for("squash sha recorded", SOON, |w| {
        w.gitlab().mr(iid).unwrap().squash_commit_sha.as_deref() == Some(parents[1].as_str())
    })
    .await;
    w.wait_for("weight 50 live", SOON, |w| {
        w.live_weight("shop", "web-canary") == Some(50)
    })
    .await;
}

#[tokio::test]
async fn checkout_and_kubeconfig_work_like_ci() {
    if !e2e::available() {
        return;
    }
    let w = World::start(opts(Forge::Github, SyncAgent::IngressOnly)).await;
    let dir = w.checkout();
    assert!(dir.join(CANARY_FILE).is_file());
    let out = std::process::Command::new("git")
        .args(["remote", "get-url", "origin"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let origin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(origin, w.remote_url());
    assert!(!origin.contains(w.token()));

    // The generated kubeconfig reaches the fake through kube-rs, objects in k8s-openapi shapes.
    let kubeconfig = w
        .env()
        .into_iter()
        .find(|(k, _)| k == "KUBECONFIG")
        .unwrap()
        .1;
    let client =
        gitops_canary::cluster::connect_kubeconfig(std::path::Path::new(&kubeconfig), None)
            .await
            .unwrap();
    let ingresses: kube::Api<k8s_openapi::api::networking::v1::Ingress> =
        kube::Api::namespaced(client.clone(), "shop");
    let ing = ingresses.get("web-canary").await.unwrap();
    assert_eq!(
        gitops_canary::gate::k8s::ingress_synced(&ing, 10),
        Verdict::Pass
    );
    let deps: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client, "shop");
    let d = deps.get("web").await.unwrap();
    assert_eq!(
        gitops_canary::gate::k8s::deployment_rolled_out(&d),
        Verdict::Pass
    );
}

#[tokio::test]
async fn prometheus_serves_canary_traffic_now() {
    if !e2e::available() {
        return;
    }
    let w = World::start(WorldOptions {
        forge: Forge::None,
        sync: SyncAgent::IngressOnly,
        metrics: Metrics::Failing,
        ..WorldOptions::default()
    })
    .await;
    let Some(url) = w.prometheus_url() else {
        return; // SKIP printed by the Prometheus support
    };
    assert!(w
        .env()
        .iter()
        .any(|(k, v)| k == "GITOPS_CANARY_PROMETHEUS_URL" && *v == url));
    let q = "sum(rate(nginx_ingress_controller_requests{canary!=\"\",status=~\"5..\"}[5m])) / sum(rate(nginx_ingress_controller_requests{canary!=\"\"}[5m]))";
    let v: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ratio: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("no result: {v}"))
        .parse()
        .unwrap();
    assert!((0.25..0.35).contains(&ratio), "canary error ratio {ratio}");
}

#[tokio::test]
async fn the_tools_github_adapter_merges_for_real() {
    if !e2e::available() {
        return;
    }
    use gitops_canary::forge::github::{GitHub, GitHubConfig};
    use gitops_canary::forge::{Forge as _, MergeMethod, MergeOutcome, NewPullRequest, PrState};
    let w = World::start(opts(Forge::Github, SyncAgent::Argo)).await;
    let env = w.env();
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let gh = GitHub::new(GitHubConfig {
        api_url: get("GITHUB_API_URL"),
        server_url: get("GITHUB_SERVER_URL"),
        repo: get("GITHUB_REPOSITORY"),
        token: gitops_canary::secret::Token::new(get("GITHUB_TOKEN")),
        retry: Default::default(),
    })
    .unwrap();
    let head = w.push_weight_branch("gitops-canary/web-canary-25", "shop/web-canary", 25);
    let new = NewPullRequest {
        title: "Canary 25%".into(),
        body: "stage 1".into(),
        head: "gitops-canary/web-canary-25".into(),
        base: "main".into(),
        labels: vec!["gitops-canary".into()],
    };
    let pr = gh.create_pr(&new).await.unwrap();
    // Asking again finds the same PR: no duplicate.
    assert_eq!(gh.create_pr(&new).await.unwrap().number, pr.number);
    assert_eq!(w.prs().len(), 1);
    assert_eq!(pr.head_sha, head);
    let MergeOutcome::Merged { sha } = gh
        .merge(pr.number, MergeMethod::Merge, &head)
        .await
        .unwrap()
    else {
        panic!("not merged")
    };
    assert_eq!(sha, w.base_sha());
    let found = gh.find_pr_by_branch(&new.head).await.unwrap().unwrap();
    assert_eq!(
        found.state,
        PrState::Merged {
            merge_sha: sha.clone()
        }
    );
    w.wait_for("Argo CD Synced at the merge", SOON, |w| {
        argo_synced(&w.argo_app().unwrap(), &sha) == Verdict::Pass
    })
    .await;
    assert_eq!(w.live_weight("shop", "web-canary"), Some(25));
}

#[tokio::test]
async fn pr_head_follows_pushes_and_rebase_replays_the_commits() {
    if !e2e::available() {
        return;
    }
    let w = World::start(opts(Forge::Github, SyncAgent::IngressOnly)).await;
    let seed = w.base_sha();
    let first = w.push_weight_branch("two-steps", "shop/web-canary", 25);
    let n = w.open_pr("two-steps", "Two steps").await;
    assert_eq!(w.github().pr(n).unwrap().head_sha, first);
    let second = w.push_weight_branch("two-steps", "shop/web-canary", 50);
    assert_eq!(w.parents(&second), vec![first.clone()]);
    w.wait_for("the PR head follows the branch", SOON, |w| {
        w.github().pr(n).unwrap().head_sha == second
    })
    .await;
    let sha = w.merge_pr(n, "rebase").await;
    // Two new commits on top of the old base, same messages, not the branch's own commits.
    let commits = w.commits_on_base();
    assert_eq!(commits.len(), 3);
    assert_eq!(commits[0].0, sha);
    assert_ne!(sha, second);
    assert_eq!(commits[0].1, "Set shop/web-canary canary weight to 50");
    assert_eq!(commits[1].1, "Set shop/web-canary canary weight to 25");
    assert_eq!(commits[2].0, seed);
    assert_eq!(w.parents(&sha).len(), 1);
    assert_eq!(w.base_weight(CANARY_FILE), 50);
    w.wait_synced(&sha, SOON).await;
    assert_eq!(w.live_weight("shop", "web-canary"), Some(50));
}
