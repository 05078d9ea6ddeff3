//! Holds the fake GitHub to GitHub's own OpenAPI description (`@octokit/openapi`, installed by
//! `.ci/install-forge.sh`): every route the fake serves exists with that method; every body it
//! answers carries the fields the spec requires, with the spec's types and enum values; and
//! every request the adapter sends uses only documented query parameters and body fields, with
//! the body's required fields and enum values. Without the spec installed it prints SKIP.

use crate::support::fake_github;

use std::path::PathBuf;
use std::time::Duration;

use fake_github::{fake_sha, FakeGitHub, ROUTES};
use gitops_canary::forge::github::{GitHub, GitHubConfig};
use gitops_canary::forge::{Forge, MergeMethod, NewPullRequest, RetryPolicy, StateFilter};
use gitops_canary::secret::Token;
use serde_json::Value;

/// Set by `.ci/check-forge.sh`: a missing spec or Prism fails instead of skipping.
const REQUIRE: &str = "GITOPS_CANARY_REQUIRE_FORGE_SPEC";
const TOKEN: &str = "ghp_SPECcheckTOKEN0000000000000000";

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".ci/node/node_modules/@octokit/openapi/generated/api.github.com.json")
}

fn load_spec() -> Option<Value> {
    let p = spec_path();
    let Ok(text) = std::fs::read_to_string(&p) else {
        if std::env::var_os(REQUIRE).is_some()
            || std::env::var_os("GITOPS_CANARY_REQUIRE_TOOLS").is_some()
        {
            panic!("{} not found and {REQUIRE} is set", p.display());
        }
        eprintln!(
            "SKIP: {} not found; run .ci/install-forge.sh to install @octokit/openapi",
            p.display()
        );
        return None;
    };
    Some(serde_json::from_str(&text).expect("spec is JSON"))
}

struct Validator<'a> {
    spec: &'a Value,
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, mut v: &'s Value) -> &'s Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let mut cur = self.spec;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            v = cur;
        }
        v
    }

    /// Appends `path: problem` for every way `value` breaks `schema`.
    fn check(&self, schema: &Value, value: &Value, path: &str, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, value, path, errs);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alts) = s.get(key).and_then(Value::as_array) {
                if value.is_null() && s.get("nullable") == Some(&Value::Bool(true)) {
                    return;
                }
                let ok = alts.iter().any(|alt| {
                    let mut e = vec![];
                    self.check(alt, value, path, &mut e);
                    e.is_empty()
                });
                if !ok {
                    errs.push(format!("{path}: matches none of {key}"));
                }
                return;
            }
        }
        if value.is_null() {
            if s.get("nullable") != Some(&Value::Bool(true)) && s.get("type").is_some() {
                errs.push(format!("{path}: null but not nullable"));
            }
            return;
        }
        let ty = s.get("type").and_then(Value::as_str);
        let type_ok = match ty {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        if !type_ok {
            errs.push(format!(
                "{path}: expected {}, got {value}",
                ty.unwrap_or("?")
            ));
            return;
        }
        if let Some(en) = s.get("enum").and_then(Value::as_array) {
            if !en.contains(value) {
                errs.push(format!("{path}: {value} not in enum {en:?}"));
            }
        }
        if let Some(items) = s.get("items") {
            for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                self.check(items, v, &format!("{path}[{i}]"), errs);
            }
        }
        if let Some(obj) = value.as_object() {
            for req in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let k = req.as_str().unwrap_or_default();
                if !obj.contains_key(k) {
                    errs.push(format!("{path}: missing required `{k}`"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, v) in obj {
                    if let Some(ps) = props.get(k) {
                        self.check(ps, v, &format!("{path}.{k}"), errs);
                    }
                }
            }
        }
    }

    /// Property names of an object schema, including those of its alternatives.
    fn property_names(&self, schema: &Value) -> Vec<String> {
        let s = self.resolve(schema);
        let mut out: Vec<String> = s["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for key in ["allOf", "anyOf", "oneOf"] {
            for alt in s[key].as_array().into_iter().flatten() {
                out.extend(self.property_names(alt));
            }
        }
        out
    }

    fn operation(&self, route: &str, method: &str) -> Option<&Value> {
        self.spec["paths"].get(route)?.get(method)
    }
}

/// The OpenAPI route a concrete path belongs to.
fn route_of(path: &str, owner: &str, repo: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    ROUTES.iter().map(|(_, r)| *r).find(|r| {
        let t: Vec<&str> = r.trim_matches('/').split('/').collect();
        t.len() == segs.len()
            && t.iter().zip(&segs).all(|(t, s)| match *t {
                "{owner}" => *s == owner,
                "{repo}" => *s == repo,
                t if t.starts_with('{') => true,
                t => t == *s,
            })
    })
}

#[test]
fn every_route_of_the_fake_is_in_the_spec() {
    let Some(spec) = load_spec() else { return };
    let v = Validator { spec: &spec };
    for (method, route) in ROUTES {
        assert!(
            v.operation(route, method).is_some(),
            "the fake serves {method} {route}, which GitHub's API does not have"
        );
    }
}

/// Drive every adapter operation against a fresh fake, and through plain HTTP the routes only
/// tests use; the fake records each request and answer.
async fn exercise() -> FakeGitHub {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeGitHub::start("acme", "gitops", TOKEN).await;
    let gh = GitHub::new(GitHubConfig {
        api_url: fake.api_url(),
        server_url: "https://github.com".into(),
        repo: fake.full_name(),
        token: Token::new(TOKEN),
        retry: RetryPolicy {
            max_retries: 0,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_server_wait: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
        },
    })
    .unwrap();

    // Exercise every adapter operation, and through plain HTTP the routes only tests use.
    let sha = fake_sha("c1");
    fake.set_branch("canary/web-25", &sha);
    let new = NewPullRequest {
        title: "canary: web to 25%".into(),
        body: "stage".into(),
        head: "canary/web-25".into(),
        base: "main".into(),
        labels: vec!["gitops-canary".into()],
    };
    let pr = gh.create_pr(&new).await.unwrap();
    gh.create_pr(&new).await.unwrap();
    gh.find_pr_by_branch("canary/web-25").await.unwrap();
    gh.list_prs_by_label("gitops-canary", StateFilter::All)
        .await
        .unwrap();
    gh.update_pr_body(pr.number, "body").await.unwrap();
    gh.comment(pr.number, "hello").await.unwrap();
    let comments = gh.list_comments(pr.number).await.unwrap();
    gh.update_comment(pr.number, comments[0].id, "hello again")
        .await
        .unwrap();
    fake.add_review(pr.number, "alice", "APPROVED");
    gh.reviews(&pr).await.unwrap();
    fake.add_status(&sha, "ci/build", "success");
    fake.add_check_run(&sha, "lint", "completed", Some("success"));
    fake.add_check_run(&sha, "slow", "in_progress", None);
    gh.checks(&sha).await.unwrap();
    gh.mergeable(pr.number).await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("{}/repos/acme/gitops", fake.api_url());
    let auth = format!("Bearer {TOKEN}");
    for (m, p, body) in [
        (
            "POST",
            format!("/pulls/{}/reviews", pr.number),
            Some(r#"{"event":"APPROVE"}"#),
        ),
        ("GET", format!("/issues/{}/comments", pr.number), None),
        (
            "POST",
            format!("/statuses/{sha}"),
            Some(r#"{"state":"pending","context":"x"}"#),
        ),
    ] {
        let mut r = http
            .request(m.parse().unwrap(), format!("{base}{p}"))
            .header("authorization", &auth);
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        assert!(r.send().await.unwrap().status().is_success(), "{m} {p}");
    }
    gh.merge(pr.number, MergeMethod::Squash, &sha)
        .await
        .unwrap();
    gh.find_pr_by_branch("canary/web-25").await.unwrap();
    fake.set_branch("b2", &fake_sha("b2"));
    let mut other = new.clone();
    other.head = "b2".into();
    let p2 = gh.create_pr(&other).await.unwrap();
    gh.close(p2.number).await.unwrap();
    fake
}

#[tokio::test]
async fn bodies_and_requests_follow_the_spec() {
    let Some(spec) = load_spec() else { return };
    let v = Validator { spec: &spec };
    let fake = exercise().await;
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in fake.requests() {
        let method = r.method.to_lowercase();
        let Some(route) = route_of(&r.path, "acme", "gitops") else {
            errs.push(format!("{} {}: no route", r.method, r.path));
            continue;
        };
        let op = v.operation(route, &method).expect("route checked above");
        seen.insert((method.clone(), route));
        let at = format!("{} {route} -> {}", r.method, r.status);

        // Request: documented query parameters only; body fields known, required present.
        let params: Vec<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| v.resolve(p))
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        for (k, _) in url::form_urlencoded::parse(r.query.as_bytes()) {
            if !params.contains(&k.to_string()) {
                errs.push(format!("{at}: undocumented query parameter `{k}`"));
            }
        }
        if !r.request_body.is_empty() {
            let schema = &v.resolve(&op["requestBody"])["content"]["application/json"]["schema"];
            let body: Value = serde_json::from_str(&r.request_body).unwrap();
            v.check(schema, &body, &format!("{at} request"), &mut errs);
            let props = v.property_names(schema);
            for k in body.as_object().into_iter().flatten().map(|(k, _)| k) {
                if !props.contains(k) {
                    errs.push(format!("{at} request: undocumented field `{k}`"));
                }
            }
        }

        // Response: the documented status, and a body with the spec's required fields.
        let Some(resp) = op["responses"].get(r.status.to_string()) else {
            if r.status != 422 || op["responses"].get("422").is_none() {
                errs.push(format!("{at}: status not documented"));
            }
            continue;
        };
        let resp = v.resolve(resp);
        if let Some(schema) = resp
            .get("content")
            .and_then(|c| c.get("application/json"))
            .map(|c| &c["schema"])
        {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            v.check(schema, &body, &at, &mut errs);
        }
    }
    errs.dedup();
    assert!(
        errs.is_empty(),
        "{} problems:\n{}",
        errs.len(),
        errs.join("\n")
    );
    let unseen: Vec<_> = ROUTES
        .iter()
        .filter(|(m, r)| !seen.contains(&(m.to_string(), *r)))
        .collect();
    assert!(unseen.is_empty(), "routes not exercised: {unseen:?}");
}

/// Replays the adapter's real requests (as the fake recorded them) to Prism serving GitHub's
/// description; Prism reports request violations in `sl-violations`. Prism needs ~15 s to start.
#[tokio::test]
async fn prism_accepts_the_adapters_requests() {
    let node = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/node");
    let prism = node.join("node_modules/.bin/prism");
    let have_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !prism.exists() || !have_node || !spec_path().exists() {
        if std::env::var_os(REQUIRE).is_some()
            || std::env::var_os("GITOPS_CANARY_REQUIRE_TOOLS").is_some()
        {
            panic!("prism/node/spec missing and {REQUIRE} is set");
        }
        eprintln!("SKIP: prism or node missing; run .ci/install-forge.sh");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(&prism)
        .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(spec_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start prism");
    let fake = exercise().await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while http.get(format!("{base}/")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "prism did not start in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for r in fake.requests() {
        let url = if r.query.is_empty() {
            format!("{base}{}", r.path)
        } else {
            format!("{base}{}?{}", r.path, r.query)
        };
        let mut req = http
            .request(r.method.parse().unwrap(), &url)
            .header("x-github-api-version", "2022-11-28");
        if !r.request_body.is_empty() {
            req = req
                .header("content-type", "application/json")
                .body(r.request_body.clone());
        }
        let res = req.send().await.unwrap();
        checked += 1;
        let violations = res
            .headers()
            .get("sl-violations")
            .and_then(|v| v.to_str().ok())
            .map(|v| serde_json::from_str::<Vec<Value>>(v).unwrap_or_default())
            .unwrap_or_default();
        for v in violations {
            if v["location"][0] == "request" {
                problems.push(format!(
                    "{} {}?{}: {}",
                    r.method, r.path, r.query, v["message"]
                ));
            }
        }
        if res.status() == 404 {
            problems.push(format!(
                "{} {}: prism knows no such route",
                r.method, r.path
            ));
        }
    }
    let _ = child.kill().await;
    assert!(checked > 15, "only {checked} requests replayed");
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
