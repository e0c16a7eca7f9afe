//! Jobs that run beside the request path: alert evaluation and notification, deployments of
//! pending config versions, active health checks, retention, billing of provisioned throughput.

pub(crate) mod alerts;
pub(crate) mod billing;
pub(crate) mod deployer;
pub(crate) mod health;
pub(crate) mod retention;
