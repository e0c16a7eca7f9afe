-- The token a query was made with (its id, never its value), so spend can be read per token.
ALTER TABLE usage ADD COLUMN token_id TEXT;
