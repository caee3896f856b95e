// Sign-in through a real OpenID provider (oidc-provider) in a real browser
// (Debian's Chromium driven by playwright-core): the login page offers the
// provider, the provider's own pages sign the user in, and accessd lands
// them on the application; a user the policy refuses is recorded.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { backends, startServer } from './harness.mjs';
import { CLIENT_ID, startProvider } from './oidc-provider.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

async function signInAtProvider(page, login) {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
}

async function all(iterable) {
  const items = [];
  for await (const item of iterable) items.push(item);
  return items;
}

for (const backend of backends()) {
  describe(`OpenID sign-in on ${backend}`, () => {
    let server;
    let provider;
    let browser;
    before(async () => {
      server = await startServer(backend);
      provider = await startProvider(`${server.base}/cdn-cgi/access/callback`);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
          '--disable-component-update', '--disable-sync'],
      });
    });
    after(async () => {
      await browser?.close();
      await provider?.stop();
      await server?.stop();
    });

    test('a user signs in at the provider and lands on the application; a refused one is recorded', async () => {
      const admin = server.client();
      const accountId = (await admin.accounts.create({ name: 'OIDC' })).id;
      const idp = await admin.zeroTrust.identityProviders.create({
        account_id: accountId, name: 'Test provider', type: 'oidc',
        config: {
          client_id: CLIENT_ID, client_secret: provider.clientSecret,
          auth_url: provider.discovery.authorization_endpoint, token_url: provider.discovery.token_endpoint,
          certs_url: provider.discovery.jwks_uri, scopes: ['openid', 'email', 'profile'], pkce_enabled: true,
        },
      });
      assert.notEqual(idp.config.client_secret, provider.clientSecret, 'the secret is never echoed');
      const policy = await admin.zeroTrust.access.policies.create({
        account_id: accountId, name: 'Example staff', decision: 'allow', include: [{ email_domain: { domain: 'example.com' } }],
      });
      const port = new URL(server.base).port;
      const host = `localhost:${port}`;
      await admin.zeroTrust.access.applications.create({
        account_id: accountId, type: 'self_hosted', name: 'Team wiki', domain: host, policies: [policy.id],
      });
      const target = `http://${host}/welcome`;
      const loginUrl = `${server.base}/cdn-cgi/access/login/${host}?redirect_url=${encodeURIComponent(target)}`;

      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(loginUrl);
      assert.match(await page.title(), /Sign in to Team wiki/);
      await page.getByRole('link', { name: 'Sign in with Test provider' }).click();
      await signInAtProvider(page, 'ada@example.com');
      await page.waitForURL(target);
      const cookies = await context.cookies(`http://${host}`);
      const auth = cookies.find((c) => c.name === 'CF_Authorization');
      assert.ok(auth, 'the application host holds the CF_Authorization cookie');
      const identity = await page.evaluate(async () => (await fetch('/cdn-cgi/access/get-identity')).json());
      assert.equal(identity.email, 'ada@example.com');
      assert.equal(identity.idp.type, 'oidc');
      await context.close();

      const users = admin.zeroTrust.access.users;
      const [ada] = await all(users.list({ account_id: accountId, email: 'ada@example.com' }));
      assert.ok(ada, 'the user exists');
      assert.equal(ada.access_seat, true);
      const seen = await users.lastSeenIdentity.get(ada.id, { account_id: accountId });
      assert.equal(seen.idp.type, 'oidc');
      assert.equal(seen.idp.id, idp.id);
      const sessions = await all(users.activeSessions.list(ada.id, { account_id: accountId }));
      assert.equal(sessions.length, 1);

      // Someone the policy does not admit: refused, and written down.
      const other = await browser.newContext();
      const refusedPage = await other.newPage();
      await refusedPage.goto(loginUrl);
      await refusedPage.getByRole('link', { name: 'Sign in with Test provider' }).click();
      await signInAtProvider(refusedPage, 'mallory@elsewhere.test');
      await refusedPage.waitForURL(/\/cdn-cgi\/access\/callback/);
      assert.match(await refusedPage.title(), /Access denied/);
      const [mallory] = await all(users.list({ account_id: accountId, email: 'mallory@elsewhere.test' }));
      assert.ok(mallory, 'the refused user is known');
      const failures = await all(users.failedLogins.list(mallory.id, { account_id: accountId }));
      assert.equal(failures.length, 1);
      assert.equal(failures[0].metadata.reason, 'no_policy_matched');

      // A provider that has not verified the e-mail signs no one in.
      const third = await browser.newContext();
      const unverifiedPage = await third.newPage();
      await unverifiedPage.goto(loginUrl);
      await unverifiedPage.getByRole('link', { name: 'Sign in with Test provider' }).click();
      await signInAtProvider(unverifiedPage, 'unverified@example.com');
      await unverifiedPage.waitForURL(/\/cdn-cgi\/access\/callback/);
      assert.match(await unverifiedPage.title(), /E-mail not verified/);
      assert.deepEqual(await all(users.list({ account_id: accountId, email: 'unverified@example.com' })), []);
      await other.close();
      await third.close();
    });
  });
}
