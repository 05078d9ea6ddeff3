use super::*;

const TOKEN: &str = "ghp_0123456789abcdefSECRET";

/// One scripted run, the same for every reporter.
fn script(r: &mut dyn Report) -> Result<(), ReportError> {
    r.mask(&Token::new(TOKEN))?;
    r.stage_started("stage 1/4: weight 10")?;
    r.group("edit manifests")?;
    r.progress("set canary-weight 0 -> 10 in apps/web/ingress.yaml")?;
    r.progress(&format!(
        "push https://x-access-token:{TOKEN}@github.com/o/r"
    ))?;
    r.end_group()?;
    r.output(OutputKey::Stage, "1/4")?;
    r.output(OutputKey::Weight, "10")?;
    r.output(OutputKey::PullRequestUrl, "https://github.com/o/r/pull/7")?;
    r.stage_finished("stage 1/4: weight 10", Outcome::Waiting)?;
    r.summary_table(
        &Table::new("Canary", &["Ingress", "Weight", "Note"])
            .row(["web/web-canary", "10", "a|b"])
            .row(["api/api-canary", "0"]),
    )?;
    r.error_at(
        Path::new("apps/api/ingress.yaml"),
        12,
        5,
        "canary-weight is not a number: \"ten\"",
    )?;
    r.output(OutputKey::Status, "waiting")?;
    r.finish()
}

fn visible(s: &str) -> String {
    s.replace('\x1b', "\\e").replace('\r', "\\r")
}

#[test]
fn data_escaping_follows_the_toolkit() {
    assert_eq!(github::escape_data("50%\r\nnext"), "50%25%0D%0Anext");
    assert_eq!(
        github::escape_property("a:b,c%\n"),
        "a%3Ab%2Cc%25%0A",
        "properties also escape : and ,"
    );
    // Order matters: an escaped newline must not be escaped again.
    assert_eq!(github::escape_data("%0A"), "%250A");
}

#[test]
fn error_command_escapes_properties_and_message() {
    let line = github::error(Path::new("dir,x/a:b.yaml"), 3, 9, "bad: 100%\nsee docs");
    assert_eq!(
        line,
        "::error file=dir%2Cx/a%3Ab.yaml,line=3,col=9::bad: 100%25%0Asee docs\n"
    );
}

#[test]
fn command_without_properties() {
    assert_eq!(github::command("warning", &[], "x::y"), "::warning::x::y\n");
    assert_eq!(github::group("a\nb"), "::group::a%0Ab\n");
    assert_eq!(github::end_group(), "::endgroup::\n");
}

#[test]
fn plain_text_cannot_issue_commands() {
    let s = github::plain("  | ", "ok\n  ::add-mask::x\r\n##[error]y\rz");
    assert_eq!(s, "  | ok\n  |   ::add-mask::x\n  | # #[error]y\n  | z\n");
    for line in s.lines() {
        assert!(!line.trim_start().starts_with("::"), "{line}");
        assert!(!line.contains("##["), "{line}");
    }
}

#[test]
fn output_entries_single_and_heredoc() {
    assert_eq!(github::output_entry("weight", "25"), "weight=25\n");
    assert_eq!(
        github::output_entry("status", "a=b<<c"),
        "status=a=b<<c\n",
        "= and << inside a value are fine after the first ="
    );
    assert_eq!(
        github::output_entry("stage", "line1\nline2"),
        "stage<<GITOPS_CANARY_EOF\nline1\nline2\nGITOPS_CANARY_EOF\n"
    );
    let tricky = "x\nGITOPS_CANARY_EOF\nGITOPS_CANARY_EOF_1\ny";
    assert_eq!(github::heredoc_delimiter(tricky), "GITOPS_CANARY_EOF_2");
    assert!(github::output_entry("status", tricky).ends_with("\nGITOPS_CANARY_EOF_2\n"));
}

#[test]
fn mask_line_escapes_the_value() {
    assert_eq!(
        github::add_mask(&Token::new("p%w\nd")),
        "::add-mask::p%25w%0Ad\n"
    );
}

#[test]
fn markdown_cells_are_escaped() {
    let t = Table::new("T", &["a", "b"]).row(["x|y", "1\n2"]).row(["z"]);
    assert_eq!(
        markdown::table(&t),
        "### T\n\n| a | b |\n| --- | --- |\n| x\\|y | 1<br>2 |\n| z |  |\n\n"
    );
    let wide = Table::new("", &["a"]).row(["1", "2"]);
    assert_eq!(
        markdown::table(&wide),
        "| a |  |\n| --- | --- |\n| 1 | 2 |\n\n",
        "no cell is dropped"
    );
}

#[test]
fn gitlab_sections_and_names() {
    assert_eq!(
        gitlab::section_name("Edit manifests: web/x", 3),
        "edit_manifests__web_x_3"
    );
    assert_eq!(
        gitlab::section_start(1700000000, "s_1", "Header", true),
        "\x1b[0Ksection_start:1700000000:s_1[collapsed=true]\r\x1b[0KHeader\n"
    );
    assert_eq!(
        gitlab::section_end(1700000001, "s_1"),
        "\x1b[0Ksection_end:1700000001:s_1\r\x1b[0K\n"
    );
    assert_eq!(
        visible(&gitlab::plain("", "a\x1b[0Ksection_end:1:x\rb")),
        "a^[[0Ksection_end:1:x\nb\n",
        "an escape in data is shown, not obeyed"
    );
}

#[test]
fn dotenv_rules() {
    let mut v = BTreeMap::new();
    v.insert(OutputKey::Weight, "25".to_string());
    v.insert(OutputKey::Stage, "2/4".to_string());
    assert_eq!(
        gitlab::dotenv(&v).unwrap(),
        "GITOPS_CANARY_STAGE=2/4\nGITOPS_CANARY_WEIGHT=25\n"
    );
    v.insert(OutputKey::Status, "a\nb".to_string());
    assert!(matches!(
        gitlab::dotenv(&v),
        Err(ReportError::MultilineDotenv { key }) if key == "GITOPS_CANARY_STATUS"
    ));
    v.insert(OutputKey::Status, "x".repeat(6000));
    assert!(matches!(
        gitlab::dotenv(&v),
        Err(ReportError::DotenvTooLarge { .. })
    ));
}

#[test]
fn output_key_names() {
    let names: Vec<_> = OutputKey::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "stage",
            "weight",
            "pull-request-url",
            "pull-request-number",
            "pull-request-operation",
            "branch",
            "head-sha",
            "status"
        ]
    );
    assert_eq!(
        OutputKey::PullRequestUrl.dotenv_name(),
        "GITOPS_CANARY_PULL_REQUEST_URL"
    );
}

#[test]
fn choose_by_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(choose(env(&[]), Output::Human), Kind::Terminal);
    assert_eq!(choose(env(&[]), Output::Json), Kind::Json);
    assert_eq!(
        choose(env(&[("GITHUB_ACTIONS", "true")]), Output::Json),
        Kind::GitHubActions
    );
    assert_eq!(
        choose(env(&[("GITLAB_CI", "true")]), Output::Human),
        Kind::GitLab
    );
    assert_eq!(
        choose(env(&[("GITHUB_ACTIONS", "false")]), Output::Human),
        Kind::Terminal
    );
}

#[test]
fn empty_inputs_are_found() {
    let vars = [
        ("GITOPS_CANARY_REPO", ""),
        ("GITOPS_CANARY_OUTPUT", "json"),
        ("HOME", ""),
        ("GITOPS_CANARY_WEIGHT", " "),
    ]
    .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    assert_eq!(empty_inputs(vars), [OsString::from("GITOPS_CANARY_REPO")]);
}

#[test]
fn terminal_session() {
    let mut r = Terminal::new(Vec::new());
    script(&mut r).unwrap();
    let out = String::from_utf8(r.into_inner()).unwrap();
    assert!(!out.contains(TOKEN));
    insta::assert_snapshot!("terminal_session", out);
}

#[test]
fn json_session() {
    let mut r = Json::new(Vec::new());
    script(&mut r).unwrap();
    let out = String::from_utf8(r.into_inner()).unwrap();
    assert!(!out.contains(TOKEN));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outputs"]["status"], "waiting");
    insta::assert_snapshot!("json_session", out);
}

#[test]
fn github_session() {
    let dir = tempfile::tempdir().unwrap();
    let (o, s) = (dir.path().join("out"), dir.path().join("summary"));
    let mut r = GitHubActions::new(Vec::new(), Some(o.clone()), Some(s.clone()));
    script(&mut r).unwrap();
    let log = String::from_utf8(r.into_inner()).unwrap();
    // The token appears exactly once: on the add-mask line, first.
    assert_eq!(log.matches(TOKEN).count(), 1);
    assert!(log.starts_with(&format!("::add-mask::{TOKEN}\n")));
    let outputs = std::fs::read_to_string(o).unwrap();
    let summary = std::fs::read_to_string(s).unwrap();
    insta::assert_snapshot!(
        "github_session",
        format!("--- log\n{log}--- GITHUB_OUTPUT\n{outputs}--- GITHUB_STEP_SUMMARY\n{summary}")
    );
}

#[test]
fn github_without_files_warns_once() {
    let mut r = GitHubActions::new(Vec::new(), None, None);
    r.output(OutputKey::Weight, "10").unwrap();
    r.summary_table(&Table::new("t", &["a"])).unwrap();
    let log = String::from_utf8(r.into_inner()).unwrap();
    assert_eq!(
        log,
        "::warning::GITHUB_OUTPUT is not set; gitops-canary outputs and summary are not recorded\n"
    );
}

#[test]
fn gitlab_session() {
    let dir = tempfile::tempdir().unwrap();
    let dotenv = dir.path().join("gitops-canary.env");
    let mut r = GitLab::new(Vec::new(), dotenv.clone(), || 1764200000);
    script(&mut r).unwrap();
    let log = String::from_utf8(r.into_inner()).unwrap();
    assert!(!log.contains(TOKEN));
    let env = std::fs::read_to_string(dotenv).unwrap();
    insta::assert_snapshot!(
        "gitlab_session",
        format!("--- log\n{}--- dotenv\n{env}", visible(&log))
    );
}

#[test]
fn gitlab_keeps_the_last_good_dotenv_on_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let dotenv = dir.path().join("r.env");
    let mut r = GitLab::new(Vec::new(), dotenv.clone(), || 0);
    r.output(OutputKey::Weight, "25").unwrap();
    assert!(r.output(OutputKey::Status, "two\nlines").is_err());
    r.output(OutputKey::Stage, "2/4").unwrap();
    assert_eq!(
        std::fs::read_to_string(dotenv).unwrap(),
        "GITOPS_CANARY_STAGE=2/4\nGITOPS_CANARY_WEIGHT=25\n"
    );
}

#[test]
fn groups_do_not_nest_and_finish_closes() {
    let mut r = GitHubActions::new(Vec::new(), None, None);
    r.group("a").unwrap();
    r.group("b").unwrap();
    r.end_group().unwrap();
    r.end_group().unwrap();
    r.group("c").unwrap();
    r.finish().unwrap();
    let log = String::from_utf8(r.into_inner()).unwrap();
    assert_eq!(
        log,
        "::group::a\n::endgroup::\n::group::b\n::endgroup::\n::group::c\n::endgroup::\n"
    );
}
