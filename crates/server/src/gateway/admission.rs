//! Admission: what a query must pass before anything is sent upstream.

use std::sync::Arc;

use modelgate_core::permission::Level;
use modelgate_providers::{Body, Task};
use serde_json::Value;

use super::query::QueryFacts;
use super::settlement::Settlement;
use crate::error::{ApiError, ApiResult};
use crate::policy::guardrails::{self, OutputGuard};
use crate::policy::ratelimit;
use crate::snapshot::{LiveEndpoint, Principal};
use crate::state::AppState;

use super::judge::GatewayJudge;

/// Checks that `endpoint` can answer `route_task` and returns its task.
pub(super) fn servable(ep: &LiveEndpoint, route_task: Option<Task>) -> ApiResult<Task> {
    let name = &ep.name;
    if ep.stopped {
        return Err(ApiError::BadRequest(format!(
            "Endpoint '{name}' is stopped; start it with `modelgate serving-endpoints start {name}` \
             (POST /api/2.0/serving-endpoints/{name}/config:start)."
        )));
    }
    if ep.config_version.is_none() {
        return Err(ApiError::BadRequest(format!(
            "Endpoint '{name}' is not ready: no config version has deployed yet; see why with \
             `modelgate serving-endpoints config-versions {name}` (its build logs)."
        )));
    }
    if let Some(why) = &ep.unservable {
        return Err(ApiError::Unavailable(format!(
            "Endpoint '{name}' is not ready: {why}. It refuses queries rather than serve without that policy; \
             write the field again to fix it."
        )));
    }
    let Some(task) = ep.task.as_deref().and_then(Task::from_task) else {
        return Err(ApiError::BadRequest(format!("Endpoint '{name}' serves no external model that can be queried.")));
    };
    if let Some(asked) = route_task
        && asked != task
    {
        return Err(ApiError::InvalidParameter(format!(
            "Endpoint '{name}' serves {}, not {}; use POST /serving-endpoints/{}.",
            task.as_task(),
            asked.as_task(),
            task.openai_path()
        )));
    }
    Ok(task)
}

/// Checks the fields the task needs, before anything is sent upstream.
pub(super) fn check_body(task: Task, facts: &QueryFacts, body: &Body) -> ApiResult<()> {
    const SCORING_INPUTS: [&str; 4] = ["dataframe_split", "dataframe_records", "instances", "inputs"];
    if task == Task::Scoring {
        if facts.stream {
            return Err(ApiError::invalid("stream", "a scoring endpoint answers whole; it cannot stream"));
        }
        let given: Vec<&str> = SCORING_INPUTS.into_iter().filter(|k| body.contains_key(*k)).collect();
        return match given.as_slice() {
            [_] => Ok(()),
            [] => Err(ApiError::invalid(
                "dataframe_split",
                "a scoring endpoint needs one of dataframe_split, dataframe_records, instances or inputs",
            )),
            [first, ..] => Err(ApiError::invalid(first, format!("give only one of {}", given.join(", ")))),
        };
    }
    for custom in SCORING_INPUTS {
        if body.contains_key(custom) {
            return Err(ApiError::invalid(
                custom,
                "is an input of custom models; this endpoint serves an external model",
            ));
        }
    }
    match task {
        Task::Chat => match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => Ok(()),
            Some(Value::Array(_)) => Err(ApiError::invalid("messages", "must not be empty")),
            Some(_) => Err(ApiError::invalid("messages", "must be a list of {role, content} objects")),
            None => Err(ApiError::invalid("messages", "is required for a chat endpoint")),
        },
        Task::Completions => match body.get("prompt") {
            Some(Value::String(_)) | Some(Value::Array(_)) => Ok(()),
            Some(_) => Err(ApiError::invalid("prompt", "must be a string or a list of strings")),
            None => Err(ApiError::invalid("prompt", "is required for a completions endpoint")),
        },
        Task::Embeddings => {
            if facts.stream {
                return Err(ApiError::invalid("stream", "embeddings cannot be streamed"));
            }
            match body.get("input") {
                Some(Value::String(_)) | Some(Value::Array(_)) => Ok(()),
                Some(_) => Err(ApiError::invalid("input", "must be a string or a list of strings")),
                None => Err(ApiError::invalid("input", "is required for an embeddings endpoint")),
            }
        }
        Task::Images => {
            if facts.stream {
                return Err(ApiError::invalid("stream", "image generation answers whole; it cannot stream"));
            }
            match body.get("prompt") {
                Some(Value::String(p)) if !p.trim().is_empty() => {}
                Some(Value::String(_)) => return Err(ApiError::invalid("prompt", "must not be empty")),
                Some(_) => return Err(ApiError::invalid("prompt", "must be a string")),
                None => return Err(ApiError::invalid("prompt", "is required for an image endpoint")),
            }
            match body.get("n") {
                None | Some(Value::Null) => Ok(()),
                Some(n) if n.as_u64().is_some_and(|n| (1..=10).contains(&n)) => Ok(()),
                Some(_) => Err(ApiError::invalid("n", "must be an integer from 1 to 10")),
            }
        }
        Task::Scoring => Ok(()),
    }
}

pub(super) fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Everything between a parsed request and its upstream call: permission, servability, body
/// checks, rate limits, input guardrails. Returns the (possibly masked) body; the reservation and
/// output guardrails go into `settlement`.
pub(super) async fn admit(
    app: &AppState,
    caller: &Principal,
    name: &str,
    route_task: Option<Task>,
    facts: &QueryFacts,
    mut body: Body,
    settlement: &mut Option<Settlement>,
) -> ApiResult<(Arc<LiveEndpoint>, Task, Body)> {
    let ep = crate::access::require(app, caller, name, Level::CanQuery)?;
    if let Some(allowed) = caller.limits.as_ref().and_then(|l| l.allowed_endpoints.as_ref())
        && !allowed.iter().any(|a| *a == ep.name)
    {
        return Err(ApiError::PermissionDenied(format!(
            "This token may query only {}; not endpoint '{name}'.",
            allowed.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
        )));
    }
    let task = servable(&ep, route_task)?;
    check_body(task, facts, &body)?;
    if ep.entities.is_empty() {
        return Err(ApiError::BadRequest(format!("Endpoint '{name}' has no served entity.")));
    }
    app.budgets.check(ep.target(), caller.caller(), facts.usage_context.as_ref())?;
    let own = caller.limits.as_ref().and_then(|l| l.rate_limits.as_deref()).unwrap_or_default();
    let admission = ratelimit::admit(&app.counters, ep.target(), caller.caller(), own, &body, unix_secs()).await?;
    let judge = GatewayJudge::of(app);
    let policy = ep.guardrails.clone();
    let guard =
        policy.as_ref().and_then(|p| p.output.clone()).map(|side| OutputGuard::new(side, judge.clone(), &ep.name));
    if let Some(o) = settlement.as_mut() {
        // Held before the input checks, so a refused request releases its token reservation.
        o.reserve(app.counters.clone(), admission);
        o.guard(guard);
    }
    if let Some(side) = policy.as_ref().and_then(|p| p.input.as_ref()) {
        guardrails::check_input(judge.as_ref(), side, &ep.name, &mut body).await?;
    }
    Ok((ep, task, body))
}
