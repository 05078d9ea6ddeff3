//! A fake Kubernetes API server for tests: plain HTTP on 127.0.0.1, spoken to by kube-rs
//! through a generated kubeconfig (bearer token user).
//!
//! It keeps objects as JSON with the metadata the real server maintains (a global
//! `resourceVersion` counter, `generation` bumped on spec changes, `uid`,
//! `creationTimestamp`) and serves GET, LIST, WATCH and merge PATCH on namespaced
//! collections, following the API conventions kube-rs relies on: list metadata carries the
//! resourceVersion, a watch replays events after the given resourceVersion from a bounded
//! history and answers an `ERROR` event with a 410 `Expired` Status when that version is
//! compacted away, honours `timeoutSeconds`, and errors are `Status` objects. Control handles
//! let a test play the controllers (Argo CD, Flux, the Deployment controller) and the faults
//! (cut watches, compaction, 5xx bursts, RBAC denials).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::broadcast;

type Body = BoxBody<Bytes, Infallible>;

pub const TOKEN: &str = "fake-kube-token-7f3a9c";

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    coll: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Clone, Debug)]
enum Msg {
    Event(Event),
    /// End watches; `bookmark` sends a final BOOKMARK first (what lets a client resume cheaply).
    Cut {
        bookmark: bool,
    },
}

struct State {
    rv: u64,
    uid: u64,
    objects: BTreeMap<(String, String, String), Value>,
    history: VecDeque<Event>,
    history_limit: usize,
    /// Events at or below this resourceVersion are gone: watching from older gets 410.
    compacted: u64,
    fail_next: VecDeque<u16>,
    forbidden: Vec<(String, Option<String>)>,
    requests: Vec<String>,
    watch_starts: HashMap<String, usize>,
    patches: Vec<(String, Value)>,
    gone_sent: usize,
}

/// A running fake API server; dropped, it stops accepting connections.
pub struct FakeKube {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<Msg>,
    dir: tempfile::TempDir,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.tx.send(Msg::Cut { bookmark: false });
    }
}

/// `(collection path, plural, group)` for an apiVersion and kind, as the real server routes them.
pub fn collection(api_version: &str, kind: &str) -> (String, String, String) {
    let lower = kind.to_ascii_lowercase();
    let plural = if lower.ends_with("ss") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    };
    match api_version.split_once('/') {
        Some((group, version)) => (
            format!("/apis/{group}/{version}/{plural}"),
            plural,
            group.to_string(),
        ),
        None => (
            format!("/api/{api_version}/{plural}"),
            plural,
            String::new(),
        ),
    }
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

fn merge_patch(target: &mut Value, patch: &Value) {
    // RFC 7386: objects merge recursively, null deletes, anything else replaces.
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Equality-based selectors (`a=b,c==d,e!=f`) and `k in (x,y)`: what kube-rs renders from
/// `matchLabels` and simple expressions.
fn split_selector(sel: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in sel.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

fn selector_matches(map: Option<&serde_json::Map<String, Value>>, sel: &str) -> bool {
    let get = |k: &str| map.and_then(|m| m.get(k)).and_then(Value::as_str);
    split_selector(sel).iter().all(|term| {
        let term = term.trim();
        if let Some((k, v)) = term.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some((k, vs)) = term.split_once(" in ") {
            let vs = vs.trim().trim_start_matches('(').trim_end_matches(')');
            get(k.trim()).is_some_and(|v| vs.split(',').any(|x| x.trim() == v))
        } else if let Some(k) = term.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(term).is_some()
        }
    })
}

fn field_matches(obj: &Value, sel: &str) -> bool {
    split_selector(sel).iter().all(|term| {
        let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) else {
            return false;
        };
        let pointer = format!("/{}", k.trim().replace('.', "/"));
        obj.pointer(&pointer).and_then(Value::as_str) == Some(v.trim())
    })
}

struct Filter {
    coll: String,
    namespace: String,
    labels: Option<String>,
    fields: Option<String>,
}

impl Filter {
    fn matches(&self, coll: &str, namespace: &str, obj: &Value) -> bool {
        coll == self.coll
            && namespace == self.namespace
            && self.labels.as_deref().is_none_or(|s| {
                selector_matches(
                    obj.pointer("/metadata/labels").and_then(Value::as_object),
                    s,
                )
            })
            && self.fields.as_deref().is_none_or(|s| field_matches(obj, s))
    }
}

impl FakeKube {
    pub async fn start() -> FakeKube {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, _) = broadcast::channel(4096);
        let state = Arc::new(Mutex::new(State {
            rv: 100,
            uid: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: 1000,
            compacted: 0,
            fail_next: VecDeque::new(),
            forbidden: Vec::new(),
            requests: Vec::new(),
            watch_starts: HashMap::new(),
            patches: Vec::new(),
            gone_sent: 0,
        }));
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: fake\n  user:\n    token: {TOKEN}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             - name: other\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        let (st, tx2) = (state.clone(), tx.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // As Go's net/http does: without it Nagle and delayed ACKs add tens of
                // milliseconds to every watch event.
                let _ = stream.set_nodelay(true);
                let (st, tx) = (st.clone(), tx2.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (st, tx) = (st.clone(), tx.clone());
                        async move { Ok::<_, Infallible>(handle(req, st, tx).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeKube {
            state,
            tx,
            dir,
            accept,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub async fn client(&self) -> kube::Client {
        gitops_canary::cluster::connect_kubeconfig(&self.kubeconfig(), None)
            .await
            .unwrap()
    }

    fn emit(
        &self,
        st: &mut State,
        kind: &'static str,
        coll: String,
        namespace: String,
        object: Value,
    ) {
        let ev = Event {
            rv: st.rv,
            coll,
            namespace,
            kind,
            object,
        };
        st.history.push_back(ev.clone());
        while st.history.len() > st.history_limit {
            if let Some(old) = st.history.pop_front() {
                st.compacted = st.compacted.max(old.rv);
            }
        }
        let _ = self.tx.send(Msg::Event(ev));
    }

    /// Create or replace an object (it must carry apiVersion, kind, metadata.name/namespace),
    /// maintaining the server-side metadata. Returns the stored object.
    pub fn upsert(&self, mut obj: Value) -> Value {
        let api_version = obj["apiVersion"].as_str().expect("apiVersion").to_string();
        let kind = obj["kind"].as_str().expect("kind").to_string();
        let (coll, _, _) = collection(&api_version, &kind);
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let key = (coll.clone(), ns.clone(), name);
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.insert("namespace".into(), json!(ns));
        meta.insert("resourceVersion".into(), json!(st.rv.to_string()));
        let event = match st.objects.get(&key) {
            Some(old) => {
                let old_gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let gen = if old.get("spec") != obj.get("spec") {
                    old_gen + 1
                } else {
                    old_gen
                };
                let meta = obj["metadata"].as_object_mut().unwrap();
                meta.insert("generation".into(), json!(gen));
                meta.insert("uid".into(), old["metadata"]["uid"].clone());
                meta.insert(
                    "creationTimestamp".into(),
                    old["metadata"]["creationTimestamp"].clone(),
                );
                "MODIFIED"
            }
            None => {
                st.uid += 1;
                let meta = obj["metadata"].as_object_mut().unwrap();
                meta.insert("generation".into(), json!(1));
                meta.insert(
                    "uid".into(),
                    json!(format!("00000000-0000-4000-8000-{:012}", st.uid)),
                );
                meta.insert("creationTimestamp".into(), json!(rfc3339_now()));
                "ADDED"
            }
        };
        st.objects.insert(key, obj.clone());
        self.emit(&mut st, event, coll, ns, obj.clone());
        obj
    }

    /// Change a stored object the way a controller would (status updates, annotations...).
    pub fn modify(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Value {
        let mut obj = self
            .get(api_version, kind, ns, name)
            .unwrap_or_else(|| panic!("no {kind} {ns}/{name}"));
        f(&mut obj);
        self.upsert(obj)
    }

    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let (coll, _, _) = collection(api_version, kind);
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&(coll, ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn delete(&self, api_version: &str, kind: &str, ns: &str, name: &str) {
        let (coll, _, _) = collection(api_version, kind);
        let mut st = self.state.lock().unwrap();
        if let Some(mut obj) = st
            .objects
            .remove(&(coll.clone(), ns.to_string(), name.to_string()))
        {
            st.rv += 1;
            obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            self.emit(&mut st, "DELETED", coll, ns.to_string(), obj);
        }
    }

    /// End every open watch (as an API server restart or a load balancer idle cut would).
    pub fn cut_watches(&self, bookmark: bool) {
        let _ = self.tx.send(Msg::Cut { bookmark });
    }

    /// Forget all watch history: resuming from any earlier resourceVersion now gets 410 Gone.
    pub fn compact(&self) {
        let mut st = self.state.lock().unwrap();
        st.compacted = st.rv;
        st.history.clear();
    }

    /// Answer the next `n` API requests with `code` (a Status body).
    pub fn fail_next(&self, n: usize, code: u16) {
        let mut st = self.state.lock().unwrap();
        st.fail_next.extend(std::iter::repeat_n(code, n));
    }

    pub fn pending_failures(&self) -> usize {
        self.state.lock().unwrap().fail_next.len()
    }

    /// Deny `resource` (`plural.group`, e.g. `ingresses.networking.k8s.io`, or `pods`) for one
    /// verb (get, list, watch, patch) or all of them, like a Role without that rule.
    pub fn forbid(&self, resource: &str, verb: Option<&str>) {
        self.state
            .lock()
            .unwrap()
            .forbidden
            .push((resource.to_string(), verb.map(str::to_string)));
    }

    /// How many watches were answered with ERROR 410 Expired.
    pub fn gone_sent(&self) -> usize {
        self.state.lock().unwrap().gone_sent
    }

    /// Every request seen, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn patches(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().patches.clone()
    }

    /// How many watches were started on a collection (`deployments`, `pods`...).
    pub fn watch_starts(&self, plural: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .watch_starts
            .get(plural)
            .copied()
            .unwrap_or(0)
    }

    /// Wait until at least `n` watches were started on `plural` (so a change is seen live).
    pub async fn wait_watch_starts(&self, plural: &str, n: usize) {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.watch_starts(plural) < n {
            assert!(
                tokio::time::Instant::now() < until,
                "no watch #{n} on {plural} within 10s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

struct Route {
    coll: String,
    plural: String,
    resource: String,
    namespace: String,
    name: Option<String>,
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, group, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (format!("/api/{v}"), String::new(), rest),
        ["apis", g, v, rest @ ..] => (format!("/apis/{g}/{v}"), g.to_string(), rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (ns.to_string(), plural.to_string(), None),
        ["namespaces", ns, plural, name] => {
            (ns.to_string(), plural.to_string(), Some(name.to_string()))
        }
        _ => return None,
    };
    let resource = if group.is_empty() {
        plural.clone()
    } else {
        format!("{plural}.{group}")
    };
    Some(Route {
        coll: format!("{prefix}/{plural}"),
        plural,
        resource,
        namespace,
        name,
    })
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<Mutex<State>>,
    tx: broadcast::Sender<Msg>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = query_map(req.uri().query());
    st.lock()
        .unwrap()
        .requests
        .push(format!("{method} {}", req.uri()));

    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {TOKEN}") {
        return json_response(401, &status(401, "Unauthorized", "Unauthorized"));
    }
    if path == "/version" {
        return json_response(
            200,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"}),
        );
    }
    let Some(r) = route(&path) else {
        return json_response(
            404,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, &r.name, watching) {
        (&hyper::Method::PATCH, _, _) => "patch",
        (_, _, true) => "watch",
        (_, Some(_), _) => "get",
        _ => "list",
    };
    {
        let mut s = st.lock().unwrap();
        if let Some(code) = s.fail_next.pop_front() {
            let reason = if code == 429 {
                "TooManyRequests"
            } else {
                "InternalError"
            };
            return json_response(
                code,
                &status(code, reason, &format!("injected fault {code}")),
            );
        }
        let denied = s
            .forbidden
            .iter()
            .any(|(res, v)| *res == r.resource && v.as_deref().is_none_or(|v| v == verb));
        if denied {
            let (plural, group) = r.resource.split_once('.').unwrap_or((&r.resource, ""));
            let what = match &r.name {
                Some(n) => format!("{} {n:?}", r.resource),
                None => r.resource.clone(),
            };
            let msg = format!(
                "{what} is forbidden: User \"system:serviceaccount:ci:gitops-canary\" cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{}\"",
                r.namespace
            );
            return json_response(403, &status(403, "Forbidden", &msg));
        }
    }
    let filter = Filter {
        coll: r.coll.clone(),
        namespace: r.namespace.clone(),
        labels: query
            .get("labelSelector")
            .filter(|s| !s.is_empty())
            .cloned(),
        fields: query
            .get("fieldSelector")
            .filter(|s| !s.is_empty())
            .cloned(),
    };
    match (method, r.name.clone(), watching) {
        (hyper::Method::GET, _, true) => watch(&r, filter, &query, st, tx),
        (hyper::Method::GET, Some(name), false) => {
            let s = st.lock().unwrap();
            match s
                .objects
                .get(&(r.coll.clone(), r.namespace.clone(), name.clone()))
            {
                Some(obj) => json_response(200, obj),
                None => json_response(
                    404,
                    &status(
                        404,
                        "NotFound",
                        &format!("{} {name:?} not found", r.resource),
                    ),
                ),
            }
        }
        (hyper::Method::GET, None, false) => {
            let s = st.lock().unwrap();
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((c, ns, _), obj)| filter.matches(c, ns, obj))
                .map(|(_, o)| o.clone())
                .collect();
            let list_kind = items
                .first()
                .and_then(|o| o["kind"].as_str())
                .map(|k| format!("{k}List"))
                .unwrap_or_else(|| "List".into());
            json_response(
                200,
                &json!({"kind": list_kind, "apiVersion": "v1", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
            )
        }
        (hyper::Method::PATCH, Some(name), _) => {
            let ctype = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return json_response(400, &status(400, "BadRequest", "unreadable body")),
            };
            if ctype != "application/merge-patch+json" {
                return json_response(
                    415,
                    &status(
                        415,
                        "UnsupportedMediaType",
                        &format!("fake supports merge patch only, got {ctype}"),
                    ),
                );
            }
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return json_response(400, &status(400, "BadRequest", "patch is not JSON"));
            };
            patch_object(&r, &name, patch, st, tx)
        }
        _ => json_response(
            405,
            &status(405, "MethodNotAllowed", "the fake does not serve this"),
        ),
    }
}

fn patch_object(
    r: &Route,
    name: &str,
    patch: Value,
    st: Arc<Mutex<State>>,
    tx: broadcast::Sender<Msg>,
) -> Response<Body> {
    let mut s = st.lock().unwrap();
    let key = (r.coll.clone(), r.namespace.clone(), name.to_string());
    let Some(old) = s.objects.get(&key).cloned() else {
        return json_response(
            404,
            &status(
                404,
                "NotFound",
                &format!("{} {name:?} not found", r.resource),
            ),
        );
    };
    let mut obj = old.clone();
    merge_patch(&mut obj, &patch);
    s.rv += 1;
    obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
    if old.get("spec") != obj.get("spec") {
        obj["metadata"]["generation"] =
            json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    }
    s.patches.push((format!("{}/{name}", r.coll), patch));
    s.objects.insert(key, obj.clone());
    let ev = Event {
        rv: s.rv,
        coll: r.coll.clone(),
        namespace: r.namespace.clone(),
        kind: "MODIFIED",
        object: obj.clone(),
    };
    s.history.push_back(ev.clone());
    while s.history.len() > s.history_limit {
        if let Some(old) = s.history.pop_front() {
            s.compacted = s.compacted.max(old.rv);
        }
    }
    let _ = tx.send(Msg::Event(ev));
    json_response(200, &obj)
}

fn watch(
    r: &Route,
    filter: Filter,
    query: &HashMap<String, String>,
    st: Arc<Mutex<State>>,
    tx: broadcast::Sender<Msg>,
) -> Response<Body> {
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let (out_tx, out_rx) = futures::channel::mpsc::unbounded::<Bytes>();
    // Subscribe and snapshot under one lock so no event falls between history and live.
    let (mut rx, backlog, mut last, gone) = {
        let mut s = st.lock().unwrap();
        let rx = tx.subscribe();
        // Counted once subscribed: a test that waits for this count cannot cut the watch early.
        *s.watch_starts.entry(r.plural.clone()).or_default() += 1;
        if since != 0 && since < s.compacted {
            (rx, Vec::new(), s.rv, true)
        } else if since == 0 {
            let added: Vec<Bytes> = s
                .objects
                .iter()
                .filter(|((c, ns, _), o)| filter.matches(c, ns, o))
                .map(|(_, o)| line("ADDED", o))
                .collect();
            (rx, added, s.rv, false)
        } else {
            let replay: Vec<Bytes> = s
                .history
                .iter()
                .filter(|e| e.rv > since && filter.matches(&e.coll, &e.namespace, &e.object))
                .map(|e| line(e.kind, &e.object))
                .collect();
            (rx, replay, s.rv.max(since), false)
        }
    };
    if gone {
        let msg = {
            let mut s = st.lock().unwrap();
            s.gone_sent += 1;
            format!("too old resource version: {since} ({})", s.compacted)
        };
        let _ = out_tx.unbounded_send(line("ERROR", &status(410, "Expired", &msg)));
    } else {
        for b in backlog {
            let _ = out_tx.unbounded_send(b);
        }
        let (api_version, kind) = bookmark_type(&r.coll);
        tokio::spawn(async move {
            let sleep = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600)));
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = out_tx_closed(&out_tx) => break,
                    msg = rx.recv() => match msg {
                        Ok(Msg::Event(ev)) => {
                            if ev.rv > last && filter.matches(&ev.coll, &ev.namespace, &ev.object) {
                                last = ev.rv;
                                if out_tx.unbounded_send(line(ev.kind, &ev.object)).is_err() {
                                    break;
                                }
                            }
                        }
                        Ok(Msg::Cut { bookmark }) => {
                            if bookmarks && bookmark {
                                let rv = st.lock().unwrap().rv;
                                let bm = json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": rv.to_string()}});
                                let _ = out_tx.unbounded_send(line("BOOKMARK", &bm));
                            }
                            break;
                        }
                        // Lagged or closed: end the watch, the client resumes or relists.
                        Err(_) => break,
                    }
                }
            }
        });
    }
    let body = StreamBody::new(out_rx.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(body))
        .unwrap()
}

async fn out_tx_closed(tx: &futures::channel::mpsc::UnboundedSender<Bytes>) {
    // The client went away: stop forwarding. Polled with the other select branches.
    while !tx.is_closed() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn bookmark_type(coll: &str) -> (String, String) {
    let segs: Vec<&str> = coll.trim_matches('/').split('/').collect();
    let api_version = match segs.as_slice() {
        ["api", v, _] => v.to_string(),
        ["apis", g, v, _] => format!("{g}/{v}"),
        _ => "v1".into(),
    };
    let kind = match segs.last().copied().unwrap_or("") {
        "pods" => "Pod",
        "deployments" => "Deployment",
        "ingresses" => "Ingress",
        "applications" => "Application",
        "kustomizations" => "Kustomization",
        _ => "Object",
    };
    (api_version, kind.to_string())
}

/// Object builders in the shapes the real controllers write.
pub mod objects {
    use serde_json::{json, Value};

    pub fn ingress(ns: &str, name: &str, weight: u32) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "annotations": {
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": weight.to_string()}},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": format!("{name}-svc"), "port": {"number": 80}}}}]}}]}})
    }

    /// A Deployment whose status the Deployment controller has fully reconciled.
    pub fn deployment(ns: &str, name: &str, replicas: i32, app: &str, track: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app, "track": track}},
                "template": {"metadata": {"labels": {"app": app, "track": track}},
                    "spec": {"containers": [{"name": "app", "image": format!("{app}:1")}]}}},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}})
    }

    /// Set a Deployment's status as the controller would after `observed` generation.
    pub fn set_rollout(d: &mut Value, observed: i64, updated: i32, ready: i32, available: i32) {
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        d["status"]["observedGeneration"] = json!(observed);
        d["status"]["replicas"] = json!(replicas.max(updated));
        d["status"]["updatedReplicas"] = json!(updated);
        d["status"]["readyReplicas"] = json!(ready);
        d["status"]["availableReplicas"] = json!(available);
    }

    pub fn pod(ns: &str, name: &str, app: &str, track: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "track": track, "pod-template-hash": "5d8f7"}},
            "spec": {"containers": [{"name": "app", "image": format!("{app}:1")}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "image": format!("{app}:1"), "imageID": "", "state": {"running": {"startedAt": "2026-11-27T00:00:00Z"}}}]}})
    }

    pub fn crash_loop(p: &mut Value, restarts: i32) {
        p["status"]["containerStatuses"][0] = json!({"name": "app", "ready": false, "restartCount": restarts,
            "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container=app"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}});
    }

    /// An HTTPRoute splitting `/` between `stable` and `<stable>-canary` on Gateway
    /// `infra/eg`, without status (no Gateway has looked at it yet).
    pub fn http_route(
        ns: &str,
        name: &str,
        stable: &str,
        canary_weight: u32,
        stable_weight: u32,
    ) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra", "name": "eg", "sectionName": "http"}],
                "hostnames": ["shop.example.com"],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"group": "", "kind": "Service", "name": stable, "port": 80, "weight": stable_weight},
                        {"group": "", "kind": "Service", "name": format!("{stable}-canary"), "port": 80, "weight": canary_weight}]}]}})
    }

    /// The status the Gateway's controller writes for the route's current generation:
    /// `Accepted` and `ResolvedRefs` with the given status and reason.
    pub fn route_status(route: &mut Value, accepted: (&str, &str), resolved: (&str, &str)) {
        let generation = route["metadata"]["generation"].as_i64().unwrap_or(1);
        let cond = |t: &str, (status, reason): (&str, &str)| {
            json!({"type": t, "status": status, "reason": reason, "message": "",
                "observedGeneration": generation, "lastTransitionTime": "2026-11-27T00:00:00Z"})
        };
        route["status"] = json!({"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra", "name": "eg", "sectionName": "http"},
            "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
            "conditions": [cond("Accepted", accepted), cond("ResolvedRefs", resolved)]}]});
    }

    pub fn argo_app(ns: &str, name: &str, revision: &str, sync: &str, health: &str) -> Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"project": "default", "source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "main"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"}},
            "status": {"sync": {"status": sync, "revision": revision}, "health": {"status": health}}})
    }

    pub fn flux_kustomization(
        ns: &str,
        name: &str,
        applied: &str,
        ready: &str,
        reason: &str,
    ) -> Value {
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"interval": "10m", "path": "./deploy", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "shop"}},
            "status": {"observedGeneration": 1, "lastAppliedRevision": applied, "lastAttemptedRevision": applied,
                "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": "Applied revision: ".to_string() + applied,
                    "lastTransitionTime": "2026-11-27T00:00:00Z"}]}})
    }
}
