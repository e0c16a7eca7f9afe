//! Field-level differences between two JSON documents, one line per changed field:
//! `config.served_entities[0].external_model.name: "gpt-4o" → "gpt-4o-mini"`. The bundle plan
//! and the console's config-version view both show changes this way.

use serde_json::Value;

/// Appends to `out` one line per field that differs between `a` and `b`, under `path`.
pub fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                diff(&p, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => {
            let show = |v: &Value| if v.is_null() { "(unset)".to_string() } else { v.to_string() };
            out.push(format!("{path}: {} → {}", show(a), show(b)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_per_changed_field() {
        let mut out = Vec::new();
        diff(
            "config",
            &json!({"a": 1, "b": [1, 2], "c": {"d": "x"}}),
            &json!({"a": 1, "b": [1, 3], "c": {}}),
            &mut out,
        );
        assert_eq!(out, vec!["config.b[1]: 2 → 3", "config.c.d: \"x\" → (unset)"]);
    }
}
