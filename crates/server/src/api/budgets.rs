//! Budget policy routes (our extension): `/api/2.0/budget-policies` (admins) and
//! `PUT /api/2.0/serving-endpoints/{name}/budget-policy` (`CAN_MANAGE` on the endpoint).

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::token;
use modelgate_store::Document;
use modelgate_wire::{BudgetPolicy, BudgetPolicyInput, ListBudgetPolicies, SetBudgetPolicy};
use serde_json::{Value, json};

use crate::access::require_admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::policy::budgets::{KIND, validate};
use crate::snapshot::Principal;
use crate::state::AppState;

type Caller = Extension<Arc<Principal>>;

async fn reload(app: &AppState) -> ApiResult<()> {
    // Spend is summed from the usage records: everything queued is written first.
    app.usage.flush().await;
    app.reload_budgets().await?;
    // The other replicas reload theirs.
    app.cluster.announce().await;
    Ok(())
}

fn one(app: &AppState, id: &str) -> ApiResult<BudgetPolicy> {
    app.budgets
        .list(&app.snapshot.load().targets())
        .into_iter()
        .find(|p| p.policy_id == id)
        .ok_or_else(|| ApiError::NotFound(format!("Budget policy '{id}' does not exist.")))
}

async fn save(app: &AppState, id: String, input: BudgetPolicyInput) -> ApiResult<BudgetPolicy> {
    validate(&input)?;
    let doc = Document {
        kind: KIND.into(),
        id: id.clone(),
        name: input.name.clone(),
        body: serde_json::to_string(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
        updated_at: modelgate_core::now_ms(),
    };
    app.store.put_document(&doc).await?;
    reload(app).await?;
    one(app, &id)
}

/// `POST /api/2.0/budget-policies`
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(input): ApiJson<BudgetPolicyInput>,
) -> ApiResult<Json<BudgetPolicy>> {
    require_admin(&caller, "manage budget policies")?;
    Ok(Json(save(&app, token::random_hex(16), input).await?))
}

/// `GET /api/2.0/budget-policies`: every policy with its current spend.
pub async fn list(State(app): State<AppState>, Extension(caller): Caller) -> ApiResult<Json<ListBudgetPolicies>> {
    require_admin(&caller, "read budget policies")?;
    app.usage.flush().await;
    Ok(Json(ListBudgetPolicies { policies: app.budgets.list(&app.snapshot.load().targets()) }))
}

/// `GET /api/2.0/budget-policies/{id}`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<BudgetPolicy>> {
    require_admin(&caller, "read budget policies")?;
    app.usage.flush().await;
    Ok(Json(one(&app, &id)?))
}

/// `PUT /api/2.0/budget-policies/{id}`: replaces the settings.
pub async fn update(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<BudgetPolicyInput>,
) -> ApiResult<Json<BudgetPolicy>> {
    require_admin(&caller, "manage budget policies")?;
    one(&app, &id)?;
    Ok(Json(save(&app, id, input).await?))
}

/// `DELETE /api/2.0/budget-policies/{id}`: refused while endpoints name it.
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&caller, "manage budget policies")?;
    let p = one(&app, &id)?;
    if !p.endpoints.is_empty() {
        return Err(ApiError::InvalidState(format!(
            "Budget policy '{}' is used by endpoint(s) {}; detach it first with PUT .../budget-policy.",
            p.input.name,
            p.endpoints.join(", ")
        )));
    }
    app.store.delete_document(KIND, &id).await?;
    reload(&app).await?;
    Ok(Json(json!({})))
}

/// `PUT /api/2.0/serving-endpoints/{name}/budget-policy`: attaches or detaches a policy.
pub async fn set_for_endpoint(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SetBudgetPolicy>,
) -> ApiResult<Json<SetBudgetPolicy>> {
    if let Some(id) = &body.budget_policy_id
        && !app.budgets.exists(id)
    {
        return Err(ApiError::invalid("budget_policy_id", format!("there is no budget policy '{id}'")));
    }
    let id = body.budget_policy_id.clone();
    crate::api::endpoints::set_budget_policy(&app, &caller, &name, id).await?;
    reload(&app).await?;
    Ok(Json(body))
}

/// Refuses an endpoint create that names a policy that does not exist.
pub fn check_reference(app: &AppState, id: Option<&str>) -> ApiResult<()> {
    match id {
        Some(id) if !app.budgets.exists(id) => {
            Err(ApiError::invalid("budget_policy_id", format!("there is no budget policy '{id}'")))
        }
        _ => Ok(()),
    }
}

/// After an endpoint that names a policy was created: its spend counts from now on.
pub async fn after_create(app: &AppState, id: Option<&str>) -> ApiResult<()> {
    if id.is_some() { reload(app).await } else { Ok(()) }
}
