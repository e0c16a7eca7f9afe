//! Permissions API (`/api/2.0/permissions/serving-endpoints/{id}`).

use serde::{Deserialize, Serialize};

/// One grant in a request: exactly one principal field and a level.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessControlRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub group_name: Option<String>,
    /// The service principal's application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_name: Option<String>,
    /// `CAN_VIEW`, `CAN_QUERY` or `CAN_MANAGE`.
    pub permission_level: String,
}

/// Body of PUT and PATCH.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsRequest {
    /// The grants.
    #[serde(default)]
    pub access_control_list: Vec<AccessControlRequest>,
}

/// One permission of a principal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Permission {
    #[allow(missing_docs)]
    pub permission_level: String,
    /// Whether it comes from a parent object rather than a direct grant.
    pub inherited: bool,
    /// Where it is inherited from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_from_object: Option<Vec<String>>,
}

/// One principal's permissions in a response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccessControlResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub service_principal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub display_name: Option<String>,
    #[allow(missing_docs)]
    pub all_permissions: Vec<Permission>,
}

/// Response of every Permissions route but `permissionLevels`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectPermissions {
    /// `/serving-endpoints/<id>`.
    pub object_id: String,
    /// `serving-endpoint`.
    pub object_type: String,
    #[allow(missing_docs)]
    pub access_control_list: Vec<AccessControlResponse>,
}

/// One level and what it allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PermissionLevel {
    #[allow(missing_docs)]
    pub permission_level: String,
    #[allow(missing_docs)]
    pub description: String,
}

/// Response of `.../permissionLevels`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PermissionLevels {
    #[allow(missing_docs)]
    pub permission_levels: Vec<PermissionLevel>,
}
