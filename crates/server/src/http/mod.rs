//! HTTP plumbing shared by both planes: accepting connections, resource limits, authentication
//! and the audit log.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod limits;
pub(crate) mod listener;
