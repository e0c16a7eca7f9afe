-- Inference-table payloads: sampled requests and responses of endpoints with
-- ai_gateway.inference_table_config.enabled. Their own database file, apart from configuration
-- and usage, so heavy logging never slows either.
CREATE TABLE payloads (
    databricks_request_id TEXT PRIMARY KEY,
    endpoint_name         TEXT NOT NULL,
    request_date          TEXT NOT NULL,     -- YYYY-MM-DD, UTC
    client_request_id     TEXT,
    request_time          INTEGER NOT NULL,  -- ms since the epoch
    status_code           INTEGER NOT NULL,
    sampling_fraction     REAL NOT NULL,
    execution_duration_ms INTEGER NOT NULL,
    request               TEXT,              -- NULL when over the size cap
    response              TEXT,
    logging_error_codes   TEXT NOT NULL,     -- JSON array
    served_entity_id      TEXT,              -- the served entity's name
    requester             TEXT
);
CREATE INDEX payloads_by_endpoint_time ON payloads (endpoint_name, request_time);
