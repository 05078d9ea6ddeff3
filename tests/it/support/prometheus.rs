//! A real Prometheus for tests: traffic written as OpenMetrics text, backfilled with
//! `promtool tsdb create-blocks-from openmetrics` into a temp dir, served on a free loopback
//! port, killed on drop. Queries use explicit `time=` inside the backfilled window, so results
//! do not depend on when the test runs.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `prometheus` and `promtool`, from PATH or /usr/bin. With `GITOPS_CANARY_TEST_NO_PROMETHEUS`
/// set, acts as if they were absent (to exercise the skip path).
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    if std::env::var_os("GITOPS_CANARY_TEST_NO_PROMETHEUS").is_some() {
        return None;
    }
    Some((find("prometheus")?, find("promtool")?))
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Canary or stable traffic of one upstream behind one Ingress, as ingress-nginx reports it.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub namespace: &'static str,
    /// The primary Ingress: ingress-nginx labels canary requests with it too.
    pub ingress: &'static str,
    /// The primary's Service (the location's service, also for canary requests).
    pub service: &'static str,
    /// `Some(upstream)` for requests routed to the canary (`<ns>-<svc>-<port>`).
    pub canary: Option<&'static str>,
    pub rps: f64,
    /// Share of requests answered 500.
    pub error_ratio: f64,
    /// Share of requests taking 0.8 s (the rest take 0.04 s).
    pub slow_ratio: f64,
}

const BUCKETS: [&str; 9] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];
const FAST: f64 = 0.04;
const SLOW: f64 = 0.8;

/// OpenMetrics text for `traffic` from `start` for `duration` seconds, one sample every `step`.
/// Counters are declared as gauges (so the names need no `_total`, as ingress-nginx's don't);
/// `rate()` and `increase()` treat them the same.
pub fn openmetrics(start: i64, duration: i64, step: i64, traffic: &[Traffic]) -> String {
    let mut requests = String::from("# TYPE nginx_ingress_controller_requests gauge\n");
    let mut hist =
        String::from("# TYPE nginx_ingress_controller_request_duration_seconds histogram\n");
    for t in traffic {
        for (status, share) in [("200", 1.0 - t.error_ratio), ("500", t.error_ratio)] {
            if share <= 0.0 {
                continue;
            }
            let canary = t
                .canary
                .map(|c| format!(",canary=\"{c}\""))
                .unwrap_or_default();
            let labels = format!(
                "namespace=\"{}\",ingress=\"{}\",service=\"{}\",status=\"{status}\",method=\"GET\",path=\"/\"{canary}",
                t.namespace, t.ingress, t.service
            );
            let mut ts = start;
            while ts <= start + duration {
                let total = (t.rps * share * (ts - start) as f64).floor();
                let slow = (total * t.slow_ratio).floor();
                let fast = total - slow;
                writeln!(
                    requests,
                    "nginx_ingress_controller_requests{{{labels}}} {total} {ts}"
                )
                .unwrap();
                for le in BUCKETS {
                    let bound: f64 = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    let n = if bound >= SLOW {
                        total
                    } else if bound >= FAST {
                        fast
                    } else {
                        0.0
                    };
                    writeln!(
                        hist,
                        "nginx_ingress_controller_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n} {ts}"
                    )
                    .unwrap();
                }
                writeln!(hist, "nginx_ingress_controller_request_duration_seconds_count{{{labels}}} {total} {ts}").unwrap();
                let sum = fast * FAST + slow * SLOW;
                writeln!(
                    hist,
                    "nginx_ingress_controller_request_duration_seconds_sum{{{labels}}} {sum} {ts}"
                )
                .unwrap();
                ts += step;
            }
        }
    }
    format!("{requests}{hist}# EOF\n")
}

/// A running Prometheus over backfilled data. Killed (and its data removed) on drop.
pub struct Prometheus {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Stop the process and keep the data directory (for another start attempt).
    fn into_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

/// Backfill `openmetrics` and start Prometheus on it. `None` (after printing a SKIP line) when
/// Prometheus is not installed; panics on any other failure.
pub async fn start(openmetrics: &str) -> Option<Prometheus> {
    let Some((prometheus, promtool)) = binaries() else {
        // Straight to the stderr handle: the test harness captures eprintln!, and a skip must
        // show in CI logs.
        use std::io::Write as _;
        assert!(
            std::env::var_os("GITOPS_CANARY_REQUIRE_TOOLS").is_none(),
            "prometheus not installed (run .ci/install-prometheus.sh); GITOPS_CANARY_REQUIRE_TOOLS is set"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: prometheus not installed (run .ci/install-prometheus.sh)"
        );
        return None;
    };
    let mut dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    let data = dir.path().join("data");
    std::fs::write(&input, openmetrics).unwrap();
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool backfill failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  evaluation_interval: 1h\nscrape_configs: []\n",
    )
    .unwrap();

    // The port is free when probed but may be taken before Prometheus binds it: try again.
    let log_path = dir.path().join("prometheus.log");
    for _ in 0..3 {
        let port = free_port();
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        // Owned by a `Prometheus` from the start, so a panic while waiting still kills it.
        let mut p = Prometheus { child, url, dir };
        if wait_ready(&mut p.child, &p.url).await {
            return Some(p);
        }
        dir = p.into_dir();
        eprintln!(
            "prometheus did not start on port {port}:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
    panic!("prometheus would not start (see the logs above)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_ready(child: &mut Child, url: &str) -> bool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(r) = http.get(format!("{url}/-/ready")).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// How one implementation names its request metrics, for [`openmetrics_as`].
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// The request counter, one series per response code (class).
    pub requests: &'static str,
    /// The label holding the code, and the values written for a success and an error.
    pub code_label: &'static str,
    pub ok: &'static str,
    pub error: &'static str,
    pub latency: Latency,
}

/// How an implementation reports latency.
#[derive(Debug, Clone, Copy)]
pub enum Latency {
    /// A histogram (`_bucket`, `_count`, `_sum`) in `unit`s per second (1000 for milliseconds).
    Histogram { name: &'static str, unit: f64 },
    /// A gauge of each series' average response time, in `unit`s per second.
    AverageGauge { name: &'static str, unit: f64 },
}

/// One series set of traffic: its identifying labels (`k="v",...`) and its behaviour, with the
/// same shares as [`Traffic`]: `error_ratio` answered with the error code, `slow_ratio` taking
/// 0.8 s (the rest 0.04 s).
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: String,
    pub rps: f64,
    pub error_ratio: f64,
    pub slow_ratio: f64,
}

/// OpenMetrics text for `series` in `names`' metric names, from `start` for `duration` seconds,
/// one sample every `step`. Counters are declared as gauges as in [`openmetrics`].
pub fn openmetrics_as(
    names: &Names,
    start: i64,
    duration: i64,
    step: i64,
    series: &[Series],
) -> String {
    let mut requests = format!("# TYPE {} gauge\n", names.requests);
    let mut latency = match names.latency {
        Latency::Histogram { name, .. } => format!("# TYPE {name} histogram\n"),
        Latency::AverageGauge { name, .. } => format!("# TYPE {name} gauge\n"),
    };
    for s in series {
        for (code, share) in [
            (names.ok, 1.0 - s.error_ratio),
            (names.error, s.error_ratio),
        ] {
            if share <= 0.0 {
                continue;
            }
            let labels = format!("{},{}=\"{code}\"", s.labels, names.code_label);
            let mut ts = start;
            while ts <= start + duration {
                let total = (s.rps * share * (ts - start) as f64).floor();
                writeln!(requests, "{}{{{labels}}} {total} {ts}", names.requests).unwrap();
                ts += step;
            }
        }
        let mut ts = start;
        while ts <= start + duration {
            let total = (s.rps * (ts - start) as f64).floor();
            let slow = (total * s.slow_ratio).floor();
            let fast = total - slow;
            match names.latency {
                Latency::Histogram { name, unit } => {
                    for le in BUCKETS {
                        let (bound, shown) = if le == "+Inf" {
                            (f64::INFINITY, le.to_string())
                        } else {
                            let b: f64 = le.parse().unwrap();
                            (b, format!("{}", b * unit))
                        };
                        let n = if bound >= SLOW {
                            total
                        } else if bound >= FAST {
                            fast
                        } else {
                            0.0
                        };
                        writeln!(
                            latency,
                            "{name}_bucket{{{},le=\"{shown}\"}} {n} {ts}",
                            s.labels
                        )
                        .unwrap();
                    }
                    writeln!(latency, "{name}_count{{{}}} {total} {ts}", s.labels).unwrap();
                    let sum = (fast * FAST + slow * SLOW) * unit;
                    writeln!(latency, "{name}_sum{{{}}} {sum} {ts}", s.labels).unwrap();
                }
                Latency::AverageGauge { name, unit } => {
                    let avg = (FAST * (1.0 - s.slow_ratio) + SLOW * s.slow_ratio) * unit;
                    writeln!(latency, "{name}{{{}}} {avg} {ts}", s.labels).unwrap();
                }
            }
            ts += step;
        }
    }
    format!("{requests}{latency}# EOF\n")
}
