-- API credentials and accounts are held in memory too (see 0012): each
-- change to them counts up the same version. A token's last-used time is
-- not a change.
CREATE CONSTRAINT TRIGGER accounts_gate AFTER INSERT OR UPDATE OR DELETE ON accounts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER admin_token_gate AFTER INSERT OR UPDATE OR DELETE ON admin_token
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
CREATE CONSTRAINT TRIGGER api_tokens_gate AFTER INSERT OR UPDATE OF id, account_id, name, secret_hash, status, policies, condition, not_before, expires_on, issued_on, modified_on OR DELETE ON api_tokens
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_gate_changed();
