-- Access users and what their logins leave behind.
--
-- `seq` orders users by creation. A deleted user stays as a tombstone
-- (`deleted_at` set) for a short while so that a listing already under way
-- keeps its positions; the retention task removes tombstones afterwards.

CREATE TABLE access_users (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    id                    TEXT NOT NULL UNIQUE,
    account_id            TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email                 TEXT NOT NULL,
    email_key             TEXT NOT NULL,
    name                  TEXT,
    name_key              TEXT NOT NULL,
    seat_uid              TEXT NOT NULL UNIQUE,
    access_seat           INTEGER NOT NULL,
    gateway_seat          INTEGER NOT NULL,
    seat_updated_at       INTEGER NOT NULL,
    active_device_count   INTEGER NOT NULL,
    last_successful_login INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    deleted_at            INTEGER
);
CREATE UNIQUE INDEX access_users_by_email ON access_users (account_id, email_key) WHERE deleted_at IS NULL;
CREATE INDEX access_users_by_email_any ON access_users (account_id, email_key);
CREATE INDEX access_users_listing ON access_users (account_id, seq, deleted_at);
CREATE INDEX access_users_tombstones ON access_users (deleted_at) WHERE deleted_at IS NOT NULL;

-- Live users per account, kept in step with access_users so that an
-- unfiltered listing's total does not count a million index entries.
CREATE TABLE access_user_totals (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    live       INTEGER NOT NULL
);

-- Users present per block of 4096 consecutive `seq` values (tombstones
-- included), per account. Listing a deep page sums these instead of
-- stepping over every earlier index entry.
CREATE TABLE access_user_blocks (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    block      INTEGER NOT NULL,
    present    INTEGER NOT NULL,
    PRIMARY KEY (account_id, block)
);

CREATE TABLE access_sessions (
    nonce      TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    apps       TEXT NOT NULL,
    identity   TEXT NOT NULL
);
CREATE INDEX access_sessions_by_user ON access_sessions (user_id, issued_at);
CREATE INDEX access_sessions_by_expiry ON access_sessions (expires_at);
CREATE INDEX access_sessions_by_revocation ON access_sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE access_last_identities (
    user_id  TEXT PRIMARY KEY NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
    seen_at  INTEGER NOT NULL,
    identity TEXT NOT NULL
);

CREATE TABLE access_failed_logins (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES access_users (id) ON DELETE CASCADE,
    occurred_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    metadata    TEXT NOT NULL
);
CREATE INDEX access_failed_logins_by_user ON access_failed_logins (user_id, occurred_at);
CREATE INDEX access_failed_logins_by_expiry ON access_failed_logins (expires_at);
