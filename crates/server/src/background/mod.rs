//! Jobs that run beside the request path: alert evaluation and notification, deployments of
//! pending config versions, retention.

pub(crate) mod alerts;
pub(crate) mod deployer;
pub(crate) mod retention;
