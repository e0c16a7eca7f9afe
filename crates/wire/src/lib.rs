#![warn(missing_docs)]
//! Wire types of the modelgate HTTP API.
//!
//! These are plain serde structs that mirror the Databricks serving-endpoints, secrets and token
//! REST APIs field for field. They carry no behaviour and do no I/O: validation lives in
//! `modelgate-core`, persistence in `modelgate-store`.
//!
//! Request types reject unknown fields so that a typo in a config file is an error that names the
//! field instead of a setting that silently does nothing. Response types are lenient.

pub mod alerts;
pub mod anthropic;
pub mod budgets;
pub mod endpoint;
pub mod error;
pub mod gateway;
pub mod health;
pub mod inventory;
pub mod lenient;
pub mod models;
pub mod permissions;
pub mod requests;
pub mod responses;
pub mod scim;
pub mod secrets;
pub mod standards;
pub mod tokens;

pub use alerts::*;
pub use budgets::*;
pub use endpoint::*;
pub use error::ErrorBody;
pub use gateway::*;
pub use health::*;
pub use inventory::*;
pub use models::*;
pub use requests::*;
pub use secrets::*;
pub use standards::*;
pub use tokens::*;
