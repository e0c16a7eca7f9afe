//! Hosted models: what the server needs to serve registered model versions itself.

pub mod process;
pub mod runtime;
pub mod source;
