-- API credentials and accounts are held in memory too (see 0012): each
-- change to them counts up the same version. A token's last-used time is
-- not a change.
CREATE TRIGGER accounts_gate_insert AFTER INSERT ON accounts
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_gate_update AFTER UPDATE ON accounts
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_gate_delete AFTER DELETE ON accounts
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER admin_token_gate_insert AFTER INSERT ON admin_token
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER admin_token_gate_update AFTER UPDATE ON admin_token
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER admin_token_gate_delete AFTER DELETE ON admin_token
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER api_tokens_gate_insert AFTER INSERT ON api_tokens
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER api_tokens_gate_update AFTER UPDATE OF id, account_id, name, secret_hash, status, policies, condition, not_before, expires_on, issued_on, modified_on ON api_tokens
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER api_tokens_gate_delete AFTER DELETE ON api_tokens
BEGIN UPDATE access_gate_version SET version = version + 1 WHERE id = 1; END;
