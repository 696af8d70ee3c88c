// Shared helpers of the real-browser tests: finding tools, starting servers in
// their own process groups (killed when the test process exits), bounded waits,
// ports, the deploy/ templates, screenshots. Not a test file itself (node --test
// runs only *.test.mjs). chat.test.mjs and omegle.test.mjs use it.

import { after, before, describe, test } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const COMETA_BIN = path.resolve(ROOT, process.env.COMETA_BIN || 'target/debug/cometa');
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
export const CI = process.env.CI === 'true';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------

export function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `name` on PATH or in /usr/sbin (where Debian puts nginx and php-fpm), or null. */
export function findTool(name) {
  const dirs = [...(process.env.PATH || '').split(path.delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

/** Why chromium cannot run here, or null. */
export function missingChromium() {
  return isExecutable(CHROMIUM_BIN)
    ? null
    : `chromium not found at ${CHROMIUM_BIN} (apt-get install chromium, or set CHROMIUM_BIN)`;
}

/** Why `php` (CLI, with pdo_sqlite) cannot run here, or null. */
export function missingPhp() {
  const php = spawnSync('php', ['-r', 'exit(extension_loaded("pdo_sqlite") ? 0 : 3);'], {
    stdio: 'ignore',
    timeout: 10_000,
  });
  if (php.error) return 'php not found on PATH (apt-get install php-cli php-sqlite3)';
  if (php.status !== 0) return 'php lacks pdo_sqlite (apt-get install php-sqlite3)';
  return null;
}

/** Why nginx and php-fpm (with pdo_sqlite) cannot run here, or null. */
export function missingStack() {
  for (const tool of ['nginx', 'php-fpm8.2']) {
    if (!findTool(tool)) return `${tool} not found on PATH or in /usr/sbin (apt-get install nginx php-fpm)`;
  }
  const fpm = spawnSync(findTool('php-fpm8.2'), ['-m'], { encoding: 'utf8', timeout: 10_000 });
  const mods = (fpm.stdout || '').split('\n').map((l) => l.trim().toLowerCase());
  if (fpm.status !== 0 || !mods.includes('pdo_sqlite')) {
    return 'php-fpm8.2 lacks pdo_sqlite (apt-get install php-sqlite3)';
  }
  return null;
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/** Every process group started here, so that none outlives the test process. */
const groups = new Set();
process.on('exit', () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Starts `cmd` in its own process group (php -S forks its workers into it),
 * capturing its output (the last 20 kB) for the failure report.
 */
export function startProcess(cmd, args, env = {}) {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = { child, output: '', exited: false, exitCode: null, onStdout: null, name: path.basename(cmd) };
  if (child.pid !== undefined) groups.add(child.pid);
  const keep = (chunk) => {
    proc.output = (proc.output + chunk).slice(-20_000);
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    keep(chunk);
    if (proc.onStdout) proc.onStdout();
  });
  child.stderr.on('data', keep);
  proc.exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      proc.exited = true;
      proc.exitCode = code ?? signal;
      resolve();
    });
    child.on('error', (err) => {
      keep(`spawn error: ${err.message}\n`);
      proc.exited = true;
      proc.exitCode = err.code;
      resolve();
    });
  });
  return proc;
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the process group, SIGKILL if it has not gone within 3 s. */
export async function stopProcess(proc) {
  if (!proc || proc.child.pid === undefined) return;
  const pid = proc.child.pid;
  if (!groups.has(pid)) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // already gone
  }
  const deadline = Date.now() + 3000;
  await Promise.race([proc.exitPromise, sleep(3000)]);
  while (groupAlive(pid) && Date.now() < deadline) await sleep(50);
  if (groupAlive(pid)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await Promise.race([proc.exitPromise, sleep(2000)]);
  }
  groups.delete(pid);
}

/** Resolves with the first match of `re` on the process's output, bounded. */
export function waitForOutput(proc, re, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`no ${re} on ${proc.name}'s output within ${ms} ms`));
    }, ms);
    const check = () => {
      const m = proc.output.match(re);
      if (m) {
        finish();
        resolve(m);
      }
    };
    const finish = () => {
      clearTimeout(timer);
      proc.onStdout = null;
    };
    proc.onStdout = check;
    proc.exitPromise.then(() => {
      check();
      finish();
      reject(new Error(`${proc.name} exited (${proc.exitCode}) before printing ${re}`));
    });
    check();
  });
}

/** Waits (bounded) until `file` exists, failing early if `proc` exits. */
export async function waitForFile(proc, file, ms) {
  const deadline = Date.now() + ms;
  while (!fs.existsSync(file)) {
    if (proc.exited) throw new Error(`${proc.name} exited (${proc.exitCode}) before creating ${file}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} made no ${file} within ${ms} ms`);
    await sleep(20);
  }
}

/** A port on 127.0.0.1 that was free a moment ago. */
export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Escapes `s` for use inside a RegExp. */
export function reEscape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Fills the `@NAME@` placeholders of a deploy/ template; none may be left. */
export function render(file, values) {
  let text = fs.readFileSync(path.join(ROOT, 'deploy', file), 'utf8');
  for (const [name, value] of Object.entries(values)) {
    const key = `@${name}@`;
    if (!text.includes(key)) throw new Error(`deploy/${file} has no placeholder ${key}`);
    text = text.split(key).join(value);
  }
  const left = text.match(/@[A-Z0-9_]+@/);
  if (left) throw new Error(`deploy/${file}: ${left[0]} left unfilled`);
  return text;
}

/** `id -un` / `id -gn`. */
export function id(flag) {
  return spawnSync('id', [flag], { encoding: 'utf8' }).stdout.trim();
}

export function isRoot() {
  return process.getuid?.() === 0;
}

/**
 * nginx's main configuration for a test: everything under `dir`, one worker,
 * gzip on as in Debian's nginx.conf, then `include site.conf`.
 */
export function nginxMain(dir) {
  return [
    isRoot() ? 'user root;' : '',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    'events { worker_connections 512; }',
    'http {',
    '  include mime.types;',
    '  default_type application/octet-stream;',
    `  access_log ${dir}/nginx-access.log;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/nginx-${t};`),
    '  gzip on;',
    '  include site.conf;',
    '}',
    '',
  ].join('\n');
}

/** php-fpm's `[global]` section for a test, including `pool.conf` of `dir`. */
export function fpmMain(dir) {
  return [
    '[global]',
    `pid = ${dir}/php-fpm.pid`,
    `error_log = ${dir}/php-fpm.log`,
    'daemonize = no',
    `include = ${dir}/pool.conf`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------

/** Waits (bounded) until `fn(arg)` is truthy in the page; `what` names it in the error. */
export async function until(page, what, fn, arg, timeout) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 25 });
  } catch (err) {
    throw new Error(`${what}: not within ${timeout} ms (${err.message.split('\n')[0]})`);
  }
}

/** Full-page screenshots of the open pages into tests/artifacts/; their paths. */
export async function screenshots(prefix, pages) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const saved = [];
  for (const [name, page] of Object.entries(pages)) {
    if (!page || page.isClosed()) continue;
    const file = path.join(ARTIFACTS, `${prefix}-${name}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: 5000 });
      saved.push(file);
    } catch (err) {
      console.error(`could not save a screenshot of ${name}'s page: ${err.message}`);
    }
  }
  return saved;
}

/**
 * One backend's suite of browser tests. When `missing` names a missing tool the
 * suite is a failure under CI=true and a skip elsewhere. Otherwise, before its
 * tests: a temporary folder (`prefix`), the backend (`start(folder/db)`, which
 * returns the server: `stop()`, or the `proc` it runs) and Chromium; all of it
 * closed after. `body(ctx)` declares the tests; they find `ctx.server` and
 * `ctx.browser`.
 */
export function browserSuite(name, missing, { prefix, db, start }, body) {
  if (missing) {
    if (CI) {
      test(name, () => {
        throw new Error(`${missing}; CI=true, so a missing tool is a failure, not a skip`);
      });
    } else {
      console.log(`# skipping "${name}": ${missing} (set CI=true to make this a failure)`);
      test(name, { skip: missing }, () => {});
    }
    return;
  }
  describe(name, () => {
    const ctx = { tmp: undefined, server: undefined, browser: undefined };

    async function cleanup() {
      if (ctx.browser) await ctx.browser.close().catch(() => {});
      ctx.browser = undefined;
      if (ctx.server) await (ctx.server.stop ? ctx.server.stop() : stopProcess(ctx.server.proc));
      ctx.server = undefined;
      if (ctx.tmp) fs.rmSync(ctx.tmp, { recursive: true, force: true });
      ctx.tmp = undefined;
    }

    before(async () => {
      if (!isExecutable(COMETA_BIN)) {
        throw new Error(`no cometa binary at ${COMETA_BIN}: run \`cargo build\` first (or set COMETA_BIN)`);
      }
      try {
        ctx.tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
        ctx.server = await start(path.join(ctx.tmp, db));
        const { chromium } = await import('playwright-core');
        ctx.browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: 30_000 });
      } catch (err) {
        await cleanup();
        throw err;
      }
    }, { timeout: 45_000 });

    after(cleanup, { timeout: 15_000 });

    body(ctx);
  });
}
