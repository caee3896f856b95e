// A new user signs in with a one-time PIN in a real browser (Debian's
// Chromium driven by playwright-core), reading the code from a real SMTP server.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { SMTPServer } from 'smtp-server';
import { backends, startServer } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function startSmtpSink() {
  const messages = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (chunk) => { raw += chunk; });
      stream.on('end', () => {
        messages.push({ to: session.envelope.rcptTo.map((r) => r.address), raw });
        callback();
      });
    },
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, messages, port: server.server.address().port }));
  });
}

async function codeFor(messages, address) {
  for (let i = 0; i < 200; i++) {
    const found = messages.find((m) => m.to.includes(address));
    if (found) return found.raw.match(/Subject: (\d{6}) /)[1];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no code reached ${address}`);
}

for (const backend of backends()) {
  describe(`browser sign-in on ${backend}`, () => {
    let sink;
    let server;
    let browser;
    before(async () => {
      sink = await startSmtpSink();
      server = await startServer(backend, { ACCESSD_SMTP_URL: `smtp://127.0.0.1:${sink.port}` });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
          '--disable-component-update', '--disable-sync'],
      });
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
      await new Promise((r) => sink.server.close(r));
    });

    test('a new user types an email, then the code, and lands on the application with the cookie', async () => {
      const admin = server.client();
      const accountId = (await admin.accounts.create({ name: 'Browser' })).id;
      await admin.zeroTrust.identityProviders.create({ account_id: accountId, name: 'PIN', type: 'onetimepin', config: {} });
      const policy = await admin.zeroTrust.access.policies.create({
        account_id: accountId, name: 'Example staff', decision: 'allow', include: [{ email_domain: { domain: 'example.com' } }],
      });
      const port = new URL(server.base).port;
      const host = `localhost:${port}`;
      await admin.zeroTrust.access.applications.create({
        account_id: accountId, type: 'self_hosted', name: 'Team wiki', domain: host, policies: [policy.id],
      });

      const context = await browser.newContext();
      const page = await context.newPage();
      const target = `http://${host}/welcome`;
      await page.goto(`${server.base}/cdn-cgi/access/login/${host}?redirect_url=${encodeURIComponent(target)}`);
      assert.match(await page.title(), /Sign in to Team wiki/);
      await page.getByLabel('E-mail address').fill('newcomer@example.com');
      await page.getByRole('button', { name: 'Send me a code' }).click();
      const codeInput = page.locator('input[autocomplete="one-time-code"]');
      await codeInput.waitFor();
      await codeInput.fill(await codeFor(sink.messages, 'newcomer@example.com'));
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(target);

      const cookies = await context.cookies(`http://${host}`);
      const auth = cookies.find((c) => c.name === 'CF_Authorization');
      assert.ok(auth, 'the application host holds the CF_Authorization cookie');
      assert.equal(auth.httpOnly, true);
      const identity = await page.evaluate(async () => (await fetch('/cdn-cgi/access/get-identity')).json());
      assert.equal(identity.email, 'newcomer@example.com');

      const users = [];
      for await (const u of admin.zeroTrust.access.users.list({ account_id: accountId, email: 'newcomer@example.com' })) users.push(u);
      assert.equal(users.length, 1);
      assert.equal(users[0].access_seat, true);
      await context.close();
    });
  });
}
