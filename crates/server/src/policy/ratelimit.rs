//! Rate limits (`ai_gateway.rate_limits` and the legacy `rate_limits`), per calendar minute.
//!
//! Which limits apply to a caller, following the Databricks rules:
//! 1. `endpoint` limits are a ceiling for everyone, always;
//! 2. a `user` or `service_principal` limit naming the caller overrides everything below;
//! 3. otherwise the caller's `user_group` limit: a group's counter is shared by its members, and a
//!    caller in several limited groups is held to the most permissive one (the highest calls
//!    limit, then the highest tokens limit);
//! 4. otherwise the default per-user limit (`user` with no principal).
//!
//! A token's own rate limits (`limits.rate_limits` of the token) apply on top, counted over every
//! endpoint the token queries.
//!
//! A limit may count calls, tokens or both; each must have room (the stricter wins). Token limits
//! reserve the request's estimated input tokens plus its `max_tokens` (default
//! [`DEFAULT_MAX_TOKENS`]) before sending, and settle to the provider's reported usage afterwards.

use modelgate_providers::tokens;
use modelgate_wire::{AiGatewayRateLimit, TokenRateLimit};
use serde_json::Value;

use crate::error::ApiError;
use crate::policy::counters::{Backend, Counters, Want};
use crate::policy::{Caller, Target};

/// Output tokens reserved for a request that sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// An admitted request's token reservation, to settle once usage is known.
#[derive(Debug, Default)]
pub struct Admission {
    backend: Backend,
    window: u64,
    token_keys: Vec<String>,
    reserved: u64,
    input: u64,
}

impl Admission {
    /// Replaces the reservation with the tokens actually used.
    pub fn settle(&self, counters: &Counters, used: u64) {
        let delta = used as i64 - self.reserved as i64;
        if delta == 0 {
            return;
        }
        for k in &self.token_keys {
            counters.adjust(self.backend, self.window, k, delta);
        }
    }

    /// Whether token counters need the usage of the answer.
    pub fn needs_usage(&self) -> bool {
        !self.token_keys.is_empty()
    }

    /// The estimated input tokens of the request.
    pub fn input(&self) -> u64 {
        self.input
    }
}

fn text_of(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| text_of(x, out)),
        Value::Object(o) => {
            for k in ["content", "text"] {
                if let Some(x) = o.get(k) {
                    text_of(x, out);
                }
            }
        }
        _ => {}
    }
}

/// Estimated tokens of a request: its input text counted with a real tokenizer, and the output it
/// may produce.
pub fn estimate(body: &serde_json::Map<String, Value>) -> (u64, u64) {
    let mut text = String::new();
    for k in ["messages", "prompt", "input"] {
        if let Some(v) = body.get(k) {
            text_of(v, &mut text);
        }
    }
    let output = if body.contains_key("input") {
        0
    } else {
        body.get("max_tokens")
            .or_else(|| body.get("max_completion_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_MAX_TOKENS)
    };
    (tokens::count(&text), output)
}

fn wants(limits: &[&AiGatewayRateLimit], counter: &str, tokens: u64) -> Vec<Want> {
    let pairs: Vec<(Option<i64>, Option<i64>)> = limits.iter().map(|l| (l.calls, l.tokens)).collect();
    wants_of(&pairs, counter, tokens)
}

/// The counters of limits given as (calls, tokens) per minute.
fn wants_of(limits: &[(Option<i64>, Option<i64>)], counter: &str, tokens: u64) -> Vec<Want> {
    let mut out = Vec::new();
    for (i, (calls, tokens_limit)) in limits.iter().enumerate() {
        if let Some(c) = *calls {
            out.push(Want { key: format!("{counter}:{i}:calls"), amount: 1, limit: c.max(0) as u64 });
        }
        if let Some(t) = *tokens_limit {
            out.push(Want { key: format!("{counter}:{i}:tokens"), amount: tokens, limit: t.max(0) as u64 });
        }
    }
    out
}

/// "calls per minute for group 'x'" for the counter `key`.
fn describe(key: &str, limit: u64, caller: &str) -> String {
    let kind = if key.ends_with(":tokens") { "tokens" } else { "calls" };
    let scope = match key.split(':').next() {
        Some("ep") => "for the whole endpoint".to_string(),
        Some("p") => format!("for {caller}"),
        Some("g") => format!("for group '{}'", key.split(':').nth(2).unwrap_or_default()),
        Some("t") => "for this token".to_string(),
        _ => "per user".to_string(),
    };
    format!("{limit} {kind} per minute {scope}")
}

/// Admits a request or refuses it with a 429 naming the limit. `now_secs` is the wall clock.
pub async fn admit(
    counters: &Counters,
    ep: Target<'_>,
    caller: Caller<'_>,
    token_limits: &[TokenRateLimit],
    body: &serde_json::Map<String, Value>,
    now_secs: u64,
) -> Result<Option<Admission>, ApiError> {
    if ep.rate_limits.is_empty() && token_limits.is_empty() {
        return Ok(None);
    }
    let window = now_secs / 60;
    let counts_tokens =
        ep.rate_limits.iter().any(|l| l.tokens.is_some()) || token_limits.iter().any(|l| l.tokens.is_some());
    let (input, output) = if counts_tokens { estimate(body) } else { (0, 0) };
    let estimated = input + output;
    let of_key = |k: &str| -> Vec<&AiGatewayRateLimit> {
        ep.rate_limits.iter().filter(|l| l.key.as_deref().unwrap_or("endpoint") == k).collect()
    };
    let mut all = wants(&of_key("endpoint"), &format!("ep:{}", ep.id), estimated);

    let mine = |l: &&AiGatewayRateLimit| l.principal.as_deref() == Some(caller.name);
    let specific: Vec<_> = of_key("user").into_iter().chain(of_key("service_principal")).filter(mine).collect();
    let groups: Vec<_> = of_key("user_group")
        .into_iter()
        .filter(|l| l.principal.as_ref().is_some_and(|g| caller.groups.contains(g)))
        .collect();
    let unlimited = |v: Option<i64>| v.unwrap_or(i64::MAX);
    if !specific.is_empty() {
        all.extend(wants(&specific, &format!("p:{}:{}", ep.id, caller.id), estimated));
    } else if let Some(g) = groups.iter().max_by_key(|g| (unlimited(g.calls), unlimited(g.tokens))) {
        let group = g.principal.as_deref().unwrap_or_default();
        all.extend(wants(&[*g], &format!("g:{}:{group}", ep.id), estimated));
    } else {
        let default: Vec<_> = of_key("user").into_iter().filter(|l| l.principal.is_none()).collect();
        all.extend(wants(&default, &format!("u:{}:{}", ep.id, caller.id), estimated));
    }
    let own: Vec<(Option<i64>, Option<i64>)> = token_limits.iter().map(|l| (l.calls, l.tokens)).collect();
    all.extend(wants_of(&own, &format!("t:{}", caller.token_id), estimated));

    let r = match counters.reserve(window, &all).await {
        Ok(backend) => {
            let token_keys: Vec<String> =
                all.iter().filter(|w| w.key.ends_with(":tokens")).map(|w| w.key.clone()).collect();
            let reserved = if token_keys.is_empty() { 0 } else { estimated };
            return Ok(Some(Admission { backend, window, reserved, input, token_keys }));
        }
        Err(r) => r,
    };
    let reset = 60 - now_secs % 60;
    Err(ApiError::RateLimited {
        message: format!(
            "Rate limit exceeded on endpoint '{}': {}. Try again in {reset}s.",
            ep.name,
            describe(&r.key, r.limit, caller.name)
        ),
        limit: r.limit,
        tokens: r.key.ends_with(":tokens"),
        reset_secs: reset,
    })
}

/// How full each endpoint-wide limit of `ep` is in the current minute: what it counts, the amount
/// used and the limit.
pub async fn endpoint_usage(counters: &Counters, ep: Target<'_>, now_secs: u64) -> Vec<(String, u64, u64)> {
    let window = now_secs / 60;
    let limits: Vec<&AiGatewayRateLimit> =
        ep.rate_limits.iter().filter(|l| l.key.as_deref().unwrap_or("endpoint") == "endpoint").collect();
    let mut out = Vec::new();
    for w in wants(&limits, &format!("ep:{}", ep.id), 0) {
        out.push((describe(&w.key, w.limit, ""), counters.get(window, &w.key).await, w.limit));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::json;

    use super::*;
    use crate::policy::counters::Counters;

    fn limits(v: serde_json::Value) -> Vec<AiGatewayRateLimit> {
        serde_json::from_value(v).unwrap()
    }

    fn target<'a>(rate_limits: &'a [AiGatewayRateLimit], tags: &'a BTreeMap<String, String>) -> Target<'a> {
        Target { id: "ep1", name: "chat", rate_limits, budget_policy_id: None, tags }
    }

    fn body(text: &str, max_tokens: u64) -> serde_json::Map<String, Value> {
        json!({"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}).as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn calls_per_minute_refuse_the_next_call_and_reset_with_the_minute() {
        let counters = Counters::local();
        let (tags, groups) = (BTreeMap::new(), BTreeSet::new());
        let l = limits(json!([{"key": "user", "calls": 2, "renewal_period": "minute"}]));
        let ann = Caller { id: "1", name: "ann", groups: &groups, token_id: "t1" };
        let bob = Caller { id: "2", name: "bob", groups: &groups, token_id: "t2" };
        let at = 60 * 1000 + 42; // 42 s into a minute
        for _ in 0..2 {
            assert!(admit(&counters, target(&l, &tags), ann, &[], &body("hi", 5), at).await.is_ok());
        }
        let refused = admit(&counters, target(&l, &tags), ann, &[], &body("hi", 5), at).await.unwrap_err();
        match refused {
            ApiError::RateLimited { limit, tokens, reset_secs, message } => {
                assert_eq!((limit, tokens, reset_secs), (2, false, 18));
                assert!(message.contains("2 calls per minute per user"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(admit(&counters, target(&l, &tags), bob, &[], &body("hi", 5), at).await.is_ok(), "per user");
        assert!(admit(&counters, target(&l, &tags), ann, &[], &body("hi", 5), at + 18).await.is_ok(), "a new minute");
    }

    #[tokio::test]
    async fn tokens_are_reserved_then_settled_to_what_was_used() {
        let counters = Counters::local();
        let (tags, groups) = (BTreeMap::new(), BTreeSet::new());
        let l = limits(json!([{"key": "endpoint", "tokens": 100, "renewal_period": "minute"}]));
        let ann = Caller { id: "1", name: "ann", groups: &groups, token_id: "t1" };
        // Estimated input (a few tokens) plus max_tokens 60: one fits, a second would not.
        let first = admit(&counters, target(&l, &tags), ann, &[], &body("hello there", 60), 0).await.unwrap().unwrap();
        assert!(first.needs_usage() && first.input() > 0);
        assert!(admit(&counters, target(&l, &tags), ann, &[], &body("hello there", 60), 0).await.is_err());
        // The answer used 10 tokens in all: the reservation shrinks and room comes back.
        first.settle(&counters, 10);
        assert!(admit(&counters, target(&l, &tags), ann, &[], &body("hello there", 60), 0).await.is_ok());
    }

    #[tokio::test]
    async fn a_named_limit_overrides_groups_and_the_most_permissive_group_wins() {
        let counters = Counters::local();
        let tags = BTreeMap::new();
        let groups: BTreeSet<String> = ["ml".to_string(), "ops".to_string()].into();
        let l = limits(json!([
            {"key": "user_group", "principal": "ml", "calls": 1, "renewal_period": "minute"},
            {"key": "user_group", "principal": "ops", "calls": 3, "renewal_period": "minute"},
            {"key": "user", "principal": "vip", "calls": 5, "renewal_period": "minute"}
        ]));
        let ann = Caller { id: "1", name: "ann", groups: &groups, token_id: "t1" };
        let mut allowed = 0;
        for _ in 0..5 {
            allowed += usize::from(admit(&counters, target(&l, &tags), ann, &[], &body("x", 1), 0).await.is_ok());
        }
        assert_eq!(allowed, 3, "held to the ops group's 3");
        let vip = Caller { id: "9", name: "vip", groups: &groups, token_id: "t9" };
        let mut allowed = 0;
        for _ in 0..7 {
            allowed += usize::from(admit(&counters, target(&l, &tags), vip, &[], &body("x", 1), 0).await.is_ok());
        }
        assert_eq!(allowed, 5, "a limit naming the caller overrides the groups");
    }

    #[tokio::test]
    async fn a_tokens_own_limit_counts_over_every_endpoint_and_holds_with_no_endpoint_limit() {
        let counters = Counters::local();
        let (tags, groups) = (BTreeMap::new(), BTreeSet::new());
        let none: Vec<AiGatewayRateLimit> = Vec::new();
        let own: Vec<TokenRateLimit> =
            serde_json::from_value(json!([{"calls": 2, "renewal_period": "minute"}])).unwrap();
        let first = Caller { id: "1", name: "ann", groups: &groups, token_id: "tok-a" };
        let other_token = Caller { token_id: "tok-b", ..first };
        let other_endpoint = Target { id: "ep2", ..target(&none, &tags) };
        assert!(admit(&counters, target(&none, &tags), first, &own, &body("x", 1), 0).await.is_ok());
        assert!(admit(&counters, other_endpoint, first, &own, &body("x", 1), 0).await.is_ok());
        let refused = admit(&counters, target(&none, &tags), first, &own, &body("x", 1), 0).await.unwrap_err();
        assert!(refused.to_string().contains("2 calls per minute for this token"), "{refused}");
        assert!(admit(&counters, target(&none, &tags), other_token, &own, &body("x", 1), 0).await.is_ok());
        assert!(admit(&counters, target(&none, &tags), other_token, &[], &body("x", 1), 0).await.unwrap().is_none());
    }
}
