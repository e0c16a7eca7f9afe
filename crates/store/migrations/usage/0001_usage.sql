-- Usage records: one row per query, written in batches by the server's usage writer. They live in
-- their own database file so heavy traffic never competes with control-plane writes.
CREATE TABLE usage (
    request_id          TEXT PRIMARY KEY,   -- databricks_request_id; UUIDv7, so inserts append
    client_request_id   TEXT,
    request_time        INTEGER NOT NULL,   -- ms since the epoch, UTC
    endpoint_id         TEXT NOT NULL,
    endpoint_name       TEXT NOT NULL,
    served_entity       TEXT NOT NULL,      -- '' when refused before reaching one
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    requester           TEXT NOT NULL,      -- user name or service principal application id
    requester_id        TEXT NOT NULL,
    status_code         INTEGER NOT NULL,
    error_code          TEXT,
    streaming           INTEGER NOT NULL,
    input_tokens        INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cache_write_tokens  INTEGER NOT NULL,
    reasoning_tokens    INTEGER NOT NULL,
    latency_ms          REAL NOT NULL,
    ttft_ms             REAL,
    usage_context       TEXT,               -- JSON object of the request's usage_context
    tags                TEXT,               -- JSON object of the endpoint's tags at the time
    cost_usd            REAL NOT NULL,
    price_version       TEXT                -- NULL when the price table had no price
);
CREATE INDEX usage_by_endpoint_time ON usage (endpoint_name, request_time);
