//! Built-in endpoint templates: the settings a kind of endpoint usually wants (rate limits,
//! guardrails, usage tracking, tags), that a create body or a bundle file starts from with
//! `"template": NAME` and overrides field by field.

use serde_json::{Value, json};

/// A template: its name, the task its endpoints serve, what it is for, and the create-body
/// fields it gives.
pub struct Template {
    /// `chatbot`, `document-analysis`, `code-generation`, `embeddings-search`.
    pub name: &'static str,
    /// The task every served entity must have.
    pub task: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Create-body fields (without `name` and `config`).
    pub body: fn() -> Value,
}

/// Every built-in template.
pub const TEMPLATES: [Template; 4] = [
    Template {
        name: "chatbot",
        task: "llm/v1/chat",
        description: "A conversational assistant for people: per-user call limits, PII masked both ways, usage tracked.",
        body: || {
            json!({
                "ai_gateway": {
                    "usage_tracking_config": {"enabled": true},
                    "rate_limits": [{"key": "user", "calls": 60, "renewal_period": "minute"}],
                    "guardrails": {"input": {"pii": {"behavior": "MASK"}}, "output": {"pii": {"behavior": "MASK"}}}
                },
                "tags": [{"key": "use_case", "value": "chatbot"}]
            })
        },
    },
    Template {
        name: "document-analysis",
        task: "llm/v1/chat",
        description: "Long documents in, structured answers out: per-user token limits, PII blocked on input.",
        body: || {
            json!({
                "ai_gateway": {
                    "usage_tracking_config": {"enabled": true},
                    "rate_limits": [{"key": "user", "tokens": 200000, "renewal_period": "minute"}],
                    "guardrails": {"input": {"pii": {"behavior": "BLOCK"}}}
                },
                "tags": [{"key": "use_case", "value": "document-analysis"}]
            })
        },
    },
    Template {
        name: "code-generation",
        task: "llm/v1/chat",
        description: "Code assistants and agents: higher call limits, secrets and PII kept out of prompts.",
        body: || {
            json!({
                "ai_gateway": {
                    "usage_tracking_config": {"enabled": true},
                    "rate_limits": [{"key": "user", "calls": 120, "tokens": 400000, "renewal_period": "minute"}],
                    "guardrails": {"input": {"pii": {"behavior": "MASK"}}}
                },
                "tags": [{"key": "use_case", "value": "code-generation"}]
            })
        },
    },
    Template {
        name: "embeddings-search",
        task: "llm/v1/embeddings",
        description: "Embeddings for search and retrieval: an endpoint-wide call limit sized for batch indexing.",
        body: || {
            json!({
                "ai_gateway": {
                    "usage_tracking_config": {"enabled": true},
                    "rate_limits": [{"key": "endpoint", "calls": 3000, "renewal_period": "minute"}]
                },
                "tags": [{"key": "use_case", "value": "embeddings-search"}]
            })
        },
    },
];

/// The template named `name`.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// `body` (a create body) on top of the template: objects merge key by key, the body's values
/// win; tags merge by key; lists are the body's when it gives one.
pub fn apply(t: &Template, body: &Value) -> Value {
    let mut out = (t.body)();
    merge(&mut out, body);
    out
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if k == "tags"
                    && let (Some(Value::Array(old)), Value::Array(new)) = (b.get_mut(k), v)
                {
                    let keys: Vec<&Value> = new.iter().filter_map(|t| t.get("key")).collect();
                    old.retain(|t| t.get("key").is_none_or(|k| !keys.contains(&k)));
                    old.extend(new.iter().cloned());
                    continue;
                }
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_overrides_the_template_field_by_field() {
        let t = find("chatbot").expect("the chatbot template");
        let body = json!({"name": "c", "ai_gateway": {"rate_limits": [{"key": "user", "calls": 5, "renewal_period": "minute"}]},
                          "tags": [{"key": "team", "value": "ml"}, {"key": "use_case", "value": "support"}]});
        let out = apply(t, &body);
        assert_eq!(out["ai_gateway"]["rate_limits"][0]["calls"], 5, "the body's list replaces the template's");
        assert_eq!(
            out["ai_gateway"]["guardrails"]["input"]["pii"]["behavior"], "MASK",
            "what the body leaves out comes from the template"
        );
        let tags = out["tags"].as_array().map_or(0, Vec::len);
        assert_eq!(tags, 2, "tags merge by key: {out}");
        assert!(find("nope").is_none());
    }
}
