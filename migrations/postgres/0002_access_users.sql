-- Access users and what their logins leave behind.
--
-- `seq` orders users by creation. A deleted user stays as a tombstone
-- (`deleted_at` set) for a short while so that a listing already under way
-- keeps its positions; the retention task removes tombstones afterwards.

CREATE TABLE access_users (
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                    TEXT NOT NULL UNIQUE,
    account_id            TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email                 TEXT NOT NULL,
    email_key             TEXT NOT NULL,
    name                  TEXT,
    name_key              TEXT NOT NULL,
    seat_uid              TEXT NOT NULL UNIQUE,
    access_seat           BOOLEAN NOT NULL,
    gateway_seat          BOOLEAN NOT NULL,
    seat_updated_at       BIGINT NOT NULL,
    active_device_count   BIGINT NOT NULL,
    last_successful_login BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    deleted_at            BIGINT
);
CREATE UNIQUE INDEX access_users_by_email ON access_users (account_id, email_key) WHERE deleted_at IS NULL;
CREATE INDEX access_users_by_email_any ON access_users (account_id, email_key);
CREATE INDEX access_users_listing ON access_users (account_id, seq, deleted_at);
CREATE INDEX access_users_tombstones ON access_users (deleted_at) WHERE deleted_at IS NOT NULL;

-- Live users per account, kept in step with access_users so that an
-- unfiltered listing's total does not count a million index entries.
CREATE TABLE access_user_totals (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    live       BIGINT NOT NULL
);

-- Users present per block of 4096 consecutive `seq` values (tombstones
-- included), per account. Listing a deep page sums these instead of
-- stepping over every earlier index entry.
CREATE TABLE access_user_blocks (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    block      BIGINT NOT NULL,
    present    BIGINT NOT NULL,
    PRIMARY KEY (account_id, block)
);

CREATE TABLE access_sessions (
    nonce      TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    apps       TEXT NOT NULL,
    identity   TEXT NOT NULL
);
CREATE INDEX access_sessions_by_user ON access_sessions (user_id, issued_at);
CREATE INDEX access_sessions_by_expiry ON access_sessions (expires_at);
CREATE INDEX access_sessions_by_revocation ON access_sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE access_last_identities (
    user_id  TEXT PRIMARY KEY NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
    seen_at  BIGINT NOT NULL,
    identity TEXT NOT NULL
);

CREATE TABLE access_failed_logins (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
    occurred_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    metadata    TEXT NOT NULL
);
CREATE INDEX access_failed_logins_by_user ON access_failed_logins (user_id, occurred_at);
CREATE INDEX access_failed_logins_by_expiry ON access_failed_logins (expires_at);
