-- Inference-table payloads on PostgreSQL (the SQLite inference migration 0001). Applied versions
-- are kept in a migrations table of their own.
CREATE TABLE payloads (
    databricks_request_id TEXT PRIMARY KEY,
    endpoint_name         TEXT NOT NULL,
    request_date          TEXT NOT NULL,
    client_request_id     TEXT,
    request_time          BIGINT NOT NULL,
    status_code           BIGINT NOT NULL,
    sampling_fraction     DOUBLE PRECISION NOT NULL,
    execution_duration_ms BIGINT NOT NULL,
    request               TEXT,
    response              TEXT,
    logging_error_codes   TEXT NOT NULL,
    served_entity_id      TEXT,
    requester             TEXT
);
CREATE INDEX payloads_by_endpoint_time ON payloads (endpoint_name, request_time);
