//! Policies applied to queries: the response cache, guardrails, rate limits and their counters (in-process or shared
//! in Redis), budgets, circuit breakers. They know endpoints and callers, never the server state.

pub(crate) mod breaker;
pub(crate) mod budgets;
pub(crate) mod cache;
pub(crate) mod counters;
pub(crate) mod guardrails;
pub(crate) mod ratelimit;
pub(crate) mod shared;

use std::collections::{BTreeMap, BTreeSet};

use modelgate_wire::AiGatewayRateLimit;

/// An endpoint as the policies see it.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// Endpoint id (counter keys).
    pub id: &'a str,
    /// Endpoint name (messages, budget scopes).
    pub name: &'a str,
    /// Its rate limits: `ai_gateway.rate_limits` and the legacy `rate_limits`.
    pub rate_limits: &'a [AiGatewayRateLimit],
    /// The budget policy it names.
    pub budget_policy_id: Option<&'a str>,
    /// Its tags.
    pub tags: &'a BTreeMap<String, String>,
}

/// A caller as the policies see it.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    /// Principal id.
    pub id: &'a str,
    /// User name or application id.
    pub name: &'a str,
    /// Every group it belongs to, by name.
    pub groups: &'a BTreeSet<String>,
    /// The token it called with (its id; empty for a console session).
    pub token_id: &'a str,
}
