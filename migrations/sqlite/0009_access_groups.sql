-- Access groups: a named set of include/exclude/require rules that policies
-- and other groups name with a `group` rule.
CREATE TABLE access_groups (
    id         TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    rules      TEXT NOT NULL,
    is_default INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX access_groups_by_account ON access_groups (account_id, created_at, id);
