-- Usage records on PostgreSQL (the SQLite usage migrations 0001..0003 in one). Applied versions
-- are kept in a migrations table of their own.
CREATE TABLE usage (
    request_id          TEXT PRIMARY KEY,
    client_request_id   TEXT,
    request_time        BIGINT NOT NULL,
    endpoint_id         TEXT NOT NULL,
    endpoint_name       TEXT NOT NULL,
    served_entity       TEXT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    requester           TEXT NOT NULL,
    requester_id        TEXT NOT NULL,
    status_code         BIGINT NOT NULL,
    error_code          TEXT,
    streaming           BOOLEAN NOT NULL,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    latency_ms          DOUBLE PRECISION NOT NULL,
    ttft_ms             DOUBLE PRECISION,
    usage_context       TEXT,
    tags                TEXT,
    cost_usd            DOUBLE PRECISION NOT NULL,
    price_version       TEXT,
    upstream_status     BIGINT,
    error_message       TEXT,
    attempts            BIGINT NOT NULL DEFAULT 0,
    entities_tried      TEXT,
    billing             TEXT NOT NULL DEFAULT 'per_token'
);
CREATE INDEX usage_by_endpoint_time ON usage (endpoint_name, request_time);
CREATE INDEX usage_by_client_request_id ON usage (client_request_id) WHERE client_request_id IS NOT NULL;
