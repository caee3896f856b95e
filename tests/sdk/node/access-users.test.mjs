// The core Access users path through the official TypeScript SDK.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { backends, startServer } from './harness.mjs';

const AUDIT_LOGS_READ = 'b05b28e839c54467a7d6cba5d3abb5a3';

for (const backend of backends()) {
  describe(`access users on ${backend}`, () => {
    let server;
    let admin;
    let accountId;
    before(async () => {
      server = await startServer(backend);
      admin = server.client();
      accountId = (await admin.accounts.create({ name: 'Users via TypeScript' })).id;
    });
    after(async () => server.stop());

    test('create, auto-paginate, filter, get, update, delete', async () => {
      const users = admin.zeroTrust.access.users;
      const created = [];
      for (let i = 0; i < 25; i++) {
        created.push(await users.create({ account_id: accountId, email: `ts${String(i).padStart(2, '0')}@example.com`, name: `TS ${i}` }));
      }
      assert.equal(created[0].access_seat, false);
      assert.equal(created[0].last_successful_login, null);
      assert.equal(created[0].uid, created[0].id);

      const seen = [];
      for await (const user of users.list({ account_id: accountId, per_page: 10 })) seen.push(user.id);
      assert.deepEqual(seen, created.map((u) => u.id));
      assert.equal(new Set(seen).size, 25);

      const byEmail = [];
      for await (const user of users.list({ account_id: accountId, email: 'TS07@example.com' })) byEmail.push(user.email);
      assert.deepEqual(byEmail, ['ts07@example.com']);
      const bySearch = [];
      for await (const user of users.list({ account_id: accountId, search: 'ts2' })) bySearch.push(user.email);
      assert.equal(bySearch.length, 5);

      const target = created[3];
      assert.deepEqual(await users.get(target.id, { account_id: accountId }), target);
      const renamed = await users.update(target.id, { account_id: accountId, email: target.email, name: 'Renamed' });
      assert.equal(renamed.name, 'Renamed');

      await assert.rejects(users.create({ account_id: accountId, email: 'TS01@example.com' }), Cloudflare.ConflictError);
      const deleted = await users.delete(target.id, { account_id: accountId });
      assert.deepEqual(deleted, { id: target.id });
      await assert.rejects(users.get(target.id, { account_id: accountId }), (err) => {
        assert.ok(err instanceof Cloudflare.NotFoundError);
        assert.equal(err.status, 404);
        return true;
      });
    });

    test('sessions, identity and failed logins answer for a user without logins', async () => {
      const users = admin.zeroTrust.access.users;
      const user = await users.create({ account_id: accountId, email: 'quiet@example.com' });
      const sessions = [];
      for await (const s of users.activeSessions.list(user.id, { account_id: accountId })) sessions.push(s);
      assert.deepEqual(sessions, []);
      const failures = [];
      for await (const f of users.failedLogins.list(user.id, { account_id: accountId })) failures.push(f);
      assert.deepEqual(failures, []);
      await assert.rejects(users.lastSeenIdentity.get(user.id, { account_id: accountId }), Cloudflare.NotFoundError);
    });

    test('a read-only token reads but cannot write', async () => {
      const token = await admin.accounts.tokens.create({
        account_id: accountId,
        name: 'reader',
        policies: [{ effect: 'allow', permission_groups: [{ id: AUDIT_LOGS_READ }], resources: { [`com.cloudflare.api.account.${accountId}`]: '*' } }],
      });
      const reader = server.client(token.value).zeroTrust.access.users;
      const page = await reader.list({ account_id: accountId, per_page: 5 });
      assert.equal(page.result.length, 5);
      await assert.rejects(reader.create({ account_id: accountId, email: 'no@example.com' }), Cloudflare.PermissionDeniedError);
    });
  });
}
