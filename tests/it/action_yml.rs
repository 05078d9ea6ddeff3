//! `action.yml` against the CLI: every long flag of every subcommand is an input of the same
//! name, passed as the flag's `GITOPS_CANARY_<FLAG>` variable, and nothing else is an input
//! (except `command`). Generic over `Cli::command()`, so a new flag fails here until the
//! action gains its input.

use std::collections::{BTreeMap, BTreeSet};

use assert_cmd::Command;
use clap::CommandFactory;
use gitops_canary::cli::Cli;
use gitops_canary::report::OutputKey;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    name: String,
    description: String,
    #[allow(dead_code)]
    author: Option<String>,
    branding: Branding,
    inputs: BTreeMap<String, Input>,
    outputs: BTreeMap<String, OutputDef>,
    runs: Runs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Branding {
    icon: String,
    color: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    description: String,
    required: Option<bool>,
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputDef {
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Runs {
    using: String,
    image: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

fn action() -> Action {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml");
    let text = std::fs::read_to_string(path).expect("read action.yml");
    serde_saphyr::from_str(&text).expect("parse action.yml")
}

/// A flag as the action sees it: its long name, its env variable, where it is used.
#[derive(Debug)]
struct Flag {
    env: Option<String>,
    help: String,
    used_by: Vec<String>,
}

/// Every long flag under `cmd`, recursively, keyed by name. Positional arguments are
/// collected separately: an action can only pass flags (through the environment).
fn collect(
    cmd: &clap::Command,
    path: &str,
    flags: &mut BTreeMap<String, Flag>,
    positionals: &mut Vec<String>,
) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let Some(long) = arg.get_long() else {
            positionals.push(format!("{path} <{id}>"));
            continue;
        };
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let flag = flags.entry(long.to_string()).or_insert(Flag {
            env: env.clone(),
            help: arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
            used_by: Vec::new(),
        });
        assert_eq!(
            flag.env, env,
            "--{long} has different env variables in {path} and {:?}",
            flag.used_by
        );
        flag.used_by.push(path.to_string());
    }
    for sub in cmd.get_subcommands() {
        collect(
            sub,
            &format!("{path} {}", sub.get_name()),
            flags,
            positionals,
        );
    }
}

fn cli_flags() -> BTreeMap<String, Flag> {
    let mut flags = BTreeMap::new();
    let mut positionals = Vec::new();
    let cmd = Cli::command();
    collect(&cmd, cmd.get_name(), &mut flags, &mut positionals);
    assert!(
        positionals.is_empty(),
        "positional arguments cannot be given through action.yml: {positionals:?}"
    );
    assert!(!flags.is_empty(), "the CLI has no flags at all?");
    flags
}

fn env_name(long: &str) -> String {
    format!(
        "GITOPS_CANARY_{}",
        long.replace('-', "_").to_ascii_uppercase()
    )
}

#[test]
fn every_flag_is_an_input_with_its_env_variable() {
    let action = action();
    let mut problems = Vec::new();
    // Paste-ready YAML for whatever is missing, so syncing action.yml is mechanical.
    let (mut missing_inputs, mut missing_env) = (String::new(), String::new());
    for (long, flag) in cli_flags() {
        let want_env = env_name(&long);
        if flag.env.as_deref() != Some(want_env.as_str()) {
            problems.push(format!(
                "--{long} ({:?}) has env {:?}, want {want_env}",
                flag.used_by, flag.env
            ));
        }
        match action.inputs.get(&long) {
            None => {
                problems.push(format!("no input `{long}` for --{long}"));
                let subcommands: Vec<&str> = flag
                    .used_by
                    .iter()
                    .filter_map(|p| p.rsplit(' ').next())
                    .collect();
                missing_inputs.push_str(&format!(
                    "  {long}:\n    description: \"{} ({})\"\n    required: false\n",
                    flag.help.trim_end_matches('.').replace('"', "'"),
                    subcommands.join(", ")
                ));
            }
            Some(input) => {
                if input.description.trim().is_empty() {
                    problems.push(format!("input `{long}` has no description"));
                }
                // The one exception: `token` defaults to the workflow token, as GitHub's own
                // actions do (the CLI cannot read `github.token` itself).
                let workflow_token =
                    long == "token" && input.default.as_deref() == Some("${{ github.token }}");
                if input.required == Some(true) || (input.default.is_some() && !workflow_token) {
                    // The CLI owns defaults; a required or defaulted input would override it.
                    problems.push(format!("input `{long}` must be optional without default"));
                }
            }
        }
        let want_value = format!("${{{{ inputs.{long} }}}}");
        match action.runs.env.get(&want_env) {
            Some(v) if *v == want_value => {}
            other => {
                problems.push(format!(
                    "runs.env.{want_env} is {other:?}, want {want_value:?}"
                ));
                missing_env.push_str(&format!("    {want_env}: {want_value}\n"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nadd under inputs:\n{missing_inputs}\nadd under runs.env:\n{missing_env}",
        problems.join("\n")
    );
}

#[test]
fn every_input_is_a_flag_or_the_command() {
    let action = action();
    let flags = cli_flags();
    let extra: Vec<&String> = action
        .inputs
        .keys()
        .filter(|k| *k != "command" && !flags.contains_key(*k))
        .collect();
    assert!(extra.is_empty(), "inputs without a CLI flag: {extra:?}");
    let stray: Vec<&String> = action
        .runs
        .env
        .keys()
        .filter(|k| !flags.keys().any(|l| env_name(l) == **k))
        .collect();
    assert!(stray.is_empty(), "runs.env without a flag: {stray:?}");
}

#[test]
fn runs_the_published_image_with_the_command() {
    let action = action();
    assert_eq!(action.name, "gitops-canary");
    assert!(!action.description.is_empty());
    assert!(!action.branding.icon.is_empty() && !action.branding.color.is_empty());
    assert_eq!(action.runs.using, "docker");
    assert!(
        action.runs.image.starts_with("docker://"),
        "a Dockerfile image would be built (compiling Rust) in every workflow run: {}",
        action.runs.image
    );
    assert_eq!(action.runs.args, ["${{ inputs.command }}"]);
    let command = &action.inputs["command"];
    assert_eq!(command.required, Some(true));
    // The description lists the subcommands, so a reader of the action knows them all.
    for sub in Cli::command().get_subcommands() {
        assert!(
            command.description.contains(sub.get_name()),
            "input `command` does not mention {}",
            sub.get_name()
        );
    }
}

#[test]
fn outputs_are_the_report_keys() {
    let action = action();
    let names: BTreeSet<&str> = action.outputs.keys().map(String::as_str).collect();
    let keys: BTreeSet<&str> = OutputKey::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names, keys);
    assert!(action.outputs.values().all(|o| !o.description.is_empty()));
}

/// clap reads an empty variable as an empty value, which `--repo`/`--output` reject. A blank
/// action input is exactly that, so this shows why the empty-means-unset rule exists.
#[test]
fn clap_alone_takes_an_empty_variable_as_a_value() {
    let name = "GITOPS_CANARY_TEST_EMPTY_PROBE";
    std::env::set_var(name, "");
    let cmd = clap::Command::new("probe").arg(
        clap::Arg::new("repo")
            .long("repo")
            .env(name)
            .value_parser(clap::value_parser!(std::path::PathBuf))
            .default_value("."),
    );
    let result = cmd.try_get_matches_from(["probe"]);
    std::env::remove_var(name);
    assert!(
        result.is_err(),
        "clap now treats an empty env var as absent; the rule in report::unset_empty_inputs can go"
    );
}

/// With every input left blank the binary behaves as if none were given.
#[test]
fn blank_inputs_count_as_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::cargo_bin("gitops-canary").unwrap();
    cmd.current_dir(dir.path()).arg("plan");
    for (long, _) in cli_flags() {
        cmd.env(env_name(&long), "");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `status` values `action.yml` documents are exactly the ones the tool emits.
#[test]
fn status_values_documented_are_the_ones_emitted() {
    use gitops_canary::report::RunStatus;
    let action = action();
    let doc = &action.outputs["status"].description;
    let listed: BTreeSet<String> = doc
        .rsplit_once("one of:")
        .expect("the status description lists its values after `one of:`")
        .1
        .trim_end_matches('.')
        .split(',')
        .map(|v| v.trim().to_string())
        .collect();
    let emitted: BTreeSet<String> = RunStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(listed, emitted);
}

/// Each input says which commands use it, truthfully: its description ends with the list of
/// subcommands that take the flag, in the CLI's order (`every command` for a global flag).
#[test]
fn every_input_names_the_commands_that_use_it() {
    let action = action();
    let mut problems = Vec::new();
    for (long, flag) in cli_flags() {
        let Some(input) = action.inputs.get(&long) else {
            continue;
        };
        let commands: Vec<&str> = flag
            .used_by
            .iter()
            .map(|p| p.rsplit(' ').next().unwrap_or(p))
            .collect();
        let scope = if flag.used_by.iter().any(|p| !p.contains(' ')) {
            "every command".to_string()
        } else {
            commands.join(", ")
        };
        let want = format!("({scope})");
        if !input.description.trim_end().ends_with(&want) {
            problems.push(format!("{long}: {want} | {}", input.description));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
