// A real browser (Debian's Chromium driven by playwright-core) opens an
// application behind real nginx configured with recipes/nginx.conf as
// written: it lands on accessd's sign-in page, signs in with a one-time PIN
// read from accessd's outbox, and reaches the application, which sees the
// identity accessd vouched for.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, connect } from 'node:net';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve, dirname, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { backends, startServer } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RECIPES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'recipes');

/** nginx's path; a missing nginx fails the test (CI must run it), never skips it. */
function nginxPath() {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  const found = dirs.map((dir) => join(dir, 'nginx')).find((path) => existsSync(path));
  if (!found) throw new Error('nginx is not installed: run scripts/setup-test-tools');
  return found;
}

function freePort() {
  return new Promise((resolvePort) => {
    const probe = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/** The recipe with its marked placeholders replaced, and nothing else changed. */
function render(recipe, values) {
  let text = readFileSync(join(RECIPES, recipe), 'utf8');
  for (const [name, value] of Object.entries(values)) {
    assert.match(text, new RegExp(`\\b${name}\\b`), `${recipe} has no ${name}`);
    text = text.replace(new RegExp(`\\b${name}\\b`, 'g'), value);
  }
  const left = text.split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n')
    .match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g);
  assert.equal(left, null, `${recipe} still has placeholders: ${left}`);
  return text;
}

/** An application that answers every request with the headers it received. */
function startEcho() {
  const server = createHttpServer((req, res) => {
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: req.method, path: req.url, headers }));
  });
  return new Promise((resolveEcho) => {
    server.listen(0, '127.0.0.1', () => resolveEcho({ server, address: `127.0.0.1:${server.address().port}` }));
  });
}

async function startNginx(accessdBase, upstream) {
  const dir = mkdtempSync(join(tmpdir(), 'accessd-nginx-'));
  const port = await freePort();
  const host = `app1.localhost:${port}`;
  writeFileSync(join(dir, 'app1.conf'), render('nginx.conf', {
    APP_LISTEN: `127.0.0.1:${port}`, APP_HOST: 'app1.localhost', ACCESSD_URL: accessdBase, UPSTREAM_URL: `http://${upstream}`,
  }));
  mkdirSync(join(dir, 'temp'));
  // As root, nginx would hand its workers to "nobody", who cannot enter the private directory.
  const user = process.getuid() === 0 ? `user ${userInfo().username};` : '';
  writeFileSync(join(dir, 'nginx.conf'), `${user}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
worker_processes 1;
events { worker_connections 256; }
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/temp/body;
    proxy_temp_path ${dir}/temp/proxy;
    fastcgi_temp_path ${dir}/temp/fastcgi;
    uwsgi_temp_path ${dir}/temp/uwsgi;
    scgi_temp_path ${dir}/temp/scgi;
    include ${dir}/app1.conf;
}
`);
  const child = spawn(nginxPath(), ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((done) => child.once('exit', done));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
    const open = await new Promise((done) => {
      const socket = connect(port, '127.0.0.1', () => { socket.end(); done(true); });
      socket.on('error', () => done(false));
    });
    if (open) break;
    if (i > 400) throw new Error('nginx did not start listening');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host,
    logs: () => readFileSync(join(dir, 'error.log'), 'utf8'),
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The sign-in code mailed to `address`, from accessd's outbox folder. */
async function codeFor(outbox, address) {
  for (let i = 0; i < 200; i++) {
    const files = existsSync(outbox) ? readdirSync(outbox).sort() : [];
    for (const file of files) {
      const raw = readFileSync(join(outbox, file), 'utf8');
      if (raw.includes(`To: ${address}`)) return raw.match(/Subject: (\d{6}) /)[1];
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no code reached ${address}`);
}

for (const backend of backends()) {
  describe(`browser sign-in through nginx on ${backend}`, () => {
    let outboxDir;
    let server;
    let echo;
    let nginx;
    let browser;
    before(async () => {
      outboxDir = mkdtempSync(join(tmpdir(), 'accessd-outbox-'));
      server = await startServer(backend, { ACCESSD_OUTBOX: join(outboxDir, 'mail'), ACCESSD_TRUSTED_PROXY: '127.0.0.1/32' });
      echo = await startEcho();
      nginx = await startNginx(server.base, echo.address);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
          '--disable-component-update', '--disable-sync'],
      });
    });
    after(async () => {
      await browser?.close();
      await nginx?.stop();
      await new Promise((r) => (echo ? echo.server.close(r) : r()));
      await server?.stop();
      rmSync(outboxDir, { recursive: true, force: true });
    });

    test('an anonymous visit lands on sign-in; after the code the application sees the e-mail', async () => {
      const admin = server.client();
      const accountId = (await admin.accounts.create({ name: 'Behind nginx' })).id;
      await admin.zeroTrust.identityProviders.create({ account_id: accountId, name: 'PIN', type: 'onetimepin', config: {} });
      const policy = await admin.zeroTrust.access.policies.create({
        account_id: accountId, name: 'Example staff', decision: 'allow', include: [{ email_domain: { domain: 'example.com' } }],
      });
      await admin.zeroTrust.access.applications.create({
        account_id: accountId, type: 'self_hosted', name: 'Proxied wiki', domain: nginx.host, policies: [policy.id],
      });

      const context = await browser.newContext();
      const page = await context.newPage();
      const target = `http://${nginx.host}/welcome?tab=news`;
      await page.goto(target);
      const landed = new URL(page.url());
      assert.equal(landed.origin, server.base, nginx.logs());
      assert.equal(landed.pathname, `/cdn-cgi/access/login/${nginx.host}`);
      assert.equal(landed.searchParams.get('redirect_url'), target);
      assert.match(await page.title(), /Sign in to Proxied wiki/);

      await page.getByLabel('E-mail address').fill('browser.user@example.com');
      await page.getByRole('button', { name: 'Send me a code' }).click();
      const codeInput = page.locator('input[autocomplete="one-time-code"]');
      await codeInput.waitFor();
      await codeInput.fill(await codeFor(join(outboxDir, 'mail'), 'browser.user@example.com'));
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(target);

      const echoed = JSON.parse(await page.locator('body').innerText());
      assert.equal(echoed.path, '/welcome?tab=news');
      const values = (name) => echoed.headers.filter(([key]) => key.toLowerCase() === name).map(([, value]) => value);
      assert.deepEqual(values('cf-access-authenticated-user-email'), ['browser.user@example.com']);
      assert.equal(values('cf-access-jwt-assertion').length, 1);
      const cookies = await context.cookies(`http://${nginx.host}`);
      assert.ok(cookies.find((c) => c.name === 'CF_Authorization' && c.httpOnly), 'the application host holds its cookie');
      await context.close();
    });
  });
}
