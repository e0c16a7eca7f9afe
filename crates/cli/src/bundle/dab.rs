//! Databricks Asset Bundles: a `databricks.yml` with `bundle`, `variables`, `targets`,
//! `include` and `resources.model_serving_endpoints`, read as the Databricks CLI reads it, so a
//! team's existing bundle deploys to modelgate unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{Desired, Problem};

/// What a `databricks.yml` gives the other commands.
pub struct Loaded {
    /// `bundle.name`.
    pub name: Option<String>,
    /// The target used (the one given, else the one marked `default: true`).
    pub target: String,
    /// `targets.<target>.workspace.host`, if set.
    pub host: Option<String>,
    /// The endpoints.
    pub desired: Vec<Desired>,
}

fn read_yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_norway::from_str(&text).map_err(|e| e.to_string())
}

/// `over` merged into `base`: objects key by key, anything else replaced (as target overrides do).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Replaces `${var.NAME}`, `${bundle.target}` and `${bundle.name}` in every string of `v`;
/// unknown variables are reported at their JSON path.
fn substitute(v: &mut Value, vars: &BTreeMap<String, Value>, path: &str, unknown: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            // A string that is exactly one reference takes the variable's value as is (a number
            // stays a number); otherwise references are replaced as text.
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && !name.contains("${")
            {
                match vars.get(name) {
                    Some(value) => *v = value.clone(),
                    None => unknown.push((path.to_string(), name.to_string())),
                }
                return;
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let Some(end) = rest[start..].find('}') else { break };
                let name = &rest[start + 2..start + end];
                match vars.get(name) {
                    Some(Value::String(t)) => out.push_str(t),
                    Some(other) => out.push_str(&other.to_string()),
                    None => unknown.push((path.to_string(), name.to_string())),
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, vars, &format!("{path}[{i}]"), unknown);
            }
        }
        Value::Object(o) => {
            for (k, item) in o.iter_mut() {
                substitute(item, vars, &format!("{path}.{k}"), unknown);
            }
        }
        _ => {}
    }
}

/// Loads `databricks.yml` under `dir` for `target` (or its default one), with `overrides`
/// (`--var name=value`) over the target's and the defaults' variable values.
pub fn load(
    dir: &Path,
    target: Option<&str>,
    overrides: &[(String, String)],
) -> Result<(Loaded, Vec<Problem>), String> {
    let root_file = dir.join("databricks.yml");
    let root = read_yaml(&root_file).map_err(|e| format!("databricks.yml: {e}"))?;
    let targets = root.get("targets").and_then(Value::as_object).cloned().unwrap_or_default();
    let target = match target {
        Some(t) => t.to_string(),
        None => targets
            .iter()
            .find(|(_, t)| t.get("default").and_then(Value::as_bool) == Some(true))
            .map(|(name, _)| name.clone())
            .ok_or("databricks.yml: give a target with -t (no target is marked default: true)")?,
    };
    let target_block = match targets.get(&target) {
        Some(t) => t.clone(),
        None if targets.is_empty() => Value::Null,
        None => {
            return Err(format!(
                "databricks.yml: no target '{target}' (targets: {})",
                targets.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    };
    let name = root.pointer("/bundle/name").and_then(Value::as_str).map(str::to_string);

    let mut vars = BTreeMap::new();
    for (k, v) in root.get("variables").and_then(Value::as_object).into_iter().flatten() {
        if let Some(d) = v.get("default") {
            vars.insert(format!("var.{k}"), d.clone());
        }
    }
    for (k, v) in target_block.get("variables").and_then(Value::as_object).into_iter().flatten() {
        let value = v.get("default").cloned().unwrap_or_else(|| v.clone());
        vars.insert(format!("var.{k}"), value);
    }
    for (k, v) in overrides {
        vars.insert(format!("var.{k}"), Value::String(v.clone()));
    }
    vars.insert("bundle.target".into(), Value::String(target.clone()));
    if let Some(n) = &name {
        vars.insert("bundle.name".into(), Value::String(n.clone()));
    }

    // Each endpoint and the file that defines it: the root, then the included files.
    let mut problems = Vec::new();
    let mut endpoints: Vec<(String, String, Value)> = Vec::new();
    let mut collect = |file: &str, doc: &Value| {
        for (key, e) in
            doc.pointer("/resources/model_serving_endpoints").and_then(Value::as_object).into_iter().flatten()
        {
            endpoints.push((file.to_string(), key.clone(), e.clone()));
        }
    };
    collect("databricks.yml", &root);
    for pattern in root.get("include").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let full = dir.join(pattern).to_string_lossy().into_owned();
        let mut paths: Vec<_> =
            glob::glob(&full).map_err(|e| format!("databricks.yml:include: {e}"))?.filter_map(Result::ok).collect();
        paths.sort();
        for path in paths {
            let file = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
            match read_yaml(&path) {
                Ok(doc) => collect(&file, &doc),
                Err(e) => problems.push(Problem { file, field: String::new(), message: e }),
            }
        }
    }
    // Target-level overrides of resources, merged over what the files define.
    let overrides_of = target_block.pointer("/resources/model_serving_endpoints").cloned().unwrap_or(Value::Null);

    let mut desired = Vec::new();
    for (file, key, mut body) in endpoints {
        if let Some(o) = overrides_of.get(&key) {
            merge(&mut body, o);
        }
        let prefix = format!("resources.model_serving_endpoints.{key}");
        let mut unknown = Vec::new();
        substitute(&mut body, &vars, &prefix, &mut unknown);
        for (path, var) in unknown {
            problems.push(Problem {
                file: file.clone(),
                field: path,
                message: format!("${{{var}}} is not defined (variables, targets.{target}.variables or --var)"),
            });
        }
        let permissions = body.as_object_mut().and_then(|o| o.remove("permissions"));
        let permissions = match permissions {
            None => None,
            Some(Value::Array(p)) => Some(p),
            Some(_) => {
                problems.push(Problem {
                    file: file.clone(),
                    field: format!("{prefix}.permissions"),
                    message: "must be a list of {level, user_name | group_name | service_principal_name}".into(),
                });
                None
            }
        };
        let name = body.get("name").and_then(Value::as_str).map_or_else(|| key.clone(), str::to_string);
        if let Some(o) = body.as_object_mut() {
            o.insert("name".into(), Value::String(name.clone()));
        }
        desired.push(Desired { file, prefix, name, body, permissions });
    }
    let host = target_block.pointer("/workspace/host").and_then(Value::as_str).map(str::to_string);
    Ok((Loaded { name, target, host, desired }, problems))
}
