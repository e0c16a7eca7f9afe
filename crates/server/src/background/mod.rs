//! Jobs that run beside the request path: alert evaluation and notification, deployments of
//! pending config versions, active health checks, retention, billing of provisioned throughput,
//! and following the other replicas of a scaled-out install.

pub(crate) mod alerts;
pub(crate) mod billing;
pub(crate) mod cluster;
pub(crate) mod deployer;
pub(crate) mod health;
pub(crate) mod retention;
