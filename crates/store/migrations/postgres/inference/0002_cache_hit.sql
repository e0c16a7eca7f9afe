-- Rows of queries answered from the response cache (ai_gateway.cache_config).
ALTER TABLE payloads ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT FALSE;
