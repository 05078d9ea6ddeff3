//! The binary in a fake GitHub Actions job and a fake GitLab CI job, against the end-to-end
//! world: outputs, the step summary, groups, masks and annotations as the runners read them
//! (parsed with `tests/support/ci.rs`, written from GitHub's and GitLab's documented formats).

use crate::support::ci;
use crate::support::e2e;

use std::path::Path;
use std::process::Output;

use e2e::{Forge, World, WorldOptions};

const CONFIG: &str =
    "id: shop-web\ningresses: [shop/web-canary]\nstages: [10, 50, 100]\napproval: auto\n";

fn clean_env(cmd: &mut std::process::Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("GITOPS_CANARY_")
            || k.starts_with("GITHUB_")
            || k.starts_with("GITLAB")
            || k.starts_with("CI_")
            || k == "CI"
        {
            cmd.env_remove(k);
        }
    }
}

fn run(w: &World, dir: &Path, args: &[&str], extra: &[(&str, String)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gitops-canary"));
    clean_env(&mut cmd);
    cmd.args(args)
        .arg("--repo")
        .arg(dir)
        .args(["--cluster", "none"]);
    cmd.envs(w.env());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_outputs_summary_groups_and_masks() {
    if !e2e::available() {
        return;
    }
    let w = World::start(WorldOptions {
        extra_files: vec![(".gitops-canary.yaml".into(), CONFIG.into())],
        ..WorldOptions::default()
    })
    .await;
    let dir = w.checkout();
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("output");
    let summary = tmp.path().join("summary.md");
    std::fs::write(&output, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let env = [
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_OUTPUT", output.display().to_string()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ("GITOPS_CANARY_POLL_INTERVAL", "100ms".to_string()),
    ];
    let out = run(&w, &dir, &["run"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // The token is masked first, and appears nowhere but on the mask line.
    let commands = ci::workflow_commands(&stdout);
    assert_eq!(
        commands.first().map(|c| c.name.as_str()),
        Some("add-mask"),
        "{stdout}"
    );
    assert_eq!(commands[0].data, w.token());
    for line in stdout.lines().chain(stderr.lines()) {
        if line.contains(w.token()) {
            assert!(
                line.starts_with("::add-mask::"),
                "token outside the mask line: {line}"
            );
        }
    }
    // One group per pass, balanced.
    let groups = commands.iter().filter(|c| c.name == "group").count();
    let ends = commands.iter().filter(|c| c.name == "endgroup").count();
    assert!(groups >= 4, "{groups} groups in {stdout}");
    assert_eq!(groups, ends);
    assert!(commands
        .iter()
        .any(|c| c.name == "group" && c.data.contains("stage")));

    // Outputs as the runner reads $GITHUB_OUTPUT.
    let outputs =
        ci::parse_github_file_command(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(
        outputs.get("status").map(String::as_str),
        Some("promoted"),
        "{outputs:?}"
    );
    assert_eq!(outputs.get("weight").map(String::as_str), Some("0"));
    assert_eq!(outputs.get("stage").map(String::as_str), Some("3/3"));
    // The summary is a Markdown table of the stages.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| stage | weight | state |"), "{md}");
    assert!(md.contains("| 3 | 100% | done |"), "{md}");

    // A reconcile that opens a PR reports its URL.
    let w2 = World::start(WorldOptions {
        extra_files: vec![(
            ".gitops-canary.yaml".into(),
            CONFIG.replace("approval: auto", "approval: pull-request"),
        )],
        ..WorldOptions::default()
    })
    .await;
    std::fs::write(&output, "").unwrap();
    let out = run(&w2, &w2.checkout(), &["reconcile"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs =
        ci::parse_github_file_command(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let pr = w2.open_prs();
    assert_eq!(pr.len(), 1);
    let url = outputs
        .get("pull-request-url")
        .expect("pull-request-url output");
    assert!(url.ends_with(&format!("/pull/{}", pr[0].number)), "{url}");
    assert_eq!(
        outputs.get("status").map(String::as_str),
        Some("progressing")
    );
    // The create-pull-request outputs, describing the request after the step.
    let get = |k: &str| outputs.get(k).map(String::as_str).unwrap_or_default();
    assert_eq!(get("pull-request-number"), pr[0].number.to_string());
    assert_eq!(get("pull-request-operation"), "created");
    assert_eq!(get("branch"), pr[0].head);
    assert_eq!(get("head-sha"), pr[0].head_sha, "{outputs:?}");
}

#[test]
fn github_actions_annotation_points_at_the_manifest_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "# a canary without a stable partner\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: lonely\n  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"12.5\"\nspec:\n  rules:\n  - host: x.example\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {service: {name: s, port: {number: 80}}}\n";
    std::fs::create_dir_all(tmp.path().join("apps")).unwrap();
    std::fs::write(tmp.path().join("apps/c.yaml"), text).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gitops-canary"));
    clean_env(&mut cmd);
    let out = cmd
        .args(["plan", "--repo", "."])
        .current_dir(tmp.path())
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<_> = ci::workflow_commands(&stdout)
        .into_iter()
        .filter(|c| c.name == "error")
        .collect();
    let weight = errors
        .iter()
        .find(|e| e.data.contains("weight-not-integer"))
        .unwrap_or_else(|| panic!("no weight annotation in {stdout}"));
    assert_eq!(weight.properties["file"], "apps/c.yaml");
    assert_eq!(weight.properties["line"], "8", "the weight's line");
    let no_stable = errors
        .iter()
        .find(|e| e.data.contains("no-stable"))
        .expect("no-stable");
    assert_eq!(
        no_stable.properties["line"], "2",
        "the Ingress's first line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_ci_dotenv_and_sections() {
    if !e2e::available() {
        return;
    }
    let w = World::start(WorldOptions {
        forge: Forge::Gitlab,
        extra_files: vec![(".gitops-canary.yaml".into(), CONFIG.into())],
        ..WorldOptions::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dotenv = tmp.path().join("gitops-canary.env");
    let out = run(
        &w,
        &w.checkout(),
        &["run"],
        &[
            ("GITLAB_CI", "true".to_string()),
            ("GITOPS_CANARY_DOTENV", dotenv.display().to_string()),
            ("GITOPS_CANARY_POLL_INTERVAL", "100ms".to_string()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(e2e::GITLAB_TOKEN));
    let env = ci::parse_gitlab_dotenv(&std::fs::read_to_string(&dotenv).unwrap()).unwrap();
    assert_eq!(
        env.get("GITOPS_CANARY_STATUS").map(String::as_str),
        Some("promoted"),
        "{env:?}"
    );
    assert_eq!(
        env.get("GITOPS_CANARY_WEIGHT").map(String::as_str),
        Some("0")
    );
    let starts = stdout.matches("section_start:").count();
    let ends = stdout.matches("section_end:").count();
    assert!(starts >= 4, "{stdout}");
    assert_eq!(starts, ends);
}
