-- What access decisions read is held in memory by every process (keys,
-- applications by host, policies, groups, sessions). Each change to it
-- counts up one version; a process that sees the version move, or (on
-- PostgreSQL) hears `accessd_gate`, forgets what it held.
CREATE TABLE access_gate_version (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO access_gate_version (id, version) VALUES (1, 0);

-- Runs at commit (the triggers are deferred), once per transaction: the
-- version row is the last lock a writer takes, so no two writers can wait
-- on each other through it.
CREATE FUNCTION access_gate_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('accessd.gate_changed', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('accessd.gate_changed', 'yes', true);
        UPDATE access_gate_version SET version = version + 1 WHERE id = 1;
        PERFORM pg_notify('accessd_gate', '');
    END IF;
    RETURN NULL;
END
$$;

-- A new session changes nothing held (sessions are held only once read);
-- a service token's last-seen time is no decision input.
CREATE CONSTRAINT TRIGGER access_apps_gate AFTER INSERT OR UPDATE OR DELETE ON access_apps
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_app_hosts_gate AFTER INSERT OR UPDATE OR DELETE ON access_app_hosts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_host_owners_gate AFTER INSERT OR UPDATE OR DELETE ON access_host_owners
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_app_policies_gate AFTER INSERT OR UPDATE OR DELETE ON access_app_policies
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_app_revocations_gate AFTER INSERT OR UPDATE OR DELETE ON access_app_revocations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_policies_gate AFTER INSERT OR UPDATE OR DELETE ON access_policies
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_groups_gate AFTER INSERT OR UPDATE OR DELETE ON access_groups
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_signing_keys_gate AFTER INSERT OR UPDATE OR DELETE ON access_signing_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_service_tokens_gate AFTER INSERT OR UPDATE OF name, client_id, secret_hash, previous_secret_hash, previous_secret_expires_at, client_secret_version, duration, enabled, expires_at, account_id, id OR DELETE ON access_service_tokens
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_sessions_gate AFTER UPDATE OR DELETE ON access_sessions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER scim_users_gate AFTER INSERT OR UPDATE OR DELETE ON scim_users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER scim_groups_gate AFTER INSERT OR UPDATE OR DELETE ON scim_groups
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER scim_group_members_gate AFTER INSERT OR UPDATE OR DELETE ON scim_group_members
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_identity_providers_gate AFTER INSERT OR UPDATE OR DELETE ON access_identity_providers
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER access_organizations_gate AFTER INSERT OR UPDATE OR DELETE ON access_organizations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
