//! Endpoint permission levels.

/// What a principal may do with an endpoint. Ordered: each level includes the ones below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// See the endpoint, its config, logs, metrics and OpenAPI document.
    CanView,
    /// Also query it.
    CanQuery,
    /// Also change, stop, start and delete it, and set its permissions.
    CanManage,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::CanView, Level::CanQuery, Level::CanManage];

    /// The wire name (`CAN_VIEW`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::CanView => "CAN_VIEW",
            Level::CanQuery => "CAN_QUERY",
            Level::CanManage => "CAN_MANAGE",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// What the level allows, for `permissionLevels`.
    pub fn description(self) -> &'static str {
        match self {
            Level::CanView => "Can view the endpoint, its configuration, logs and metrics",
            Level::CanQuery => "Can view and query the endpoint",
            Level::CanManage => "Can view, query, update, stop, start and delete the endpoint and set its permissions",
        }
    }
}

/// What a principal may do with a secret scope. Ordered: each includes the ones below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopePermission {
    /// List keys and read values; reference the scope from endpoint configs.
    Read,
    /// Also put and delete secrets.
    Write,
    /// Also change ACLs and delete the scope.
    Manage,
}

impl ScopePermission {
    /// The wire name (`READ`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ScopePermission::Read => "READ",
            ScopePermission::Write => "WRITE",
            ScopePermission::Manage => "MANAGE",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<ScopePermission> {
        [ScopePermission::Read, ScopePermission::Write, ScopePermission::Manage].into_iter().find(|p| p.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names() {
        assert!(Level::CanManage > Level::CanQuery && Level::CanQuery > Level::CanView);
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::parse("CAN_RUN"), None);
    }
}
