-- A token's own limits (allowed endpoints, rate limits, budget) as JSON; NULL without any.
ALTER TABLE tokens ADD COLUMN limits TEXT;
