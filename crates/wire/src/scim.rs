//! SCIM 2.0 identities (`/api/2.0/preview/scim/v2/...`) as the Databricks SDK sends and reads
//! them. SCIM clients send attributes this server does not use (`name`, `entitlements`, ...);
//! they are accepted and ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Schema URN of a user.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Schema URN of a group.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Schema URN of a service principal.
pub const SERVICE_PRINCIPAL_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal";
/// Schema URN of a list response.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A reference to another resource (a group membership, a member).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScimRef {
    /// The referenced id.
    pub value: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// `Users/<id>`, `Groups/<id>` or `ServicePrincipals/<id>`.
    #[serde(rename = "$ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `direct` or `indirect` on a principal's groups.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An e-mail address of a user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScimEmail {
    /// The address.
    pub value: String,
    /// `work`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether it is the primary address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// A user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimUser {
    /// Server-assigned id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unique login name, usually an e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub display_name: Option<String>,
    /// Inactive users cannot authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub emails: Option<Vec<ScimEmail>>,
    /// Groups the user belongs to (on input: groups to join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<ScimRef>>,
    /// The console password to set (write-only, as in SCIM: never returned).
    #[serde(default, skip_serializing)]
    pub password: Option<Password>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub schemas: Vec<String>,
}

/// A password sent to the API: deserialised only, and printed as `***`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub id: Option<String>,
    /// Unique group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Direct members: users, service principals or groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<ScimRef>>,
    /// Groups this group belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<ScimRef>>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub schemas: Vec<String>,
}

/// A service principal (an application's identity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimServicePrincipal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub id: Option<String>,
    /// Unique application id (a UUID unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub groups: Option<Vec<ScimRef>>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub schemas: Vec<String>,
}

/// A page of resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimList<T> {
    #[allow(missing_docs)]
    pub schemas: Vec<String>,
    /// Matches in all pages.
    pub total_results: usize,
    /// 1-based index of the first resource of this page.
    pub start_index: usize,
    /// Resources in this page.
    pub items_per_page: usize,
    /// This page.
    #[serde(rename = "Resources")]
    pub resources: Vec<T>,
}

/// One operation of a SCIM PATCH.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScimPatchOp {
    /// `add`, `remove` or `replace` (any case).
    pub op: String,
    /// Attribute path, e.g. `members`, `members[value eq "123"]`, `active`.
    #[serde(default)]
    pub path: Option<String>,
    /// The value.
    #[serde(default)]
    pub value: Option<Value>,
}

/// Body of a SCIM PATCH.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScimPatch {
    #[serde(default)]
    #[allow(missing_docs)]
    pub schemas: Vec<String>,
    /// The operations, applied in order.
    #[serde(rename = "Operations", default)]
    pub operations: Vec<ScimPatchOp>,
}
