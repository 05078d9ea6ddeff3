//! End-to-end rollouts on one machine: the real binary against a real Git server (token auth,
//! `git http-backend`), the fake GitHub whose merges land in that repository, and the fake
//! Kubernetes API server kept in step by a sync agent (Argo CD) and a Deployment controller.
//!
//! Rollout scenarios are data: each file under `tests/cases/rollout/` names the world, the
//! config, and a list of steps (runs of the tool with their expected exit code and
//! outcome, and what "a person" does in between); one loop runs them all. The crash test kills
//! the tool after every change it makes to the outside world and re-runs it, and asserts the
//! same end state with no duplicate branch, PR or commit.

mod weights;

use crate::support::e2e;
use weights::{
    base_weight, live_route_weight, live_weight, ns_name, rendered_route_weight, rendered_weight,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use e2e::{Forge, Metrics, SyncAgent, World, WorldOptions};
use serde::Deserialize;

const CANARY_FILE: &str = "apps/shop/canary.yaml";
const STABLE_FILE: &str = "apps/shop/stable.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    /// github | gitlab | none
    forge: String,
    /// argo | flux | ingress
    #[serde(default = "default_sync")]
    sync: String,
    /// healthy | failing | none
    #[serde(default)]
    metrics: Option<String>,
    /// The `.gitops-canary.yaml` committed to the repository.
    config: String,
    /// Extra flags for every run of the tool.
    #[serde(default)]
    args: Vec<String>,
    /// The seed repository, a directory under `tests/cases/rollout-repos/` (default: the
    /// example repository).
    #[serde(default)]
    repo: Option<String>,
    /// Kustomize roots the sync agent renders and applies (default: flat manifests).
    #[serde(default)]
    render: Vec<String>,
    /// Where the test reads the canary: its file, the root that renders it, whether it is an
    /// HTTPRoute, and its live name.
    #[serde(default)]
    canary: CanaryAt,
    steps: Vec<ScenarioStep>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CanaryAt {
    /// The file holding the canary Ingress or the HTTPRoute.
    file: String,
    /// Read the weight from what this Kustomize root renders instead of from `file`.
    root: Option<String>,
    /// `NS/NAME` of the canary Ingress (or the HTTPRoute) live and rendered; its Deployment
    /// for `crash-loop` is `deployment`.
    name: String,
    deployment: String,
    /// The canary is the backendRef to this Service of the HTTPRoute `name`.
    route_service: Option<String>,
    /// The weight is this value (a dotted path) of the HelmRelease in `file`; `name` is the
    /// canary Ingress the chart renders.
    value: Option<String>,
}

impl Default for CanaryAt {
    fn default() -> Self {
        CanaryAt {
            file: CANARY_FILE.into(),
            root: None,
            name: "shop/web-canary".into(),
            deployment: "shop/web-canary".into(),
            route_service: None,
            value: None,
        }
    }
}

fn default_sync() -> String {
    "argo".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
enum ScenarioStep {
    /// Run a command (`run`, `reconcile`, `status`, `rollback`, `promote`).
    Tool {
        command: String,
        #[serde(default)]
        exit: i32,
        /// Substrings the JSON status or stdout must contain.
        #[serde(default)]
        contains: Vec<String>,
    },
    /// Approve every open PR as a reviewer.
    ApproveOpen,
    /// Merge every open PR as a person.
    MergeOpen,
    /// Close every open PR without merging.
    CloseOpen,
    /// Make the canary Deployment crash-loop (or stop).
    CrashLoop(bool),
    /// Stop (or resume) the sync agent: merged commits wait to be applied.
    PauseSync(bool),
    /// Assert the base weight now.
    BaseWeight(u32),
    /// Assert the number of open PRs now.
    OpenPrs(usize),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expect {
    base_weight: u32,
    /// The stable Deployment runs the canary's image (promotion happened).
    promoted: bool,
    /// Titles of all PRs (any order), each exactly once.
    #[serde(default)]
    prs: Vec<String>,
    /// Every PR in `prs` is merged.
    #[serde(default)]
    all_merged: bool,
    /// The live canary weight the cluster shows at the end.
    #[serde(default)]
    live_weight: Option<u32>,
    /// GitHub: every stage PR's body contains each of these.
    #[serde(default)]
    stage_pr_bodies_contain: Vec<String>,
    /// GitHub: some comment on a stage PR contains each of these.
    #[serde(default)]
    stage_pr_comments_contain: Vec<String>,
    /// Files of the seed repository that are byte for byte the same on the base at the end.
    #[serde(default)]
    unchanged: Vec<String>,
    /// What other Kustomize roots render at the end: root -> (`NS/NAME` of the Ingress, weight).
    #[serde(default)]
    rendered: BTreeMap<String, (String, u32)>,
    /// Live weights of other canary Ingresses at the end: `NS/NAME` -> weight.
    #[serde(default)]
    live: BTreeMap<String, u32>,
    /// What other Kustomize roots render at the end: root -> (`NS/NAME` of the HTTPRoute, its
    /// canary backendRef's Service, that backendRef's share of the split in percent).
    #[serde(default)]
    rendered_routes: BTreeMap<String, (String, String, u32)>,
    /// Live splits of other HTTPRoutes at the end: `NS/NAME` -> (canary Service, percent).
    #[serde(default)]
    live_routes: BTreeMap<String, (String, u32)>,
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gitops-canary"))
}

async fn tool(
    w: &World,
    dir: &Path,
    command: &str,
    extra: &[String],
    env: &[(String, String)],
) -> Output {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.arg(command)
        .arg("--repo")
        .arg(dir)
        .args(["--output", "json"])
        .args(extra);
    for (k, _) in std::env::vars() {
        if k.starts_with("GITOPS_CANARY_")
            || k.starts_with("GITHUB_")
            || k.starts_with("GITLAB")
            || k.starts_with("CI_")
        {
            cmd.env_remove(k);
        }
    }
    cmd.envs(w.env());
    cmd.envs(w.sync_env());
    cmd.envs(env.iter().cloned());
    cmd.env("GITOPS_CANARY_POLL_INTERVAL", "100ms");
    cmd.env("GITOPS_CANARY_MAX_WAIT", "60s");
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the tool finished within 2 minutes")
        .expect("the tool ran");
    // Tokens never reach any output.
    for text in [&out.stdout, &out.stderr] {
        let t = String::from_utf8_lossy(text);
        assert!(
            !t.contains(e2e::GITHUB_TOKEN) && !t.contains(e2e::GITLAB_TOKEN),
            "a token leaked: {t}"
        );
    }
    out
}

fn world_options(sc: &Scenario) -> WorldOptions {
    WorldOptions {
        forge: match sc.forge.as_str() {
            "github" => Forge::Github,
            "gitlab" => Forge::Gitlab,
            _ => Forge::None,
        },
        sync: match sc.sync.as_str() {
            "flux" => SyncAgent::Flux,
            "ingress" => SyncAgent::IngressOnly,
            _ => SyncAgent::Argo,
        },
        metrics: match sc.metrics.as_deref() {
            Some("healthy") => Metrics::Healthy,
            Some("failing") => Metrics::Failing,
            _ => Metrics::None,
        },
        extra_files: vec![(".gitops-canary.yaml".into(), sc.config.clone())],
        example_repo: match &sc.repo {
            Some(r) => repos_dir().join(r),
            None => WorldOptions::default().example_repo,
        },
        render_roots: sc.render.clone(),
        ..WorldOptions::default()
    }
}

fn repos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/rollout-repos")
}

fn stable_image_is_canary(w: &World) -> bool {
    let show = |file: &str| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(w.bare())
            .args(["show", &format!("{}:{file}", e2e::BASE)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    show(STABLE_FILE).contains("image: ghcr.io/example/shop-web:1.5.0")
}

async fn run_scenario(name: &str, sc: Scenario) -> Vec<String> {
    let mut failures = Vec::new();
    if !sc.render.is_empty() && !e2e::kustomize_available() {
        return failures;
    }
    if sc.canary.value.is_some() && !crate::support::helm::available() {
        return failures;
    }
    let w = World::start(world_options(&sc)).await;
    let dir = w.checkout();
    for (i, step) in sc.steps.iter().enumerate() {
        match step {
            ScenarioStep::Tool {
                command,
                exit,
                contains,
            } => {
                let out = tool(&w, &dir, command, &sc.args, &[]).await;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.code() != Some(*exit) {
                    failures.push(format!("{name} step {i} ({command}): exit {:?}, want {exit}\nstdout: {stdout}\nstderr: {stderr}", out.status.code()));
                    break;
                }
                for want in contains {
                    if !stdout.contains(want.as_str()) && !stderr.contains(want.as_str()) {
                        failures.push(format!("{name} step {i} ({command}): output lacks {want:?}\nstdout: {stdout}\nstderr: {stderr}"));
                    }
                }
            }
            ScenarioStep::ApproveOpen => {
                for pr in w.open_prs() {
                    w.approve(pr.number);
                }
            }
            ScenarioStep::MergeOpen => {
                for pr in w.open_prs() {
                    w.merge_pr(pr.number, "merge").await;
                }
            }
            ScenarioStep::CloseOpen => {
                for pr in w.open_prs() {
                    w.close_pr(pr.number);
                }
            }
            ScenarioStep::CrashLoop(on) => {
                let (ns, d) = ns_name(&sc.canary.deployment);
                w.crash_loop(ns, d, *on)
            }
            ScenarioStep::PauseSync(on) => w.pause_sync(*on),
            ScenarioStep::BaseWeight(want) => {
                let got = base_weight(&w, &sc.canary);
                if got != *want {
                    failures.push(format!("{name} step {i}: base weight {got}, want {want}"));
                }
            }
            ScenarioStep::OpenPrs(want) => {
                let got = w.open_prs().len();
                if got != *want {
                    failures.push(format!(
                        "{name} step {i}: {got} open PRs, want {want}: {:?}",
                        w.open_prs()
                    ));
                }
            }
        }
    }
    let e = &sc.expect;
    let weight = base_weight(&w, &sc.canary);
    if weight != e.base_weight {
        failures.push(format!(
            "{name}: base weight {weight}, want {}",
            e.base_weight
        ));
    }
    if stable_image_is_canary(&w) != e.promoted {
        failures.push(format!(
            "{name}: promoted is {}, want {}",
            !e.promoted, e.promoted
        ));
    }
    let dups = w.duplicate_prs();
    if !dups.is_empty() {
        failures.push(format!("{name}: duplicate PRs for {dups:?}"));
    }
    if !e.prs.is_empty() {
        let prs = w.prs();
        let mut titles: Vec<String> = prs.iter().map(|p| p.title.clone()).collect();
        titles.sort();
        let mut want = e.prs.clone();
        want.sort();
        if titles != want {
            failures.push(format!("{name}: PR titles {titles:?}, want {want:?}"));
        }
        if e.all_merged && prs.iter().any(|p| p.state != "merged") {
            failures.push(format!("{name}: not all PRs merged: {prs:?}"));
        }
    }
    if !e.stage_pr_bodies_contain.is_empty() || !e.stage_pr_comments_contain.is_empty() {
        let stage_prs: Vec<_> = w
            .github()
            .prs()
            .into_iter()
            .filter(|p| p.head_ref.contains("/stage-"))
            .collect();
        if stage_prs.is_empty() {
            failures.push(format!("{name}: no stage PRs"));
        }
        for pr in &stage_prs {
            let body = pr.body.clone().unwrap_or_default();
            for want in &e.stage_pr_bodies_contain {
                if !body.contains(want.as_str()) {
                    failures.push(format!(
                        "{name}: PR #{} body lacks {want:?}:\n{body}",
                        pr.number
                    ));
                }
            }
        }
        let comments: Vec<String> = stage_prs
            .iter()
            .flat_map(|p| w.github().comments(p.number))
            .collect();
        for want in &e.stage_pr_comments_contain {
            if !comments.iter().any(|c| c.contains(want.as_str())) {
                failures.push(format!(
                    "{name}: no stage PR comment contains {want:?}: {comments:?}"
                ));
            }
        }
    }
    if let Some(live) = e.live_weight {
        let ok = tokio::time::timeout(Duration::from_secs(10), async {
            while live_weight(&w, &sc.canary) != Some(live) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_ok();
        if !ok {
            failures.push(format!(
                "{name}: live weight {:?}, want {live}",
                live_weight(&w, &sc.canary)
            ));
        }
    }
    let seed = sc.repo.as_ref().map(|r| repos_dir().join(r));
    for file in &e.unchanged {
        let want = seed.as_ref().map_or_else(
            || WorldOptions::default().example_repo.join(file),
            |d| d.join(file),
        );
        let want = std::fs::read_to_string(&want).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = w.file_on_base(file).unwrap_or_default();
        if got.trim_end() != want.trim_end() {
            failures.push(format!("{name}: {file} changed on the base:\n{got}"));
        }
    }
    for (root, (canary, want)) in &e.rendered {
        let (ns, n) = ns_name(canary);
        let got = rendered_weight(&w.rendered(root), ns, n);
        if got != Some(*want) {
            failures.push(format!(
                "{name}: {root} renders {canary} at {got:?}, want {want}"
            ));
        }
    }
    for (canary, want) in &e.live {
        let (ns, n) = ns_name(canary);
        if w.live_weight(ns, n) != Some(*want) {
            failures.push(format!(
                "{name}: live {canary} at {:?}, want {want}",
                w.live_weight(ns, n)
            ));
        }
    }
    for (root, (route, svc, want)) in &e.rendered_routes {
        let (ns, n) = ns_name(route);
        let got = rendered_route_weight(&w.rendered(root), ns, n, svc);
        if got != Some(*want) {
            failures.push(format!(
                "{name}: {root} renders {route} with {svc} at {got:?}, want {want}"
            ));
        }
    }
    for (route, (svc, want)) in &e.live_routes {
        let (ns, n) = ns_name(route);
        let got = live_route_weight(&w, ns, n, svc);
        if got != Some(*want) {
            failures.push(format!(
                "{name}: live {route} with {svc} at {got:?}, want {want}"
            ));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_scenarios() {
    if !e2e::available() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/rollout");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "only {} scenarios", files.len());
    let only = std::env::var("GITOPS_CANARY_SCENARIO").ok();
    let mut failures = Vec::new();
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let sc: Scenario = serde_saphyr::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let started = std::time::Instant::now();
        let f = run_scenario(&name, sc).await;
        eprintln!(
            "scenario {name}: {} in {:.1?}",
            if f.is_empty() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        failures.extend(f);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Kill the tool right after each change it makes (push, PR, comment, merge), re-run it,
/// and check that every run converges on the same end state with no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_step_boundary_converges_without_duplicates() {
    if !e2e::available() {
        return;
    }
    let config = "ingresses: [shop/web-canary]\nid: shop-web\nstages: [10, 50, 100]\napproval: auto\nrollback: auto\n".to_string();
    let args: Vec<String> = ["--cluster", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // First a clean run, to know how many changes a whole rollout makes and its end state.
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), config.clone())],
        ..WorldOptions::default()
    })
    .await;
    let out = tool(&w, &w.checkout(), "run", &args, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean_prs: Vec<String> = {
        let mut t: Vec<String> = w.prs().iter().map(|p| p.title.clone()).collect();
        t.sort();
        t
    };
    let clean_commits = w.commits_on_base().len();
    let clean_branches = w.branches();
    assert_eq!(w.base_weight(CANARY_FILE), 0);
    assert!(stable_image_is_canary(&w));
    // Changes in a clean run: pushes + PRs + merges + gate comments. Crash after each.
    let changes = 1 + clean_prs.len() * 4;
    let mut crashed = 0;
    for n in 1..=changes {
        let w = World::start(WorldOptions {
            extra_files: vec![(".gitops-canary.yaml".into(), config.clone())],
            ..WorldOptions::default()
        })
        .await;
        let dir = w.checkout();
        let first = tool(
            &w,
            &dir,
            "run",
            &args,
            &[("GITOPS_CANARY_FAILPOINT".into(), n.to_string())],
        )
        .await;
        if first.status.success() {
            // Fewer changes than n: this and every later n run clean.
            break;
        }
        crashed += 1;
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(
            stderr.contains(&format!("failpoint {n}")),
            "n={n}: {stderr}"
        );
        // A new job after the crash: a fresh checkout, as CI would have.
        let again = tool(&w, &w.checkout(), "run", &args, &[]).await;
        assert!(
            again.status.success(),
            "n={n}: re-run failed: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let mut titles: Vec<String> = w.prs().iter().map(|p| p.title.clone()).collect();
        titles.sort();
        assert_eq!(titles, clean_prs, "n={n}: PRs differ from a clean run");
        assert!(w.duplicate_prs().is_empty(), "n={n}: duplicate PRs");
        let dups = duplicate_gate_comments(&w);
        assert!(
            dups.is_empty(),
            "n={n}: gate comments posted twice: {dups:?}"
        );
        assert_eq!(
            w.commits_on_base().len(),
            clean_commits,
            "n={n}: commits on base differ"
        );
        assert_eq!(w.branches(), clean_branches, "n={n}: branches differ");
        assert_eq!(w.base_weight(CANARY_FILE), 0, "n={n}");
        assert!(stable_image_is_canary(&w), "n={n}");
    }
    assert!(crashed >= 8, "only {crashed} crash points were exercised");
}

/// Gate-result comments (by their stage line, marker or not) that appear more than once on
/// one PR.
fn duplicate_gate_comments(w: &World) -> Vec<String> {
    let mut dups = Vec::new();
    for pr in w.prs() {
        let bodies = match w.options().forge {
            Forge::Github => w.github().comments(pr.number),
            Forge::Gitlab => w.gitlab().notes(pr.number),
            Forge::None => continue,
        };
        let mut seen = std::collections::BTreeSet::new();
        for b in bodies {
            // "gitops-canary `shop-web` stage 2 (50%): **pass**"
            let first = b.lines().next().unwrap_or_default();
            let Some((marker, _)) = first
                .strip_prefix("gitops-canary `")
                .and_then(|rest| rest.split_once("): "))
            else {
                continue;
            };
            let marker = marker.to_string();
            if !seen.insert(marker.clone()) {
                dups.push(format!("#{} {marker}", pr.number));
            }
        }
    }
    dups
}

/// `run` and repeated `reconcile`s run a stage's gates more than once; the stage's PR still
/// carries one gate-results comment (found by its marker and edited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_comments_are_edited_not_posted_again() {
    if !e2e::available() {
        return;
    }
    for forge in [Forge::Github, Forge::Gitlab] {
        let config = "ingresses: [shop/web-canary]\nid: shop-web\nstages: [10, 50, 100]\napproval: auto\npromote: false\n";
        let w = World::start(WorldOptions {
            forge,
            extra_files: vec![(".gitops-canary.yaml".into(), config.into())],
            ..WorldOptions::default()
        })
        .await;
        let args: Vec<String> = vec!["--cluster".into(), "none".into()];
        let dir = w.checkout();
        for _ in 0..5 {
            let out = tool(&w, &dir, "reconcile", &args, &[]).await;
            assert!(
                out.status.success(),
                "{forge:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            w.prs()
                .iter()
                .any(|p| p.state == "merged" && p.title.contains("stage 2/3")),
            "{forge:?}: {:?}",
            w.prs()
        );
        let dups = duplicate_gate_comments(&w);
        assert!(
            dups.is_empty(),
            "{forge:?}: gate comments posted twice: {dups:?}"
        );
    }
}

/// A crash between opening a PR and labelling it: the re-run finds the PR and adds the
/// labels it lacks (and only those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_found_pull_request_gets_its_missing_labels() {
    if !e2e::available() {
        return;
    }
    let config = "ingresses: [shop/web-canary]\nid: shop-web\nstages: [10, 100]\nlabels: [canary, team-shop]\n";
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), config.into())],
        ..WorldOptions::default()
    })
    .await;
    w.github().fail_on(
        "POST",
        "/labels",
        1,
        e2e::fake_github::Fault::Forbidden { accepted: None },
    );
    let args: Vec<String> = vec!["--cluster".into(), "none".into()];
    let first = tool(&w, &w.checkout(), "reconcile", &args, &[]).await;
    assert!(!first.status.success(), "the labels call failed");
    assert_eq!(w.prs().len(), 1);
    assert!(w.prs()[0].labels.is_empty(), "{:?}", w.prs());
    let again = tool(&w, &w.checkout(), "reconcile", &args, &[]).await;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(w.prs().len(), 1, "no second PR");
    let mut labels = w.prs()[0].labels.clone();
    labels.sort();
    assert_eq!(labels, ["canary", "gitops-canary:stage", "team-shop"]);
}

/// `propose` speaks the rollout's scheme: a weight that is a configured stage opens that
/// stage's PR (which `reconcile` takes over instead of opening another), and any other weight
/// opens `.../weight-N`, which `reconcile` waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_sees_the_pull_requests_propose_opened() {
    if !e2e::available() {
        return;
    }
    let config = "ingresses: [shop/web-canary]\nid: shop-web\nstages: [10, 50, 100]\n";
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), config.into())],
        ..WorldOptions::default()
    })
    .await;
    let dir = w.checkout();
    let propose = |weight: u32| {
        let args: Vec<String> = [
            "--ingress",
            "shop/web-canary",
            "--weight",
            &weight.to_string(),
            "--forge",
            "github",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let w = &w;
        let dir = dir.clone();
        async move {
            let out = tool(w, &dir, "propose", &args, &[]).await;
            assert!(
                out.status.success(),
                "propose {weight}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v
        }
    };
    let args: Vec<String> = vec!["--cluster".into(), "none".into()];

    // A weight that is no stage.
    let off = propose(30).await;
    assert_eq!(off["branch"], "gitops-canary/shop-web/weight-30");
    let out = tool(&w, &dir, "reconcile", &args, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("no stage"), "{stdout}");
    assert_eq!(w.prs().len(), 1, "reconcile opened nothing beside it");
    w.close_pr(off["number"].as_u64().unwrap());

    // Stage 2's weight (the example is at stage 1): the stage's branch, title, trailers.
    let stage = propose(50).await;
    let branch = "gitops-canary/shop-web/stage-2-weight-50";
    assert_eq!(stage["branch"], branch);
    let number = stage["number"].as_u64().unwrap();
    let pr = w.prs().into_iter().find(|p| p.number == number).unwrap();
    assert_eq!(pr.title, "canary shop-web: stage 2/3, weight 50%");
    let mut labels = pr.labels.clone();
    labels.sort();
    assert_eq!(labels, ["gitops-canary", "gitops-canary:stage"]);
    let msg = w.message(branch);
    for t in [
        "Gitops-Canary-Rollout: shop-web",
        "Gitops-Canary-Action: stage",
        "Gitops-Canary-Stage: 2",
        "Gitops-Canary-Weight: 50",
    ] {
        assert!(msg.contains(t), "{msg}");
    }
    let out = tool(&w, &dir, "reconcile", &args, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("#{number}")), "{stdout}");
    assert_eq!(w.prs().len(), 2, "reconcile took over the proposed PR");
    assert!(w.duplicate_prs().is_empty());
}

/// Direct mode, `fetch-depth: 1`, and a commit by someone else on top of the rollback: the
/// state record in the base's tree still says the rollout was rolled back, so it is not
/// started again from stage 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shallow_checkout_still_sees_the_rollback() {
    if !e2e::available() {
        return;
    }
    let config =
        "ingresses: [shop/web-canary]\nid: shop-web\nstages: [10, 50, 100]\napproval: direct\n";
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), config.into())],
        ..WorldOptions::default()
    })
    .await;
    let args: Vec<String> = vec!["--cluster".into(), "none".into()];
    let out = tool(&w, &w.checkout(), "reconcile", &args, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The example starts at stage 1 (10%); its gates pass, stage 2 is committed.
    assert_eq!(w.base_weight(CANARY_FILE), 50);
    let out = tool(&w, &w.checkout(), "rollback", &args, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.base_weight(CANARY_FILE), 0);
    let record = e2e::git_server::show(w.bare(), "main:.gitops-canary/state/shop-web.state");
    assert!(record.contains("status: rolled-back"), "{record}");
    w.commit_to_base("docs: unrelated", |dir| {
        std::fs::write(dir.join("NOTES.md"), "unrelated\n").unwrap();
    });
    let commits = w.commits_on_base().len();

    let shallow = w.checkout_shallow();
    let out = tool(&w, &shallow, "status", &args, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("rolled back"), "{stdout}");
    let out = tool(&w, &w.checkout_shallow(), "reconcile", &args, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(w.base_weight(CANARY_FILE), 0, "not started again");
    assert_eq!(w.commits_on_base().len(), commits, "nothing committed");
}

/// A merge that took effect but was answered 502 (then, retried, "not mergeable") is read back:
/// the request is merged at the head the tool judged, so the step succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_answered_502_after_it_took_effect_is_a_success() {
    assert!(e2e::available(), "the end-to-end world needs git");
    let config =
        "ingresses: [shop/web-canary]\nid: shop-web\nstages: [10, 50, 100]\napproval: auto\n";
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), config.into())],
        ..WorldOptions::default()
    })
    .await;
    let args: Vec<String> = vec!["--cluster".into(), "none".into()];
    let opened = tool(&w, &w.checkout(), "reconcile", &args, &[]).await;
    assert!(opened.status.success());
    w.github().fail_on(
        "PUT",
        "/merge",
        1,
        e2e::fake_github::Fault::BadGatewayAfterEffect,
    );
    let merged = tool(&w, &w.checkout(), "reconcile", &args, &[]).await;
    let out = String::from_utf8_lossy(&merged.stdout).to_string()
        + &String::from_utf8_lossy(&merged.stderr);
    assert!(merged.status.success(), "{out}");
    assert!(out.contains("merged #1"), "{out}");
    assert_eq!(w.base_weight("apps/shop/canary.yaml"), 50);
    assert_eq!(w.prs()[0].state, "merged");
}

/// After a rollback no stage may merge: the open stage request is closed, with a comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_closes_the_open_stage_request() {
    assert!(e2e::available(), "the end-to-end world needs git");
    let config =
        "ingresses: [shop/web-canary]\nid: shop-web\nstages: [10, 50, 100]\napproval: pull-request\nrollback: auto\n";
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), config.into())],
        ..WorldOptions::default()
    })
    .await;
    let args: Vec<String> = vec!["--cluster".into(), "none".into()];
    let opened = tool(&w, &w.checkout(), "reconcile", &args, &[]).await;
    assert!(opened.status.success());
    assert_eq!(
        w.open_prs().len(),
        1,
        "the stage 2 request waits for a person"
    );
    let mut rb = args.clone();
    rb.extend(["--reason".to_string(), "latency regression".to_string()]);
    let rolled = tool(&w, &w.checkout(), "rollback", &rb, &[]).await;
    let out = String::from_utf8_lossy(&rolled.stdout).to_string()
        + &String::from_utf8_lossy(&rolled.stderr);
    let stage = w
        .prs()
        .into_iter()
        .find(|p| p.title.contains("stage 2/3"))
        .expect("the stage request");
    assert_eq!(stage.state, "closed", "{out}");
    assert!(
        w.github()
            .comments(stage.number)
            .iter()
            .any(|c| c.contains("must not be merged")),
        "{out}"
    );
}
