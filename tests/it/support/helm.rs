//! Helm as the end-to-end sync agent runs it: a Flux `HelmRelease` whose chart is a directory
//! of the GitOps repository (`sourceRef: GitRepository`) is rendered with Helm's Go SDK (PyPI
//! helm-python-sdk, through `tests/cases/helm/render.py`) with the release's `spec.values`, and
//! what it renders is applied, as Flux's helm-controller would. The chart's own files are
//! templates, never applied as they are.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// Can charts be rendered here? Prints SKIP when not (a failure under
/// `GITOPS_CANARY_REQUIRE_TOOLS`).
pub fn available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import helm_python; helm_python.helm_sdk_version()"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        super::git_server::skip(
            "Helm's Go SDK for Python is not installed (bash .ci/install-helm.sh); the Helm scenarios need it",
        );
    }
    ok
}

/// The directories of the repository that are charts (they hold a `Chart.yaml`).
pub fn chart_dirs<'a>(files: impl Iterator<Item = &'a str>) -> Vec<String> {
    files
        .filter_map(|f| f.strip_suffix("Chart.yaml"))
        .filter(|d| d.is_empty() || d.ends_with('/'))
        .map(str::to_string)
        .collect()
}

/// Is `file` part of one of the `charts`?
pub fn in_chart(file: &str, charts: &[String]) -> bool {
    charts.iter().any(|c| file.starts_with(c.as_str()))
}

/// The releases among parsed documents whose chart is a path of the repository.
fn local_releases(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| {
            d["kind"] == "HelmRelease"
                && d["spec"]["chart"]["spec"]["sourceRef"]["kind"] == "GitRepository"
        })
        .collect()
}

/// Does any of these files hold a release of a chart in the repository?
pub fn has_local_release(texts: &[(String, String)]) -> bool {
    texts.iter().any(|(_, t)| {
        serde_saphyr::from_multiple::<Value>(t).is_ok_and(|docs| !local_releases(&docs).is_empty())
    })
}

/// What each local release in `texts` renders, its chart read from the tree at `root`: one
/// (name, manifests) per release.
pub fn render_releases(
    root: &Path,
    texts: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (file, text) in texts {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| format!("{file}: {e}"))?;
        for release in local_releases(&docs) {
            let chart = release["spec"]["chart"]["spec"]["chart"]
                .as_str()
                .ok_or_else(|| format!("{file}: the HelmRelease names no chart"))?;
            let name = release["spec"]["releaseName"]
                .as_str()
                .or(release["metadata"]["name"].as_str())
                .unwrap_or("release");
            let namespace = release["spec"]["targetNamespace"]
                .as_str()
                .or(release["metadata"]["namespace"].as_str())
                .unwrap_or("default");
            let req = json!({
                "chart": root.join(chart.trim_start_matches("./")),
                "values": release["spec"]["values"],
                "name": name,
                "namespace": namespace,
            });
            let rendered = render(&req).map_err(|e| format!("{file}: helm: {e}"))?;
            out.push((format!("{file} (helm release {name})"), rendered));
        }
    }
    Ok(out)
}

/// Render one chart: its manifests, one YAML stream.
fn render(req: &Value) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/helm/render.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("python3 stdin")?;
        stdin
            .write_all(req.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let templates: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(templates
        .into_values()
        .filter(|m| !m.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n---\n"))
}
