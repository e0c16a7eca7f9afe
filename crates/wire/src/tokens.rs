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
    /// Limits the token carries on top of its owner's permissions (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TokenLimits>,
}

/// Limits a token carries on top of its owner's permissions and the endpoints' own limits (our
/// extension, like other gateways' "virtual keys"): each applies as well, so the stricter wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLimits {
    /// The only serving endpoints the token may query, by name; absent: every endpoint its owner
    /// may query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_endpoints: Option<Vec<String>>,
    /// Calls and tokens per minute, counted over every endpoint the token queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<TokenRateLimit>>,
    /// Spend per period, in USD, of the queries made with the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<TokenBudget>,
}

/// One rate limit of a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRateLimit {
    /// Only `minute`.
    pub renewal_period: String,
    /// Queries per period.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub calls: Option<i64>,
    /// Tokens (input and output) per period.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub tokens: Option<i64>,
}

/// The budget of a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBudget {
    /// USD per period.
    pub amount_usd: f64,
    /// `day`, `week` (from Monday) or `month`, in UTC.
    pub period: String,
    /// At 100 %: `ALERT` (default: the spend shows, queries go on) or `BLOCK` (the token's queries
    /// get 429 until the period ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
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
    /// The token's own limits (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TokenLimits>,
    /// The current period's spend against the token's budget, USD (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_spent_usd: Option<f64>,
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
    /// Limits the token carries (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TokenLimits>,
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

/// Body of `PATCH /api/2.0/token-management/tokens/{token_id}` (our extension): the token's new
/// limits (an empty object removes them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTokenRequest {
    /// The new limits, replacing the old ones.
    pub limits: TokenLimits,
}

/// Body of `POST /api/2.0/token/delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    /// The token to revoke.
    pub token_id: String,
}
