//! OpenAI Responses in (`POST /v1/responses`, `/serving-endpoints/responses`), the stateless
//! subset: input items, instructions, function tools and their outputs, structured output,
//! streaming with its typed events. Translated onto the chat pipeline like Anthropic Messages
//! (`anthropic`), so every chat provider answers it. Responses are not stored:
//! `previous_response_id` is refused with a 400 saying so.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use modelgate_providers::Body;
use modelgate_wire::responses::{
    self as wire, BareMessage, Event, Input, InputDetails, Item, MessageContent, OutputDetails, OutputItem, OutputText,
    Part, ResponsesRequest, TypedItem, Usage,
};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;

use super::translate::{Chunk, Reframe, at, json_string};

/// OpenAI Responses, for [`super::translate::serve`].
pub(crate) struct Responses;

impl super::translate::Protocol for Responses {
    type Request = ResponsesRequest;
    type Stream = Restream;
    const NAME: &'static str = "Responses";

    fn model(req: &ResponsesRequest) -> &str {
        &req.model
    }

    fn stream(req: &ResponsesRequest) -> bool {
        req.stream
    }

    fn to_chat(req: &ResponsesRequest) -> Result<Body, String> {
        to_chat(req)
    }

    fn answer(chat: &Value, model: &str) -> Response {
        response_of(chat, model)
    }

    fn reframer(model: &str) -> Restream {
        Restream::new(model)
    }

    fn error(status: StatusCode, message: String) -> Response {
        error(status, message)
    }
}

/// The text of message content.
fn text_of(c: &MessageContent) -> String {
    match c {
        MessageContent::Text(t) => t.clone(),
        MessageContent::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Part::InputText { text } | Part::OutputText { text } => Some(text.as_str()),
                Part::Refusal { refusal } => Some(refusal.as_str()),
                Part::InputImage { .. } => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The internal (OpenAI chat) request for a Responses request; the error names what cannot be
/// translated.
pub fn to_chat(req: &ResponsesRequest) -> Result<Body, String> {
    if req.previous_response_id.is_some() {
        return Err(
            "previous_response_id: responses are not stored here; send the whole conversation as input items".into()
        );
    }
    let mut messages = Vec::new();
    if let Some(i) = &req.instructions {
        messages.push(json!({"role": "system", "content": i}));
    }
    let items = match &req.input {
        Input::Text(t) => {
            vec![Item::Bare(BareMessage { role: "user".into(), content: MessageContent::Text(t.clone()) })]
        }
        Input::Items(items) => items.clone(),
    };
    for (i, item) in items.iter().enumerate() {
        let (role, content) = match item {
            Item::Bare(m) => (m.role.as_str(), &m.content),
            Item::Typed(TypedItem::Message { role, content }) => (role.as_str(), content),
            Item::Typed(TypedItem::FunctionCall { call_id, name, arguments }) => {
                let call =
                    json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}});
                // Consecutive calls belong to one assistant turn.
                let last = messages.last_mut().and_then(Value::as_object_mut);
                match last.filter(|m| m.get("role") == Some(&json!("assistant"))) {
                    Some(m) => match m.get_mut("tool_calls").and_then(Value::as_array_mut) {
                        Some(calls) => calls.push(call),
                        None => {
                            m.insert("tool_calls".into(), json!([call]));
                        }
                    },
                    None => messages.push(json!({"role": "assistant", "content": "", "tool_calls": [call]})),
                }
                continue;
            }
            Item::Typed(TypedItem::FunctionCallOutput { call_id, output }) => {
                let text = output.as_str().map_or_else(|| output.to_string(), str::to_string);
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
                continue;
            }
            Item::Typed(TypedItem::Reasoning {}) => continue,
        };
        let role = match role {
            "developer" | "system" => "system",
            "user" | "assistant" => role,
            other => return Err(format!("input[{i}].role: '{other}' is not user, assistant, system or developer")),
        };
        let images: Vec<Value> = match content {
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::InputImage { image_url: Some(url) } => {
                        Some(json!({"type": "image_url", "image_url": {"url": url}}))
                    }
                    _ => None,
                })
                .collect(),
            MessageContent::Text(_) => Vec::new(),
        };
        let text = text_of(content);
        let content = if images.is_empty() {
            Value::String(text)
        } else {
            let mut parts = vec![json!({"type": "text", "text": text})];
            parts.extend(images);
            Value::Array(parts)
        };
        messages.push(json!({"role": role, "content": content}));
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req.max_output_tokens {
        body.insert("max_tokens".into(), n.into());
    }
    for (key, v) in [("temperature", req.temperature), ("top_p", req.top_p)] {
        if let Some(v) = v {
            body.insert(key.into(), json!(v));
        }
    }
    if let Some(u) = &req.user {
        body.insert("user".into(), u.clone().into());
    }
    if req.stream {
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let mut functions = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t.kind != "function" {
                return Err(format!(
                    "tools[{i}].type: '{}' is a built-in tool; only function tools are served here",
                    t.kind
                ));
            }
            let name = t.name.clone().ok_or_else(|| format!("tools[{i}].name: is required"))?;
            let mut f = Map::new();
            f.insert("name".into(), name.into());
            if let Some(d) = &t.description {
                f.insert("description".into(), d.clone().into());
            }
            f.insert("parameters".into(), t.parameters.clone().unwrap_or_else(|| json!({"type": "object"})));
            if let Some(s) = t.strict {
                f.insert("strict".into(), s.into());
            }
            functions.push(json!({"type": "function", "function": f}));
        }
        body.insert("tools".into(), Value::Array(functions));
    }
    if let Some(choice) = &req.tool_choice {
        let mapped = match choice {
            Value::String(_) => choice.clone(),
            v if at(v, "/type") == "function" => json!({"type": "function", "function": {"name": at(v, "/name")}}),
            _ => return Err("tool_choice: use none, auto, required or {\"type\": \"function\", \"name\": ...}".into()),
        };
        body.insert("tool_choice".into(), mapped);
    }
    if let Some(p) = req.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), p.into());
    }
    if let Some(format) = req.text.as_ref().and_then(|t| t.format.as_ref()) {
        let response_format = match at(format, "/type").as_str() {
            Some("text") | None => None,
            Some("json_object") => Some(json!({"type": "json_object"})),
            Some("json_schema") => {
                let mut schema = Map::new();
                for key in ["name", "schema", "strict", "description"] {
                    if let Some(v) = format.get(key) {
                        schema.insert(key.into(), v.clone());
                    }
                }
                Some(json!({"type": "json_schema", "json_schema": schema}))
            }
            Some(other) => return Err(format!("text.format.type: '{other}' is not text, json_object or json_schema")),
        };
        if let Some(f) = response_format {
            body.insert("response_format".into(), f);
        }
    }
    Ok(body)
}

fn usage_of(u: &Value) -> Usage {
    let n = |p: &str| at(u, p).as_u64().unwrap_or(0);
    let (input, output) = (n("/prompt_tokens"), n("/completion_tokens"));
    Usage {
        input_tokens: input,
        input_tokens_details: InputDetails { cached_tokens: n("/prompt_tokens_details/cached_tokens") },
        output_tokens: output,
        output_tokens_details: OutputDetails { reasoning_tokens: n("/completion_tokens_details/reasoning_tokens") },
        total_tokens: input + output,
    }
}

fn response_id(from: Option<&str>) -> String {
    format!("resp_{}", from.unwrap_or_default().trim_start_matches("chatcmpl-").replace('-', ""))
}

/// The Response object around `output` items.
fn envelope<'a>(
    id: &'a str,
    model: &'a str,
    status: &'a str,
    output: &'a [OutputItem],
    usage: &'a Usage,
    incomplete: Option<&'static str>,
) -> wire::Response<'a> {
    wire::Response {
        id,
        object: "response",
        created_at: modelgate_core::now_ms() / 1000,
        status,
        model,
        output,
        usage,
        error: None,
        incomplete_details: incomplete.map(|reason| wire::Incomplete { reason }),
        parallel_tool_calls: true,
        tool_choice: "auto",
        tools: [],
        text: wire::TextOut::default(),
    }
}

fn message_item(id: String, status: &'static str, text: Option<String>) -> OutputItem {
    OutputItem::Message { id, role: "assistant", status, content: text.map(OutputText::new).into_iter().collect() }
}

fn call_item(call_id: String, name: String, arguments: String, status: &'static str) -> OutputItem {
    OutputItem::FunctionCall { id: format!("fc_{call_id}"), call_id, name, arguments, status }
}

/// The Response for a whole chat completion.
pub fn response_of(answer: &Value, model: &str) -> Response {
    let id = response_id(at(answer, "/id").as_str());
    let choice = at(answer, "/choices/0");
    let mut output = Vec::new();
    if let Some(text) = at(choice, "/message/content").as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(format!("msg_{id}"), "completed", Some(text.to_string())));
    }
    for call in at(choice, "/message/tool_calls").as_array().into_iter().flatten() {
        let text = |p: &str| at(call, p).as_str().unwrap_or_default().to_string();
        output.push(call_item(text("/id"), text("/function/name"), text("/function/arguments"), "completed"));
    }
    let (status, incomplete) = match at(choice, "/finish_reason").as_str() {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    };
    let usage = usage_of(at(answer, "/usage"));
    Json(envelope(&id, model, status, &output, &usage, incomplete)).into_response()
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
fn error(status: StatusCode, message: String) -> Response {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    (status, Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}}))).into_response()
}

/// The output item being streamed.
enum Open {
    /// A message: its text so far.
    Message { index: usize, text: String },
    /// A function call (OpenAI index `k`): its arguments so far.
    Call { index: usize, k: u64, call_id: String, name: String, arguments: String },
}

/// What the translation of one stream has seen.
pub(crate) struct Restream {
    model: String,
    id: String,
    seq: u64,
    started: bool,
    open: Option<Open>,
    done: Vec<OutputItem>,
    usage: Usage,
    incomplete: Option<&'static str>,
    finished: bool,
}

impl Restream {
    fn new(model: &str) -> Restream {
        Restream {
            model: model.to_string(),
            id: response_id(None),
            seq: 0,
            started: false,
            open: None,
            done: Vec::new(),
            usage: Usage::default(),
            incomplete: None,
            finished: false,
        }
    }

    /// Writes `event` with the next sequence number: typed, so no JSON tree is built per event.
    fn emit(&mut self, out: &mut String, event: &Event<'_>) {
        let body = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
        let body = body.strip_suffix('}').unwrap_or(&body);
        let sep = if body.len() > 1 { "," } else { "" };
        let _ = write!(out, "event: {}\ndata: {body}{sep}\"sequence_number\":{}}}\n\n", event.name(), self.seq);
        self.seq += 1;
    }

    fn start(&mut self, id: Option<&str>, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        if id.is_some() {
            self.id = response_id(id);
        }
        let (id, model, usage) = (self.id.clone(), self.model.clone(), self.usage.clone());
        let r = envelope(&id, &model, "in_progress", &[], &usage, None);
        self.emit(out, &Event::Created { response: r.clone() });
        self.emit(out, &Event::InProgress { response: r });
    }

    /// Finishes the open item.
    fn close(&mut self, out: &mut String) {
        let Some(open) = self.open.take() else { return };
        match open {
            Open::Message { index, text } => {
                let item_id = format!("msg_{}", self.id);
                let part = OutputText::new(text);
                let (at, text) = (&item_id, part.text.as_str());
                self.emit(
                    out,
                    &Event::TextDone { item_id: at, output_index: index, content_index: 0, text, logprobs: [] },
                );
                self.emit(out, &Event::PartDone { item_id: at, output_index: index, content_index: 0, part: &part });
                let item =
                    OutputItem::Message { id: item_id, role: "assistant", status: "completed", content: vec![part] };
                self.emit(out, &Event::ItemDone { output_index: index, item: &item });
                self.done.push(item);
            }
            Open::Call { index, call_id, name, arguments, .. } => {
                let item_id = format!("fc_{call_id}");
                let done =
                    Event::ArgumentsDone { item_id: &item_id, output_index: index, name: &name, arguments: &arguments };
                self.emit(out, &done);
                let item = call_item(call_id, name, arguments, "completed");
                self.emit(out, &Event::ItemDone { output_index: index, item: &item });
                self.done.push(item);
            }
        }
    }

    fn text(&mut self, delta: &str, out: &mut String) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close(out);
            let index = self.done.len();
            let item_id = format!("msg_{}", self.id);
            let item = message_item(item_id.clone(), "in_progress", None);
            self.emit(out, &Event::ItemAdded { output_index: index, item: &item });
            let empty = OutputText::new(String::new());
            self.emit(
                out,
                &Event::PartAdded { item_id: &item_id, output_index: index, content_index: 0, part: &empty },
            );
            self.open = Some(Open::Message { index, text: String::new() });
        }
        if let Some(Open::Message { index, text }) = &mut self.open {
            text.push_str(delta);
            // The hot path: written directly, with only the text escaped.
            let _ = write!(
                out,
                "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"item_id\":\"msg_{}\",\
                 \"output_index\":{index},\"content_index\":0,\"delta\":{},\"logprobs\":[],\"sequence_number\":{}}}\n\n",
                self.id,
                json_string(delta),
                self.seq
            );
            self.seq += 1;
        }
    }

    fn call(&mut self, call: &Value, out: &mut String) {
        let k = at(call, "/index").as_u64().unwrap_or(0);
        let same = matches!(&self.open, Some(Open::Call { k: open, .. }) if *open == k);
        if !same {
            self.close(out);
            let index = self.done.len();
            let call_id = at(call, "/id").as_str().unwrap_or_default().to_string();
            let name = at(call, "/function/name").as_str().unwrap_or_default().to_string();
            let item = call_item(call_id.clone(), name.clone(), String::new(), "in_progress");
            self.emit(out, &Event::ItemAdded { output_index: index, item: &item });
            self.open = Some(Open::Call { index, k, call_id, name, arguments: String::new() });
        }
        let delta = at(call, "/function/arguments").as_str().unwrap_or_default();
        if delta.is_empty() {
            return;
        }
        let Some(Open::Call { index, call_id, arguments, .. }) = &mut self.open else { return };
        arguments.push_str(delta);
        let (index, item_id) = (*index, format!("fc_{call_id}"));
        self.emit(out, &Event::ArgumentsDelta { item_id: &item_id, output_index: index, delta });
    }

    /// The terminal event: the Response with every item.
    fn finish(&mut self, out: &mut String, status: &'static str, error: Option<&str>) {
        let (id, model, usage, done) =
            (self.id.clone(), self.model.clone(), self.usage.clone(), std::mem::take(&mut self.done));
        let mut r = envelope(&id, &model, status, &done, &usage, self.incomplete);
        r.error = error.map(|message| wire::ResponseError { code: "server_error", message });
        let event = match status {
            "failed" => Event::Failed { response: r },
            "incomplete" => Event::Incomplete { response: r },
            _ => Event::Completed { response: r },
        };
        self.emit(out, &event);
        self.finished = true;
    }
}

impl Reframe for Restream {
    fn finished(&self) -> bool {
        self.finished
    }

    fn on(&mut self, data: &str) -> String {
        let mut out = String::new();
        if data.trim() == "[DONE]" {
            self.start(None, &mut out);
            self.close(&mut out);
            let status = if self.incomplete.is_some() { "incomplete" } else { "completed" };
            self.finish(&mut out, status, None);
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
            self.text(text, &mut out);
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            self.call(call, &mut out);
        }
        match choice.finish_reason.as_deref() {
            Some("length") => self.incomplete = Some("max_output_tokens"),
            Some("content_filter") => self.incomplete = Some("content_filter"),
            _ => {}
        }
        out
    }

    /// `response.failed`, then an `error` event.
    fn fail(&mut self, message: &str) -> String {
        let mut out = String::new();
        self.start(None, &mut out);
        self.finish(&mut out, "failed", Some(message));
        self.emit(&mut out, &Event::Error { code: "server_error", message, param: None });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> ResponsesRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn input_items_with_a_function_call_round_trip_become_a_chat_request() {
        let req = request(json!({
            "model": "chat", "instructions": "Be brief.", "max_output_tokens": 64,
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "weather"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
            "input": [
                {"role": "user", "content": "Weather in Oslo?"},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "-3 C"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks"}, {"type": "input_image", "image_url": "https://x/y.png"}]}
            ]
        }));
        let chat = Value::Object(to_chat(&req).unwrap());
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(chat["messages"][2]["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(chat["messages"][3], json!({"role": "tool", "tool_call_id": "call_1", "content": "-3 C"}));
        assert_eq!(chat["messages"][4]["content"][1]["image_url"]["url"], "https://x/y.png");
        assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
        assert_eq!(chat["response_format"]["json_schema"]["name"], "w");
        assert_eq!(chat["max_tokens"], 64);
        let stored = request(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
        assert!(to_chat(&stored).unwrap_err().contains("not stored"));
        let builtin = request(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
        assert!(to_chat(&builtin).unwrap_err().contains("tools[0].type"));
    }

    #[test]
    fn a_stream_becomes_typed_events_with_sequence_numbers() {
        let mut r = Restream::new("chat");
        let mut all = String::new();
        for data in [
            r#"{"id":"chatcmpl-1","choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"id":"chatcmpl-1","choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"w","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ] {
            all.push_str(&r.on(data));
        }
        let events: Vec<&str> = all.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(
            events,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let last = all.lines().rev().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let last: Value = serde_json::from_str(last).unwrap();
        assert_eq!(
            (last["sequence_number"].clone(), last["response"]["output"].as_array().unwrap().len()),
            (json!(12), 2)
        );
        let mut broken = Restream::new("chat");
        let end = broken.on(r#"{"error":{"message":"gone"}}"#);
        assert!(end.contains("event: response.failed") && end.contains("event: error") && broken.finished, "{end}");
    }
}
