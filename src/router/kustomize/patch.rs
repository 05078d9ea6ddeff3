//! The two patch languages kustomize applies, on plain JSON values: strategic merge (for an
//! Ingress, whose lists carry no merge keys, a JSON merge patch plus the `$patch` directives)
//! and JSON 6902 (RFC 6902 operations on RFC 6901 pointers).

use serde_json::Value;

/// What a strategic-merge patch does to one object.
#[derive(Debug, PartialEq)]
pub enum Merged {
    Kept,
    Deleted,
}

/// Apply a strategic-merge patch to `target`.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) -> Merged {
    if patch.get("$patch").and_then(Value::as_str) == Some("delete") {
        return Merged::Deleted;
    }
    merge(target, patch);
    Merged::Kept
}

fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.retain(|k, _| !k.starts_with('$'));
        *target = Value::Object(clean);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        if v.is_object() {
            let slot = t.entry(k.clone()).or_insert(Value::Null);
            merge(slot, v);
        } else {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// Split an RFC 6901 pointer into unescaped tokens.
pub(crate) fn pointer_tokens(ptr: &str) -> Result<Vec<String>, String> {
    if ptr.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = ptr.strip_prefix('/') else {
        return Err(format!("JSON pointer {ptr:?} does not start with /"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'a>(v: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = v;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| format!("bad index {t:?}"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => return Err(format!("{t:?} is under a scalar")),
        };
    }
    Ok(cur)
}

fn get(v: &Value, tokens: &[String]) -> Result<Value, String> {
    let mut cur = v;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| format!("bad index {t:?}"))?;
                a.get(i).ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => return Err(format!("{t:?} is under a scalar")),
        };
    }
    Ok(cur.clone())
}

fn add(v: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, head)) = tokens.split_last() else {
        *v = value;
        return Ok(());
    };
    match parent_mut(v, head)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index {last:?}"))?;
                if i > a.len() {
                    return Err(format!("index {i} out of range"));
                }
                a.insert(i, value);
            }
        }
        _ => return Err(format!("cannot add {last:?} under a scalar")),
    }
    Ok(())
}

fn remove(v: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let Some((last, head)) = tokens.split_last() else {
        return Err("cannot remove the whole object".into());
    };
    match parent_mut(v, head)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("missing key {last:?}")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("cannot remove {last:?} under a scalar")),
    }
}

/// One RFC 6902 operation.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub op: String,
    pub path: Vec<String>,
    pub from: Option<Vec<String>>,
    pub value: Option<Value>,
}

/// Apply one operation.
pub(crate) fn apply_op(v: &mut Value, op: &Op) -> Result<(), String> {
    match op.op.as_str() {
        "add" => add(v, &op.path, op.value.clone().unwrap_or(Value::Null)),
        "remove" => remove(v, &op.path).map(|_| ()),
        "replace" => {
            remove(v, &op.path)?;
            add(v, &op.path, op.value.clone().unwrap_or(Value::Null))
        }
        "move" => {
            let from = op.from.as_ref().ok_or("move without from")?;
            let x = remove(v, from)?;
            add(v, &op.path, x)
        }
        "copy" => {
            let from = op.from.as_ref().ok_or("copy without from")?;
            let x = get(v, from)?;
            add(v, &op.path, x)
        }
        "test" => {
            let x = get(v, &op.path)?;
            if Some(&x) == op.value.as_ref() {
                Ok(())
            } else {
                Err(format!("test of /{} failed", op.path.join("/")))
            }
        }
        other => Err(format!("unknown JSON 6902 operation {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_semantics() {
        let mut t = json!({"metadata": {"name": "a", "annotations": {"x": "1", "y": "2"}}, "spec": {"rules": [1, 2]}});
        let p = json!({"metadata": {"annotations": {"x": null, "z": "3"}}, "spec": {"rules": [3]}});
        assert_eq!(strategic_merge(&mut t, &p), Merged::Kept);
        assert_eq!(
            t,
            json!({"metadata": {"name": "a", "annotations": {"y": "2", "z": "3"}}, "spec": {"rules": [3]}})
        );
        assert_eq!(
            strategic_merge(&mut t, &json!({"$patch": "delete"})),
            Merged::Deleted
        );
    }

    #[test]
    fn json6902_ops() {
        let mut t = json!({"metadata": {"annotations": {"a": "1"}}, "l": [1]});
        let op = |o: &str, p: &str, v: Option<Value>| Op {
            op: o.into(),
            path: pointer_tokens(p).unwrap(),
            from: None,
            value: v,
        };
        apply_op(
            &mut t,
            &op("add", "/metadata/annotations/x~1y", Some(json!("5"))),
        )
        .unwrap();
        apply_op(
            &mut t,
            &op("replace", "/metadata/annotations/a", Some(json!("2"))),
        )
        .unwrap();
        apply_op(&mut t, &op("add", "/l/-", Some(json!(2)))).unwrap();
        apply_op(&mut t, &op("remove", "/l/0", None)).unwrap();
        assert_eq!(
            t,
            json!({"metadata": {"annotations": {"a": "2", "x/y": "5"}}, "l": [2]})
        );
        assert!(apply_op(
            &mut t,
            &op("replace", "/metadata/labels/a", Some(json!("1")))
        )
        .is_err());
    }
}
