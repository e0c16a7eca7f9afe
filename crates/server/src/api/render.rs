//! Stored records → API objects.

use modelgate_store::{ConfigRecord, EndpointRecord, config_status};
use modelgate_wire::*;

use crate::configs;
use crate::error::ApiError;

/// `state.ready` and `state.config_update` of an endpoint. Ready means an active config exists
/// and the endpoint is not stopped.
pub fn endpoint_state(e: &EndpointRecord) -> EndpointState {
    let ready = e.active_version.is_some() && !e.stopped;
    // The store writes only known names; an unknown one (a newer server's) reads as no update.
    let config_update = ConfigUpdate::parse(&e.config_update).unwrap_or(ConfigUpdate::NotUpdating);
    EndpointState { ready: if ready { Ready::Ready } else { Ready::NotReady }, config_update }
}

fn entity_state(record: &ConfigRecord, stopped: bool) -> ServedEntityState {
    let (deployment, message) = match record.status.as_str() {
        config_status::PENDING => {
            (Deployment::DeploymentCreating, format!("Deploying config version {}.", record.version))
        }
        config_status::FAILED => (Deployment::DeploymentFailed, "Deployment failed; see build-logs.".to_string()),
        _ if stopped => {
            (Deployment::DeploymentAborted, "The endpoint is stopped; start it to serve again.".to_string())
        }
        _ => (Deployment::DeploymentReady, "Served entity is ready.".to_string()),
    };
    ServedEntityState { deployment, deployment_state_message: Some(message) }
}

/// A config version as `config` or `pending_config`.
pub fn config_output(record: &ConfigRecord, stopped: bool, pending: bool) -> Result<EndpointConfigOutput, ApiError> {
    let cfg = configs::public(configs::parse_stored(record)?);
    let state = entity_state(record, stopped);
    let served_entities = cfg.served_entities.map(|v| {
        v.into_iter()
            .map(|spec| ServedEntityOutput {
                spec,
                creator: Some(record.creator.clone()),
                creation_timestamp: Some(record.created_at),
                state: Some(state.clone()),
            })
            .collect()
    });
    let served_models = cfg.served_models.map(|v| {
        v.into_iter()
            .map(|spec| ServedModelOutput {
                spec,
                creator: Some(record.creator.clone()),
                creation_timestamp: Some(record.created_at),
                state: Some(state.clone()),
            })
            .collect()
    });
    Ok(EndpointConfigOutput {
        config_version: record.version,
        served_entities,
        served_models,
        traffic_config: cfg.traffic_config,
        auto_capture_config: cfg.auto_capture_config,
        start_time: pending.then_some(record.created_at),
    })
}

fn json_field<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// Tags of an endpoint record.
pub fn tags(e: &EndpointRecord) -> Vec<EndpointTag> {
    serde_json::from_str(&e.tags).unwrap_or_default()
}

/// The full endpoint object.
pub fn detailed(
    e: &EndpointRecord,
    active: Option<&ConfigRecord>,
    pending: Option<&ConfigRecord>,
    level: Option<modelgate_core::permission::Level>,
) -> Result<ServingEndpointDetailed, ApiError> {
    let config = active.map(|c| config_output(c, e.stopped, false)).transpose()?;
    let pending_config = pending.map(|c| config_output(c, e.stopped, true)).transpose()?;
    let kind =
        active.or(pending).and_then(|c| configs::parse_stored(c).ok()).map(|c| modelgate_core::validate::kind_of(&c));
    Ok(ServingEndpointDetailed {
        name: e.name.clone(),
        id: e.id.clone(),
        creator: e.creator.clone(),
        creation_timestamp: e.created_at,
        last_updated_timestamp: e.updated_at,
        state: endpoint_state(e),
        config,
        pending_config,
        ai_gateway: json_field(e.ai_gateway.as_deref()),
        rate_limits: json_field(e.rate_limits.as_deref()),
        tags: tags(e),
        task: e.task.clone(),
        description: e.description.clone(),
        budget_policy_id: e.budget_policy_id.clone(),
        email_notifications: json_field(e.email_notifications.as_deref()),
        route_optimized: e.route_optimized,
        telemetry_config: json_field(e.telemetry_config.as_deref()),
        permission_level: level.map(|l| l.as_str().to_string()),
        endpoint_type: kind.map(|k| k.endpoint_type().to_string()),
        stopped: e.stopped,
        deprecation: json_field(e.deprecation.as_deref()),
    })
}

/// The list-item summary.
pub fn summary(e: &EndpointRecord, config: Option<&ConfigRecord>) -> ServingEndpoint {
    let config = config.and_then(|c| configs::parse_stored(c).ok()).map(|c| EndpointConfigSummary {
        served_entities: configs::public(c)
            .served_entities
            .unwrap_or_default()
            .into_iter()
            .map(|s| ServedEntitySpec {
                name: s.name.unwrap_or_default(),
                entity_name: s.entity_name,
                entity_version: s.entity_version,
                external_model: s.external_model,
            })
            .collect(),
    });
    ServingEndpoint {
        name: e.name.clone(),
        id: e.id.clone(),
        creator: e.creator.clone(),
        creation_timestamp: e.created_at,
        last_updated_timestamp: e.updated_at,
        state: endpoint_state(e),
        config,
        tags: tags(e),
        task: e.task.clone(),
        description: e.description.clone(),
        ai_gateway: json_field(e.ai_gateway.as_deref()),
        budget_policy_id: e.budget_policy_id.clone(),
        stopped: e.stopped,
    }
}
