//! The data-plane routes: each parses its body and hands it to the pipeline.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use modelgate_core::permission::Level;
use modelgate_providers::{Body, Task};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, QueryHeaders, RawBody, parse_json};
use crate::snapshot::Principal;
use crate::state::AppState;

use super::query;

type Caller = Extension<Arc<Principal>>;

/// `POST /serving-endpoints/{name}/invocations`: the task is the endpoint's.
pub async fn invocations(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    headers: QueryHeaders,
    RawBody(body): RawBody,
) -> Response {
    match parse_body(&body) {
        Ok(b) => query(&app, &caller, &name, None, b, body, headers).await,
        Err(e) => refuse(&app, &caller, &name, e),
    }
}

/// A query refused before the pipeline: answered, and left in the request log.
fn refuse(app: &AppState, caller: &Principal, name: &str, e: ApiError) -> Response {
    let start = std::time::Instant::now();
    let resp = e.into_response();
    super::refused(app, caller, name, &resp, start);
    resp
}

/// `POST .../chat/completions`
pub async fn chat(
    State(app): State<AppState>,
    Extension(caller): Caller,
    headers: QueryHeaders,
    RawBody(body): RawBody,
) -> Response {
    openai_route(&app, &caller, Task::Chat, body, headers).await
}

/// `POST .../completions`
pub async fn completions(
    State(app): State<AppState>,
    Extension(caller): Caller,
    headers: QueryHeaders,
    RawBody(body): RawBody,
) -> Response {
    openai_route(&app, &caller, Task::Completions, body, headers).await
}

/// `POST .../embeddings`
pub async fn embeddings(
    State(app): State<AppState>,
    Extension(caller): Caller,
    headers: QueryHeaders,
    RawBody(body): RawBody,
) -> Response {
    openai_route(&app, &caller, Task::Embeddings, body, headers).await
}

/// `POST .../images/generations`
pub async fn images(
    State(app): State<AppState>,
    Extension(caller): Caller,
    headers: QueryHeaders,
    RawBody(body): RawBody,
) -> Response {
    openai_route(&app, &caller, Task::Images, body, headers).await
}

/// `GET /v1/models` (and `/serving-endpoints/models`): the endpoints, as OpenAI models.
pub async fn models(State(app): State<AppState>, Extension(caller): Caller) -> Response {
    let snap = app.snapshot.load();
    let mut visible: Vec<(&String, &Option<String>)> = snap
        .endpoints
        .iter()
        .filter(|(_, ep)| crate::access::level_of(&caller, ep).is_some_and(|l| l >= Level::CanQuery))
        .filter(|(n, _)| {
            caller.limits.as_ref().and_then(|l| l.allowed_endpoints.as_ref()).is_none_or(|a| a.contains(n))
        })
        .map(|(n, ep)| (n, &ep.task))
        .collect();
    visible.sort();
    let data: Vec<Value> = visible
        .into_iter()
        .map(|(n, task)| json!({"id": n, "object": "model", "created": 0, "owned_by": "modelgate", "task": task}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

fn parse_body(body: &[u8]) -> ApiResult<Body> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty; send a JSON object".into()));
    }
    parse_json::<Body>(body)
}

async fn openai_route(app: &AppState, caller: &Principal, task: Task, body: Bytes, headers: QueryHeaders) -> Response {
    let parsed = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return refuse(app, caller, "", e),
    };
    let Some(name) = parsed.get("model").and_then(Value::as_str).map(str::to_string) else {
        let e = ApiError::invalid("model", "is required: the name of the serving endpoint to query");
        return refuse(app, caller, "", e);
    };
    query(app, caller, &name, Some(task), parsed, body, headers).await
}
