-- What access decisions read is held in memory by every process (keys,
-- applications by host, policies, groups, sessions). Each change to it
-- counts up one version; a process that sees the version move, or (on
-- PostgreSQL) hears `accessd_gate`, forgets what it held.
CREATE TABLE access_gate_version (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO access_gate_version (id, version) VALUES (1, 0);

-- A new session changes nothing held (sessions are held only once read);
-- a service token's last-seen time is no decision input.
CREATE TRIGGER access_apps_gate_insert AFTER INSERT ON access_apps
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_apps_gate_update AFTER UPDATE ON access_apps
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_apps_gate_delete AFTER DELETE ON access_apps
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_hosts_gate_insert AFTER INSERT ON access_app_hosts
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_hosts_gate_update AFTER UPDATE ON access_app_hosts
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_hosts_gate_delete AFTER DELETE ON access_app_hosts
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_host_owners_gate_insert AFTER INSERT ON access_host_owners
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_host_owners_gate_update AFTER UPDATE ON access_host_owners
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_host_owners_gate_delete AFTER DELETE ON access_host_owners
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_policies_gate_insert AFTER INSERT ON access_app_policies
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_policies_gate_update AFTER UPDATE ON access_app_policies
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_policies_gate_delete AFTER DELETE ON access_app_policies
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_revocations_gate_insert AFTER INSERT ON access_app_revocations
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_revocations_gate_update AFTER UPDATE ON access_app_revocations
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_app_revocations_gate_delete AFTER DELETE ON access_app_revocations
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_policies_gate_insert AFTER INSERT ON access_policies
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_policies_gate_update AFTER UPDATE ON access_policies
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_policies_gate_delete AFTER DELETE ON access_policies
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_groups_gate_insert AFTER INSERT ON access_groups
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_groups_gate_update AFTER UPDATE ON access_groups
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_groups_gate_delete AFTER DELETE ON access_groups
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_signing_keys_gate_insert AFTER INSERT ON access_signing_keys
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_signing_keys_gate_update AFTER UPDATE ON access_signing_keys
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_signing_keys_gate_delete AFTER DELETE ON access_signing_keys
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_service_tokens_gate_insert AFTER INSERT ON access_service_tokens
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_service_tokens_gate_update AFTER UPDATE OF name, client_id, secret_hash, previous_secret_hash, previous_secret_expires_at, client_secret_version, duration, enabled, expires_at, account_id, id ON access_service_tokens
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_service_tokens_gate_delete AFTER DELETE ON access_service_tokens
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_sessions_gate_update AFTER UPDATE ON access_sessions
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_sessions_gate_delete AFTER DELETE ON access_sessions
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_users_gate_insert AFTER INSERT ON scim_users
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_users_gate_update AFTER UPDATE ON scim_users
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_users_gate_delete AFTER DELETE ON scim_users
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_groups_gate_insert AFTER INSERT ON scim_groups
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_groups_gate_update AFTER UPDATE ON scim_groups
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_groups_gate_delete AFTER DELETE ON scim_groups
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_group_members_gate_insert AFTER INSERT ON scim_group_members
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_group_members_gate_update AFTER UPDATE ON scim_group_members
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER scim_group_members_gate_delete AFTER DELETE ON scim_group_members
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_identity_providers_gate_insert AFTER INSERT ON access_identity_providers
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_identity_providers_gate_update AFTER UPDATE ON access_identity_providers
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_identity_providers_gate_delete AFTER DELETE ON access_identity_providers
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_organizations_gate_insert AFTER INSERT ON access_organizations
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_organizations_gate_update AFTER UPDATE ON access_organizations
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_organizations_gate_delete AFTER DELETE ON access_organizations
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
