//! A rendered object: its value as JSON, the ids it had on the way (kustomize matches patches
//! on any of them), where it is defined, and what last wrote each of its weights.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::manifest::PathSeg;
use crate::router::nginx;
use crate::yaml::{NodeId, NodeKind, Stream, Style};

/// Where an object is defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Src {
    pub file: PathBuf,
    pub document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub line: usize,
}

/// What last wrote a weight of a rendered object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OriginKind {
    /// The resource's own value.
    Resource,
    /// A strategic-merge patch.
    Patch,
    /// A JSON 6902 operation.
    Json6902,
    /// A kustomization's `commonAnnotations`.
    CommonAnnotations,
}

/// Where a value lives, precisely enough to edit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// A scalar in a YAML file: document and path.
    Yaml { document: usize, path: Vec<PathSeg> },
    /// A scalar inside an inline patch: the patch is the block scalar at `scalar` in the
    /// kustomization (document 1), the value is at `document`/`path` of the patch's text.
    Inline {
        scalar: Vec<PathSeg>,
        document: usize,
        path: Vec<PathSeg>,
    },
}

/// The file and line that decide a rendered weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
    pub kind: OriginKind,
    /// The kustomization directory that applied it (the resource's own file for `resource`).
    pub by: PathBuf,
    /// `None` when the value cannot be edited where it is (a `copy`/`move` operation).
    #[serde(skip)]
    pub loc: Option<Loc>,
}

/// A namespace and name an object had (kustomize matches patches on any of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Id {
    pub namespace: Option<String>,
    pub name: String,
}

/// What wrote each tracked value of a rendered object, by its JSON pointer tokens (see
/// [`is_tracked`]); a tracked value that is absent has no entry.
pub type Origins = BTreeMap<Vec<String>, Origin>;

/// One rendered object (an Ingress or an HTTPRoute, or a Service or Deployment behind them).
#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    pub value: Value,
    /// Every id it had, the original first, the rendered last.
    pub ids: Vec<Id>,
    pub src: Src,
    /// What wrote the values [`is_tracked`] names for its kind.
    pub origins: Origins,
}

/// `*` in a pattern stands for a list index.
const INGRESS_TRACKED: [&[&str]; 1] = [&["metadata", "annotations", nginx::WEIGHT]];
const HTTPROUTE_TRACKED: [&[&str]; 3] = [
    &["spec", "rules", "*"],
    &["spec", "rules", "*", "backendRefs", "*"],
    &["spec", "rules", "*", "backendRefs", "*", "weight"],
];

fn patterns(kind: &str) -> &'static [&'static [&'static str]] {
    match kind {
        "Ingress" => &INGRESS_TRACKED,
        crate::router::gateway::KIND => &HTTPROUTE_TRACKED,
        _ => &[],
    }
}

fn token_matches(pattern: &str, token: &str) -> bool {
    if pattern == "*" {
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
    } else {
        pattern == token
    }
}

/// Is the value at `tokens` one whose origin is tracked for an object of `kind`: the canary
/// weight annotation of an Ingress; each rule, backendRef and backendRef weight of an
/// HTTPRoute (a rule's or backendRef's origin is where a missing weight would go).
pub fn is_tracked(kind: &str, tokens: &[String]) -> bool {
    patterns(kind)
        .iter()
        .any(|p| p.len() == tokens.len() && p.iter().zip(tokens).all(|(p, t)| token_matches(p, t)))
}

/// Can a tracked value sit at or under `tokens` (so a change there may move an origin)?
pub(super) fn may_hold_tracked(kind: &str, tokens: &[String]) -> bool {
    patterns(kind)
        .iter()
        .any(|p| p.len() >= tokens.len() && p.iter().zip(tokens).all(|(p, t)| token_matches(p, t)))
}

/// The pointer tokens of an Ingress's canary weight.
pub(super) fn ingress_weight() -> Vec<String> {
    INGRESS_TRACKED[0].iter().map(|t| t.to_string()).collect()
}

/// The pointer tokens of an HTTPRoute rule.
pub(super) fn rule_ref(rule: usize) -> Vec<String> {
    vec!["spec".into(), "rules".into(), rule.to_string()]
}

/// The pointer tokens of an HTTPRoute backendRef (`weight`: of its weight).
pub fn backend_ref(rule: usize, backend: usize, weight: bool) -> Vec<String> {
    let mut t = rule_ref(rule);
    t.extend(["backendRefs".into(), backend.to_string()]);
    if weight {
        t.push("weight".into());
    }
    t
}

impl Obj {
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn qualified_name(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_string(),
        }
    }

    /// What wrote an Ingress's rendered canary weight (`None`: absent, or removed).
    pub fn weight(&self) -> Option<&Origin> {
        self.origins.get(&ingress_weight())
    }

    pub(super) fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub(super) fn group_version(&self) -> (&str, &str) {
        split_api(self.value["apiVersion"].as_str().unwrap_or(""))
    }

    /// The rendered weight annotation as a string (numbers as written).
    pub fn weight_raw(&self) -> Option<String> {
        match &self.value["metadata"]["annotations"][nginx::WEIGHT] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    pub(super) fn annotations(&self) -> Option<&serde_json::Map<String, Value>> {
        self.value["metadata"]["annotations"].as_object()
    }

    pub(super) fn labels(&self) -> Option<&serde_json::Map<String, Value>> {
        self.value["metadata"]["labels"].as_object()
    }

    pub(super) fn meta_mut(&mut self) -> &mut serde_json::Map<String, Value> {
        if !self.value["metadata"].is_object() {
            self.value["metadata"] = Value::Object(Default::default());
        }
        self.value["metadata"].as_object_mut().expect("object")
    }

    pub(super) fn remember_id(&mut self) {
        let id = Id {
            namespace: self.namespace().map(String::from),
            name: self.name().to_string(),
        };
        if self.ids.last() != Some(&id) {
            self.ids.push(id);
        }
    }

    pub(super) fn add_to_map(&mut self, key: &str, pairs: &[(String, Value)]) {
        let meta = self.meta_mut();
        let m = meta
            .entry(key.to_string())
            .or_insert(Value::Object(Default::default()));
        if !m.is_object() {
            *m = Value::Object(Default::default());
        }
        let m = m.as_object_mut().expect("object");
        for (k, v) in pairs {
            m.insert(k.clone(), v.clone());
        }
    }
}

pub(super) fn split_api(api: &str) -> (&str, &str) {
    match api.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api),
    }
}

/// A YAML node as JSON, with plain scalars typed as YAML 1.2's core schema reads them.
pub fn to_json(s: &Stream, id: NodeId) -> Value {
    match &s.node(s.resolve(id)).kind {
        NodeKind::Scalar {
            value,
            style,
            tagged,
        } => {
            if *style != Style::Plain || *tagged {
                return Value::String(value.clone());
            }
            match value.as_str() {
                "" | "~" | "null" | "Null" | "NULL" => Value::Null,
                "true" | "True" | "TRUE" => Value::Bool(true),
                "false" | "False" | "FALSE" => Value::Bool(false),
                v => {
                    if let Ok(i) = v.parse::<i64>() {
                        Value::from(i)
                    } else if let Some(f) = v
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .and_then(serde_json::Number::from_f64)
                    {
                        Value::Number(f)
                    } else {
                        Value::String(v.to_string())
                    }
                }
            }
        }
        NodeKind::Seq(items) => Value::Array(items.iter().map(|i| to_json(s, *i)).collect()),
        NodeKind::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                let key = s
                    .str(*k)
                    .map(String::from)
                    .unwrap_or_else(|| to_json(s, *k).to_string());
                m.insert(key, to_json(s, *v));
            }
            Value::Object(m)
        }
        NodeKind::Alias(_) => Value::Null,
    }
}
