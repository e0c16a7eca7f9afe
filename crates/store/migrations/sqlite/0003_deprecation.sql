-- An endpoint's deprecation notice (our extension): JSON {notice_date, sunset_date, replacement,
-- message, forward}, NULL when none.
ALTER TABLE endpoints ADD COLUMN deprecation TEXT;
