#![recursion_limit = "256"]
//! End-to-end rollouts on one machine: the real binary against a real Git server (token auth,
//! `git http-backend`), the fake GitHub whose merges land in that repository, and the fake
//! Kubernetes API server kept in step by a sync agent (Argo CD) and a Deployment controller.
//!
//! Rollout scenarios are data: each file under `tests/cases/rollout/` names the world, the
//! config, and a list of steps (runs of the tool with their expected exit code and
//! outcome, and what "a person" does in between); one loop runs them all. The crash test kills
//! the tool after every change it makes to the outside world and re-runs it, and asserts the
//! same end state with no duplicate branch, PR or commit.

#[path = "support/e2e.rs"]
mod e2e;

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
    steps: Vec<ScenarioStep>,
    expect: Expect,
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
        ..WorldOptions::default()
    }
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
            ScenarioStep::CrashLoop(on) => w.crash_loop("shop", "web-canary", *on),
            ScenarioStep::BaseWeight(want) => {
                let got = w.base_weight(CANARY_FILE);
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
    let weight = w.base_weight(CANARY_FILE);
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
            while w.live_weight("shop", "web-canary") != Some(live) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_ok();
        if !ok {
            failures.push(format!(
                "{name}: live weight {:?}, want {live}",
                w.live_weight("shop", "web-canary")
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
