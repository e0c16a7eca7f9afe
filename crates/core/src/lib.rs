#![warn(missing_docs)]
//! Domain rules of modelgate, free of I/O.
//!
//! - [`names`]: what a valid endpoint, served-entity, scope or key name is, and the default
//!   served-entity naming rule.
//! - [`secret_ref`]: `{{secrets/scope/key}}` references.
//! - [`validate`]: checks a create or update request and produces the normalised config that is
//!   stored (names filled in, traffic split made explicit).
//! - [`credentials`]: the credential fields of each provider config, for sealing plaintext values
//!   and resolving references.
//! - [`cipher`]: AEAD encryption at rest under the master key.
//! - [`token`]: bearer token generation and hashing.
//! - [`pii`]: personal data and blocked keywords in text, for guardrails.
//! - [`pricing`]: the versioned price table and the cost of a request.
//! - [`period`]: UTC calendar periods of budgets.
//! - [`provider`]: the providers an external model may name.
//! - [`outbound`]: which upstream URLs and addresses the gateway may reach.

pub mod cipher;
pub mod credentials;
pub mod foundation;
pub mod jsondiff;
pub mod models;
pub mod names;
pub mod outbound;
pub mod password;
pub mod period;
pub mod permission;
pub mod pii;
pub mod pricing;
pub mod provider;
pub mod secret;
pub mod secret_ref;
pub mod standards;
pub mod templates;
pub mod token;
pub mod validate;

pub use provider::Provider;
pub use secret::SecretString;
pub use validate::ValidationError;

/// Milliseconds since the Unix epoch, the unit of every timestamp in the API.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
