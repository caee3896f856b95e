-- Listings whose pages any process can serve, and SCIM lookups answered by
-- indexes instead of by reading a provider's every user.

-- Deletions counted per listing owner (`access_users` of an account,
-- `scim_users` of an identity provider). A deletion takes the owner's next
-- number while holding its row, so numbers follow commit order; a listing
-- snapshot is the newest `seq` and the deletions counted when it was taken.
CREATE TABLE listing_owners (
    scope     TEXT NOT NULL,
    owner     TEXT NOT NULL,
    deletions BIGINT NOT NULL,
    PRIMARY KEY (scope, owner)
);

-- The snapshot a listing's first page pinned, read by its later pages in
-- whichever process serves them, until it expires.
CREATE TABLE listing_snapshots (
    caller     TEXT NOT NULL,
    listing    TEXT NOT NULL,
    last_seq   BIGINT NOT NULL,
    deletions  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (caller, listing)
);
CREATE INDEX listing_snapshots_by_expiry ON listing_snapshots (expires_at);

-- The number a tombstone's deletion took; 0 for tombstones made before
-- deletions were numbered (older than any snapshot).
ALTER TABLE access_users ADD COLUMN deleted_no BIGINT;
DROP INDEX access_users_listing;
CREATE INDEX access_users_listing ON access_users (account_id, seq, deleted_at, deleted_no);
UPDATE access_users SET deleted_no = 0 WHERE deleted_at IS NOT NULL;
-- An account's tombstones, by number: what a snapshot leaves out or still shows.
CREATE INDEX access_users_deleted ON access_users (account_id, deleted_no, seq) WHERE deleted_at IS NOT NULL;

-- Sorting by these keys orders code points, as SQLite's BINARY collation
-- and the in-memory sort do, whatever the database's default collation.
ALTER TABLE scim_users ALTER COLUMN user_name_key TYPE TEXT COLLATE "C";
ALTER TABLE scim_groups ALTER COLUMN display_name_key TYPE TEXT COLLATE "C";

ALTER TABLE scim_users ADD COLUMN deleted_no BIGINT;
-- The display name, lower case, for the v4 `name` filter.
ALTER TABLE scim_users ADD COLUMN display_name_key TEXT;
-- Whether `display_name_key` and `scim_user_emails` were filled from the
-- resource; rows written before they existed are filled on start.
ALTER TABLE scim_users ADD COLUMN keys_indexed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE scim_users SET deleted_no = 0 WHERE deleted_at IS NOT NULL;
DROP INDEX scim_users_listing;
CREATE INDEX scim_users_listing ON scim_users (idp_id, seq, deleted_at, deleted_no);
-- Tombstones too, which a pinned listing still shows.
CREATE INDEX scim_users_by_user_name_key ON scim_users (idp_id, user_name_key);
CREATE INDEX scim_users_unindexed ON scim_users (seq) WHERE NOT keys_indexed;

-- Each e-mail of a SCIM user, lower case, for `emails.value eq` filters.
CREATE TABLE scim_user_emails (
    user_id   TEXT NOT NULL REFERENCES scim_users (id) ON DELETE CASCADE,
    idp_id    TEXT NOT NULL,
    email_key TEXT NOT NULL,
    PRIMARY KEY (user_id, email_key)
);
CREATE INDEX scim_user_emails_by_key ON scim_user_emails (idp_id, email_key);

CREATE INDEX scim_groups_by_external_id ON scim_groups (idp_id, external_id);

-- When the member joined; rows of members a change leaves alone are not rewritten.
ALTER TABLE scim_group_members ADD COLUMN added_at BIGINT NOT NULL DEFAULT 0;
