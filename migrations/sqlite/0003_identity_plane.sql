-- Identity providers, reusable Access policies and self-hosted applications.

CREATE TABLE access_identity_providers (
    id                       TEXT PRIMARY KEY NOT NULL,
    account_id               TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                     TEXT NOT NULL,
    kind                     TEXT NOT NULL,
    config                   TEXT NOT NULL,
    scim_enabled             INTEGER NOT NULL,
    scim_user_deprovision    INTEGER NOT NULL,
    scim_seat_deprovision    INTEGER NOT NULL,
    scim_identity_update     TEXT NOT NULL,
    scim_secret_hash         TEXT,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
);
CREATE INDEX access_identity_providers_by_account ON access_identity_providers (account_id, created_at, id);

CREATE TABLE access_policies (
    id               TEXT PRIMARY KEY NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    decision         TEXT NOT NULL,
    rules            TEXT NOT NULL,
    session_duration TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX access_policies_by_account ON access_policies (account_id, created_at, id);

CREATE TABLE access_apps (
    id               TEXT PRIMARY KEY NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    aud              TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    domain           TEXT NOT NULL,
    session_duration TEXT NOT NULL,
    settings         TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX access_apps_by_account ON access_apps (account_id, created_at, id);
CREATE INDEX access_apps_by_domain ON access_apps (domain);

-- Which reusable policies an application uses, in precedence order.
CREATE TABLE access_app_policies (
    app_id     TEXT NOT NULL REFERENCES access_apps (id) ON DELETE CASCADE,
    policy_id  TEXT NOT NULL REFERENCES access_policies (id),
    precedence INTEGER NOT NULL,
    PRIMARY KEY (app_id, policy_id)
);
CREATE INDEX access_app_policies_by_policy ON access_app_policies (policy_id);

-- Application tokens issued before `revoked_before` are no longer accepted.
CREATE TABLE access_app_revocations (
    app_id         TEXT PRIMARY KEY NOT NULL REFERENCES access_apps (id) ON DELETE CASCADE,
    revoked_before INTEGER NOT NULL
);
