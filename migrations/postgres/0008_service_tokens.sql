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
    previous_secret_expires_at BIGINT,
    client_secret_version      BIGINT NOT NULL,
    duration                   TEXT NOT NULL,
    enabled                    BOOLEAN NOT NULL,
    expires_at                 BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    last_seen_at               BIGINT
);
CREATE INDEX access_service_tokens_by_account ON access_service_tokens (account_id, created_at, id);
