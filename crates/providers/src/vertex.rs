//! Google Cloud Vertex AI: Gemini `generateContent` / `streamGenerateContent` and text
//! embeddings (`:predict`).
//!
//! Authentication: the secret is the service account's JSON key file. modelgate signs a JWT
//! (RS256) naming the account, trades it at the key's `token_uri` for an access token
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`), and caches that token until shortly
//! before it expires.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use modelgate_core::SecretString;
use modelgate_wire::ExternalModel;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Map, Value, json};

use crate::shared::{Chunks, credential, flatten_databricks_fields, now_secs};
use crate::token_cache::TokenCache;
use crate::{Adapter, Body, Credentials, ProviderError, ResponseOptions, Settings, StreamItem, StreamTranslator, Task};

/// OAuth scope requested for Vertex AI.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Token endpoint used when the key file names none.
pub const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

fn is_google_https(uri: &str) -> bool {
    uri.strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| host == "googleapis.com" || host.ends_with(".googleapis.com"))
}

/// A service account, parsed from its JSON key file.
pub struct ServiceAccount {
    /// The base64 lines of the PEM private key, each redacted on its own if echoed.
    pem_lines: Vec<String>,
    client_email: String,
    private_key_id: String,
    token_uri: String,
    key: RsaKeyPair,
}

impl ServiceAccount {
    /// Parses a JSON key file (`type: service_account`, `client_email`, `private_key` in PEM).
    pub fn from_key_file(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|_| {
            "the Vertex AI private key must be the service account's JSON key file (it names the account)".to_string()
        })?;
        let field = |k: &str| {
            v[k].as_str().map(str::to_string).ok_or_else(|| format!("the service-account key file has no {k}"))
        };
        let pem = field("private_key")?;
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(der.trim()).map_err(|_| "the service-account private_key is not PEM".to_string())?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("the service-account private_key is not a PKCS#8 RSA key: {e}"))?;
        let token_uri = v["token_uri"].as_str().unwrap_or(TOKEN_URI).to_string();
        // The key file is user input: its token_uri must not point the gateway anywhere else.
        if !is_google_https(&token_uri) {
            return Err("the service-account key's token_uri is not an https://*.googleapis.com URL; \
                 modelgate only sends service-account assertions to Google"
                .to_string());
        }
        Ok(Self {
            pem_lines: pem.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16).map(str::to_string).collect(),
            client_email: field("client_email")?,
            private_key_id: v["private_key_id"].as_str().unwrap_or_default().to_string(),
            token_uri,
            key,
        })
    }

    /// The private key's base64 lines, for redaction.
    pub fn private_key_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.pem_lines.iter().cloned()
    }

    /// A signed assertion valid for an hour from `now` (seconds).
    pub fn assertion(&self, audience: &str, now: i64) -> Result<String, ProviderError> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = json!({"iss": self.client_email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600});
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut sig)
            .map_err(|_| ProviderError::BadResponse("could not sign the service-account assertion".into()))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// Adapter for `provider: google-cloud-vertex-ai`.
pub struct Vertex {
    base: String,
    project: String,
    region: String,
    model: String,
    token_uri: String,
    account: ServiceAccount,
    key_text: SecretString,
    tokens: Arc<TokenCache>,
}

impl Vertex {
    /// Builds the adapter.
    pub fn new(model: &ExternalModel, creds: &Credentials, settings: &Settings) -> Result<Self, String> {
        let c = model.google_cloud_vertex_ai_config.clone().unwrap_or_default();
        let key_text = credential(creds, "google_cloud_vertex_ai_config.private_key")?;
        let account = ServiceAccount::from_key_file(key_text.expose())?;
        let region = c.region.unwrap_or_default();
        let token_uri = settings.base_urls.get("google-oauth").cloned().unwrap_or_else(|| account.token_uri.clone());
        let tokens = settings.token_caches.get(&["google", &token_uri, key_text.expose()]);
        Ok(Self {
            base: settings.base_url("google-cloud-vertex-ai", &format!("https://{region}-aiplatform.googleapis.com")),
            token_uri,
            project: c.project_id.unwrap_or_default(),
            region,
            model: model.name.clone(),
            account,
            key_text,
            tokens,
        })
    }

    async fn fetch_token(&self, http: &reqwest::Client) -> Result<(SecretString, Duration), ProviderError> {
        let assertion = self.account.assertion(&self.token_uri, now_secs())?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
        let resp =
            http.post(&self.token_uri).form(&form).send().await.map_err(|e| {
                ProviderError::Connect(format!("Google token endpoint: {}", crate::entra::without_url(&e)))
            })?;
        let status = resp.status();
        let body = crate::body::read_capped(resp, crate::entra::TOKEN_RESPONSE_LIMIT).await?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let reason = v["error_description"].as_str().or(v["error"].as_str()).unwrap_or("refused").to_string();
            return Err(ProviderError::Upstream {
                status: 401,
                message: format!("Google refused the service-account credentials: {reason}"),
                retry_after: None,
            });
        }
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| ProviderError::BadResponse("Google token response has no access_token".into()))?;
        Ok((SecretString::new(token), Duration::from_secs(v["expires_in"].as_u64().unwrap_or(3600))))
    }

    fn url(&self, action: &str) -> String {
        format!(
            "{}/v1/projects/{}/locations/{}/publishers/google/models/{}:{action}",
            self.base, self.project, self.region, self.model
        )
    }
}

fn unsupported(what: &str) -> ProviderError {
    crate::shared::unsupported("google-cloud-vertex-ai", what)
}

const FIELDS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "stream",
    "stream_options",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "response_format",
    "user",
];

fn text_parts(content: &Value) -> Result<Vec<Value>, ProviderError> {
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
                    Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
                }
                other => Err(unsupported(&format!("message content of type {}", other.unwrap_or("unknown")))),
            })
            .collect(),
        _ => Err(ProviderError::Unsupported("message content must be a string or a list of parts".into())),
    }
}

/// Turns the internal body into a Gemini `generateContent` request.
pub fn gemini_request(task: Task, mut body: Body) -> Result<Value, ProviderError> {
    flatten_databricks_fields(&mut body)?;
    // `n` maps to candidateCount, so only unknown options are refused here.
    if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(unsupported(&format!("the option '{k}'")));
    }
    let messages = crate::shared::chat_messages(task, &body, "google-cloud-vertex-ai")?;
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    let mut call_names = std::collections::HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, parts) = match m["role"].as_str().unwrap_or_default() {
            "system" | "developer" => {
                system.extend(text_parts(&m["content"])?);
                continue;
            }
            "user" => ("user", text_parts(&m["content"])?),
            "assistant" => {
                let mut parts = text_parts(&m["content"])?;
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                        .map_err(|_| {
                            ProviderError::Unsupported(format!("messages[{i}].tool_calls: arguments are not JSON"))
                        })?;
                    call_names
                        .insert(call["id"].as_str().unwrap_or_default().to_string(), call["function"]["name"].clone());
                    parts.push(json!({"functionCall": {"name": call["function"]["name"], "args": args}}));
                }
                ("model", parts)
            }
            "tool" => {
                let name =
                    call_names.get(m["tool_call_id"].as_str().unwrap_or_default()).cloned().unwrap_or(Value::Null);
                let content = &m["content"];
                let response = match content.as_str().map(serde_json::from_str::<Value>) {
                    Some(Ok(Value::Object(o))) => Value::Object(o),
                    _ => json!({"content": content}),
                };
                ("user", vec![json!({"functionResponse": {"name": name, "response": response}})])
            }
            other => {
                return Err(ProviderError::Unsupported(format!(
                    "messages[{i}].role '{other}' is not supported by provider 'google-cloud-vertex-ai'"
                )));
            }
        };
        match contents.last_mut() {
            Some((r, p)) if r == role => p.extend(parts),
            _ => contents.push((role.to_string(), parts)),
        }
    }
    let mut out = Map::new();
    out.insert(
        "contents".into(),
        Value::Array(contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect()),
    );
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut generation = Map::new();
    crate::shared::copy_fields(
        &body,
        &mut generation,
        &[
            ("max_tokens", "maxOutputTokens"),
            ("max_completion_tokens", "maxOutputTokens"),
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("top_k", "topK"),
            ("n", "candidateCount"),
            ("seed", "seed"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
        ],
    );
    if let Some(stop) = crate::shared::stop_sequences(&body) {
        generation.insert("stopSequences".into(), stop);
    }
    match body.get("response_format").map(|f| f["type"].as_str()) {
        None | Some(Some("text")) => {}
        Some(Some("json_object")) => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(Some("json_schema")) => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            generation.insert("responseSchema".into(), body["response_format"]["json_schema"]["schema"].clone());
        }
        Some(other) => return Err(unsupported(&format!("response_format {other:?}"))),
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let decls: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                let mut d = json!({"name": f["name"]});
                for k in ["description", "parameters"] {
                    if let Some(v) = f.get(k) {
                        d[k] = v.clone();
                    }
                }
                d
            })
            .collect();
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(choice) = body.get("tool_choice") {
        let cfg = match choice {
            Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
            Value::String(s) if s == "required" => json!({"mode": "ANY"}),
            Value::String(s) if s == "none" => json!({"mode": "NONE"}),
            Value::Object(o) if o.get("function").is_some() => {
                json!({"mode": "ANY", "allowedFunctionNames": [o["function"]["name"]]})
            }
            other => return Err(unsupported(&format!("tool_choice {other}"))),
        };
        out.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
    }
    Ok(Value::Object(out))
}

fn finish_reason(r: &Value, has_calls: bool) -> Value {
    if has_calls {
        return json!("tool_calls");
    }
    match r.as_str() {
        Some("STOP") => json!("stop"),
        Some("MAX_TOKENS") => json!("length"),
        Some("SAFETY") | Some("RECITATION") | Some("BLOCKLIST") | Some("PROHIBITED_CONTENT") | Some("SPII") => {
            json!("content_filter")
        }
        Some(other) => json!(other.to_ascii_lowercase()),
        None => Value::Null,
    }
}

/// OpenAI usage from Gemini `usageMetadata`; thinking tokens are billed as output.
fn usage(u: &Value) -> Value {
    let prompt = u["promptTokenCount"].as_u64().unwrap_or(0);
    let thoughts = u["thoughtsTokenCount"].as_u64().unwrap_or(0);
    let completion = u["candidatesTokenCount"].as_u64().unwrap_or(0) + thoughts;
    let mut out =
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if thoughts > 0 {
        out["completion_tokens_details"] = json!({"reasoning_tokens": thoughts});
    }
    out
}

fn candidate_parts(c: &Value) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in c["content"]["parts"].as_array().into_iter().flatten() {
        if let Some(t) = p["text"].as_str()
            && p["thought"] != true
        {
            text.push_str(t);
        }
        if let Some(f) = p.get("functionCall") {
            calls.push(json!({"id": format!("call_{}", calls.len()), "type": "function",
                              "function": {"name": f["name"], "arguments": f["args"].to_string()}}));
        }
    }
    (text, calls)
}

/// Turns a Gemini answer into an OpenAI chat or text completion.
pub fn from_gemini(task: Task, model: &str, r: &Value) -> Value {
    let choices: Vec<Value> = r["candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let (text, calls) = candidate_parts(c);
            let finish = finish_reason(&c["finishReason"], !calls.is_empty());
            if task == Task::Completions {
                return json!({"index": i, "text": text, "finish_reason": finish, "logprobs": null});
            }
            let mut message = json!({"role": "assistant", "content": text});
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls);
            }
            json!({"index": i, "message": message, "finish_reason": finish})
        })
        .collect();
    let object = if task == Task::Completions { "text_completion" } else { "chat.completion" };
    json!({"id": r["responseId"].as_str().map(str::to_string).unwrap_or_else(|| format!("vertex-{}", now_secs())),
           "object": object, "created": now_secs(), "model": r["modelVersion"].as_str().unwrap_or(model),
           "choices": choices, "usage": usage(&r["usageMetadata"])})
}

#[async_trait::async_trait]
impl Adapter for Vertex {
    fn provider(&self) -> &'static str {
        "google-cloud-vertex-ai"
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        mut body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let (url, payload) = match task {
            Task::Embeddings => {
                let inputs = match body.remove("input") {
                    Some(Value::String(s)) => vec![json!({"content": s})],
                    Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                        a.into_iter().map(|s| json!({"content": s})).collect()
                    }
                    _ => return Err(unsupported("embedding input that is not text")),
                };
                (self.url("predict"), json!({"instances": inputs}))
            }
            _ if stream => (format!("{}?alt=sse", self.url("streamGenerateContent")), gemini_request(task, body)?),
            _ => (self.url("generateContent"), gemini_request(task, body)?),
        };
        let token = self.tokens.get(|| self.fetch_token(http)).await?;
        Ok(http.post(url).bearer_auth(token.expose()).json(&payload))
    }

    fn response(&self, task: Task, body: Bytes, options: ResponseOptions) -> Result<Bytes, ProviderError> {
        let r: Value = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::BadResponse(format!("Vertex AI answered with invalid JSON: {e}")))?;
        let out = match task {
            Task::Embeddings => {
                let mut tokens = 0;
                let data: Vec<Value> = r["predictions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, p)| {
                        tokens += p["embeddings"]["statistics"]["token_count"].as_f64().unwrap_or(0.0) as u64;
                        let values = &p["embeddings"]["values"];
                        let embedding = crate::shared::embedding_value(values, options.embeddings_base64);
                        json!({"object": "embedding", "index": i, "embedding": embedding})
                    })
                    .collect();
                json!({"object": "list", "model": self.model, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
            }
            _ => from_gemini(task, &self.model, &r),
        };
        Ok(Bytes::from(out.to_string()))
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(StreamState {
            out: Chunks::new(task, &self.model),
            include_usage,
            started: false,
            finished: false,
            usage: Value::Null,
            calls: 0,
        })
    }

    fn error_message(&self, body: &[u8]) -> String {
        crate::shared::error_message(body)
    }

    fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.key_text.expose().to_string()];
        out.extend(self.account.private_key_lines());
        out.extend(self.tokens.current());
        out
    }
}

struct StreamState {
    out: Chunks,
    include_usage: bool,
    started: bool,
    finished: bool,
    usage: Value,
    calls: usize,
}

impl StreamTranslator for StreamState {
    fn on_event(&mut self, _event: &str, data: &str) -> Vec<StreamItem> {
        let Ok(r) = serde_json::from_str::<Value>(data) else {
            return vec![StreamItem::Error(format!(
                "Vertex AI sent a malformed stream event: {}",
                data.chars().take(200).collect::<String>()
            ))];
        };
        if let Some(msg) = r["error"]["message"].as_str() {
            return vec![StreamItem::Error(format!("Vertex AI: {msg}"))];
        }
        let mut items = Vec::new();
        if !self.started {
            self.started = true;
            items.push(StreamItem::Data(self.out.delta(json!({"role": "assistant", "content": ""}), Value::Null)));
        }
        if r["usageMetadata"].is_object() {
            self.usage = r["usageMetadata"].clone();
        }
        let c = &r["candidates"][0];
        let (text, calls) = candidate_parts(c);
        if !text.is_empty() {
            items.push(StreamItem::Data(self.out.delta(json!({"content": text}), Value::Null)));
        }
        for call in &calls {
            let mut call = call.clone();
            call["index"] = json!(self.calls);
            call["id"] = json!(format!("call_{}", self.calls));
            self.calls += 1;
            items.push(StreamItem::Data(self.out.delta(json!({"tool_calls": [call]}), Value::Null)));
        }
        if c["finishReason"].is_string() {
            self.finished = true;
            items.push(StreamItem::Data(self.out.delta(json!({}), finish_reason(&c["finishReason"], self.calls > 0))));
        }
        items
    }

    /// Gemini streams have no end sentinel: the connection closing after a finish reason is the end.
    fn on_end(&mut self) -> Vec<StreamItem> {
        if !self.finished {
            return Vec::new();
        }
        let mut items = Vec::new();
        if self.include_usage {
            items.push(StreamItem::Data(self.out.usage(usage(&self.usage))));
        }
        items.push(StreamItem::Done);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_translation() {
        let body = json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "wx", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"}],
            "max_tokens": 50, "top_p": 0.8, "stop": "END", "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "wx", "parameters": {"type": "object"}}}], "tool_choice": "required"});
        let r = gemini_request(Task::Chat, body.as_object().unwrap().clone()).unwrap();
        assert_eq!(r["systemInstruction"], json!({"parts": [{"text": "Be brief."}]}));
        assert_eq!(
            r["contents"][1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "wx", "args": {"city": "Oslo"}}}]})
        );
        assert_eq!(r["contents"][2]["parts"][0]["functionResponse"], json!({"name": "wx", "response": {"temp": 3}}));
        assert_eq!(
            r["generationConfig"],
            json!({"maxOutputTokens": 50, "topP": 0.8, "stopSequences": ["END"], "responseMimeType": "application/json"})
        );
        assert_eq!(r["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
        let bad = json!({"messages": [{"role": "user", "content": "x"}], "logit_bias": {}});
        assert!(
            gemini_request(Task::Chat, bad.as_object().unwrap().clone())
                .unwrap_err()
                .to_string()
                .contains("'logit_bias'")
        );
    }

    #[test]
    fn answer_translation() {
        let r = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "MAX_TOKENS"}],
                       "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "totalTokenCount": 9},
                       "modelVersion": "gemini-2.0-flash"});
        let out = from_gemini(Task::Chat, "m", &r);
        assert_eq!(out["choices"][0]["message"]["content"], "Hi");
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert_eq!(out["usage"]["completion_tokens"], 5, "thinking tokens are billed as output");
        assert_eq!(out["model"], "gemini-2.0-flash");
    }
}
