-- Console passwords of users (our extension): an Argon2id PHC string, never the password.
CREATE TABLE principal_passwords (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    updated_at   INTEGER NOT NULL
);
