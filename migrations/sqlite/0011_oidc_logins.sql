-- A sign-in at an OpenID provider on its way: created when the browser is
-- sent to the provider, used up (deleted) by the callback. The `state` is
-- kept only as a hash, the PKCE verifier only sealed, the nonce only hashed.
CREATE TABLE access_oidc_logins (
    state_hash      TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    app_id          TEXT NOT NULL REFERENCES access_apps (id) ON DELETE CASCADE,
    idp_id          TEXT NOT NULL,
    nonce_hash      TEXT NOT NULL,
    sealed_verifier TEXT NOT NULL,
    redirect_url    TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX access_oidc_logins_by_expiry ON access_oidc_logins (expires_at);
