//! Benchmark: `plan` and `set-weight` over generated GitOps monorepos of 20,000 YAML files,
//! next to `grep -rl canary-weight` over the same tree in the same run. Two variants: `flat`
//! (about 100 MB, every app one file, 200 canary pairs) and `kustomize` (every app a base and
//! three overlays; 200 apps have a canary Ingress whose weight each overlay patches). Each
//! contender's peak RSS is measured once with `/usr/bin/time`, then the contenders run in
//! interleaved rounds on a warm page cache; one line per contender gives the median wall time,
//! its ratio to grep's median, the peak RSS, the target from the issue and PASS or FAIL.
//!
//! Run `.ci/bench-manifest.sh`: it builds the release binary (the one users run) and runs this
//! harness with `--bench` on it (`GITOPS_CANARY_BENCH_BIN`). `cargo bench --bench manifest`
//! alone times the bench-profile binary. `GITOPS_CANARY_BENCH_FILES` sets the tree size,
//! `GITOPS_CANARY_BENCH_RUNS` the rounds (default 11). Without `--bench` (as
//! `cargo test --all-targets` runs it) it is a smoke run on small trees that judges nothing.

#[path = "manifest/monorepo.rs"]
mod monorepo;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Peak memory allowed to any gitops-canary process.
const MEMORY_LIMIT: u64 = 64 << 20;

/// Run a command to completion: wall time and success.
fn timed(cmd: &mut Command) -> (Duration, bool) {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    (start.elapsed(), status.success())
}

/// Peak RSS of a command, as `/usr/bin/time -v` reports it. Not the harness's own wait4: a
/// child started with vfork (as `Command` does) is charged the harness's peak before exec.
fn peak_rss(cmd: &Command) -> Option<u64> {
    let out = tempfile::NamedTempFile::new().ok()?;
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(out.path())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let kb: u64 = std::fs::read_to_string(out.path())
        .ok()?
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()?;
    status.success().then_some(kb * 1024)
}

/// One timed command of a variant, with its target as a ratio to grep's median.
struct Contender {
    label: String,
    /// `None` for grep itself; `Some((ratio, strict))`: the median must stay below `ratio`
    /// times grep's (or at most, when not strict).
    target: Option<(f64, bool)>,
    make: Box<dyn FnMut() -> Command>,
    times: Vec<Duration>,
    /// `None`: not measured (`/usr/bin/time` missing).
    rss: Option<u64>,
}

impl Contender {
    fn new(
        label: &str,
        target: Option<(f64, bool)>,
        make: impl FnMut() -> Command + 'static,
    ) -> Self {
        Contender {
            label: label.to_string(),
            target,
            make: Box::new(make),
            times: Vec::new(),
            rss: None,
        }
    }

    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
}

/// Measure each contender's peak RSS in a warm-up round, then time the contenders (grep
/// first) in `runs` interleaved rounds, and print one summary line each. Returns whether
/// every target was met.
fn race(variant: &str, runs: usize, mut cs: Vec<Contender>, judge: bool) -> bool {
    for c in &mut cs {
        c.rss = peak_rss(&(c.make)());
    }
    for _ in 0..runs {
        for c in &mut cs {
            let mut cmd = (c.make)();
            let (t, ok) = timed(&mut cmd);
            assert!(ok, "command failed: {cmd:?}");
            c.times.push(t);
        }
    }
    let grep = cs[0].median().as_secs_f64();
    let mut all = true;
    for c in &cs {
        let median = c.median().as_secs_f64();
        let ratio = median / grep;
        let (target, verdict) = match c.target {
            None => ("-".to_string(), "-"),
            Some((limit, strict)) => {
                let fast = if strict {
                    ratio < limit
                } else {
                    ratio <= limit
                };
                let lean = c.rss.is_some_and(|r| r < MEMORY_LIMIT);
                all &= fast && lean;
                let verdict = match (judge, fast && lean) {
                    (false, _) => "not judged",
                    (true, true) => "PASS",
                    (true, false) => "FAIL",
                };
                (
                    format!("{}{limit}x, <64MB", if strict { "<" } else { "<=" }),
                    verdict,
                )
            }
        };
        let rss = c
            .rss
            .map_or("?".to_string(), |r| format!("{:.1} MB", r as f64 / 1e6));
        println!(
            "{variant:<10} {:<40} {:>9.1} {:>6.2}x {rss:>11}   {target:<13} {verdict}",
            c.label,
            median * 1e3,
            ratio,
        );
    }
    all
}

fn grep(root: &Path) -> impl FnMut() -> Command + 'static {
    let root = root.to_path_buf();
    move || {
        let mut c = Command::new("grep");
        c.args(["-rl", "canary-weight"]).arg(&root);
        c
    }
}

fn plan(bin: &Path, root: &Path) -> impl FnMut() -> Command + 'static {
    let (bin, root) = (bin.to_path_buf(), root.to_path_buf());
    move || {
        let mut c = Command::new(&bin);
        c.args(["plan", "--output", "json", "--repo"]).arg(&root);
        c
    }
}

/// `set-weight` with `args`, alternating the weight between two values so every run writes.
fn set_weight(bin: &Path, root: &Path, args: Vec<String>) -> impl FnMut() -> Command + 'static {
    let (bin, root) = (bin.to_path_buf(), root.to_path_buf());
    let mut flip = 0;
    move || {
        flip += 1;
        let mut c = Command::new(&bin);
        c.arg("set-weight")
            .args(&args)
            .arg("--weight")
            .arg(if flip % 2 == 0 { "25" } else { "30" })
            .arg("--repo")
            .arg(&root);
        c
    }
}

/// `plan --output json` once, checked to find every canary: a fast wrong answer is no result.
fn check_plan(bin: &Path, root: &Path, canaries: usize) {
    let out = Command::new(bin)
        .args(["plan", "--output", "json", "--repo"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flat = doc["pairs"].as_array().map_or(0, Vec::len);
    let rendered: usize = doc["kustomizeRoots"].as_array().map_or(0, |roots| {
        roots
            .iter()
            .map(|r| r["canaries"].as_array().map_or(0, Vec::len))
            .sum()
    });
    assert_eq!(
        flat + rendered,
        canaries,
        "plan over {} found {flat} flat and {rendered} rendered canaries",
        root.display()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test
    // on small trees (debug build: its timings mean nothing, so no targets are judged).
    let benching = std::env::args().any(|a| a == "--bench");
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<usize>().ok());
    let files = env("GITOPS_CANARY_BENCH_FILES").unwrap_or(if benching { 20_000 } else { 300 });
    let runs = env("GITOPS_CANARY_BENCH_RUNS")
        .unwrap_or(if benching { 11 } else { 1 })
        .max(1);
    let bin = std::env::var_os("GITOPS_CANARY_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gitops-canary")));
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("binary: {}", bin.display());
    println!(
        "machine: {cpus} cpus, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("rounds: {runs} (median of each; a warm-up round measures peak RSS first)");

    let pairs = monorepo::canaries(files);
    // One tree per variant and size, so the smoke run does not replace the big trees.
    let flat_root = tmp.join(format!("bench-flat-{files}"));
    let kust_root = tmp.join(format!("bench-kustomize-{files}"));
    for (name, root, gen) in [
        (
            "flat",
            &flat_root,
            monorepo::flat as fn(&Path, usize) -> u64,
        ),
        ("kustomize", &kust_root, monorepo::kustomize),
    ] {
        let t = Instant::now();
        let bytes = gen(root, files);
        println!(
            "{name}: {files} files, {:.1} MB (ready in {:.1?})",
            bytes as f64 / 1e6,
            t.elapsed()
        );
    }
    check_plan(&bin, &flat_root, pairs);
    check_plan(&bin, &kust_root, pairs * monorepo::OVERLAYS.len());

    println!(
        "\n{:<10} {:<40} {:>9} {:>7} {:>11}   {:<13} result",
        "variant", "command", "median ms", "x grep", "max RSS", "target"
    );
    // A canary in the middle of the generated ones (see `monorepo`).
    let k = pairs.saturating_sub(1).min(117);
    let flat_ok = race(
        "flat",
        runs,
        vec![
            Contender::new("grep -rl canary-weight", None, grep(&flat_root)),
            Contender::new("plan", Some((1.5, true)), plan(&bin, &flat_root)),
            Contender::new(
                "set-weight --ingress NS/NAME",
                Some((1.0, false)),
                set_weight(
                    &bin,
                    &flat_root,
                    vec![
                        "--ingress".into(),
                        format!("team-{}/app-{k}-canary", k % 500),
                    ],
                ),
            ),
        ],
        benching,
    );
    let (env_name, _) = monorepo::OVERLAYS[0];
    let kust_ok = race(
        "kustomize",
        runs,
        vec![
            Contender::new("grep -rl canary-weight", None, grep(&kust_root)),
            Contender::new("plan", Some((2.0, false)), plan(&bin, &kust_root)),
            Contender::new(
                "set-weight --ingress NS/NAME --overlay",
                Some((2.0, false)),
                set_weight(
                    &bin,
                    &kust_root,
                    vec![
                        "--ingress".into(),
                        format!("team-{}-{env_name}/app-{k}-canary", k % 50),
                        "--overlay".into(),
                        format!("{}/overlays/{env_name}", monorepo::app_dir(k)),
                    ],
                ),
            ),
        ],
        benching,
    );
    if !benching {
        println!("smoke run (not `cargo bench`): targets not judged");
        return;
    }
    println!(
        "\nall targets: {}",
        if flat_ok && kust_ok { "PASS" } else { "FAIL" }
    );
}
