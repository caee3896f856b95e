-- The live-e-mail index leads with the e-mail, not the account: led by the
-- account, PostgreSQL chose it on a table never analysed (right after a
-- bulk load) for any query naming the account, and fetched a user by id by
-- scanning every user of the account. Now only the id index can serve that.
DROP INDEX access_users_by_email;
CREATE UNIQUE INDEX access_users_by_email ON access_users (email_key, account_id) WHERE deleted_at IS NULL;
