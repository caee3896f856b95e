-- Every hostname (with optional path) an application answers on, its domain
-- and its further self-hosted domains: one application per hostname across
-- all accounts, enforced by the key so concurrent writes cannot both claim one.
CREATE TABLE access_app_hosts (
    host   TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES access_apps (id) ON DELETE CASCADE
);
CREATE INDEX access_app_hosts_by_app ON access_app_hosts (app_id);

-- Applications saved before: the oldest keeps a hostname claimed twice.
INSERT OR IGNORE INTO access_app_hosts (host, app_id)
SELECT domain, id FROM access_apps ORDER BY created_at;
INSERT OR IGNORE INTO access_app_hosts (host, app_id)
SELECT hosts.value, apps.id FROM access_apps AS apps,
       json_each(apps.settings, '$.self_hosted_domains') AS hosts;

-- Which account a host (without path) belongs to: once one application of
-- an account claims any path on a host, no other account may claim any path
-- on it, so host-wide answers (certs, identity) always speak for one account.
CREATE TABLE access_host_owners (
    hostname   TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE
);

INSERT OR IGNORE INTO access_host_owners (hostname, account_id)
SELECT CASE WHEN instr(hosts.host, '/') > 0
            THEN substr(hosts.host, 1, instr(hosts.host, '/') - 1)
            ELSE hosts.host END,
       apps.account_id
FROM access_app_hosts AS hosts JOIN access_apps AS apps ON apps.id = hosts.app_id
ORDER BY apps.created_at;
