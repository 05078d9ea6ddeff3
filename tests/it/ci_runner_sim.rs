//! The binary run the way the CI systems run it, against the end-to-end world, one step at a
//! time through a whole rollout, with the outputs checked after every step.
//!
//! - GitHub: as the runner runs this Docker action. Every input of `action.yml` becomes
//!   `INPUT_<NAME>` (upper-cased, hyphens kept), given or defaulted (`${{ github.token }}`
//!   is the job token); `runs.env` and `runs.args` get `${{ inputs.x }}` substituted from
//!   `action.yml` itself; `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `GITHUB_ENV` are files; the
//!   workspace (the working directory) is owned by another uid, as the runner user's checkout
//!   is for the action's root.
//! - GitLab: the component's job script (`templates/gitops-canary/template.yml`, inputs at
//!   their defaults) run by `sh` with `CI_*` variables and the binary on `PATH` as
//!   `gitops-canary`, then its dotenv artifact read as GitLab reads it.

use crate::support::ci;
use crate::support::e2e;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e::{Forge, World, WorldOptions};
use serde_json::Value;

const CONFIG: &str =
    "id: shop-web\ningresses: [shop/web-canary]\nstages: [10, 50, 100]\napproval: auto\n";
const CANARY_FILE: &str = "apps/shop/canary.yaml";
const STAGES: [u32; 3] = [10, 50, 100];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `${{ inputs.name }}` and `${{ github.token }}` replaced, as the runner evaluates them.
fn substitute(template: &str, inputs: &BTreeMap<String, String>, token: &str) -> String {
    let mut out = template.replace("${{ github.token }}", token);
    for (k, v) in inputs {
        out = out.replace(&format!("${{{{ inputs.{k} }}}}"), v);
    }
    assert!(
        !out.contains("${{"),
        "an expression the simulation does not know: {out}"
    );
    out
}

/// The environment and arguments the GitHub runner gives the action's container.
fn github_action_invocation(
    with: &[(&str, &str)],
    token: &str,
) -> (Vec<(String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let action: Value = serde_saphyr::from_str(&text).unwrap();
    let mut inputs = BTreeMap::new();
    for (name, def) in action["inputs"].as_object().unwrap() {
        let given = with
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string());
        let default = def["default"]
            .as_str()
            .map(|d| substitute(d, &BTreeMap::new(), token));
        inputs.insert(name.clone(), given.or(default).unwrap_or_default());
    }
    for (k, _) in with {
        assert!(
            inputs.contains_key(*k),
            "`{k}` is not an input of action.yml"
        );
    }
    let mut env: Vec<(String, String)> = inputs
        .iter()
        .map(|(k, v)| (format!("INPUT_{}", k.to_uppercase()), v.clone()))
        .collect();
    for (k, v) in action["runs"]["env"].as_object().unwrap() {
        env.push((k.clone(), substitute(v.as_str().unwrap(), &inputs, token)));
    }
    let args = action["runs"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| substitute(a.as_str().unwrap(), &inputs, token))
        .collect();
    (env, args)
}

fn clean(cmd: &mut std::process::Command) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_TERMINAL_PROMPT", "0");
}

/// The stage output a correct run reports for the base weight after its step.
fn stage_for(weight: u32, done: bool) -> String {
    let applied = if done {
        STAGES.len()
    } else if weight == 0 {
        0
    } else {
        STAGES.iter().take_while(|s| **s <= weight).count()
    };
    format!("{applied}/{}", STAGES.len())
}

/// Check one step's outputs against the world after the step.
fn check_step(w: &World, step: usize, out: &BTreeMap<String, String>, log: &str) -> String {
    let get = |k: &str| out.get(k).cloned().unwrap_or_default();
    let status = get("status");
    let weight = w.base_weight(CANARY_FILE);
    assert_eq!(
        get("weight"),
        weight.to_string(),
        "step {step}: {out:?}\n{log}"
    );
    assert_eq!(
        get("stage"),
        stage_for(weight, status == "promoted"),
        "step {step}: {out:?}\n{log}"
    );
    let prs = w.prs();
    match get("pull-request-operation").as_str() {
        "none" if get("pull-request-number").is_empty() => {}
        op @ ("created" | "updated" | "merged" | "none") => {
            let number: u64 = get("pull-request-number")
                .parse()
                .unwrap_or_else(|_| panic!("step {step}: {op} without a number: {out:?}"));
            let pr = prs
                .iter()
                .find(|p| p.number == number)
                .unwrap_or_else(|| panic!("step {step}: no PR #{number}"));
            let want_state = if op == "merged" { "merged" } else { "open" };
            assert_eq!(pr.state, want_state, "step {step}: {out:?}");
            assert_eq!(get("branch"), pr.head, "step {step}");
            assert_eq!(get("head-sha"), pr.head_sha, "step {step}");
            assert!(get("pull-request-url").ends_with(&number.to_string()));
        }
        other => panic!("step {step}: pull-request-operation {other:?}"),
    }
    assert!(
        ["progressing", "waiting", "promoted"].contains(&status.as_str()),
        "step {step}: status {status:?}\n{log}"
    );
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_docker_action_steps_through_a_rollout() {
    assert!(
        e2e::available(),
        "the end-to-end world needs git (.ci/install-git.sh)"
    );
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), CONFIG.into())],
        ..WorldOptions::default()
    })
    .await;
    let workspace = w.checkout();
    // The runner user's checkout, seen by the action's root.
    let chown = std::process::Command::new("chown")
        .args(["-R", "1001:1001"])
        .arg(&workspace)
        .status()
        .expect("chown");
    assert!(chown.success());
    let files = tempfile::tempdir().unwrap();
    let (env, args) =
        github_action_invocation(&[("command", "reconcile"), ("cluster", "none")], w.token());
    assert_eq!(args, ["reconcile"]);
    let mut statuses = Vec::new();
    for step in 1..=14 {
        let output = files.path().join(format!("output-{step}"));
        std::fs::write(&output, "").unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gitops-canary"));
        clean(&mut cmd);
        cmd.current_dir(&workspace)
            .args(&args)
            .envs(env.iter().cloned())
            .envs(w.env().into_iter().filter(|(k, _)| k != "GITHUB_TOKEN"))
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", &workspace)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", files.path().join("summary"))
            .env("GITHUB_ENV", files.path().join("env"))
            .env("HOME", files.path());
        let out = cmd.output().unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "step {step}: {log}");
        let outputs =
            ci::parse_github_file_command(&std::fs::read_to_string(&output).unwrap()).unwrap();
        let status = check_step(&w, step, &outputs, &log);
        statuses.push(status.clone());
        if status == "promoted" {
            break;
        }
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("promoted"),
        "{statuses:?}"
    );
    assert!(w.duplicate_prs().is_empty(), "{:?}", w.duplicate_prs());
}

/// The component's job script, inputs at their defaults.
fn gitlab_job_script() -> String {
    let text = std::fs::read_to_string(root().join("templates/gitops-canary/template.yml"))
        .expect("the GitLab component");
    let (spec, jobs) = text.split_once("\n---\n").expect("spec, then jobs");
    let spec: Value = serde_saphyr::from_str(spec).unwrap();
    let jobs: Value = serde_saphyr::from_str(jobs).unwrap();
    let mut script = jobs["gitops-canary"]["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for (name, def) in spec["spec"]["inputs"].as_object().unwrap() {
        let value = def["default"].as_str().unwrap_or_default();
        script = script.replace(&format!("$[[ inputs.{name} ]]"), value);
    }
    assert!(!script.contains("$[["), "{script}");
    script
}

fn gitlab_job(
    w: &World,
    dir: &Path,
    bin_dir: &Path,
    extra: &[(&str, String)],
) -> (i32, String, BTreeMap<String, String>) {
    let dotenv = dir.join("gitops-canary.env");
    let _ = std::fs::remove_file(&dotenv);
    let mut cmd = std::process::Command::new("sh");
    clean(&mut cmd);
    cmd.arg("-ec")
        .arg(gitlab_job_script())
        .current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .envs(w.env())
        .env("GITLAB_CI", "true")
        .env("CI", "true")
        .env("CI_PROJECT_DIR", dir)
        .env("CI_JOB_TOKEN", "job-token-not-for-merge-requests")
        .env("GITOPS_CANARY_DOTENV", "gitops-canary.env")
        .env("GITOPS_CANARY_CLUSTER", "none");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let vars = std::fs::read_to_string(&dotenv)
        .map(|t| ci::parse_gitlab_dotenv(&t).unwrap())
        .unwrap_or_default();
    (out.status.code().unwrap_or(-1), log, vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_component_job_steps_through_a_rollout() {
    assert!(
        e2e::available(),
        "the end-to-end world needs git (.ci/install-git.sh)"
    );
    let w = World::start(WorldOptions {
        forge: Forge::Gitlab,
        extra_files: vec![(".gitops-canary.yaml".into(), CONFIG.into())],
        ..WorldOptions::default()
    })
    .await;
    let dir = w.checkout();
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_gitops-canary"),
        bin_dir.path().join("gitops-canary"),
    )
    .unwrap();

    // A merge request pipeline has no protected token: nothing to do, and green.
    let (code, log, _) = gitlab_job(
        &w,
        &dir,
        bin_dir.path(),
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event".to_string()),
            ("GITLAB_TOKEN", String::new()),
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("nothing to do"), "{log}");

    let mut statuses = Vec::new();
    for step in 1..=14 {
        let (code, log, vars) = gitlab_job(
            &w,
            &dir,
            bin_dir.path(),
            &[("CI_PIPELINE_SOURCE", "schedule".to_string())],
        );
        assert_eq!(code, 0, "step {step}: {log}");
        let outputs: BTreeMap<String, String> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("GITOPS_CANARY_")
                    .map(|n| (n.to_ascii_lowercase().replace('_', "-"), v))
            })
            .collect();
        let status = check_step(&w, step, &outputs, &log);
        statuses.push(status.clone());
        if status == "promoted" {
            break;
        }
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("promoted"),
        "{statuses:?}"
    );
}
