//! Health probes: one minimal real query to a served entity (a one-token chat or completion, a
//! one-word embedding), sent like any query but recorded nowhere, and what its outcome says
//! about the entity: reachable, authenticated, model known, how fast. An image model is sent an
//! empty prompt: drawing an image would be billed, and the provider's refusal of the empty prompt
//! still shows that it is reachable and took the credentials.

use std::time::{Duration, Instant};

use modelgate_providers::{Body, ProviderError, Task};
use modelgate_wire::EntityHealth;
use serde_json::{Value, json};

use super::attempt::{Attempt, call};
use super::query::QueryFacts;
use crate::error::{ApiError, Origin};
use crate::hosting::replicas::Refusal;
use crate::snapshot::{LiveEndpoint, LiveEntity};
use crate::state::AppState;

/// Longest a probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The smallest query of `task`.
fn minimal_query(task: Task) -> Body {
    let v = match task {
        Task::Chat => json!({"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}),
        Task::Completions => json!({"prompt": "ping", "max_tokens": 1}),
        Task::Embeddings => json!({"input": "ping"}),
        Task::Images => json!({"prompt": "", "n": 1}),
        Task::Scoring => json!({"dataframe_records": []}),
    };
    match v {
        Value::Object(o) => o,
        _ => Body::new(),
    }
}

/// Whether a provider's message says the model is unknown.
fn says_no_such_model(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("model") || m.contains("deployment"))
        && ["not found", "does not exist", "not exist", "unknown", "no such", "invalid model"]
            .iter()
            .any(|k| m.contains(k))
}

/// Probes one entity of `ep`.
pub(crate) async fn probe(app: &AppState, ep: &LiveEndpoint, entity: &LiveEntity) -> EntityHealth {
    let model = entity.external_model.as_ref().map(|m| m.name.clone()).unwrap_or_default();
    let mut health =
        EntityHealth { name: entity.name.clone(), model, checked_at: modelgate_core::now_ms(), ..Default::default() };
    let started = Instant::now();
    let deadline = started + PROBE_TIMEOUT.min(app.timeouts.total);
    // A hosted entity is probed through one of its replicas (starting one if it scaled to zero).
    let lease = match &entity.hosted {
        Some(set) => match set.lease(deadline).await {
            Ok(lease) => Some(lease),
            Err(refusal) => {
                let why = match refusal {
                    Refusal::Busy { .. } => "every replica is busy and its queue is full".to_string(),
                    Refusal::Unavailable(why) => why,
                };
                health.message = Some(format!("Served entity '{}' cannot serve now: {why}.", entity.name));
                return health;
            }
        },
        None => None,
    };
    let adapter = match (&lease, &entity.adapter) {
        (Some(lease), _) => lease.adapter(),
        (None, Ok(a)) => a,
        (None, Err(why)) => {
            health.message = Some(format!("Served entity '{}' cannot serve: {why}.", entity.name));
            return health;
        }
    };
    health.provider = adapter.provider().to_string();
    let Some(task) = ep.task.as_deref().and_then(Task::from_task) else {
        health.message = Some("The endpoint's task cannot be queried.".into());
        return health;
    };
    let facts = QueryFacts::default();
    let attempt =
        Attempt { adapter: adapter.as_ref(), entity, task, facts: &facts, deadline, trace: None, traceparent: None };
    let result = call(app, &attempt, minimal_query(task), &mut None).await;
    health.latency_ms = started.elapsed().as_secs_f64() * 1e3;
    health.host = entity.upstream.get().map(|u| u.host.clone());
    let error = match result {
        Ok(resp) if resp.status().is_success() => {
            health.ok = true;
            health.reachable = Some(true);
            health.authenticated = Some(true);
            health.model_exists = Some(true);
            return health;
        }
        Ok(resp) => {
            // An answer the gateway itself refused (an output check): the entity did answer.
            health.reachable = Some(true);
            health.message = Some(format!("The answer was refused with HTTP {}.", resp.status().as_u16()));
            return health;
        }
        Err(e) => e,
    };
    match &error {
        ProviderError::Upstream { status: 400, message, .. }
            if task == Task::Images && !says_no_such_model(message) =>
        {
            health.ok = true;
            health.reachable = Some(true);
            health.authenticated = Some(true);
            health.message = Some(
                "Reachable, and the credentials were accepted. An image model is probed with an empty prompt, \
                 which draws (and bills) nothing, so the model itself is not checked."
                    .into(),
            );
            return health;
        }
        ProviderError::Upstream { status, message, .. } => {
            health.reachable = Some(true);
            health.upstream_status = Some(*status);
            match status {
                401 | 403 => health.authenticated = Some(false),
                404 => {
                    health.authenticated = Some(true);
                    health.model_exists = Some(false);
                }
                400 | 422 if says_no_such_model(message) => {
                    health.authenticated = Some(true);
                    health.model_exists = Some(false);
                }
                429 => {
                    health.authenticated = Some(true);
                    health.model_exists = Some(true);
                }
                _ => {}
            }
        }
        ProviderError::Connect(_) | ProviderError::Timeout(_) => health.reachable = Some(false),
        ProviderError::BadResponse(_) | ProviderError::TooLarge(_) => health.reachable = Some(true),
        ProviderError::Unsupported(_) => {}
    }
    let origin = Origin { entity: &entity.name, provider: adapter.provider(), host: health.host.as_deref() };
    health.message = Some(ApiError::from_provider(&origin, error).to_string());
    health
}

/// Whether a failed probe counts against the entity's breaker, as a failed query would.
pub(crate) fn counts_against_breaker(h: &EntityHealth) -> bool {
    !h.ok && (h.reachable == Some(false) || h.upstream_status.is_some_and(|s| s == 429 || s >= 500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_models_are_recognised_in_provider_messages() {
        assert!(says_no_such_model("The model `gpt-5o` does not exist or you do not have access to it."));
        assert!(says_no_such_model("The API deployment for this resource does not exist."));
        assert!(!says_no_such_model("max_tokens must be at least 1"));
        assert!(!says_no_such_model("Incorrect API key provided"));
    }
}
