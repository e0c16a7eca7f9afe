//! Who may do what: a caller's level on an endpoint, and the checks every route makes. They read
//! the snapshot only. An endpoint the caller cannot view answers exactly like one that does not
//! exist.

use std::sync::Arc;

use modelgate_core::permission::Level;

use crate::error::{ApiError, ApiResult};
use crate::snapshot::{LiveEndpoint, Principal};
use crate::state::AppState;

/// The caller's effective level on `ep`, if any.
pub fn level_of(caller: &Principal, ep: &LiveEndpoint) -> Option<Level> {
    level_in(caller, &ep.grants)
}

/// The caller's effective level on an object with these grants (principal id, level): the
/// highest of its own and its groups' (through nesting); admins manage everything.
pub fn level_in(caller: &Principal, grants: &[(String, Level)]) -> Option<Level> {
    if caller.is_admin {
        return Some(Level::CanManage);
    }
    grants.iter().filter(|(who, _)| *who == caller.id || caller.group_ids.contains(who)).map(|(_, l)| *l).max()
}

/// The 404 for an endpoint that does not exist, or that the caller may not see.
pub fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Endpoint with name '{name}' does not exist."))
}

/// The endpoint named `name` if the caller has at least `needed` on it: 404 when the caller cannot
/// even view it (or it does not exist), 403 naming the missing level otherwise.
pub fn require(app: &AppState, caller: &Principal, name: &str, needed: Level) -> ApiResult<Arc<LiveEndpoint>> {
    let ep = app.snapshot.load().endpoints.get(name).cloned().ok_or_else(|| not_found(name))?;
    match level_of(caller, &ep) {
        None => Err(not_found(name)),
        Some(l) if l >= needed => Ok(ep),
        Some(l) => Err(ApiError::PermissionDenied(format!(
            "{} on endpoint '{name}' is required; you have {}.",
            needed.as_str(),
            l.as_str()
        ))),
    }
}

/// Requires the caller to be an admin.
pub fn require_admin(p: &Principal, what: &str) -> Result<(), ApiError> {
    if p.is_admin { Ok(()) } else { Err(ApiError::PermissionDenied(format!("Only admins may {what}."))) }
}
