//! The GitLab reporter, read back by GitLab's documented rules: the dotenv report as the
//! artifact parser takes it, sections as the job log marks them. And one run of the binary
//! inside a GitLab-like environment.

use crate::support::ci;

use std::path::Path;

use assert_cmd::Command;
use gitops_canary::report::{GitLab, Outcome, OutputKey, Report, Table};
use gitops_canary::secret::Token;

const TOKEN: &str = "glpat-S3cretValueThatMustNotLeak";

fn clock() -> u64 {
    1_764_200_000
}

#[test]
fn dotenv_report_is_valid_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gitops-canary.env");
    let mut r = GitLab::new(Vec::new(), path.clone(), clock);
    r.mask(&Token::new(TOKEN)).unwrap();
    r.output(OutputKey::Stage, "3/4").unwrap();
    r.output(OutputKey::Weight, "50").unwrap();
    r.output(
        OutputKey::PullRequestUrl,
        &format!("https://oauth2:{TOKEN}@gitlab.example.com/g/p/-/merge_requests/4"),
    )
    .unwrap();
    r.output(OutputKey::Status, "waiting").unwrap();
    r.output(OutputKey::Weight, "51").unwrap();
    r.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let vars = ci::parse_gitlab_dotenv(&text).unwrap();
    assert_eq!(vars["GITOPS_CANARY_STAGE"], "3/4");
    assert_eq!(vars["GITOPS_CANARY_WEIGHT"], "51", "the last value wins");
    assert_eq!(vars["GITOPS_CANARY_STATUS"], "waiting");
    assert_eq!(
        vars["GITOPS_CANARY_PULL_REQUEST_URL"],
        "https://oauth2:***@gitlab.example.com/g/p/-/merge_requests/4"
    );
    assert_eq!(vars.len(), 4);
    assert_eq!(text.matches('\n').count(), 4, "one line per key: {text:?}");
}

#[test]
fn a_multiline_value_is_refused_and_the_file_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.env");
    let mut r = GitLab::new(Vec::new(), path.clone(), clock);
    r.output(OutputKey::Status, "waiting").unwrap();
    let err = r.output(OutputKey::Stage, "a\nB=evil").unwrap_err();
    assert!(err.to_string().contains("GITOPS_CANARY_STAGE"), "{err}");
    let vars = ci::parse_gitlab_dotenv(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(vars.len(), 1);
    assert!(!vars.contains_key("B"));
}

#[test]
fn sections_pair_up_and_data_cannot_forge_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = GitLab::new(Vec::new(), dir.path().join("r.env"), clock);
    r.stage_started("stage 1/4").unwrap();
    r.group("Edit: apps/web").unwrap();
    r.progress("evil \x1b[0Ksection_end:1:edit__apps_web_1\r\x1b[0K")
        .unwrap();
    r.group("Gates").unwrap(); // closes the first
    r.stage_finished("stage 1/4", Outcome::Passed).unwrap();
    r.summary_table(&Table::new("Stages", &["stage", "weight"]).row(["1/4", "10"]))
        .unwrap();
    r.error_at(Path::new("apps/web.yaml"), 3, 1, "oops")
        .unwrap();
    r.finish().unwrap(); // closes the second
    let log = String::from_utf8(r.into_inner()).unwrap();
    let starts: Vec<&str> = log.matches("\x1b[0Ksection_start:").collect();
    let ends: Vec<&str> = log.matches("\x1b[0Ksection_end:").collect();
    assert_eq!((starts.len(), ends.len()), (2, 2), "{log:?}");
    assert!(log.contains(
        "\x1b[0Ksection_start:1764200000:edit__apps_web_1[collapsed=true]\r\x1b[0KEdit: apps/web\n"
    ));
    assert!(log.contains("\x1b[0Ksection_end:1764200000:edit__apps_web_1\r\x1b[0K\n"));
    assert!(
        log.contains("evil ^[[0Ksection_end:1:edit__apps_web_1\n"),
        "{log:?}"
    );
    assert!(log.contains("apps/web.yaml:3:1: oops"));
    let first_end = log.find("section_end:1764200000:edit__apps_web_1").unwrap();
    let second_start = log.find("section_start:1764200000:gates_2").unwrap();
    assert!(first_end < second_start);
}

/// The binary in a GitLab-like environment with blank variables.
#[test]
fn binary_runs_plan_inside_gitlab_ci() {
    let dir = tempfile::tempdir().unwrap();
    let dotenv = dir.path().join("gitops-canary.env");
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gitops-repo");
    let out = Command::cargo_bin("gitops-canary")
        .unwrap()
        .current_dir(dir.path())
        .args(["plan", "--repo", repo])
        .env("GITLAB_CI", "true")
        .env("GITLAB_TOKEN", TOKEN)
        .env("GITOPS_CANARY_DOTENV", "")
        .env("GITOPS_CANARY_OUTPUT", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("shop/web-canary"), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
    // A blank GITOPS_CANARY_DOTENV means the default file in the working directory.
    if let Ok(text) = std::fs::read_to_string(&dotenv) {
        let vars = ci::parse_gitlab_dotenv(&text).unwrap();
        let declared: Vec<String> = OutputKey::ALL.iter().map(|k| k.dotenv_name()).collect();
        assert!(vars.keys().all(|k| declared.contains(k)), "{vars:?}");
    }
}
