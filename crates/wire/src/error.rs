//! The error body every failing API call returns.

use serde::{Deserialize, Serialize};

/// `{"error_code": "...", "message": "..."}`, the Databricks error shape that the SDK, mlflow and
/// the openai client all parse.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// Canonical code such as `INVALID_PARAMETER_VALUE` or `RESOURCE_DOES_NOT_EXIST`.
    pub error_code: String,
    /// Human-readable explanation naming what was wrong.
    pub message: String,
}
