// Starts the real accessd binary for the TypeScript SDK tests.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import Cloudflare from 'cloudflare';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const binary = process.env.ACCESSD_BIN ?? join(root, 'target', 'debug', 'accessd');
export const ADMIN_TOKEN = 'cfut_' + 'NodeAdminToken'.repeat(3) + '0123456789';

/** The databases to run on: SQLite always, PostgreSQL when TEST_POSTGRES_URL is set. */
export function backends() {
  const list = ['sqlite'];
  if (process.env.TEST_POSTGRES_URL) list.push('postgres');
  else if (process.env.CI) throw new Error('TEST_POSTGRES_URL must be set in CI');
  return list;
}

export async function startServer(backend, extraEnv = {}) {
  let databaseUrl;
  let cleanup;
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'accessd-node-'));
    databaseUrl = `sqlite://${join(dir, 'accessd.db')}`;
    cleanup = () => rmSync(dir, { recursive: true, force: true });
  } else {
    const admin = process.env.TEST_POSTGRES_URL;
    const name = `accessd_node_${randomBytes(6).toString('hex')}`;
    execFileSync('psql', [admin, '-qc', `CREATE DATABASE ${name}`]);
    databaseUrl = `${admin.slice(0, admin.lastIndexOf('/'))}/${name}`;
    cleanup = () => execFileSync('psql', [admin, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
  }
  const child = spawn(binary, ['serve', '--listen', '127.0.0.1:0', '--database', databaseUrl], {
    env: { ...process.env, ACCESSD_ADMIN_TOKEN: ADMIN_TOKEN, ACCESSD_LOG: 'warn', ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = await new Promise((resolveBase, reject) => {
    let seen = '';
    child.stdout.on('data', (chunk) => {
      seen += chunk;
      const match = seen.match(/listening on (http:\/\/\S+)/);
      if (match) resolveBase(match[1]);
    });
    child.on('exit', (code) => reject(new Error(`accessd exited with ${code} before listening`)));
  });
  return {
    base,
    client: (apiToken = ADMIN_TOKEN) => new Cloudflare({ apiToken, baseURL: `${base}/client/v4`, maxRetries: 0 }),
    async stop() {
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGTERM');
      await exited;
      cleanup();
    },
  };
}
