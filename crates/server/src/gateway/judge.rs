//! The guardrail judge asks its endpoint through the data plane (no caller, no limits, no
//! guardrails of its own).

use std::sync::Arc;

use modelgate_providers::{Body, Task};
use serde_json::Value;

use crate::policy::guardrails;
use crate::state::AppState;

use super::admission::servable;
use super::attempt::route;

/// Queries a chat endpoint from inside the server (the guardrail judge): no caller, no limits,
/// no guardrails. Returns the answer, or why there is none.
pub(crate) async fn ask(app: &AppState, name: &str, body: Body) -> Result<Value, String> {
    let snapshot = app.snapshot.load();
    let ep = snapshot.endpoints.get(name).cloned().ok_or_else(|| format!("there is no endpoint '{name}'"))?;
    servable(&ep, Some(Task::Chat)).map_err(|e| e.to_string())?;
    // Boxed: the judge runs inside the answer path of `route` itself.
    let resp = Box::pin(route(app, &ep, Task::Chat, &super::query::QueryFacts::default(), body, &mut None)).await;
    let ok = resp.status().is_success();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".to_string())?;
    if ok { Ok(v) } else { Err(v.get("message").and_then(Value::as_str).unwrap_or("it failed").to_string()) }
}

/// The server's judge endpoint, asked through [`ask`].
pub(super) struct GatewayJudge {
    app: AppState,
    endpoint: String,
}

impl GatewayJudge {
    /// The server's judge, when it has one.
    pub(super) fn of(app: &AppState) -> Option<guardrails::Judge> {
        let endpoint = app.judge_endpoint.clone()?;
        Some(guardrails::Judge::new(Arc::new(GatewayJudge { app: app.clone(), endpoint })))
    }
}

#[async_trait::async_trait]
impl guardrails::JudgeModel for GatewayJudge {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn ask(&self, body: Body) -> Result<Value, String> {
        ask(&self.app, &self.endpoint, body).await
    }
}
