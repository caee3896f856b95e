-- An account's Zero Trust organization: its team domain (unique across
-- accounts, so one team domain names one account), its name, the global
-- session's lifetime, and the remaining settings as the JSON the API echoes.
CREATE TABLE access_organizations (
    account_id       TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    auth_domain      TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    session_duration TEXT,
    settings         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
