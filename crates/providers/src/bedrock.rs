//! Amazon Bedrock: the Converse and ConverseStream APIs for chat (all four `bedrock_provider`
//! families), InvokeModel for embeddings (Amazon Titan and Cohere models), every request signed
//! with AWS Signature Version 4. Streams arrive as AWS event-stream binary frames.

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use modelgate_core::SecretString;
use modelgate_wire::ExternalModel;
use serde_json::{Map, Value, json};

use crate::framing::Framing;
use crate::shared::{Chunks, credential, now_secs};
use crate::{Adapter, Body, Credentials, ProviderError, ResponseOptions, Settings, StreamItem, StreamTranslator, Task};

/// What is escaped in a model id: everything but RFC 3986 unreserved characters.
const MODEL_ID: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Signing name of the Bedrock runtime.
pub const SERVICE: &str = "bedrock";

/// Adapter for `provider: amazon-bedrock`.
pub struct Bedrock {
    base: String,
    region: String,
    model: String,
    family: String,
    access_key: SecretString,
    secret_key: SecretString,
}

impl Bedrock {
    /// Builds the adapter. Only access-key authentication can be used by a self-hosted server.
    pub fn new(model: &ExternalModel, creds: &Credentials, settings: &Settings) -> Result<Self, String> {
        let c = model.amazon_bedrock_config.clone().unwrap_or_default();
        if c.instance_profile_arn.is_some() || c.uc_service_credential_name.is_some() {
            return Err("instance_profile_arn and uc_service_credential_name are Databricks-hosted credentials; \
                 use aws_access_key_id and aws_secret_access_key"
                .into());
        }
        let region = c.aws_region.unwrap_or_default();
        Ok(Self {
            base: settings.base_url("amazon-bedrock", &format!("https://bedrock-runtime.{region}.amazonaws.com")),
            region,
            model: model.name.clone(),
            family: c.bedrock_provider.unwrap_or_default().to_ascii_lowercase(),
            access_key: credential(creds, "amazon_bedrock_config.aws_access_key_id")?,
            secret_key: credential(creds, "amazon_bedrock_config.aws_secret_access_key")?,
        })
    }

    fn url(&self, action: &str) -> String {
        // Model ids contain ':' (`anthropic.claude-3-haiku-20240307-v1:0`) and may be ARNs with '/';
        // the AWS SDKs send the id as one encoded path segment.
        let id = percent_encoding::utf8_percent_encode(&self.model, MODEL_ID);
        format!("{}/model/{id}/{action}", self.base)
    }

    /// Signs a POST of `body` to `url` and returns the request.
    pub fn signed(
        &self,
        http: &reqwest::Client,
        url: &str,
        body: Vec<u8>,
        accept: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let identity =
            AwsCredentials::new(self.access_key.expose(), self.secret_key.expose(), None, None, "modelgate").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("cannot sign the Bedrock request: {e}")))?
            .into();
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(&body))
            .map_err(|e| ProviderError::Unsupported(format!("cannot sign the Bedrock request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ProviderError::Unsupported(format!("cannot sign the Bedrock request: {e}")))?
            .into_parts();
        let mut req = http.post(url).header("content-type", "application/json").header("accept", accept).body(body);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        Ok(req)
    }
}

fn unsupported(what: &str) -> ProviderError {
    crate::shared::unsupported("amazon-bedrock", what)
}

const FIELDS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "n",
    "tools",
    "tool_choice",
    "user",
    "extra_params",
    "client_request_id",
    "usage_context",
];

fn content_blocks(content: &Value) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Null => Ok(Vec::new()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({"text": p["text"]})),
                Some("image_url") => {
                    let url = p["image_url"]["url"].as_str().unwrap_or_default();
                    let (mime, data) = crate::shared::data_url(url)
                        .ok_or_else(|| unsupported("an image that is not a base64 data URL"))?;
                    let format = mime.strip_prefix("image/").unwrap_or(mime);
                    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
                }
                other => Err(unsupported(&format!("message content of type {}", other.unwrap_or("unknown")))),
            })
            .collect(),
        _ => Err(ProviderError::Unsupported("message content must be a string or a list of parts".into())),
    }
}

/// Turns the internal body into a Converse request.
pub fn converse_request(task: Task, body: &Body) -> Result<Value, ProviderError> {
    crate::shared::refuse_unknown(body, FIELDS, "amazon-bedrock")?;
    let messages = crate::shared::chat_messages(task, body, "amazon-bedrock")?;
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, blocks) = match m["role"].as_str().unwrap_or_default() {
            "system" | "developer" => {
                system.extend(content_blocks(&m["content"])?);
                continue;
            }
            "user" => ("user", content_blocks(&m["content"])?),
            "assistant" => {
                let mut blocks = content_blocks(&m["content"])?;
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let input: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                        .map_err(|_| {
                            ProviderError::Unsupported(format!("messages[{i}].tool_calls: arguments are not JSON"))
                        })?;
                    blocks.push(
                        json!({"toolUse": {"toolUseId": call["id"], "name": call["function"]["name"], "input": input}}),
                    );
                }
                ("assistant", blocks)
            }
            "tool" => {
                let text = m["content"].as_str().map(str::to_string).unwrap_or_else(|| m["content"].to_string());
                ("user", vec![json!({"toolResult": {"toolUseId": m["tool_call_id"], "content": [{"text": text}]}})])
            }
            other => {
                return Err(ProviderError::Unsupported(format!(
                    "messages[{i}].role '{other}' is not supported by provider 'amazon-bedrock'"
                )));
            }
        };
        match turns.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    let mut out = Map::new();
    out.insert(
        "messages".into(),
        Value::Array(turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect()),
    );
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    crate::shared::copy_fields(
        body,
        &mut inference,
        &[
            ("max_tokens", "maxTokens"),
            ("max_completion_tokens", "maxTokens"),
            ("temperature", "temperature"),
            ("top_p", "topP"),
        ],
    );
    if let Some(stop) = crate::shared::stop_sequences(body) {
        inference.insert("stopSequences".into(), stop);
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let specs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                let mut spec = json!({"name": f["name"], "inputSchema": {"json": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))}});
                if let Some(d) = f.get("description") {
                    spec["description"] = d.clone();
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut config = json!({"tools": specs});
        match body.get("tool_choice") {
            None => {}
            Some(Value::String(s)) if s == "auto" => config["toolChoice"] = json!({"auto": {}}),
            Some(Value::String(s)) if s == "required" => config["toolChoice"] = json!({"any": {}}),
            Some(Value::Object(o)) if o.get("function").is_some() => {
                config["toolChoice"] = json!({"tool": {"name": o["function"]["name"]}})
            }
            Some(other) => return Err(unsupported(&format!("tool_choice {other}"))),
        }
        out.insert("toolConfig".into(), config);
    }
    // Model-family parameters (e.g. top_k) go through untouched.
    if let Some(extra) = body.get("extra_params").filter(|e| e.as_object().is_some_and(|o| !o.is_empty())) {
        out.insert("additionalModelRequestFields".into(), extra.clone());
    }
    Ok(Value::Object(out))
}

fn finish_reason(reason: &Value) -> Value {
    match reason.as_str() {
        Some("end_turn") | Some("stop_sequence") => json!("stop"),
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("guardrail_intervened") | Some("content_filtered") => json!("content_filter"),
        Some(other) => json!(other),
        None => Value::Null,
    }
}

fn usage(u: &Value) -> Value {
    let input = u["inputTokens"].as_u64().unwrap_or(0)
        + u["cacheReadInputTokens"].as_u64().unwrap_or(0)
        + u["cacheWriteInputTokens"].as_u64().unwrap_or(0);
    let output = u["outputTokens"].as_u64().unwrap_or(0);
    let mut out = json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output});
    crate::anthropic::cache_details(&mut out, u["cacheReadInputTokens"].as_u64(), u["cacheWriteInputTokens"].as_u64());
    out
}

/// Turns a Converse answer into an OpenAI chat or text completion.
pub fn from_converse(task: Task, model: &str, r: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in r["output"]["message"]["content"].as_array().into_iter().flatten() {
        if let Some(t) = block["text"].as_str() {
            text.push_str(t);
        }
        if let Some(t) = block.get("toolUse") {
            calls.push(json!({"id": t["toolUseId"], "type": "function", "function": {"name": t["name"], "arguments": t["input"].to_string()}}));
        }
    }
    let finish = finish_reason(&r["stopReason"]);
    let id = format!("bedrock-{}", now_secs());
    if task == Task::Completions {
        return json!({"id": id, "object": "text_completion", "created": now_secs(), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}], "usage": usage(&r["usage"])});
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({"id": id, "object": "chat.completion", "created": now_secs(), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage(&r["usage"])})
}

#[async_trait::async_trait]
impl Adapter for Bedrock {
    fn provider(&self) -> &'static str {
        "amazon-bedrock"
    }

    fn framing(&self) -> Framing {
        Framing::AwsEventStream
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        if task == Task::Embeddings {
            let inputs: Vec<Value> = match body.get("input") {
                Some(Value::String(s)) => vec![json!(s)],
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.clone(),
                _ => return Err(unsupported("embedding input that is not text")),
            };
            let payload = match self.family.as_str() {
                "amazon" if inputs.len() == 1 => json!({"inputText": inputs[0]}),
                "amazon" => return Err(unsupported("more than one input per request for Amazon Titan embeddings")),
                "cohere" => {
                    json!({"texts": inputs, "input_type": body.get("input_type").cloned().unwrap_or(json!("search_document"))})
                }
                other => return Err(unsupported(&format!("embeddings with bedrock_provider '{other}'"))),
            };
            return self.signed(http, &self.url("invoke"), payload.to_string().into_bytes(), "application/json");
        }
        let payload = converse_request(task, &body)?;
        let (action, accept) = if stream {
            ("converse-stream", "application/vnd.amazon.eventstream")
        } else {
            ("converse", "application/json")
        };
        self.signed(http, &self.url(action), payload.to_string().into_bytes(), accept)
    }

    fn response(&self, task: Task, body: Bytes, options: ResponseOptions) -> Result<Bytes, ProviderError> {
        let r: Value = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::BadResponse(format!("Bedrock answered with invalid JSON: {e}")))?;
        let out = if task == Task::Embeddings {
            let (vectors, tokens) = match r.get("embedding") {
                Some(v) => (vec![v.clone()], r["inputTextTokenCount"].as_u64().unwrap_or(0)),
                // Cohere-on-Bedrock reports no token count; it echoes the texts, so count them.
                None => {
                    (r["embeddings"].as_array().cloned().unwrap_or_default(), crate::tokens::count_strings(&r["texts"]))
                }
            };
            let data: Vec<Value> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let embedding = crate::shared::embedding_value(v, options.embeddings_base64);
                    json!({"object": "embedding", "index": i, "embedding": embedding})
                })
                .collect();
            json!({"object": "list", "model": self.model, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        } else {
            from_converse(task, &self.model, &r)
        };
        Ok(Bytes::from(out.to_string()))
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(StreamState { out: Chunks::new(task, &self.model), include_usage, tools: Vec::new(), stopped: false })
    }

    fn error_message(&self, body: &[u8]) -> String {
        crate::shared::error_message(body)
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.access_key.expose().to_string(), self.secret_key.expose().to_string()]
    }
}

struct StreamState {
    out: Chunks,
    include_usage: bool,
    /// Bedrock content-block index of each tool call, in order.
    tools: Vec<u64>,
    stopped: bool,
}

impl StreamTranslator for StreamState {
    fn on_event(&mut self, event: &str, data: &str) -> Vec<StreamItem> {
        if let Some(kind) = event.strip_prefix("exception:") {
            let msg = serde_json::from_str::<Value>(data)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            return vec![StreamItem::Error(format!("Bedrock {kind}: {msg}"))];
        }
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return vec![StreamItem::Error(format!(
                "Bedrock sent a malformed stream event: {}",
                data.chars().take(200).collect::<String>()
            ))];
        };
        match event {
            "messageStart" => {
                vec![StreamItem::Data(self.out.delta(json!({"role": "assistant", "content": ""}), Value::Null))]
            }
            "contentBlockStart" => match ev["start"].get("toolUse") {
                Some(t) => {
                    let index = self.tools.len();
                    self.tools.push(ev["contentBlockIndex"].as_u64().unwrap_or(0));
                    let d = json!({"tool_calls": [{"index": index, "id": t["toolUseId"], "type": "function", "function": {"name": t["name"], "arguments": ""}}]});
                    vec![StreamItem::Data(self.out.delta(d, Value::Null))]
                }
                None => Vec::new(),
            },
            "contentBlockDelta" => {
                let delta = &ev["delta"];
                if let Some(t) = delta["text"].as_str() {
                    return vec![StreamItem::Data(self.out.delta(json!({"content": t}), Value::Null))];
                }
                if let Some(input) = delta["toolUse"]["input"].as_str() {
                    let block = ev["contentBlockIndex"].as_u64().unwrap_or(0);
                    let index = self.tools.iter().position(|b| *b == block).unwrap_or(0);
                    return vec![StreamItem::Data(self.out.delta(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": input}}]}),
                        Value::Null,
                    ))];
                }
                Vec::new()
            }
            "messageStop" => {
                self.stopped = true;
                vec![StreamItem::Data(self.out.delta(json!({}), finish_reason(&ev["stopReason"])))]
            }
            "metadata" => {
                let mut items = Vec::new();
                if self.include_usage {
                    items.push(StreamItem::Data(self.out.usage(usage(&ev["usage"]))));
                }
                items.push(StreamItem::Done);
                items
            }
            _ => Vec::new(),
        }
    }

    fn on_end(&mut self) -> Vec<StreamItem> {
        if self.stopped { vec![StreamItem::Done] } else { Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converse_translation() {
        let body = json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"}],
            "max_tokens": 10, "stop": ["X"], "extra_params": {"top_k": 3},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], "tool_choice": "required"});
        let r = converse_request(Task::Chat, body.as_object().unwrap()).unwrap();
        assert_eq!(r["system"], json!([{"text": "s"}]));
        assert_eq!(r["inferenceConfig"], json!({"maxTokens": 10, "stopSequences": ["X"]}));
        assert_eq!(r["messages"][1]["content"][0]["toolUse"]["name"], "f");
        assert_eq!(r["messages"][2]["content"][0]["toolResult"]["content"][0]["text"], "ok");
        assert_eq!(r["toolConfig"]["toolChoice"], json!({"any": {}}));
        assert_eq!(r["additionalModelRequestFields"], json!({"top_k": 3}));
        let out = from_converse(
            Task::Chat,
            "m",
            &json!({"output": {"message": {"role": "assistant", "content": [{"text": "yo"}]}},
            "stopReason": "max_tokens", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}),
        );
        assert_eq!(
            (out["choices"][0]["message"]["content"].clone(), out["choices"][0]["finish_reason"].clone()),
            (json!("yo"), json!("length"))
        );
        assert_eq!(out["usage"]["total_tokens"], 7);
    }
}
