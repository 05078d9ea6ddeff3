//! The resolution, rule by rule: a flag over the config file over the CI's environment over the
//! command's default, for the rollout commands, `propose` and `check`. The flags are parsed by
//! clap with the `GITOPS_CANARY_*` variables switched off (so the process environment cannot
//! leak in), except in the one test of clap's own flag-over-variable rule.

use std::path::Path;
use std::time::Duration;

use clap::{Args, Command, FromArgMatches};

use super::*;
use crate::cluster::SyncVia;
use crate::config::RollbackPolicy;

/// Parse `argv` as the flags of `T`, ignoring the environment.
fn parse<T: Args + FromArgMatches>(argv: &[&str]) -> T {
    let cmd = T::augment_args(Command::new("t").no_binary_name(true))
        .mut_args(|a| a.env(None::<&'static str>));
    let m = cmd.try_get_matches_from(argv).expect("flags parse");
    T::from_arg_matches(&m).expect("flags match")
}

fn config(text: &str) -> Config {
    Config::parse(Path::new(".gitops-canary.yaml"), text).expect("config parses")
}

fn rollout(argv: &[&str], cfg: &str, env: &Env) -> anyhow::Result<Settings> {
    let args: RolloutArgs = parse(argv);
    resolve(Cmd::Rollout(&args), &config(cfg), env)
}

fn propose(argv: &[&str], cfg: &str, env: &Env) -> anyhow::Result<Settings> {
    let args: ProposeArgs = parse(argv);
    resolve(Cmd::Propose(&args), &config(cfg), env)
}

fn check(argv: &[&str], cfg: &str) -> anyhow::Result<Settings> {
    let args: CheckArgs = parse(argv);
    resolve(Cmd::Check(&args), &config(cfg), &Env::default())
}

fn weights(s: &Settings) -> Vec<(u32, Approval)> {
    s.rollout
        .stages
        .iter()
        .map(|st| (st.weight, st.approval))
        .collect()
}

fn usage(err: anyhow::Error) -> UsageError {
    err.downcast::<UsageError>()
        .unwrap_or_else(|e| panic!("not a usage error: {e:#}"))
}

#[test]
fn defaults_apply_when_nothing_is_given() {
    let s = rollout(&["--ingress", "shop/web-canary"], "", &Env::default()).unwrap();
    let r = &s.rollout;
    assert_eq!(r.rollout, "shop-web-canary");
    assert_eq!(r.selection.ingresses, ["shop/web-canary"]);
    assert_eq!(
        weights(&s),
        [10, 25, 50, 100].map(|w| (w, Approval::PullRequest))
    );
    assert_eq!(r.base, "main");
    assert_eq!(r.forge, ForgeKind::Github);
    assert_eq!(r.merge_method, MergeMethod::Merge);
    assert_eq!(r.labels, ["gitops-canary"]);
    assert_eq!(r.rollback, RollbackPolicy::Auto);
    assert!(r.promote);
    assert_eq!(r.min_approvals, 1);
    assert_eq!(r.author, Author::github_actions_bot());
    assert_eq!(r.gate_names, ["synced", "rolled-out"]);
    assert_eq!(r.gate_timeout, Duration::from_secs(600));
    let g = s.gates.as_ref().unwrap();
    assert_eq!(g.cluster, ClusterMode::Kube);
    assert_eq!(g.runner.bake, Duration::from_secs(300));
    assert_eq!(g.runner.sync_via, SyncVia::Ingress);
    let git = s.git.as_ref().unwrap();
    assert!(git.remote.is_none() && git.token.is_none());
    assert_eq!(git.requests, ForgeKind::Github);
}

const FILE: &str = "id: shop-web\ningresses: [shop/web-canary]\nstages: [20, 60, 100]\n\
    approval: auto\nbase: production\nforge: gitlab\nmergeMethod: squash\nlabels: [canary]\n\
    gates: [synced, steady]\ntimeout: 2m\nbakeTime: 1m\nsyncSource: argocd\n\
    argocdApp: argocd/shop\nrollback: pull-request\npromote: false\nminApprovals: 2\n\
    prometheusUrl: http://prometheus:9090\n";

#[test]
fn the_config_file_fills_what_no_flag_gives() {
    let s = rollout(&[], FILE, &Env::default()).unwrap();
    let r = &s.rollout;
    assert_eq!(r.rollout, "shop-web");
    assert_eq!(r.selection.ingresses, ["shop/web-canary"]);
    assert_eq!(weights(&s), [20, 60, 100].map(|w| (w, Approval::Auto)));
    assert_eq!(r.base, "production");
    assert_eq!(r.forge, ForgeKind::Gitlab);
    assert_eq!(r.merge_method, MergeMethod::Squash);
    assert_eq!(r.labels, ["canary"]);
    assert_eq!(r.rollback, RollbackPolicy::PullRequest);
    assert!(!r.promote);
    assert_eq!(r.min_approvals, 2);
    assert_eq!(r.gate_names, ["synced", "steady"]);
    assert_eq!(r.gate_timeout, Duration::from_secs(120));
    let g = s.gates.as_ref().unwrap();
    assert_eq!(g.runner.bake, Duration::from_secs(60));
    assert!(matches!(&g.runner.sync_via, SyncVia::ArgoCd(app) if app.name == "shop"));
    assert_eq!(
        g.metrics.prometheus_url.as_deref(),
        Some("http://prometheus:9090")
    );
    // Not GitHub, no GitLab user, no identity in the checkout: the tool's own.
    assert_eq!(r.author.email, "gitops-canary@users.noreply.invalid");
}

#[test]
fn a_flag_wins_over_the_config_file() {
    let argv = [
        "--ingress",
        "shop/other-canary",
        "--rollout-id",
        "other",
        "--stages",
        "5,100",
        "--approval",
        "approved",
        "--base",
        "main",
        "--forge",
        "github",
        "--merge-method",
        "rebase",
        "--labels",
        "a,b",
        "--gates",
        "synced",
        "--timeout",
        "30s",
        "--bake-time",
        "10s",
        "--sync-source",
        "ingress",
        "--rollback",
        "none",
        "--promote",
        "true",
        "--min-approvals",
        "3",
        "--author-name",
        "Ann",
        "--author-email",
        "ann@example.com",
    ];
    let s = rollout(&argv, FILE, &Env::default()).unwrap();
    let r = &s.rollout;
    assert_eq!(r.rollout, "other");
    assert_eq!(r.selection.ingresses, ["shop/other-canary"]);
    assert_eq!(weights(&s), [5, 100].map(|w| (w, Approval::Approved)));
    assert_eq!(r.base, "main");
    assert_eq!(r.forge, ForgeKind::Github);
    assert_eq!(r.merge_method, MergeMethod::Rebase);
    assert_eq!(r.labels, ["a", "b"]);
    assert_eq!(r.gate_names, ["synced"]);
    assert_eq!(r.gate_timeout, Duration::from_secs(30));
    assert_eq!(r.rollback, RollbackPolicy::None);
    assert!(r.promote);
    assert_eq!(r.min_approvals, 3);
    assert_eq!(r.author, Author::new("Ann", "ann@example.com"));
    let g = s.gates.as_ref().unwrap();
    assert_eq!(g.runner.bake, Duration::from_secs(10));
    assert_eq!(g.runner.sync_via, SyncVia::Ingress);
}

#[test]
fn the_environment_comes_after_the_config_file() {
    let gitlab_job = Env::from_vars(&[
        ("GITLAB_CI", "true"),
        ("GITLAB_TOKEN", "glpat-x"),
        ("GITLAB_USER_NAME", "Gil"),
        ("GITLAB_USER_EMAIL", "gil@example.com"),
        ("CI_JOB_TOKEN", "job"),
    ]);
    // Nothing else tells: the CI's forge, its token, its user.
    let s = rollout(&["--ingress", "shop/web-canary"], "", &gitlab_job).unwrap();
    assert_eq!(s.rollout.forge, ForgeKind::Gitlab);
    assert_eq!(s.rollout.author, Author::new("Gil", "gil@example.com"));
    let git = s.git.as_ref().unwrap();
    assert_eq!(git.token, Some(Token::new("glpat-x")));
    assert!(matches!(&git.auth, Auth::Token { user, .. } if user == "oauth2"));
    // The config file's forge wins over the CI's (and its token is GitHub's, absent here).
    let s = rollout(&[], "ingresses: [a]\nforge: github\n", &gitlab_job).unwrap();
    assert_eq!(s.rollout.forge, ForgeKind::Github);
    assert_eq!(s.git.as_ref().unwrap().token, None);
    // A flag's token wins over the environment's; an empty one counts as not given.
    let s = rollout(&["--ingress", "a", "--token", "mine"], "", &gitlab_job).unwrap();
    assert_eq!(s.git.as_ref().unwrap().token, Some(Token::new("mine")));
    let s = rollout(&["--ingress", "a", "--token", ""], "", &gitlab_job).unwrap();
    assert_eq!(s.git.as_ref().unwrap().token, Some(Token::new("glpat-x")));
    // In a GitLab job without a token of its own, Git uses the job token.
    let job_only = Env::from_vars(&[("GITLAB_CI", "true"), ("CI_JOB_TOKEN", "job")]);
    let s = rollout(&["--ingress", "a"], "", &job_only).unwrap();
    assert!(
        matches!(&s.git.as_ref().unwrap().auth, Auth::Token { user, .. } if user == "gitlab-ci-token")
    );
    // GitHub Actions: the bot commits, whatever the forge.
    let actions = Env::from_vars(&[("GITHUB_ACTIONS", "true"), ("GITHUB_TOKEN", "ghs")]);
    let s = rollout(&["--ingress", "a", "--forge", "none"], "", &actions).unwrap();
    assert_eq!(s.rollout.author, Author::github_actions_bot());
    assert_eq!(
        s.git.as_ref().unwrap().token,
        None,
        "no forge, no forge token"
    );
    // Elsewhere, the checkout's own identity.
    let local = Env {
        checkout_identity: Some(Author::new("Lou", "lou@example.com")),
        ..Env::default()
    };
    let s = rollout(&["--ingress", "a", "--forge", "gitlab"], "", &local).unwrap();
    assert_eq!(s.rollout.author, Author::new("Lou", "lou@example.com"));
}

#[test]
fn without_a_forge_every_stage_is_a_direct_commit() {
    let s = rollout(&["--ingress", "a", "--forge", "none"], "", &Env::default()).unwrap();
    assert_eq!(
        weights(&s),
        [10, 25, 50, 100].map(|w| (w, Approval::Direct))
    );
    assert_eq!(s.git.as_ref().unwrap().requests, ForgeKind::None);
    // A stage's own approval still wins over the rollout's.
    let cfg = "ingresses: [a]\nstages: [10, {weight: 50, approval: approved}, 100]\n";
    let s = rollout(&["--approval", "auto"], cfg, &Env::default()).unwrap();
    assert_eq!(
        weights(&s),
        [
            (10, Approval::Auto),
            (50, Approval::Approved),
            (100, Approval::Auto)
        ]
    );
}

#[test]
fn cluster_none_runs_no_gates() {
    let s = rollout(
        &["--cluster", "none", "--gates", "steady"],
        FILE,
        &Env::default(),
    )
    .unwrap();
    assert!(s.rollout.gate_names.is_empty());
    let g = s.gates.unwrap();
    assert_eq!(g.cluster, ClusterMode::None);
    assert!(g.runner.gates.is_empty());
}

/// clap's part of the precedence: a flag over its `GITOPS_CANARY_*` variable, the variable
/// over the config file.
#[test]
fn a_flag_wins_over_its_environment_variable() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: RolloutArgs,
    }
    let var = "GITOPS_CANARY_ROLLOUT_ID";
    std::env::set_var(var, "from-env");
    let from_env = Cli::try_parse_from(["t", "--ingress", "a"]).map(|c| c.args);
    let from_flag =
        Cli::try_parse_from(["t", "--ingress", "a", "--rollout-id", "from-flag"]).map(|c| c.args);
    std::env::remove_var(var);
    let cfg = config("ingresses: [a]\nid: from-file\n");
    let id = |a: RolloutArgs| {
        resolve(Cmd::Rollout(&a), &cfg, &Env::default())
            .unwrap()
            .rollout
            .rollout
    };
    assert_eq!(id(from_env.unwrap()), "from-env");
    assert_eq!(id(from_flag.unwrap()), "from-flag");
}

#[test]
fn flags_that_name_canaries_replace_the_files_canaries() {
    let cfg = "ingresses: [shop/web-canary]\nroutes: [shop/web]\ncanaryService: web-canary\n\
               overlay: overlays/prod\n";
    let s = rollout(&["--ingress", "shop/api-canary"], cfg, &Env::default()).unwrap();
    let sel = &s.rollout.selection;
    assert_eq!(sel.ingresses, ["shop/api-canary"]);
    assert!(sel.routes.is_empty());
    assert_eq!(
        sel.canary_service, None,
        "the file's routes' canary went with them"
    );
    assert_eq!(sel.overlay.as_deref(), Some(Path::new("overlays/prod")));
    let s = rollout(&["--route", "shop/api"], cfg, &Env::default()).unwrap();
    assert_eq!(s.rollout.selection.routes, ["shop/api"]);
    assert_eq!(
        s.rollout.selection.canary_service.as_deref(),
        Some("web-canary")
    );
    let s = rollout(&[], cfg, &Env::default()).unwrap();
    assert_eq!(s.rollout.selection.ingresses, ["shop/web-canary"]);
    assert_eq!(s.rollout.selection.routes, ["shop/web"]);
}

#[test]
fn a_canary_must_be_named() {
    let e = usage(rollout(&[], "", &Env::default()).unwrap_err());
    assert_eq!(
        e.to_string(),
        "no canary: pass --ingress or --route, or set `ingresses:` or `routes:` in .gitops-canary.yaml"
    );
    assert!(e.help.is_some());
    let e = usage(
        rollout(
            &["--ingress", "a", "--canary-service", "web-canary"],
            "",
            &Env::default(),
        )
        .unwrap_err(),
    );
    assert_eq!(e.flag, Some("--canary-service"));
    let e = usage(
        rollout(
            &["--ingress", "a", "--stages", "50,10"],
            "",
            &Env::default(),
        )
        .unwrap_err(),
    );
    assert_eq!(
        e.to_string(),
        "--stages: stage weights must rise: 10 after 50"
    );
}

#[test]
fn a_chart_value_is_gated_on_the_live_ingress_it_names() {
    let with =
        "weightFrom: {file: apps/shop.yaml, path: canary.weight}\ningresses: [shop/web-canary]\n";
    let s = rollout(&[], with, &Env::default()).unwrap();
    let sel = &s.rollout.selection;
    assert_eq!(
        sel.weight_from.as_ref().map(ToString::to_string).as_deref(),
        Some("apps/shop.yaml:canary.weight")
    );
    assert_eq!(sel.ingresses, ["shop/web-canary"]);
    assert_eq!(s.rollout.rollout, "shop-web-canary");
    // The file without the live Ingress: its own error, naming the file and the field.
    let e = rollout(
        &[],
        "weightFrom: {file: apps/shop.yaml, path: canary.weight}\n",
        &Env::default(),
    )
    .unwrap_err();
    let Some(ConfigError::Invalid { file, field, .. }) = e.downcast_ref::<ConfigError>() else {
        panic!("not a config error: {e:#}");
    };
    assert_eq!(
        (file.as_path(), field.as_str()),
        (Path::new(".gitops-canary.yaml"), "ingresses")
    );
    // The flag without --ingress.
    let e = usage(
        rollout(
            &["--weight-from", "v.yaml:canary.weight"],
            with,
            &Env::default(),
        )
        .unwrap_err(),
    );
    assert_eq!(e.flag, Some("--weight-from"));
    assert!(e.message.contains("--ingress"), "{e}");
    let s = rollout(
        &[
            "--weight-from",
            "v.yaml:canary.weight",
            "--ingress",
            "shop/c",
        ],
        "",
        &Env::default(),
    )
    .unwrap();
    assert_eq!(s.rollout.selection.ingresses, ["shop/c"]);
    assert!(s.rollout.selection.weight_from.is_some());
    // An HTTPRoute or an overlay does not move with a chart value.
    let e = rollout(&[], &format!("{with}routes: [shop/web]\n"), &Env::default()).unwrap_err();
    assert!(e.to_string().contains("routes"), "{e}");
    let e = usage(
        rollout(
            &[
                "--weight-from",
                "v.yaml:a",
                "--ingress",
                "c",
                "--overlay",
                "o",
            ],
            "",
            &Env::default(),
        )
        .unwrap_err(),
    );
    assert!(e.to_string().contains("--overlay"), "{e}");
}

#[test]
fn propose_joins_the_configured_rollout_only_when_it_lists_the_canary() {
    let cfg =
        "id: shop-web\ningresses: [shop/web-canary, shop/api-canary]\nstages: [10, 30, 100]\n\
               labels: [canary]\nbase: production\n";
    let s = propose(
        &["--ingress", "shop/web-canary", "--weight", "30"],
        cfg,
        &Env::default(),
    )
    .unwrap();
    let r = &s.rollout;
    assert_eq!(r.rollout, "shop-web");
    assert_eq!(
        r.selection.ingresses,
        ["shop/web-canary", "shop/api-canary"]
    );
    assert_eq!(
        weights(&s),
        [10, 30, 100].map(|w| (w, Approval::PullRequest))
    );
    assert_eq!(r.labels, ["canary"]);
    assert_eq!(r.base, "production");
    // Not listed: a rollout of its own, the file not read at all.
    let s = propose(
        &["--ingress", "shop/other-canary", "--weight", "30"],
        cfg,
        &Env::default(),
    )
    .unwrap();
    let r = &s.rollout;
    assert_eq!(r.rollout, "shop-other-canary");
    assert_eq!(r.selection.ingresses, ["shop/other-canary"]);
    assert_eq!(r.base, "main");
    assert_eq!(r.labels, ["gitops-canary"]);
    // No flag names a canary: the file's.
    let s = propose(&["--weight", "30"], cfg, &Env::default()).unwrap();
    assert_eq!(s.rollout.selection.ingresses.len(), 2);
}

#[test]
fn propose_opens_no_request_unless_a_forge_is_named_or_detected() {
    let argv = ["--route", "shop/web", "--weight", "25"];
    let s = propose(&argv, "", &Env::default()).unwrap();
    assert_eq!(s.rollout.forge, ForgeKind::None);
    assert_eq!(s.git.as_ref().unwrap().requests, ForgeKind::None);
    assert!(s.gates.is_none(), "propose runs no gates");
    let actions = Env::from_vars(&[("GITHUB_ACTIONS", "true")]);
    let s = propose(&argv, "", &actions).unwrap();
    assert_eq!(s.git.as_ref().unwrap().requests, ForgeKind::Github);
    // --gate direct: a commit to the base, no request, whatever the forge.
    let s = propose(
        &[&argv[..], &["--forge", "gitlab", "--gate", "direct"]].concat(),
        "",
        &actions,
    )
    .unwrap();
    assert_eq!(s.git.as_ref().unwrap().requests, ForgeKind::None);
    assert!(weights(&s).iter().all(|(_, a)| *a == Approval::Direct));
    assert!(
        matches!(&s.git.as_ref().unwrap().auth, Auth::None),
        "no token given or in the environment"
    );
}

#[test]
fn check_reads_the_config_file_and_also_bakes_by_default() {
    let s = check(&["--route", "shop/web"], "").unwrap();
    assert!(s.git.is_none(), "check publishes nothing");
    let g = s.gates.as_ref().unwrap();
    assert_eq!(
        g.runner.gates,
        [Gate::Synced, Gate::RolledOut, Gate::Steady]
    );
    assert_eq!(g.runner.timeout, Duration::from_secs(600));
    assert_eq!(s.rollout.selection.routes, ["shop/web"]);
    let s = check(&["--ingress", "shop/web-canary", "--bake-time", "3s"], FILE).unwrap();
    let g = s.gates.as_ref().unwrap();
    assert_eq!(g.runner.gates, [Gate::Synced, Gate::Steady]);
    assert_eq!(g.runner.bake, Duration::from_secs(3));
    assert!(matches!(&g.runner.sync_via, SyncVia::ArgoCd(_)));
    let e = usage(check(&["--ingress", "a", "--sync-source", "flux"], "").unwrap_err());
    assert_eq!(e.flag, Some("--sync-source"));
    assert!(e.help.is_some());
}
