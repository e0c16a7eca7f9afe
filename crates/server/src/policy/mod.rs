//! Policies applied to queries: guardrails, rate limits and their counters, budgets, circuit
//! breakers. They know endpoints and callers, never the server state.

pub(crate) mod breaker;
pub(crate) mod budgets;
pub(crate) mod counters;
pub(crate) mod guardrails;
pub(crate) mod ratelimit;
