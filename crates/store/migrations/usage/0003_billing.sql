-- How a record is billed: 'per_token' (a query priced from its tokens), 'provisioned' (a query
-- served within provisioned throughput: its tokens cost nothing more) or 'band' (not a query: the
-- band-time of a provisioned throughput, priced by the hour).
ALTER TABLE usage ADD COLUMN billing TEXT NOT NULL DEFAULT 'per_token';
