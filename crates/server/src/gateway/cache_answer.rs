//! A query answered from the response cache: the stored whole answer, sent whole or, to a client
//! that asked for a stream, as the stream of chunks that carries the same answer.

use axum::body::Body as HttpBody;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use modelgate_providers::Task;
use serde_json::{Map, Value, json};

use super::query::QueryFacts;
use super::settlement::Settlement;
use crate::policy::cache::Entry;
use crate::snapshot::LiveEndpoint;

/// The answer to a query of `ep` found in the cache at `now_ms`; the settlement records it as a
/// cache hit.
pub(super) fn answer(
    ep: &LiveEndpoint,
    task: Task,
    facts: &QueryFacts,
    entry: &Entry,
    now_ms: i64,
    settlement: &mut Option<Settlement>,
) -> Response {
    if let Some(s) = settlement.as_mut() {
        s.hit(ep.entities.iter().find(|e| e.name == entry.entity), entry.body.clone());
    }
    let mut resp = match (facts.stream, task) {
        (true, Task::Chat | Task::Completions) => {
            let events = as_stream(task, &entry.body, facts.include_usage());
            let mut resp = HttpBody::from(events).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        _ => ([(header::CONTENT_TYPE, "application/json")], entry.body.clone()).into_response(),
    };
    resp.headers_mut().insert(header::AGE, HeaderValue::from(entry.age_secs(now_ms)));
    super::attempt::with_entity(resp, &entry.entity)
}

/// A whole chat or completions answer as the server-sent events of its stream: per choice, one
/// chunk with everything it says and one with why it finished; the usage chunk if asked for;
/// `[DONE]`.
fn as_stream(task: Task, body: &[u8], include_usage: bool) -> String {
    let answer: Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
    let object = if task == Task::Chat { "chat.completion.chunk" } else { "text_completion" };
    let mut base = Map::new();
    for k in ["id", "created", "model", "system_fingerprint"] {
        if let Some(v) = answer.get(k) {
            base.insert(k.to_string(), v.clone());
        }
    }
    base.insert("object".into(), Value::from(object));
    let chunk = |choices: Value| {
        let mut c = base.clone();
        c.insert("choices".into(), choices);
        format!("data: {}\n\n", Value::Object(c))
    };
    let mut out = String::new();
    let choices = answer.get("choices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or_else(|| Value::from(i));
        let finish_reason = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        let logprobs = choice.get("logprobs").cloned().unwrap_or(Value::Null);
        if task == Task::Chat {
            let mut delta = choice.get("message").and_then(Value::as_object).cloned().unwrap_or_default();
            // Streamed tool calls carry their position in the list.
            if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                for (k, call) in calls.iter_mut().enumerate() {
                    if let Some(o) = call.as_object_mut() {
                        o.entry("index").or_insert(Value::from(k));
                    }
                }
            }
            out.push_str(&chunk(
                json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": null}]),
            ));
            out.push_str(&chunk(json!([{"index": index, "delta": {}, "finish_reason": finish_reason}])));
        } else {
            let text = choice.get("text").cloned().unwrap_or_else(|| Value::from(""));
            out.push_str(&chunk(
                json!([{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}]),
            ));
        }
    }
    if include_usage && let Some(usage) = answer.get("usage") {
        let mut c = base.clone();
        c.insert("choices".into(), json!([]));
        c.insert("usage".into(), usage.clone());
        out.push_str(&format!("data: {}\n\n", Value::Object(c)));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(s: &str) -> Vec<Value> {
        s.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| if d == "[DONE]" { Value::from("[DONE]") } else { serde_json::from_str(d).unwrap() })
            .collect()
    }

    #[test]
    fn a_chat_answer_streams_as_its_chunks() {
        let answer = json!({"id": "c1", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there",
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
        let out = events(&as_stream(Task::Chat, answer.to_string().as_bytes(), true));
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0]["object"], "chat.completion.chunk");
        assert_eq!((out[0]["id"].as_str(), out[0]["created"].as_i64()), (Some("c1"), Some(7)));
        let delta = &out[0]["choices"][0]["delta"];
        assert_eq!((delta["role"].as_str(), delta["content"].as_str()), (Some("assistant"), Some("Hi there")));
        assert_eq!(delta["tool_calls"][0]["index"], 0);
        assert_eq!(delta["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(out[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            (out[2]["choices"].as_array().map(Vec::len), out[2]["usage"]["total_tokens"].as_i64()),
            (Some(0), Some(5))
        );
        assert_eq!(out[3], "[DONE]");
        let without_usage = events(&as_stream(Task::Chat, answer.to_string().as_bytes(), false));
        assert!(without_usage.iter().all(|e| e.get("usage").is_none()) && without_usage.len() == 3);
    }

    #[test]
    fn a_completion_streams_as_text_chunks() {
        let answer = json!({"id": "x", "object": "text_completion", "choices": [
            {"index": 0, "text": "one", "finish_reason": "stop"}, {"index": 1, "text": "two", "finish_reason": "length"}]});
        let out = events(&as_stream(Task::Completions, answer.to_string().as_bytes(), false));
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[1]["choices"][0]["text"].as_str(), out[1]["choices"][0]["index"].as_i64()),
            (Some("two"), Some(1))
        );
        assert_eq!(out[1]["object"], "text_completion");
    }
}
