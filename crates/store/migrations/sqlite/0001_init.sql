-- Control-plane state. Kept to portable SQL (TEXT/INTEGER/BLOB, no SQLite-only features) so the
-- PostgreSQL migrations can mirror it column for column.

-- Control-plane changes and denied requests. Never holds tokens or secret values.
CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    principal    TEXT,
    principal_id TEXT,
    token_id     TEXT,
    address      TEXT,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    object       TEXT,
    summary      TEXT,
    status       INTEGER NOT NULL,
    error_code   TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Users, groups and service principals. `name` is the userName, the group displayName or the
-- service principal's applicationId; unique per kind.
CREATE TABLE principals (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    active       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (kind, name)
);

-- Direct membership; groups may contain users, service principals and other groups.
CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);

CREATE TABLE tokens (
    token_id     TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    comment      TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER
);

CREATE TABLE endpoints (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    creator             TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    task                TEXT,
    description         TEXT,
    budget_policy_id    TEXT,
    route_optimized     INTEGER,
    tags                TEXT NOT NULL,
    ai_gateway          TEXT,
    rate_limits         TEXT,
    email_notifications TEXT,
    telemetry_config    TEXT,
    config_update       TEXT NOT NULL,
    stopped             INTEGER NOT NULL,
    latest_version      INTEGER NOT NULL,
    active_version      INTEGER,
    pending_version     INTEGER,
    pending_since       INTEGER
);

-- Direct grants on endpoints: CAN_VIEW, CAN_QUERY or CAN_MANAGE.
CREATE TABLE endpoint_permissions (
    endpoint_id  TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    level        TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, principal_id)
);

CREATE TABLE endpoint_configs (
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    config      TEXT NOT NULL,
    creator     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    build_log   TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, version)
);

CREATE TABLE secret_scopes (
    name       TEXT PRIMARY KEY,
    creator    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Who may use a secret scope: READ, WRITE or MANAGE.
CREATE TABLE scope_acls (
    scope        TEXT NOT NULL REFERENCES secret_scopes (name) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    permission   TEXT NOT NULL,
    PRIMARY KEY (scope, principal_id)
);

CREATE TABLE secrets (
    scope      TEXT NOT NULL REFERENCES secret_scopes (name) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Policy objects kept as JSON documents: budget policies, alert rules, alert destinations.
CREATE TABLE documents (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id),
    UNIQUE (kind, name)
);
