-- Every change of an endpoint's settings outside its config versions (ai_gateway, rate limits,
-- tags, permissions, ...), with the value before and after, so it can be seen and undone.
CREATE TABLE endpoint_settings_history (
    change_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    field       TEXT NOT NULL,      -- ai_gateway, rate_limits, tags, permissions, ...
    before      TEXT,               -- JSON, NULL when unset
    after       TEXT,               -- JSON, NULL when removed
    changed_by  TEXT NOT NULL,
    changed_at  INTEGER NOT NULL    -- ms since the epoch
);
CREATE INDEX endpoint_settings_history_by_endpoint ON endpoint_settings_history (endpoint_id, change_id);
