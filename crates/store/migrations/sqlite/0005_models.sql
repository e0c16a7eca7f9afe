-- Registered models and their versions (our extension), which hosted served entities reference.
-- Version numbers are never reused: `latest_version` counts every version ever registered.
CREATE TABLE registered_models (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    description    TEXT NOT NULL DEFAULT '',
    creator        TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    latest_version INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE model_versions (
    model_id     TEXT NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    runtime      TEXT NOT NULL,
    -- What the version serves: llm/v1/chat, llm/v1/completions or llm/v1/embeddings.
    task         TEXT NOT NULL,
    -- The process runtime's argv, a JSON array (never a shell string); NULL for other runtimes.
    command      TEXT,
    -- Declared environment, a JSON object; values may be secret references.
    env          TEXT,
    content_hash TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    creator      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (model_id, version)
);

CREATE TABLE model_permissions (
    model_id     TEXT NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    level        TEXT NOT NULL,
    PRIMARY KEY (model_id, principal_id)
);
