-- Users and groups pushed by identity providers over SCIM. Each resource is
-- kept as the JSON document the provider manages, with the attributes the
-- service looks up by copied into columns.

CREATE TABLE scim_users (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    idp_id        TEXT NOT NULL REFERENCES access_identity_providers (id) ON DELETE CASCADE,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_name     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    -- The e-mail (lower case) that links the user to an Access user.
    link_email    TEXT NOT NULL,
    external_id   TEXT,
    active        INTEGER NOT NULL,
    resource      TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    -- Deleted users stay a few minutes as tombstones so that a listing
    -- under way keeps its positions; the retention task removes them.
    deleted_at    INTEGER
);
CREATE UNIQUE INDEX scim_users_by_user_name ON scim_users (idp_id, user_name_key) WHERE deleted_at IS NULL;
CREATE INDEX scim_users_tombstones ON scim_users (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX scim_users_listing ON scim_users (idp_id, seq);
CREATE INDEX scim_users_by_link_email ON scim_users (account_id, link_email);
CREATE INDEX scim_users_by_external_id ON scim_users (idp_id, external_id);

CREATE TABLE scim_groups (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    idp_id           TEXT NOT NULL REFERENCES access_identity_providers (id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    display_name     TEXT NOT NULL,
    display_name_key TEXT NOT NULL,
    external_id      TEXT,
    resource         TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX scim_groups_by_name ON scim_groups (idp_id, display_name_key);
CREATE INDEX scim_groups_listing ON scim_groups (idp_id, seq);

CREATE TABLE scim_group_members (
    group_id TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES scim_users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX scim_group_members_by_user ON scim_group_members (user_id);
