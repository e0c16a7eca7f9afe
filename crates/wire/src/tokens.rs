//! Personal access token API (`/api/2.0/token/...`).

use serde::{Deserialize, Serialize};

/// Body of `POST /api/2.0/token/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Lifetime in seconds; absent or non-positive means the token does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub lifetime_seconds: Option<i64>,
    /// Free text shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Public facts about a token; never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Identifier used to revoke the token.
    pub token_id: String,
    /// Milliseconds since the epoch.
    pub creation_time: i64,
    /// Milliseconds since the epoch, `-1` for no expiry.
    pub expiry_time: i64,
    /// The comment given at creation.
    #[serde(default)]
    pub comment: String,
    /// User the token authenticates as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// SCIM id of the principal the token authenticates as (token management).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<i64>,
    /// SCIM id of whoever created it (token management).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_id: Option<i64>,
    /// Name of whoever created it (token management).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_username: Option<String>,
}

/// Body of `POST /api/2.0/token-management/on-behalf-of/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOboTokenRequest {
    /// The service principal's application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// A user name instead of a service principal (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Lifetime in seconds; absent means no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub lifetime_seconds: Option<i64>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One token, from token management.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetTokenResponse {
    /// The token's facts.
    pub token_info: TokenInfo,
}

/// Response of `POST /api/2.0/token/create`: the only time the token value is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTokenResponse {
    /// The bearer token. Store it now; the server keeps only its hash.
    pub token_value: String,
    /// Metadata of the new token.
    pub token_info: TokenInfo,
}

/// Response of `GET /api/2.0/token/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListTokensResponse {
    /// The caller's tokens.
    pub token_infos: Vec<TokenInfo>,
}

/// Body of `POST /api/2.0/token/delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    /// The token to revoke.
    pub token_id: String,
}
