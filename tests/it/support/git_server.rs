//! A local smart-HTTP Git server for tests: bare repositories in a temp dir served through the
//! real `git http-backend` (CGI) behind HTTP basic auth that checks a token.
//!
//! Plain std threads, no extra packages: each connection is read as HTTP/1.1 (Content-Length or
//! chunked bodies, keep-alive), piped to `git http-backend`, and its CGI answer is sent back
//! with a Content-Length. `before_next_push` runs a closure when the next receive-pack POST
//! arrives, after the client has seen the ref advertisement: the faithful way to lose a push race.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type PushHook = Box<dyn FnMut(&Path) + Send>;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub target: String,
    pub status: u16,
    pub authorization: Option<String>,
}

struct Shared {
    root: PathBuf,
    expected_auth: String,
    log: Mutex<Vec<Logged>>,
    /// The hook and whether it stays armed after it ran.
    push_hook: Mutex<Option<(PushHook, bool)>>,
    /// (how many, status): answer the next authenticated requests with this error status.
    failures: Mutex<(usize, u16)>,
    /// Runs once when a pusher asks for the ref advertisement.
    advert_hook: Mutex<Option<PushHook>>,
}

pub struct GitServer {
    pub root: tempfile::TempDir,
    pub port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Print a SKIP line straight to the stderr handle: the test harness captures `eprintln!`, and a
/// skip must show in CI logs.
///
/// With `GITOPS_CANARY_REQUIRE_TOOLS` set (`.ci/test` sets it), a skip is a failure: CI never
/// passes a test it did not run.
pub fn skip(msg: &str) {
    use std::io::Write as _;
    if std::env::var_os("GITOPS_CANARY_REQUIRE_TOOLS").is_some() {
        panic!("{msg}; GITOPS_CANARY_REQUIRE_TOOLS is set, so a missing tool fails the test");
    }
    let _ = writeln!(std::io::stderr(), "SKIP: {msg}");
}

/// `git` is needed for http-backend and for seeding; tests call this first and SKIP without it.
/// `GITOPS_CANARY_TEST_NO_GIT` makes it act as if git were absent (to exercise the skip path).
pub fn git_available() -> bool {
    let ok = std::env::var_os("GITOPS_CANARY_TEST_NO_GIT").is_none()
        && Command::new("git")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        && Command::new("git")
            .args(["--exec-path"])
            .output()
            .map(|o| {
                Path::new(String::from_utf8_lossy(&o.stdout).trim())
                    .join("git-http-backend")
                    .exists()
            })
            .unwrap_or(false);
    if !ok {
        skip("git CLI with http-backend not found (run .ci/install-git.sh)");
    }
    ok
}

impl GitServer {
    /// Start on 127.0.0.1 with a free port; every request needs `user:token` basic auth.
    pub fn start(user: &str, token: &str) -> GitServer {
        let root = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            root: root.path().to_path_buf(),
            expected_auth: format!("Basic {}", base64(format!("{user}:{token}").as_bytes())),
            log: Mutex::new(Vec::new()),
            push_hook: Mutex::new(None),
            advert_hook: Mutex::new(None),
            failures: Mutex::new((0, 0)),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, stop2) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s2.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(conn, &s);
                });
            }
        });
        GitServer {
            root,
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/<name>.git`
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }

    /// Path of the bare repository `<name>.git`.
    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.git"))
    }

    /// Create `<name>.git` with `main` holding the files of `seed` (one commit).
    pub fn create_repo(&self, name: &str, seed: &Path) -> PathBuf {
        let bare = self.repo_path(name);
        seed_bare_repo(&bare, seed);
        bare
    }

    /// Run `f(bare_repo_path)` when the next push (receive-pack POST) arrives, before git sees it.
    pub fn before_next_push(&self, f: impl FnOnce(&Path) + Send + 'static) {
        let mut f = Some(f);
        let once = move |p: &Path| {
            if let Some(f) = f.take() {
                f(p)
            }
        };
        *self.shared.push_hook.lock().unwrap() = Some((Box::new(once), false));
    }

    /// Answer the next `n` authenticated requests with `status` (a flaky server or proxy).
    pub fn fail_next(&self, n: usize, status: u16) {
        *self.shared.failures.lock().unwrap() = (n, status);
    }

    /// Run `f(bare_repo_path)` once, when the next pusher asks for the refs (before it decides
    /// what to send): the client then sees the moved ref in the advertisement.
    pub fn before_next_push_advertisement(&self, f: impl FnOnce(&Path) + Send + 'static) {
        let mut f = Some(f);
        let once = move |p: &Path| {
            if let Some(f) = f.take() {
                f(p)
            }
        };
        *self.shared.advert_hook.lock().unwrap() = Some(Box::new(once));
    }

    /// Run `f(bare_repo_path)` before every push from now on.
    pub fn before_every_push(&self, f: impl FnMut(&Path) + Send + 'static) {
        *self.shared.push_hook.lock().unwrap() = Some((Box::new(f), true));
    }

    /// How many pushes (receive-pack POSTs) the server has answered.
    pub fn push_count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.method == "POST" && r.target.ends_with("/git-receive-pack") && r.status == 200
            })
            .count()
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    // Headers and body go out in one write; no Nagle delay against the client's delayed ACKs.
    conn.set_nodelay(true)?;
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(&mut reader)?
        } else {
            let n: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut b = vec![0; n];
            reader.read_exact(&mut b)?;
            b
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let authorization = header("authorization");

        let (status, resp_headers, resp_body) =
            if authorization.as_deref() != Some(shared.expected_auth.as_str()) {
                (
                    401,
                    vec![(
                        "WWW-Authenticate".to_string(),
                        "Basic realm=\"git\"".to_string(),
                    )],
                    b"authentication required\n".to_vec(),
                )
            } else if let Some(status) = take_failure(shared) {
                (status, Vec::new(), b"try again later\n".to_vec())
            } else {
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                if method == "POST" && path.ends_with("/git-receive-pack") {
                    let mut slot = shared.push_hook.lock().unwrap();
                    if let Some((mut hook, keep)) = slot.take() {
                        let repo = path
                            .trim_end_matches("/git-receive-pack")
                            .trim_start_matches('/');
                        hook(&shared.root.join(repo));
                        if keep {
                            *slot = Some((hook, keep));
                        }
                    }
                }
                if method == "GET" && query.contains("service=git-receive-pack") {
                    if let Some(mut hook) = shared.advert_hook.lock().unwrap().take() {
                        let repo = path.trim_end_matches("/info/refs").trim_start_matches('/');
                        hook(&shared.root.join(repo));
                    }
                }
                run_backend(shared, &method, path, query, &headers, &body)?
            };
        shared.log.lock().unwrap().push(Logged {
            method: method.clone(),
            target: target.clone(),
            status,
            authorization: authorization.clone(),
        });
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in &resp_headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", resp_body.len()));
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&resp_body);
        writer.write_all(&bytes)?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn take_failure(shared: &Shared) -> Option<u16> {
    let mut f = shared.failures.lock().unwrap();
    if f.0 == 0 {
        return None;
    }
    f.0 -= 1;
    Some(f.1)
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or("0");
        let n = usize::from_str_radix(size, 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if n == 0 {
            // Trailers until an empty line.
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l)? == 0 || l.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + n, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

type Response = (u16, Vec<(String, String)>, Vec<u8>);

fn run_backend(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Response> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_USER", "tester")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(enc) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(proto) = header("git-protocol") {
        cmd.env("GIT_PROTOCOL", proto);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let body = body.to_vec();
    // Write from another thread: the backend may answer before it has read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.stderr.is_empty() {
        eprintln!(
            "git http-backend: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let raw = out.stdout;
    let (head_end, sep) = match find(&raw, b"\r\n\r\n") {
        Some(i) => (i, 4),
        None => (find(&raw, b"\n\n").unwrap_or(raw.len()), 2),
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let body = raw.get(head_end + sep..).unwrap_or(&[]).to_vec();
    let mut status = 200;
    let mut resp_headers = Vec::new();
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("status") {
            status = v
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
        } else {
            resp_headers.push((k.to_string(), v.to_string()));
        }
    }
    Ok((status, resp_headers, body))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Repositories with the real git CLI

/// Run `git` in `dir` with a fixed identity and no user/system config; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Seed Author")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "Seed Author")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repo at `bare` whose `main` is one commit holding the files under `seed`,
/// accepting pushes over HTTP.
pub fn seed_bare_repo(bare: &Path, seed: &Path) {
    std::fs::create_dir_all(bare).expect("mkdir bare");
    git(bare, &["init", "-q", "--bare", "-b", "main"]);
    git(bare, &["config", "http.receivepack", "true"]);
    let work = tempfile::tempdir().expect("tempdir");
    git(work.path(), &["init", "-q", "-b", "main"]);
    copy_dir(seed, work.path());
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "-q", "-m", "seed"]);
    let bare_s = bare.to_str().expect("utf-8 path");
    git(work.path(), &["push", "-q", bare_s, "main"]);
}

/// Commit `content` to `file` on `branch` of the bare repo (through a scratch clone), as another
/// writer would; returns the new commit id.
pub fn commit_to_bare(bare: &Path, branch: &str, file: &str, content: &str, msg: &str) -> String {
    let work = tempfile::tempdir().expect("tempdir");
    let bare_s = bare.to_str().expect("utf-8 path");
    git(work.path(), &["clone", "-q", "-b", branch, bare_s, "c"]);
    let c = work.path().join("c");
    let path = c.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, content).expect("write");
    git(&c, &["add", "-A"]);
    git(&c, &["commit", "-q", "-m", msg]);
    git(&c, &["push", "-q", "origin", branch]);
    git(&c, &["rev-parse", "HEAD"])
}

/// The commit id `rev` names in the bare repo, or None.
pub fn rev(bare: &Path, rev: &str) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--verify", "-q", rev])
        .current_dir(bare)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git show <rev>:<path>` in the bare repo.
pub fn show(bare: &Path, rev_path: &str) -> String {
    git(bare, &["show", rev_path])
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read seed dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// A small GitOps repo: a stable and a canary Ingress (weight 10) and a README.
pub fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let apps = dir.path().join("apps/web");
    std::fs::create_dir_all(&apps).expect("mkdir");
    std::fs::write(dir.path().join("README.md"), "# gitops fixture\n").expect("write");
    std::fs::write(
        apps.join("ingress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ingressClassName: nginx\n  rules:\n    - host: web.example.com\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: web\n                port:\n                  number: 80\n",
    )
    .expect("write");
    std::fs::write(apps.join("canary.yaml"), CANARY_10).expect("write");
    dir
}

pub const CANARY_10: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web-canary\n  namespace: shop\n  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"10\" # stage weight\nspec:\n  ingressClassName: nginx\n  rules:\n    - host: web.example.com\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: web-canary\n                port:\n                  number: 80\n";

/// The canary manifest with its weight replaced, byte for byte otherwise.
pub fn canary_with_weight(w: u32) -> String {
    CANARY_10.replace("canary-weight: \"10\"", &format!("canary-weight: \"{w}\""))
}

pub const CANARY_PATH: &str = "apps/web/canary.yaml";

/// An edit like the real one: set the canary-weight value in place, report the file, count calls.
pub fn weight_edit(
    weight: u32,
    calls: Arc<std::sync::atomic::AtomicU32>,
) -> impl FnMut(&Path) -> anyhow::Result<Vec<PathBuf>> {
    move |dir: &Path| {
        calls.fetch_add(1, Ordering::SeqCst);
        let path = dir.join(CANARY_PATH);
        let text = std::fs::read_to_string(&path)?;
        let key = "canary-weight: \"";
        let start = text
            .find(key)
            .ok_or_else(|| anyhow::anyhow!("no canary-weight in {}", path.display()))?
            + key.len();
        let end = start + text[start..].find('"').unwrap_or(0);
        let new = format!("{}{weight}{}", &text[..start], &text[end..]);
        std::fs::write(&path, new)?;
        Ok(vec![PathBuf::from(CANARY_PATH)])
    }
}
