//! `ai_gateway.guardrails`: checks on what goes to a provider (input) and what comes back
//! (output).
//!
//! - `pii`: `BLOCK` refuses text with personal data, `MASK` replaces each finding with a
//!   placeholder such as `[EMAIL_ADDRESS]` ([`modelgate_core::pii`]).
//! - `invalid_keywords`: refuses text containing any of the words (case-insensitive, whole words).
//! - `safety` and `valid_topics`: a judge decides. The judge is a chat serving endpoint named in
//!   the server configuration (`--guardrail-judge-endpoint`); it is asked for a JSON verdict.
//!
//! A refusal is a 400 with `error_code` `INPUT_GUARDRAIL_TRIGGERED` or
//! `OUTPUT_GUARDRAIL_TRIGGERED` and a message naming the guardrail; a refused stream ends with an
//! error event carrying the same code instead of `[DONE]`.
//!
//! Streamed output is held back just enough that no finding or keyword can be split across what
//! was already sent and what is still to come: the trailing word, any run of number-like words
//! before it (card numbers, IBANs and phone numbers contain spaces) and, with keywords, as many
//! bytes as the longest keyword. With a judge on the output, the whole answer is held until the
//! judge has seen it.

use std::collections::BTreeMap;
use std::sync::Arc;

use modelgate_core::pii::{self, Keywords};
use modelgate_wire::{GuardrailParameters, Guardrails};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Held-back text never grows past this many bytes; beyond it the oldest part is released.
const MAX_HELD: usize = 4096;

/// What to do with personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiAction {
    /// Refuse the request or answer.
    Block,
    /// Replace each finding with a placeholder.
    Mask,
}

/// The checks on one side (input or output), compiled.
#[derive(Debug, Clone)]
pub struct Side {
    pii: Option<PiiAction>,
    keywords: Keywords,
    safety: bool,
    topics: Vec<String>,
}

impl Side {
    fn compile(p: &GuardrailParameters) -> Option<Side> {
        let pii = match p.pii.as_ref().and_then(|b| b.behavior.as_deref()) {
            Some("BLOCK") => Some(PiiAction::Block),
            Some("MASK") => Some(PiiAction::Mask),
            _ => None,
        };
        let side = Side {
            pii,
            keywords: Keywords::new(p.invalid_keywords.as_deref().unwrap_or_default()),
            safety: p.safety == Some(true),
            topics: p.valid_topics.clone().unwrap_or_default().into_iter().filter(|t| !t.trim().is_empty()).collect(),
        };
        let active = side.pii.is_some() || !side.keywords.is_empty() || side.needs_judge();
        active.then_some(side)
    }

    fn needs_judge(&self) -> bool {
        self.safety || !self.topics.is_empty()
    }
}

/// The guardrails of one endpoint, compiled once per snapshot.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Checks on the request.
    pub input: Option<Side>,
    /// Checks on the answer.
    pub output: Option<Arc<Side>>,
}

impl Policy {
    /// The compiled policy, or `None` when no guardrail is on.
    pub fn compile(g: &Guardrails) -> Option<Policy> {
        let input = g.input.as_ref().and_then(Side::compile);
        let output = g.output.as_ref().and_then(Side::compile).map(Arc::new);
        (input.is_some() || output.is_some()).then_some(Policy { input, output })
    }
}

/// Which guardrails of `g` need a judge endpoint, as field paths; empty when none does.
pub fn judge_fields(g: &Guardrails) -> Vec<String> {
    let mut out = Vec::new();
    for (side, p) in [("input", &g.input), ("output", &g.output)] {
        let Some(p) = p else { continue };
        if p.safety == Some(true) {
            out.push(format!("guardrails.{side}.safety"));
        }
        if p.valid_topics.as_ref().is_some_and(|t| t.iter().any(|t| !t.trim().is_empty())) {
            out.push(format!("guardrails.{side}.valid_topics"));
        }
    }
    out
}

/// The message when guardrails need a judge and the server has none.
pub fn no_judge_message(fields: &[String]) -> String {
    format!(
        "{} need(s) a judge endpoint, and the server has none: start it with --guardrail-judge-endpoint <chat endpoint>",
        fields.join(" and ")
    )
}

fn blocked(output: bool, endpoint: &str, guardrail: &str, why: String) -> ApiError {
    let side = if output { "Output" } else { "Input" };
    ApiError::Guardrail {
        output,
        message: format!("{side} blocked by the '{guardrail}' guardrail of endpoint '{endpoint}': {why}."),
    }
}

/// A chat model that answers the judge's questions: the judge endpoint, reached through the data
/// plane without a caller, limits or guardrails of its own.
#[async_trait::async_trait]
pub trait JudgeModel: Send + Sync {
    /// The endpoint's name, for messages.
    fn endpoint(&self) -> &str;
    /// The answer (an OpenAI chat completion) to `body`, or why there is none.
    async fn ask(&self, body: Map<String, Value>) -> Result<Value, String>;
}

/// Asks the judge endpoint about a text.
#[derive(Clone)]
pub struct Judge {
    model: Arc<dyn JudgeModel>,
}

impl Judge {
    /// A judge asking `model`.
    pub fn new(model: Arc<dyn JudgeModel>) -> Self {
        Judge { model }
    }

    async fn check(&self, side: &Side, text: &str, output: bool, endpoint: &str) -> Result<(), ApiError> {
        let topics = if side.topics.is_empty() { "any".to_string() } else { side.topics.join("; ") };
        let system = format!(
            "You are a guardrail judge for an AI gateway. Decide whether the text between <text> tags is safe \
             (it does not help with violence, weapons, self-harm, crime or hate, and has no sexual content \
             involving minors) and whether it is about one of the allowed topics.\nAllowed topics: {topics}\n\
             Answer with only a JSON object: {{\"safe\": true|false, \"on_topic\": true|false}}."
        );
        let body = json!({
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": format!("<text>{text}</text>")}],
            "temperature": 0, "max_tokens": 30,
        });
        let Value::Object(body) = body else { unreachable!("a JSON object literal") };
        let judge = self.model.endpoint();
        let answer = self
            .model
            .ask(body)
            .await
            .map_err(|e| ApiError::Unavailable(format!("The guardrail judge endpoint '{judge}' failed: {e}")))?;
        let content = answer.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or_default();
        let verdict = content
            .find('{')
            .zip(content.rfind('}'))
            .and_then(|(a, b)| serde_json::from_str::<Value>(content.get(a..=b)?).ok())
            .ok_or_else(|| ApiError::Unavailable(format!("The guardrail judge endpoint '{judge}' gave no verdict")))?;
        let what = if output { "answer" } else { "request" };
        let yes = |k: &str| verdict.get(k) == Some(&Value::Bool(true));
        if side.safety && !yes("safe") {
            return Err(blocked(output, endpoint, "safety", format!("the judge found the {what} unsafe")));
        }
        if !side.topics.is_empty() && !yes("on_topic") {
            let list = side.topics.join(", ");
            return Err(blocked(
                output,
                endpoint,
                "valid_topics",
                format!("the {what} is not about an allowed topic ({list})"),
            ));
        }
        Ok(())
    }
}

/// Pure checks (PII, keywords) on a text; returns it masked when it changed.
fn scan(side: &Side, text: &str, output: bool, endpoint: &str) -> Result<Option<String>, ApiError> {
    let what = if output { "answer" } else { "request" };
    if let Some(word) = side.keywords.find(text) {
        return Err(blocked(output, endpoint, "invalid_keywords", format!("the {what} contains the keyword '{word}'")));
    }
    let Some(action) = side.pii else { return Ok(None) };
    let findings = pii::find(text);
    match findings.first() {
        None => Ok(None),
        Some(f) if action == PiiAction::Block => {
            Err(blocked(output, endpoint, "pii", format!("the {what} contains {}", f.kind.describe())))
        }
        Some(_) => Ok(Some(pii::mask_prefix(text, &findings, text.len()))),
    }
}

/// Fields that carry protocol values or binary data, not text: never scanned or masked (masking
/// them would break the request, and base64 data could look like numbers).
const NOT_TEXT: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_choice",
    "encoding_format",
    "stream",
    "stream_options",
    "finish_reason",
    "image_url",
    "input_audio",
    "audio",
    "file",
    "detail",
    "modalities",
    "logit_bias",
    "client_request_id",
    "usage_context",
];

/// Calls `f` on every text of a request that reaches the provider: message contents and parts,
/// participant `name`s, tool-call arguments, tool and parameter descriptions, `prompt`, `input`,
/// `stop`, `user`, pass-through `extra_params`; every string but the fields of [`NOT_TEXT`].
fn each_request_text(
    body: &mut Map<String, Value>,
    f: &mut impl FnMut(&mut String) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    fn walk(v: &mut Value, f: &mut impl FnMut(&mut String) -> Result<(), ApiError>) -> Result<(), ApiError> {
        match v {
            Value::String(s) => f(s),
            Value::Array(a) => a.iter_mut().try_for_each(|x| walk(x, f)),
            Value::Object(o) => {
                o.iter_mut().filter(|(k, _)| !NOT_TEXT.contains(&k.as_str())).try_for_each(|(_, x)| walk(x, f))
            }
            _ => Ok(()),
        }
    }
    body.iter_mut().filter(|(k, _)| !NOT_TEXT.contains(&k.as_str())).try_for_each(|(_, v)| walk(v, f))
}

/// Applies the input checks to a request: refuses it, or masks it in place.
pub async fn check_input(
    judge: Option<&Judge>,
    side: &Side,
    endpoint: &str,
    body: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let mut all = String::new();
    each_request_text(body, &mut |text| {
        if let Some(masked) = scan(side, text, false, endpoint)? {
            *text = masked;
        }
        if side.needs_judge() {
            all.push_str(text);
            all.push('\n');
        }
        Ok(())
    })?;
    if side.needs_judge() {
        let judge = judge.ok_or_else(|| ApiError::Unavailable(no_judge_message(&["guardrails.input".into()])))?;
        judge.check(side, &all, false, endpoint).await?;
    }
    Ok(())
}

/// Held-back text of one streamed choice.
#[derive(Default)]
struct Held {
    text: String,
    /// Last character already sent, for word boundaries at the start of `text`.
    before: Option<char>,
}

/// Output checks for one answer, streamed or whole.
pub struct OutputGuard {
    side: Arc<Side>,
    judge: Option<Judge>,
    endpoint: String,
    held: BTreeMap<u64, Held>,
    /// A chunk whose envelope (id, model, created) new chunks copy.
    template: Option<Value>,
    /// Chunks with a `finish_reason`, held while their text is (judged answers only).
    finishing: Vec<Value>,
}

impl OutputGuard {
    /// Output checks `side` for endpoint `endpoint`.
    pub fn new(side: Arc<Side>, judge: Option<Judge>, endpoint: &str) -> Self {
        OutputGuard {
            side,
            judge,
            endpoint: endpoint.to_string(),
            held: BTreeMap::new(),
            template: None,
            finishing: Vec::new(),
        }
    }

    async fn judge(&self, text: &str) -> Result<(), ApiError> {
        if !self.side.needs_judge() {
            return Ok(());
        }
        let judge = self
            .judge
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable(no_judge_message(&["guardrails.output".into()])))?;
        judge.check(&self.side, text, true, &self.endpoint).await
    }

    /// A complete answer: refused, or masked in place.
    pub async fn whole(&self, answer: &mut Value) -> Result<(), ApiError> {
        let mut all = String::new();
        for c in answer["choices"].as_array_mut().into_iter().flatten() {
            let slot = match c.get_mut("message") {
                Some(m) => m.get_mut("content"),
                None => c.get_mut("text"),
            };
            let Some(Value::String(text)) = slot else { continue };
            if let Some(masked) = scan(&self.side, text, true, &self.endpoint)? {
                *text = masked;
            }
            all.push_str(text);
        }
        self.judge(&all).await
    }

    /// How much of `held` can be sent now without splitting a finding or keyword.
    fn safe_cut(&self, held: &Held) -> usize {
        let text = &held.text;
        if self.side.needs_judge() {
            return 0;
        }
        // The trailing (maybe unfinished) word, then number-like words before it.
        let mut cut = text
            .rfind(char::is_whitespace)
            .map(|p| p + text[p..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        loop {
            let head = text[..cut].trim_end();
            if head.len() == cut {
                break;
            }
            let start = head.rfind(char::is_whitespace).map(|p| p + 1).unwrap_or(0);
            let word = &head[start..];
            let numberish = word.chars().any(|c| c.is_ascii_digit())
                && word.chars().all(|c| c.is_ascii_alphanumeric() || "+().-".contains(c));
            if word.is_empty() || !numberish {
                break;
            }
            cut = start;
        }
        if !self.side.keywords.is_empty() {
            cut = cut.min(text.len().saturating_sub(self.side.keywords.longest()));
        }
        if text.len() - cut > MAX_HELD {
            cut = text.len() - MAX_HELD;
        }
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        cut
    }

    /// Checks the held text of one choice and takes what may be sent (`all`: everything).
    fn release(&mut self, index: u64, all: bool) -> Result<String, ApiError> {
        let Some(mut held) = self.held.remove(&index) else { return Ok(String::new()) };
        let mut context = String::new();
        context.extend(held.before);
        context.push_str(&held.text);
        let what = "answer";
        if let Some(word) = self.side.keywords.find(&context) {
            return Err(blocked(
                true,
                &self.endpoint,
                "invalid_keywords",
                format!("the {what} contains the keyword '{word}'"),
            ));
        }
        let mut cut = if all { held.text.len() } else { self.safe_cut(&held) };
        let findings = if self.side.pii.is_some() { pii::find(&held.text) } else { Vec::new() };
        // A finding that straddles the cut stays whole in the held part.
        if let Some(f) = findings.iter().find(|f| f.range.start < cut && f.range.end > cut) {
            cut = f.range.start;
        }
        let sent = match (self.side.pii, findings.iter().find(|f| f.range.end <= cut)) {
            (Some(PiiAction::Block), Some(f)) => {
                return Err(blocked(true, &self.endpoint, "pii", format!("the {what} contains {}", f.kind.describe())));
            }
            (Some(PiiAction::Mask), _) => pii::mask_prefix(&held.text, &findings, cut),
            _ => held.text[..cut].to_string(),
        };
        held.before = held.text[..cut].chars().last().or(held.before);
        held.text.drain(..cut);
        self.held.insert(index, held);
        Ok(sent)
    }

    /// One streamed chunk: the chunks to send in its place.
    pub fn chunk(&mut self, mut chunk: Value) -> Result<Vec<Value>, ApiError> {
        let judged = self.side.needs_judge();
        let mut hold_chunk = false;
        for c in chunk.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let completion = c.get("text").is_some_and(Value::is_string);
            let incoming = if completion {
                c.get("text").and_then(Value::as_str)
            } else {
                c.get("delta").and_then(|d| d.get("content")).and_then(Value::as_str)
            };
            let had_text = incoming.is_some();
            if let Some(t) = incoming {
                self.held.entry(index).or_default().text.push_str(t);
            }
            let finished = c.get("finish_reason").is_some_and(|f| !f.is_null());
            if finished && judged {
                hold_chunk = true;
                continue;
            }
            let sent = self.release(index, finished)?;
            if completion {
                c.insert("text".into(), Value::String(sent));
            } else if had_text || !sent.is_empty() {
                let delta = c.entry("delta").or_insert_with(|| json!({}));
                if let Some(d) = delta.as_object_mut() {
                    d.insert("content".into(), Value::String(sent));
                }
            }
        }
        if self.template.is_none() && chunk.get("choices").is_some_and(Value::is_array) {
            self.template = Some(chunk.clone());
        }
        if hold_chunk {
            self.finishing.push(chunk);
            return Ok(Vec::new());
        }
        Ok(vec![chunk])
    }

    /// The end of the stream: judges the whole answer when a judge is on, then sends what is
    /// still held.
    pub async fn end(&mut self) -> Result<Vec<Value>, ApiError> {
        // With a judge nothing was sent yet: the held text is the whole answer.
        let full: String = self.held.values().map(|h| h.text.as_str()).collect::<Vec<_>>().join("\n");
        self.judge(&full).await?;
        let indexes: Vec<u64> = self.held.keys().copied().collect();
        let mut out = Vec::new();
        for index in indexes {
            let text = self.release(index, true)?;
            if text.is_empty() {
                continue;
            }
            let mut chunk = self.template.clone().unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
            let is_completion = chunk.pointer("/choices/0/text").is_some();
            let choice = if is_completion {
                json!({"index": index, "text": text, "finish_reason": null})
            } else {
                json!({"index": index, "delta": {"content": text}, "finish_reason": null})
            };
            if let Some(o) = chunk.as_object_mut() {
                o.insert("choices".into(), json!([choice]));
                o.remove("usage");
            }
            out.push(chunk);
        }
        out.append(&mut self.finishing);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(body: Value) -> Value {
        let side = Side::compile(&serde_json::from_value(json!({"pii": {"behavior": "MASK"}})).unwrap()).unwrap();
        let Value::Object(mut map) = body else { unreachable!("an object") };
        each_request_text(&mut map, &mut |text| {
            if let Some(m) = scan(&side, text, false, "ep")? {
                *text = m;
            }
            Ok(())
        })
        .unwrap();
        Value::Object(map)
    }

    fn output_guard(params: Value) -> OutputGuard {
        let side = Side::compile(&serde_json::from_value(params).unwrap()).unwrap();
        OutputGuard::new(Arc::new(side), None, "ep")
    }

    fn chunk(text: &str) -> Value {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    }

    /// The text a client sees when `parts` stream through `guard`, or the refusal.
    fn stream_through(guard: &mut OutputGuard, parts: &[&str]) -> Result<(String, Vec<String>), ApiError> {
        let (mut text, mut sent) = (String::new(), Vec::new());
        for p in parts {
            for c in guard.chunk(chunk(p))? {
                let piece = c["choices"][0]["delta"]["content"].as_str().unwrap_or_default().to_string();
                sent.push(piece.clone());
                text.push_str(&piece);
            }
        }
        let end = futures::executor::block_on(guard.end())?;
        for c in end {
            text.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
        }
        Ok((text, sent))
    }

    #[test]
    fn streamed_findings_split_across_chunks_are_held_back_and_masked() {
        let mut guard = output_guard(json!({"pii": {"behavior": "MASK"}}));
        let (text, sent) =
            stream_through(&mut guard, &["my card is 4111 11", "11 1111 1111 and", " that is all"]).unwrap();
        assert_eq!(text, "my card is [CREDIT_CARD] and that is all");
        assert!(sent.iter().all(|s| !s.contains("4111") && !s.contains("1111")), "no digit left early: {sent:?}");
        // Plain words are not held longer than the trailing word.
        let mut guard = output_guard(json!({"pii": {"behavior": "MASK"}}));
        let (_, sent) = stream_through(&mut guard, &["hello there ", "friend"]).unwrap();
        assert_eq!(sent.first().map(String::as_str), Some("hello there "));
    }

    #[test]
    fn a_keyword_split_across_chunks_refuses_the_stream_before_it_is_sent() {
        let mut guard = output_guard(json!({"invalid_keywords": ["project falcon"]}));
        let e = stream_through(&mut guard, &["about project fal", "con today"]).unwrap_err();
        assert!(e.to_string().contains("keyword 'project falcon'"), "{e}");
        let mut guard = output_guard(json!({"pii": {"behavior": "BLOCK"}}));
        let e = stream_through(&mut guard, &["mail jane@exa", "mple.com now"]).unwrap_err();
        assert!(e.to_string().contains("an e-mail address"), "{e}");
    }

    #[test]
    fn every_text_that_reaches_the_provider_is_scanned() {
        let out = masked(json!({
            "model": "ep",
            "user": "jane@example.com",
            "messages": [
                {"role": "user", "name": "jane@example.com", "content": [{"type": "text", "text": "card 4111 1111 1111 1111"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,/4111111111111111+"}}]},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "pay", "arguments": "{\"card\": \"4111111111111111\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "mailed bob@example.com"}
            ],
            "tools": [{"type": "function", "function": {"name": "pay", "description": "pays for 555-123-4567",
                "parameters": {"type": "object", "properties": {"card": {"type": "string", "description": "e.g. jane@example.com"}}}}}],
            "stop": ["jane@example.com"]
        }));
        let text = out.to_string();
        for leaked in ["jane@example.com", "4111 1111", "4111111111111111\\\"", "bob@example.com", "555-123-4567"] {
            assert!(!text.contains(leaked), "{leaked} left in {text}");
        }
        assert_eq!(out["messages"][0]["content"][1]["image_url"]["url"], "data:image/png;base64,/4111111111111111+");
        assert_eq!(out["messages"][1]["tool_calls"][0]["function"]["arguments"], "{\"card\": \"[CREDIT_CARD]\"}");
        assert_eq!(out["model"], "ep");
        assert_eq!(out["messages"][0]["role"], "user");
    }
}
