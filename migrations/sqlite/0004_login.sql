-- What the login flow needs: signing keys, one-time PIN challenges.

-- RSA keys that sign application tokens, per account. The newest unretired
-- key signs; a retired key still verifies for a week after its retirement.
CREATE TABLE access_signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    private_pem TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    -- The public key's modulus and exponent, base64url, as the JWK shows them.
    public_n    TEXT NOT NULL,
    public_e    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
CREATE INDEX access_signing_keys_by_account ON access_signing_keys (account_id, created_at);

CREATE TABLE access_key_settings (
    account_id             TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    rotation_interval_days INTEGER NOT NULL
);

-- A one-time PIN sent by e-mail. Only a salted hash of the code is kept.
CREATE TABLE access_otp_challenges (
    id           TEXT PRIMARY KEY NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    app_id       TEXT NOT NULL REFERENCES access_apps (id) ON DELETE CASCADE,
    idp_id       TEXT NOT NULL,
    email        TEXT NOT NULL,
    salt         TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    redirect_url TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    consumed_at  INTEGER
);
CREATE INDEX access_otp_challenges_by_expiry ON access_otp_challenges (expires_at);
