//! The server's integration tests, in one binary (one link instead of one per file): a real
//! server on an ephemeral port per test, real HTTP, a mock provider on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

mod common;

mod across_providers;
mod alerts;
mod audit;
mod budgets;
mod cache;
mod console;
mod dataplane;
mod deprecation;
mod endpoints;
mod fail_closed;
mod fuzz;
mod guardrails;
mod health;
mod hosting;
mod identity;
mod inference;
mod inventory;
mod layout;
mod leaks;
mod limits;
mod models;
mod observability;
mod outbound;
mod permissions;
mod protocols;
mod provisioned;
mod ratelimits;
mod requests;
mod resilience;
mod secret_acls;
mod secrets_tokens;
mod shared_limits;
mod standards;
mod startup;
mod strict_input;
mod token_limits;
mod tracing;
mod usage;
