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
