-- Access service tokens. Only SHA-256 hashes of secrets are kept; after a
-- rotation the previous secret's hash stays until its grace period ends.
-- Client IDs are unique across accounts: a presented one names one token.
CREATE TABLE access_service_tokens (
    id                         TEXT PRIMARY KEY NOT NULL,
    account_id                 TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                       TEXT NOT NULL,
    client_id                  TEXT NOT NULL UNIQUE,
    secret_hash                TEXT NOT NULL,
    previous_secret_hash       TEXT,
    previous_secret_expires_at INTEGER,
    client_secret_version      INTEGER NOT NULL,
    duration                   TEXT NOT NULL,
    enabled                    INTEGER NOT NULL,
    expires_at                 INTEGER,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    last_seen_at               INTEGER
);
CREATE INDEX access_service_tokens_by_account ON access_service_tokens (account_id, created_at, id);
