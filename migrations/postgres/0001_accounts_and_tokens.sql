-- Accounts, their API tokens and the admin credential.
-- Instants are integer microseconds since the Unix epoch; JSON is stored as text.

CREATE TABLE accounts (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    account_type TEXT NOT NULL,
    settings     TEXT NOT NULL,
    created_on   BIGINT NOT NULL
);
CREATE INDEX accounts_by_name ON accounts (name, id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL,
    policies     TEXT NOT NULL,
    condition    TEXT NOT NULL,
    not_before   BIGINT,
    expires_on   BIGINT,
    issued_on    BIGINT NOT NULL,
    modified_on  BIGINT NOT NULL,
    last_used_on BIGINT
);
CREATE INDEX api_tokens_by_account ON api_tokens (account_id, issued_on, id);

-- At most one row: the operator's admin token.
CREATE TABLE admin_token (
    singleton   BIGINT PRIMARY KEY NOT NULL CHECK (singleton = 1),
    id          TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_on  BIGINT NOT NULL
);
