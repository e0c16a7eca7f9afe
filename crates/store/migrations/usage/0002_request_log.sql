-- The usage records double as the request log: why a query failed, where it went, how often.
ALTER TABLE usage ADD COLUMN upstream_status INTEGER;   -- the provider's HTTP status of the last attempt
ALTER TABLE usage ADD COLUMN error_message TEXT;        -- the error sent to the client, credentials redacted
ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;  -- upstream calls made
ALTER TABLE usage ADD COLUMN entities_tried TEXT;       -- served entities called, in order, comma-separated
-- No index on request_time: request ids are UUIDv7, whose first 48 bits are the arrival in ms, so
-- a time range is a range of the primary key.
CREATE INDEX usage_by_client_request_id ON usage (client_request_id) WHERE client_request_id IS NOT NULL;
