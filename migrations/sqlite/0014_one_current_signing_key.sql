-- At most one current (unretired) signing key per account, so that processes
-- or requests making an account's first key at the same time cannot leave
-- two: the loser's insert fails and it reads the winner's key instead.

-- Two current keys left by an earlier race: the newest keeps signing, the
-- others are retired as of its creation (and keep verifying for a week).
UPDATE access_signing_keys
SET retired_at = (
    SELECT MAX(newest.created_at) FROM access_signing_keys newest
    WHERE newest.account_id = access_signing_keys.account_id AND newest.retired_at IS NULL
)
WHERE retired_at IS NULL AND EXISTS (
    SELECT 1 FROM access_signing_keys newer
    WHERE newer.account_id = access_signing_keys.account_id AND newer.retired_at IS NULL
      AND (newer.created_at > access_signing_keys.created_at
           OR (newer.created_at = access_signing_keys.created_at AND newer.kid > access_signing_keys.kid))
);

CREATE UNIQUE INDEX access_signing_keys_one_current ON access_signing_keys (account_id)
    WHERE retired_at IS NULL;
