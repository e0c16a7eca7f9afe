//! A streamed answer put back together as the whole answer it carries (for the response cache):
//! per choice, the text (or completion text) concatenated, tool calls merged by their index, the
//! finish reason; the usage chunk's usage.

use std::collections::BTreeMap;

use axum::body::Bytes;
use serde_json::{Map, Value, json};

/// The chunks of one stream, gathered.
#[derive(Debug, Default)]
pub(super) struct Assembled {
    head: Map<String, Value>,
    completion: bool,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
}

#[derive(Debug, Default)]
struct Choice {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: BTreeMap<u64, ToolCall>,
    finish_reason: Option<Value>,
}

#[derive(Debug, Default)]
struct ToolCall {
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

fn append(to: &mut Option<String>, piece: Option<&Value>) {
    if let Some(s) = piece.and_then(Value::as_str) {
        to.get_or_insert_with(String::new).push_str(s);
    }
}

impl Assembled {
    /// Adds one chunk (a `chat.completion.chunk` or streamed `text_completion`).
    pub fn add(&mut self, chunk: &Value) {
        let Some(c) = chunk.as_object() else { return };
        for k in ["id", "created", "model", "system_fingerprint"] {
            if let Some(v) = c.get(k).filter(|v| !v.is_null()) {
                self.head.entry(k.to_string()).or_insert_with(|| v.clone());
            }
        }
        if c.get("object").and_then(Value::as_str) == Some("text_completion") {
            self.completion = true;
        }
        if let Some(u) = c.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        for choice in c.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let slot = self.choices.entry(index).or_default();
            if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                slot.finish_reason = Some(reason.clone());
            }
            append(&mut slot.content, choice.get("text"));
            let Some(delta) = choice.get("delta") else { continue };
            if let Some(role) = delta.get("role").filter(|r| !r.is_null()) {
                slot.role = Some(role.clone());
            }
            append(&mut slot.content, delta.get("content"));
            append(&mut slot.refusal, delta.get("refusal"));
            for (k, call) in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let at = call.get("index").and_then(Value::as_u64).unwrap_or(k as u64);
                let t = slot.tool_calls.entry(at).or_default();
                if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                    t.id = Some(id.clone());
                }
                if let Some(kind) = call.get("type").filter(|v| !v.is_null()) {
                    t.kind = Some(kind.clone());
                }
                if let Some(f) = call.get("function") {
                    t.name.push_str(f.get("name").and_then(Value::as_str).unwrap_or_default());
                    t.arguments.push_str(f.get("arguments").and_then(Value::as_str).unwrap_or_default());
                }
            }
        }
    }

    /// The whole answer the chunks carried; `None` if they carried no choice.
    pub fn answer(&self) -> Option<Bytes> {
        if self.choices.is_empty() {
            return None;
        }
        let mut out = self.head.clone();
        let choices: Vec<Value> = self
            .choices
            .iter()
            .map(|(index, c)| {
                if self.completion {
                    return json!({"index": index, "text": c.content.clone().unwrap_or_default(),
                                  "logprobs": null, "finish_reason": c.finish_reason});
                }
                let mut message = Map::new();
                message.insert("role".into(), c.role.clone().unwrap_or_else(|| Value::from("assistant")));
                message.insert("content".into(), c.content.clone().map_or(Value::Null, Value::from));
                if let Some(r) = &c.refusal {
                    message.insert("refusal".into(), Value::from(r.as_str()));
                }
                if !c.tool_calls.is_empty() {
                    let calls: Vec<Value> = c
                        .tool_calls
                        .values()
                        .map(|t| {
                            json!({"id": t.id, "type": t.kind.clone().unwrap_or_else(|| Value::from("function")),
                                   "function": {"name": t.name, "arguments": t.arguments}})
                        })
                        .collect();
                    message.insert("tool_calls".into(), Value::Array(calls));
                }
                json!({"index": index, "message": message, "finish_reason": c.finish_reason})
            })
            .collect();
        let object = if self.completion { "text_completion" } else { "chat.completion" };
        out.insert("object".into(), Value::from(object));
        out.insert("choices".into(), Value::Array(choices));
        if let Some(u) = &self.usage {
            out.insert("usage".into(), u.clone());
        }
        serde_json::to_vec(&Value::Object(out)).ok().map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_chunks_become_the_whole_answer_with_tool_calls_merged() {
        let mut a = Assembled::default();
        for c in [
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "t1", "type": "function", "function": {"name": "get_", "arguments": "{\"a\""}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"name": "weather", "arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
        ] {
            a.add(&c);
        }
        let v: Value = serde_json::from_slice(&a.answer().unwrap()).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!((v["id"].as_str(), v["created"].as_i64(), v["model"].as_str()), (Some("c1"), Some(5), Some("m")));
        let m = &v["choices"][0]["message"];
        assert_eq!((m["role"].as_str(), m["content"].as_str()), (Some("assistant"), Some("Hello")));
        let call = &m["tool_calls"][0];
        assert_eq!((call["id"].as_str(), call["function"]["name"].as_str()), (Some("t1"), Some("get_weather")));
        assert_eq!(call["function"]["arguments"], "{\"a\": 1}");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["total_tokens"], 5);
    }

    #[test]
    fn completion_chunks_and_empty_streams() {
        let mut a = Assembled::default();
        a.add(&json!({"object": "text_completion", "choices": [{"index": 1, "text": "b"}, {"index": 0, "text": "a"}]}));
        a.add(&json!({"object": "text_completion", "choices": [{"index": 0, "text": "c", "finish_reason": "stop"}]}));
        let v: Value = serde_json::from_slice(&a.answer().unwrap()).unwrap();
        assert_eq!((v["choices"][0]["text"].as_str(), v["choices"][1]["text"].as_str()), (Some("ac"), Some("b")));
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(Assembled::default().answer().is_none());
    }
}
