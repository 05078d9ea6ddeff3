//! The GitHub Actions reporter, read back the way the runner reads it: `$GITHUB_OUTPUT`
//! through the file-command rules, the log through the workflow-command rules. And one run
//! of the binary inside a GitHub-like environment.

use crate::support::ci;

use std::path::Path;

use assert_cmd::Command;
use gitops_canary::report::{GitHubActions, Outcome, OutputKey, Report, Table};
use gitops_canary::secret::Token;

const TOKEN: &str = "ghs_S3cretValueThatMustNotLeak0123";

fn reporter(dir: &Path) -> GitHubActions<Vec<u8>> {
    GitHubActions::new(
        Vec::new(),
        Some(dir.join("output")),
        Some(dir.join("summary")),
    )
}

#[test]
fn outputs_round_trip_through_the_runner_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reporter(dir.path());
    let tricky = [
        (OutputKey::Stage, "2/4".to_string()),
        (OutputKey::Weight, "25".to_string()),
        (
            OutputKey::PullRequestUrl,
            "https://github.com/o/r/pull/9?x=a=b&y=<<c".to_string(),
        ),
        (
            OutputKey::Status,
            "failed\nGITOPS_CANARY_EOF\n100% done\r\n::error::not a command".to_string(),
        ),
    ];
    for (k, v) in &tricky {
        r.output(*k, v).unwrap();
    }
    r.finish().unwrap();
    let text = std::fs::read_to_string(dir.path().join("output")).unwrap();
    let parsed = ci::parse_github_file_command(&text).unwrap();
    for (k, v) in &tricky {
        // The runner splits lines on \n and drops a trailing \r.
        assert_eq!(parsed[k.name()], v.replace("\r\n", "\n"), "{}", k.name());
    }
    assert_eq!(parsed.len(), 4);
}

#[test]
fn a_later_output_overrides_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reporter(dir.path());
    r.output(OutputKey::Status, "waiting").unwrap();
    r.output(OutputKey::Status, "promoted").unwrap();
    let text = std::fs::read_to_string(dir.path().join("output")).unwrap();
    assert_eq!(
        ci::parse_github_file_command(&text).unwrap()["status"],
        "promoted"
    );
}

#[test]
fn commands_parse_and_carry_the_original_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reporter(dir.path());
    r.mask(&Token::new(TOKEN)).unwrap();
    r.group("stage 2: weight 25, 50%").unwrap();
    r.progress("::warning::smuggled\n  ::add-mask::x\n##[error]legacy")
        .unwrap();
    r.end_group().unwrap();
    let file = Path::new("apps/a,b/x:y.yaml");
    r.error_at(file, 7, 3, "weight 101% > total,\nfix it")
        .unwrap();
    r.finish().unwrap();
    let log = String::from_utf8(r.into_inner()).unwrap();
    let cmds = ci::workflow_commands(&log);
    let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["add-mask", "group", "endgroup", "error"],
        "progress text became a command:\n{log}"
    );
    assert_eq!(cmds[0].data, TOKEN);
    assert_eq!(cmds[1].data, "stage 2: weight 25, 50%");
    let err = &cmds[3];
    assert_eq!(err.properties["file"], "apps/a,b/x:y.yaml");
    assert_eq!(err.properties["line"], "7");
    assert_eq!(err.properties["col"], "3");
    assert_eq!(err.data, "weight 101% > total,\nfix it");
    assert!(!log.contains("##["), "{log}");
}

#[test]
fn the_token_reaches_only_the_mask_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reporter(dir.path());
    r.mask(&Token::new(TOKEN)).unwrap();
    r.mask(&Token::new(TOKEN)).unwrap(); // registering twice masks once
    let leak = format!("remote: https://x-access-token:{TOKEN}@github.com/o/r.git");
    r.stage_started(&leak).unwrap();
    r.progress(&leak).unwrap();
    r.group(&leak).unwrap();
    r.output(OutputKey::PullRequestUrl, &leak).unwrap();
    r.summary_table(&Table::new(&leak, &["a"]).row([leak.as_str()]))
        .unwrap();
    r.error_at(Path::new("f.yaml"), 1, 1, &leak).unwrap();
    r.stage_finished(&leak, Outcome::Failed).unwrap();
    r.finish().unwrap();
    let log = String::from_utf8(r.into_inner()).unwrap();
    let first = log.lines().next().unwrap();
    assert_eq!(first, format!("::add-mask::{TOKEN}"));
    assert_eq!(log.matches(TOKEN).count(), 1, "{log}");
    for f in ["output", "summary"] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(!text.contains(TOKEN), "{f}: {text}");
        assert!(text.contains("***"), "{f}: {text}");
    }
}

#[test]
fn summary_is_a_markdown_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reporter(dir.path());
    let t = Table::new("Canary stages", &["Stage", "Weight", "Pull request"])
        .row(["1/4", "10", "https://github.com/o/r/pull/7"])
        .row(["2/4", "25", "(waiting | review)"]);
    r.summary_table(&t).unwrap();
    r.summary_table(&Table::new("Second", &["x"]).row(["y"]))
        .unwrap();
    let md = std::fs::read_to_string(dir.path().join("summary")).unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "### Canary stages");
    assert_eq!(lines[2], "| Stage | Weight | Pull request |");
    assert_eq!(lines[3], "| --- | --- | --- |");
    assert_eq!(lines[5], "| 2/4 | 25 | (waiting \\| review) |");
    // Appended, not overwritten: both tables are there.
    assert!(md.contains("### Second"));
}

#[test]
fn an_unwritable_output_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/output");
    let mut r = GitHubActions::new(Vec::new(), Some(missing.clone()), None);
    let err = r.output(OutputKey::Weight, "10").unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

/// The binary in a GitHub-like environment: blank inputs, the runner's variables and files.
/// Whatever it writes must be readable by the runner, name only declared outputs, and
/// carry no token; its log must contain only commands we know.
#[test]
fn binary_runs_plan_inside_github_actions() {
    let dir = tempfile::tempdir().unwrap();
    let (output, summary) = (dir.path().join("output"), dir.path().join("summary"));
    std::fs::write(&output, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gitops-repo");
    let out = Command::cargo_bin("gitops-canary")
        .unwrap()
        .args(["plan"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITOPS_CANARY_REPO", repo)
        .env("GITOPS_CANARY_OUTPUT", "")
        .env("GITOPS_CANARY_INGRESS", "")
        .env("GITOPS_CANARY_DRY_RUN", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("shop/web-canary"), "{stdout}");
    for line in stdout.lines().filter(|l| l.contains(TOKEN)) {
        assert_eq!(line, format!("::add-mask::{TOKEN}"), "token leaked");
    }
    assert!(!stderr.contains(TOKEN));
    let known = [
        "add-mask", "group", "endgroup", "error", "warning", "notice",
    ];
    for c in ci::workflow_commands(&stdout) {
        assert!(known.contains(&c.name.as_str()), "unexpected command {c:?}");
        if c.data.contains(TOKEN) {
            assert_eq!(c.name, "add-mask");
        }
    }
    let outputs =
        ci::parse_github_file_command(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let declared: Vec<&str> = OutputKey::ALL.iter().map(|k| k.name()).collect();
    for (k, v) in &outputs {
        assert!(declared.contains(&k.as_str()), "undeclared output {k}");
        assert!(!v.contains(TOKEN));
    }
    assert!(!std::fs::read_to_string(&summary).unwrap().contains(TOKEN));
}
