//! Anthropic Messages in (`POST /v1/messages`, `/anthropic/v1/messages`, and their
//! `count_tokens`): the request becomes the internal chat request, goes through the same pipeline
//! as a chat completion (admission, limits, budgets, guardrails, usage records, metrics) to any
//! provider, and the answer comes back in Anthropic's shape: a message, or its event stream, or
//! its error body. A stream that fails midway ends with an `error` event, never `message_stop`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use modelgate_providers::Body;
use modelgate_wire::anthropic::{
    Block, Content, ErrorDetail, ErrorResponse, ImageSource, InputJsonDelta, MessageResponse, MessagesRequest,
    OutputBlock, StopDelta, StreamEvent, ToolChoice, Usage,
};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::sync::Arc;

use super::translate::{Chunk, at, json_string};
use crate::extract::RawBody;
use crate::snapshot::Principal;
use crate::state::AppState;

/// Anthropic Messages, for [`super::translate::serve`].
pub(crate) struct Messages;

impl super::translate::Protocol for Messages {
    type Request = MessagesRequest;
    type Stream = Restream;
    const NAME: &'static str = "Messages";

    fn model(req: &MessagesRequest) -> &str {
        &req.model
    }

    fn stream(req: &MessagesRequest) -> bool {
        req.stream
    }

    fn to_chat(req: &MessagesRequest) -> Result<Body, String> {
        to_chat(req)
    }

    fn answer(chat: &Value, model: &str) -> Response {
        Json(message_of(chat, model)).into_response()
    }

    fn reframer(model: &str) -> Restream {
        Restream::new(model)
    }

    fn error(status: StatusCode, message: String) -> Response {
        error(status, message)
    }
}

/// `POST /v1/messages/count_tokens`: the input tokens, counted with the tokenizer limits use.
pub async fn count_tokens(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    RawBody(raw): RawBody,
) -> Response {
    let req: MessagesRequest = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("The request body is not a Messages request: {e}")),
    };
    let visible = app.snapshot.load().endpoints.get(&req.model).is_some_and(|ep| {
        crate::access::level_of(&caller, ep).is_some_and(|l| l >= modelgate_core::permission::Level::CanQuery)
    });
    if !visible {
        return error(
            StatusCode::NOT_FOUND,
            format!("Endpoint '{}' does not exist (or you may not query it).", req.model),
        );
    }
    let mut text = String::new();
    if let Some(s) = &req.system {
        text.push_str(&plain(s));
    }
    for m in &req.messages {
        text.push_str(&plain(&m.content));
    }
    for t in req.tools.iter().flatten() {
        text.push_str(&t.name);
        text.push_str(t.description.as_deref().unwrap_or_default());
        text.push_str(&t.input_schema.as_ref().map(Value::to_string).unwrap_or_default());
    }
    // Each turn is framed by a few tokens, as chat formats frame messages.
    let framing = 3 * req.messages.len() as u64 + u64::from(req.system.is_some()) * 3;
    Json(json!({"input_tokens": modelgate_providers::tokens::count(&text) + framing})).into_response()
}

/// The text of content (tool results' text included), for counting.
fn plain(c: &Content) -> String {
    match c {
        Content::Text(t) => t.clone(),
        Content::Blocks(blocks) => blocks
            .iter()
            .map(|b| match b {
                Block::Text { text } => text.clone(),
                Block::ToolUse { name, input, .. } => format!("{name}{input}"),
                Block::ToolResult { content: Some(c), .. } => plain(c),
                _ => String::new(),
            })
            .collect(),
    }
}

/// The internal (OpenAI chat) request for a Messages request; the error names what cannot be
/// translated.
pub fn to_chat(req: &MessagesRequest) -> Result<Body, String> {
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        messages.push(json!({"role": "system", "content": plain(system)}));
    }
    for (i, m) in req.messages.iter().enumerate() {
        match m.role.as_str() {
            "system" => messages.push(json!({"role": "system", "content": plain(&m.content)})),
            "user" => user_turn(&m.content, &mut messages).map_err(|e| format!("messages[{i}]: {e}"))?,
            "assistant" => messages.push(assistant_turn(&m.content)),
            other => return Err(format!("messages[{i}].role: '{other}' is not user or assistant")),
        }
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req.max_tokens {
        body.insert("max_tokens".into(), n.into());
    }
    if let Some(stop) = &req.stop_sequences {
        body.insert("stop".into(), json!(stop));
    }
    for (key, v) in [("temperature", req.temperature), ("top_p", req.top_p)] {
        if let Some(v) = v {
            body.insert(key.into(), json!(v));
        }
    }
    if let Some(k) = req.top_k {
        body.insert("top_k".into(), k.into());
    }
    if let Some(user) = req.metadata.as_ref().and_then(|m| m.user_id.clone()) {
        body.insert("user".into(), user.into());
    }
    if req.stream {
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let functions: Vec<Value> = tools
            .iter()
            .map(|t| {
                let parameters = t.input_schema.clone().unwrap_or_else(|| json!({"type": "object"}));
                let mut f = Map::new();
                f.insert("name".into(), t.name.clone().into());
                if let Some(d) = &t.description {
                    f.insert("description".into(), d.clone().into());
                }
                f.insert("parameters".into(), parameters);
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(functions));
    }
    if let Some(choice) = &req.tool_choice {
        let (mode, single) = match choice {
            ToolChoice::Auto { disable_parallel_tool_use } => (json!("auto"), *disable_parallel_tool_use),
            ToolChoice::Any { disable_parallel_tool_use } => (json!("required"), *disable_parallel_tool_use),
            ToolChoice::Tool { name, disable_parallel_tool_use } => {
                (json!({"type": "function", "function": {"name": name}}), *disable_parallel_tool_use)
            }
            ToolChoice::None {} => (json!("none"), None),
        };
        body.insert("tool_choice".into(), mode);
        if single == Some(true) {
            body.insert("parallel_tool_calls".into(), false.into());
        }
    }
    Ok(body)
}

/// A user turn: its text and images as one user message, each tool result as a tool message
/// (before the rest, as the calls they answer came just before).
fn user_turn(content: &Content, out: &mut Vec<Value>) -> Result<(), String> {
    let blocks = match content {
        Content::Text(t) => {
            out.push(json!({"role": "user", "content": t}));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b {
            Block::Text { text } => parts.push(json!({"type": "text", "text": text})),
            Block::Image { source } => {
                let url = match source {
                    ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
                    ImageSource::Url { url } => url.clone(),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Block::ToolResult { tool_use_id, content, is_error } => {
                let mut text = content.as_ref().map(plain).unwrap_or_default();
                if *is_error == Some(true) {
                    text = format!("Error: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
            }
            Block::Document { .. } => {
                return Err(format!("content[{j}]: document blocks cannot be translated for other providers"));
            }
            Block::ToolUse { .. } => return Err(format!("content[{j}]: tool_use belongs in an assistant turn")),
            Block::Thinking { .. } | Block::RedactedThinking {} => {}
        }
    }
    if !parts.is_empty() {
        let only_text = parts.iter().all(|p| at(p, "/type") == "text");
        let content = if only_text {
            Value::String(parts.iter().filter_map(|p| at(p, "/text").as_str()).collect::<Vec<_>>().join("\n"))
        } else {
            Value::Array(parts)
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

/// An assistant turn: its text, and its tool calls.
fn assistant_turn(content: &Content) -> Value {
    let blocks = match content {
        Content::Text(t) => return json!({"role": "assistant", "content": t}),
        Content::Blocks(b) => b,
    };
    let text: String =
        blocks.iter().filter_map(|b| if let Block::Text { text } = b { Some(text.as_str()) } else { None }).collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => {
                Some(json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}))
            }
            _ => None,
        })
        .collect();
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert("content".into(), text.into());
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(m)
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn usage_of(u: &Value) -> Usage {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let cached = n(at(u, "/prompt_tokens_details/cached_tokens"));
    Usage {
        input_tokens: n(at(u, "/prompt_tokens")).saturating_sub(cached),
        output_tokens: n(at(u, "/completion_tokens")),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
    }
}

/// The message for a whole chat completion.
pub fn message_of(answer: &Value, model: &str) -> MessageResponse {
    let choice = at(answer, "/choices/0");
    let mut content = Vec::new();
    if let Some(text) = at(choice, "/message/content").as_str().filter(|t| !t.is_empty()) {
        content.push(OutputBlock::Text { text: text.to_string() });
    }
    for call in at(choice, "/message/tool_calls").as_array().into_iter().flatten() {
        let args = at(call, "/function/arguments").as_str().unwrap_or("{}");
        content.push(OutputBlock::ToolUse {
            id: at(call, "/id").as_str().unwrap_or_default().to_string(),
            name: at(call, "/function/name").as_str().unwrap_or_default().to_string(),
            input: serde_json::from_str(args).unwrap_or_else(|_| json!({})),
        });
    }
    MessageResponse {
        id: message_id(at(answer, "/id").as_str()),
        kind: "message",
        role: "assistant",
        model: model.to_string(),
        content,
        stop_reason: Some(stop_reason(at(choice, "/finish_reason").as_str()).to_string()),
        stop_sequence: None,
        usage: usage_of(at(answer, "/usage")),
    }
}

fn message_id(from: Option<&str>) -> String {
    format!("msg_{}", from.unwrap_or_default().trim_start_matches("chatcmpl-").replace('-', ""))
}

/// Anthropic's error type for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn error(status: StatusCode, message: String) -> Response {
    let body = ErrorResponse { kind: "error", error: ErrorDetail { kind: error_type(status), message } };
    (status, Json(body)).into_response()
}

/// What the translation of one stream has seen.
pub(crate) struct Restream {
    model: String,
    started: bool,
    /// The open block: its index and whether it is text (else the tool call's OpenAI index).
    open: Option<(usize, Option<u64>)>,
    next_index: usize,
    stop: Option<String>,
    usage: Usage,
    finished: bool,
}

fn frame(out: &mut String, event: &StreamEvent<'_>) {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    let _ = write!(out, "event: {}\ndata: {data}\n\n", event.name());
}

impl Restream {
    fn new(model: &str) -> Restream {
        Restream {
            model: model.to_string(),
            started: false,
            open: None,
            next_index: 0,
            stop: None,
            usage: Usage::default(),
            finished: false,
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let message = MessageResponse {
            id: message_id(id),
            kind: "message",
            role: "assistant",
            model: self.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: Usage::default(),
        };
        frame(out, &StreamEvent::MessageStart { message: &message });
    }

    fn close(&mut self, out: &mut String) {
        if let Some((index, _)) = self.open.take() {
            frame(out, &StreamEvent::ContentBlockStop { index });
        }
    }

    /// Opens a block (described by `start`, built only then) unless the one open is `kind`;
    /// returns its index.
    fn block(&mut self, kind: Option<u64>, start: impl FnOnce() -> OutputBlock, out: &mut String) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        frame(out, &StreamEvent::ContentBlockStart { index, content_block: &start() });
        index
    }
}

impl super::translate::Reframe for Restream {
    fn finished(&self) -> bool {
        self.finished
    }

    /// The frames for one event of the chat-completion stream.
    fn on(&mut self, data: &str) -> String {
        let mut out = String::new();
        if data.trim() == "[DONE]" {
            self.start(None, &mut out);
            self.close(&mut out);
            let stop_reason = self.stop.as_deref().unwrap_or("end_turn");
            let usage = Usage { cache_creation_input_tokens: 0, ..self.usage.clone() };
            let delta = StopDelta { stop_reason, stop_sequence: None };
            frame(&mut out, &StreamEvent::MessageDelta { delta, usage: &usage });
            frame(&mut out, &StreamEvent::MessageStop);
            self.finished = true;
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data) else {
            return self.fail("an event of the stream is not JSON");
        };
        if let Some(e) = &chunk.error {
            let message = at(e, "/message").as_str().unwrap_or("the stream failed").to_string();
            return self.fail(&message);
        }
        self.start(chunk.id.as_deref(), &mut out);
        if let Some(u) = chunk.usage.as_ref().filter(|u| u.is_object()) {
            self.usage = usage_of(u);
        }
        let Some(choice) = chunk.choices.first() else { return out };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            let index = self.block(None, || OutputBlock::Text { text: String::new() }, &mut out);
            // The hot path: written directly, with only the text escaped.
            let _ = write!(
                out,
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}\n\n",
                json_string(text)
            );
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            let k = at(call, "/index").as_u64().unwrap_or(0);
            let start = || OutputBlock::ToolUse {
                id: at(call, "/id").as_str().unwrap_or_default().to_string(),
                name: at(call, "/function/name").as_str().unwrap_or_default().to_string(),
                input: json!({}),
            };
            let index = self.block(Some(k), start, &mut out);
            if let Some(partial_json) = at(call, "/function/arguments").as_str().filter(|a| !a.is_empty()) {
                let delta = InputJsonDelta { kind: "input_json_delta", partial_json };
                frame(&mut out, &StreamEvent::ContentBlockDelta { index, delta });
            }
        }
        if let Some(f) = choice.finish_reason.as_deref() {
            self.stop = Some(stop_reason(Some(f)).to_string());
        }
        out
    }

    /// The error event that ends a stream that failed.
    fn fail(&mut self, message: &str) -> String {
        self.finished = true;
        let mut out = String::new();
        let error = ErrorDetail { kind: "api_error", message: message.to_string() };
        frame(&mut out, &StreamEvent::Error { error });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::translate::Reframe;
    use super::*;

    fn request(v: Value) -> MessagesRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_conversation_with_tools_and_images_becomes_a_chat_request() {
        let req = request(json!({
            "model": "chat", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
            "stop_sequences": ["END"], "temperature": 0.5, "metadata": {"user_id": "u1"},
            "tools": [{"name": "weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3 C"}, {"type": "text", "text": "And?"}]}
            ]
        }));
        let chat = Value::Object(to_chat(&req).unwrap());
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(chat["messages"][1]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBOR");
        assert_eq!(
            chat["messages"][2]["tool_calls"][0]["function"],
            json!({"name": "weather", "arguments": "{\"city\":\"Oslo\"}"})
        );
        assert_eq!(chat["messages"][3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "-3 C"}));
        assert_eq!(chat["messages"][4], json!({"role": "user", "content": "And?"}));
        assert_eq!(chat["tools"][0]["function"]["name"], "weather");
        assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
        assert_eq!(
            (chat["parallel_tool_calls"].clone(), chat["stop"].clone(), chat["user"].clone()),
            (json!(false), json!(["END"]), json!("u1"))
        );
        let bad = request(json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}));
        assert!(to_chat(&bad).unwrap_err().contains("messages[0].role"));
    }

    #[test]
    fn a_chat_completion_becomes_a_message_with_tool_use() {
        let answer = json!({"id": "chatcmpl-abc", "choices": [{"finish_reason": "tool_calls", "message": {"content": "Let me see.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 5}}});
        let m = serde_json::to_value(message_of(&answer, "chat")).unwrap();
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"][1],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}})
        );
        assert_eq!(
            (m["usage"]["input_tokens"].clone(), m["usage"]["cache_read_input_tokens"].clone()),
            (json!(15), json!(5))
        );
    }

    #[test]
    fn a_stream_is_reframed_as_anthropic_events_and_a_failure_ends_with_an_error_event() {
        let mut r = Restream::new("chat");
        let mut all = String::new();
        for data in [
            r#"{"id":"chatcmpl-1","choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"{"id":"chatcmpl-1","choices":[{"delta":{"content":"lo"}}]}"#,
            r#"{"id":"chatcmpl-1","choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"w","arguments":"{\"a\""}}]}}]}"#,
            r#"{"id":"chatcmpl-1","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            "[DONE]",
        ] {
            all.push_str(&r.on(data));
        }
        let events: Vec<&str> = all.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(
            events,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(all.contains(r#""stop_reason":"tool_use""#) && all.contains(r#""output_tokens":4"#), "{all}");
        let mut broken = Restream::new("chat");
        broken.on(r#"{"id":"x","choices":[{"delta":{"content":"Hi"}}]}"#);
        let end = broken.on(r#"{"error":{"message":"upstream went away","type":"upstream_error"}}"#);
        assert!(end.starts_with("event: error\n") && end.contains("upstream went away") && broken.finished, "{end}");
    }
}
