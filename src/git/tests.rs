use super::*;

#[test]
fn trailers_from_last_paragraph() {
    let msg = "canary: web to 25%\n\nBody text: with a colon\nin prose.\n\n\
               Gitops-Canary-Rollout: shop/web\nGitops-Canary-Stage: 2\nGitops-Canary-Weight: 25\n";
    assert_eq!(
        parse_trailers(msg),
        vec![
            ("Gitops-Canary-Rollout".into(), "shop/web".into()),
            ("Gitops-Canary-Stage".into(), "2".into()),
            ("Gitops-Canary-Weight".into(), "25".into()),
        ]
    );
}

#[test]
fn trailers_continuation_crlf_and_trailing_blank_lines() {
    let msg = "subject\r\n\r\nKey: first\r\n  second\r\nOther:\r\n\r\n\r\n";
    assert_eq!(
        parse_trailers(msg),
        vec![
            ("Key".into(), "first second".into()),
            ("Other".into(), "".into())
        ]
    );
}

#[test]
fn no_trailers_in_subject_only_or_prose() {
    assert!(parse_trailers("Stage: 2").is_empty());
    assert!(parse_trailers("").is_empty());
    assert!(parse_trailers("\n\nKey: v").is_empty());
    assert!(parse_trailers("subject\n\nKey: v\nplain prose line").is_empty());
    assert!(parse_trailers("subject\n\nhttp://x: y").is_empty());
    assert!(parse_trailers("subject\n\nKey:novalue-space").is_empty());
}

#[test]
fn userinfo_is_stripped() {
    assert_eq!(
        strip_userinfo("https://oauth2:glpat-xyz@gitlab.com/a/b.git"),
        "https://gitlab.com/a/b.git"
    );
    assert_eq!(
        strip_userinfo("https://gitlab.com/a@b.git"),
        "https://gitlab.com/a@b.git"
    );
    assert_eq!(strip_userinfo("git@github.com:a/b"), "git@github.com:a/b");
    assert_eq!(strip_userinfo("/srv/repo.git"), "/srv/repo.git");
}

#[test]
fn credentials_in_url_move_into_auth() {
    let r = Remote::new("https://bob:s3cr%40t-token@example.com/r.git", Auth::None).normalized();
    assert_eq!(r.url, "https://example.com/r.git");
    match &r.auth {
        Auth::Token { user, token } => {
            assert_eq!(user, "bob");
            assert_eq!(token.expose(), "s3cr@t-token");
        }
        other => panic!("unexpected {other:?}"),
    }
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("s3cr"), "{dbg}");
    let r = Remote::new("https://ghp_tokenonly@example.com/r.git", Auth::None).normalized();
    assert!(matches!(&r.auth, Auth::Token { user, .. } if user == "x-access-token"));
    assert!(!format!("{r:?}").contains("ghp_tokenonly"));
}

#[test]
fn local_remotes_are_detected() {
    assert!(Remote::new("/srv/a.git", Auth::None).is_local());
    assert!(Remote::new("rel/a.git", Auth::None).is_local());
    assert!(Remote::new("file:///srv/a.git", Auth::None).is_local());
    assert!(!Remote::new("git@github.com:a/b.git", Auth::None).is_local());
    assert!(!Remote::new("https://h/a.git", Auth::None).is_local());
    assert!(!Remote::new("ssh://git@h/a.git", Auth::None).is_local());
}

#[test]
fn scrub_removes_tokens_and_userinfo() {
    let r = Remote::new(
        "https://h/r.git",
        Auth::github(Token::new("ghp_0123456789abcdef")),
    );
    let s = scrub(
        "failed at https://u:pw@h/r.git with ghp_0123456789abcdef",
        Some(&r),
    );
    assert_eq!(s, "failed at https://h/r.git with ***");
}

#[test]
fn workspace_can_move_to_a_blocking_thread() {
    // cmd/ runs publish in spawn_blocking; the workspace must be Send.
    fn send<T: Send>() {}
    send::<Workspace>();
    send::<GitError>();
    fn sync<T: Sync>() {}
    sync::<GitError>();
}

#[test]
fn bot_identity() {
    let a = Author::github_actions_bot();
    assert_eq!(a.name, "github-actions[bot]");
    assert_eq!(
        a.email,
        "41898282+github-actions[bot]@users.noreply.github.com"
    );
}

#[test]
fn gitlab_job_token_is_for_git_as_gitlab_ci_token() {
    let job = Some("job-token-value".to_string());
    match token_auth(None, true, job.clone()) {
        Auth::Token { user, token } => {
            assert_eq!(user, "gitlab-ci-token");
            assert_eq!(token.expose(), "job-token-value");
        }
        other => panic!("{other:?}"),
    }
    // A token of its own wins, as oauth2; GitHub never uses a GitLab job token.
    let own = Token::new("glpat-own");
    assert!(
        matches!(token_auth(Some(&own), true, job.clone()), Auth::Token { user, .. } if user == "oauth2")
    );
    assert!(matches!(token_auth(None, false, job), Auth::None));
}

#[test]
fn annotation_paths_are_relative_to_the_repository_root() {
    let tmp = tempfile::tempdir().unwrap();
    // The repository checked out at `gitops/` (actions/checkout `path: gitops`).
    let checkout = tmp.path().join("gitops");
    Repository::init(&checkout).unwrap();
    assert_eq!(
        path_in_repository(&checkout, Path::new("apps/a.yaml")),
        PathBuf::from("apps/a.yaml")
    );
    // A folder `deploy/` inside a repository (a monorepo).
    let mono = tmp.path().join("mono");
    Repository::init(&mono).unwrap();
    std::fs::create_dir_all(mono.join("deploy")).unwrap();
    assert_eq!(
        path_in_repository(&mono.join("deploy"), Path::new("apps/a.yaml")),
        PathBuf::from("deploy/apps/a.yaml")
    );
    // Outside any repository: as given.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    assert_eq!(
        path_in_repository(&plain, Path::new("a.yaml")),
        plain.join("a.yaml")
    );
}
