// Real-browser test: the frozen jQuery front end (legacy_php/public/) driven by
// headless Chromium against each backend: cometa, the legacy PHP endpoints, and
// the mixed deployment (Debian's nginx serving the front end from the site of
// deploy/nginx-cometa.conf, php-fpm with deploy/php-fpm-pool.conf for the PHP
// endpoints, cometa on a unix socket for listenToRecive.php).
//
//   cargo build && node --test tests/browser/
//
// Env: COMETA_BIN (default target/debug/cometa), CHROMIUM_BIN (default
// /usr/bin/chromium), CI=true turns a missing chromium, php, nginx or php-fpm
// into a failure instead of a skip. Every wait is bounded; servers are killed in `after`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  CHROMIUM_BIN,
  CI,
  COMETA_BIN,
  ROOT,
  browserSuite,
  findTool,
  freePort,
  isExecutable,
  render,
  screenshots,
  sleep,
  startProcess,
  stopProcess,
  until,
  waitForFile,
  waitForOutput,
} from './harness.mjs';

const STATIC_DIR = path.join(ROOT, 'legacy_php', 'public');
const HOLD = '5';


// What ana types: markup, both quote kinds, an ampersand, a 2-byte and an astral
// character. It must come back as this exact text, never as HTML.
const MESSAGE = `<script>window.__xss = 1</script> "quotes" & 'single' é 😀`;

// ---------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------



/** Why this backend cannot run here (a missing tool), or null. */
function missingTool(backend) {
  if (!isExecutable(CHROMIUM_BIN)) {
    return `chromium not found at ${CHROMIUM_BIN} (apt-get install chromium, or set CHROMIUM_BIN)`;
  }
  if (backend === 'mixed') {
    for (const tool of ['nginx', 'php-fpm8.2']) {
      if (!findTool(tool)) {
        return `${tool} not found on PATH or in /usr/sbin (apt-get install nginx php-fpm)`;
      }
    }
    const fpm = spawnSync(findTool('php-fpm8.2'), ['-m'], { encoding: 'utf8', timeout: 10_000 });
    const mods = (fpm.stdout || '').split('\n').map((l) => l.trim().toLowerCase());
    if (fpm.status !== 0 || !mods.includes('pdo_sqlite') || !mods.includes('mbstring')) {
      return 'php-fpm8.2 lacks pdo_sqlite or mbstring (apt-get install php-sqlite3 php-mbstring)';
    }
  }
  if (backend === 'php') {
    const php = spawnSync(
      'php',
      ['-r', 'exit(extension_loaded("pdo_sqlite") && extension_loaded("mbstring") ? 0 : 3);'],
      { stdio: 'ignore', timeout: 10_000 },
    );
    if (php.error) {
      return 'php not found on PATH (apt-get install php-cli php-sqlite3 php-mbstring)';
    }
    if (php.status !== 0) {
      return 'php lacks pdo_sqlite or mbstring (apt-get install php-sqlite3 php-mbstring)';
    }
  }
  return null;
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------


/** Polls the users endpoint until the server answers it with a number (bounded). */
async function waitReady(proc, base, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`server exited (${proc.exitCode}) before it was ready`);
    try {
      const res = await fetch(`${base}/getNumberOfUsers.php`, { signal: AbortSignal.timeout(1000) });
      const body = await res.text();
      if (res.status === 200 && /^\d+$/.test(body)) return;
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  throw new Error(`server not ready within ${ms} ms: ${last}`);
}


function migrate(db) {
  const res = spawnSync(COMETA_BIN, ['migrate', '--db', db], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  if (res.error || res.status !== 0) {
    throw new Error(`cometa migrate failed: ${res.error?.message ?? ''} ${res.stderr ?? ''}`);
  }
}

async function startCometa(db) {
  const proc = startProcess(COMETA_BIN, [
    '--listen', '127.0.0.1:0',
    '--db', db,
    '--hold', HOLD,
    '--static-dir', STATIC_DIR,
  ], { NO_COLOR: '1' });
  try {
    const m = await waitForOutput(proc, /cometa listening on (http:\/\/127\.0\.0\.1:\d+)/, 15_000);
    const base = m[1];
    await waitReady(proc, base);
    return { proc, base };
  } catch (err) {
    await stopProcess(proc);
    err.message += `\n--- cometa output ---\n${proc.output}`;
    throw err;
  }
}

async function startPhp(db) {
  migrate(db);
  let lastError;
  // The port is free when picked but may be taken before php binds it: retry.
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = startProcess('php', ['-S', `127.0.0.1:${port}`, '-t', STATIC_DIR], {
      PHP_CLI_SERVER_WORKERS: '8',
      CHAT_DB: db,
      CHAT_HOLD: HOLD,
    });
    try {
      await waitReady(proc, base);
      return { proc, base };
    } catch (err) {
      await stopProcess(proc);
      lastError = new Error(`php -S on port ${port} (attempt ${attempt}): ${err.message}\n--- php output ---\n${proc.output}`);
    }
  }
  throw lastError;
}


/**
 * The mixed deployment: php-fpm and cometa on unix sockets in the test's
 * folder, nginx on a loopback port in front, with the site and pool of deploy/
 * rendered as an operator renders them (listenToRecive.php to cometa).
 */
async function startMixed(db) {
  migrate(db);
  const dir = path.dirname(db);
  const isRoot = process.getuid?.() === 0;
  const id = (flag) => spawnSync('id', [flag], { encoding: 'utf8' }).stdout.trim();
  const fpmSock = path.join(dir, 'php-fpm.sock');
  const cometaSock = path.join(dir, 'cometa.sock');
  const procs = [];
  const output = () => procs.map((p) => `--- ${p.name} ---\n${p.output.slice(-3000)}`).join('\n')
    + ['php-fpm.log', 'nginx-error.log'].map((f) => {
      const file = path.join(dir, f);
      return `\n--- ${f} ---\n${fs.existsSync(file) ? fs.readFileSync(file, 'utf8').slice(-3000) : ''}`;
    }).join('');
  const stop = async () => {
    for (const p of procs.reverse()) await stopProcess(p);
  };
  try {
    // php-fpm
    fs.writeFileSync(path.join(dir, 'pool.conf'), render('php-fpm-pool.conf', {
      USER: id('-un'),
      GROUP: id('-gn'),
      POOL_LISTEN: fpmSock,
      SOCKET_USER: id('-un'),
      SOCKET_GROUP: id('-gn'),
      CHAT_DB: db,
      CHAT_HOLD: HOLD,
      TIMEZONE: 'UTC',
    }));
    fs.writeFileSync(path.join(dir, 'php-fpm.conf'), [
      '[global]',
      `pid = ${dir}/php-fpm.pid`,
      `error_log = ${dir}/php-fpm.log`,
      'daemonize = no',
      `include = ${dir}/pool.conf`,
      '',
    ].join('\n'));
    const fpmArgs = ['-F', '-y', path.join(dir, 'php-fpm.conf'), '-p', dir];
    if (isRoot) fpmArgs.push('-R');
    const fpm = startProcess(findTool('php-fpm8.2'), fpmArgs);
    fpm.name = 'php-fpm';
    procs.push(fpm);
    await waitForFile(fpm, fpmSock, 15_000);

    // cometa
    const cometa = startProcess(COMETA_BIN, [
      '--listen', `unix:${cometaSock}`,
      '--db', db,
      '--hold', HOLD,
      '--static-dir', STATIC_DIR,
    ], { NO_COLOR: '1' });
    cometa.name = 'cometa';
    procs.push(cometa);
    await waitForOutput(cometa, new RegExp(`cometa listening on unix:${cometaSock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 15_000);

    // nginx, on a port that may be taken before it binds: retry.
    for (const f of ['mime.types', 'fastcgi_params']) {
      fs.copyFileSync(path.join('/etc/nginx', f), path.join(dir, f));
    }
    let lastError;
    for (let attempt = 1; attempt <= 5; attempt++) {
      const port = await freePort();
      fs.writeFileSync(path.join(dir, 'site.conf'), render('nginx-cometa.conf', {
        LISTEN: `127.0.0.1:${port}`,
        SERVER_NAME: 'localhost',
        ROOT: STATIC_DIR,
        PHP_FPM: `unix:${fpmSock}`,
        COMETA: `unix:${cometaSock}`,
        COMETA_ENDPOINTS: 'listenToRecive',
      }));
      fs.writeFileSync(path.join(dir, 'nginx.conf'), [
        isRoot ? 'user root;' : '',
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
      ].join('\n'));
      const nginx = startProcess(findTool('nginx'), [
        '-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'nginx-error.log'), '-g', 'daemon off;',
      ]);
      nginx.name = 'nginx';
      procs.push(nginx);
      const base = `http://127.0.0.1:${port}`;
      try {
        await waitReady(nginx, base);
        return { procs, base, output, stop };
      } catch (err) {
        await stopProcess(nginx);
        procs.pop();
        lastError = new Error(`nginx on port ${port} (attempt ${attempt}): ${err.message}`);
        const log = fs.readFileSync(path.join(dir, 'nginx-error.log'), 'utf8');
        if (!log.includes('Address already in use')) break;
      }
    }
    throw lastError;
  } catch (err) {
    err.message += `\n${output()}`;
    await stop();
    throw err;
  }
}

/** Stores a message through sendMessage.php; resolves with its id. */
async function seed(base, user, message) {
  const res = await fetch(`${base}/sendMessage.php`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ user, message }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.text();
  assert.equal(res.status, 200, `seeding answered ${res.status}: ${body}`);
  const m = body.match(/^\{"status":"ok","id":(\d+)\}$/);
  assert.ok(m, `seeding answered ${body}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------

async function join(page, base, nick) {
  const res = await page.goto(`${base}/`, { timeout: 10_000 });
  assert.equal(res?.status(), 200, `${nick}: GET / answered ${res?.status()}`);
  await page.locator('#nick').fill(nick, { timeout: 5000 });
  await page.locator('#nick-form button[type=submit]').click({ timeout: 5000 });
  await page.locator('#chat').waitFor({ state: 'visible', timeout: 5000 });
}


// ---------------------------------------------------------------------------
// The test, once per backend
// ---------------------------------------------------------------------------

function backendSuite(backend, start) {
  const name = `chat in Chromium against ${backend}`;
  const setUp = { prefix: `cometa-browser-${backend}-`, db: 'chat.sqlite', start };
  browserSuite(name, missingTool(backend), setUp, (ctx) => {
    const pageErrors = [];

    test('two users: typing line, a message rendered as text within 1 s, online count', { timeout: 45_000 }, async (t) => {
      const { base } = ctx.server;
      // One message before anyone joins. The client re-polls an empty room's
      // history (lastId=0, never held) only every 2 s; with a message there, its
      // first poll returns it and the next one (lastId>0) is the held long-poll
      // at once, so a send is delivered by a waiting poll, not by a retry timer.
      // It is ana's: sendMessage.php marks its user present, and a third name
      // would count in #online for the next 30 s.
      const seedId = await seed(base, 'ana', 'welcome');

      const pages = {};
      try {
        for (const nick of ['ana', 'bob']) {
          const context = await ctx.browser.newContext();
          const page = await context.newPage();
          page.on('pageerror', (err) => pageErrors.push(`${nick}: ${err.message}`));
          pages[nick] = page;
        }
        const { ana, bob } = pages;
        await join(ana, base, 'ana');
        await join(bob, base, 'bob');

        // Both have their history, so both now wait in a held long-poll.
        for (const [nick, page] of Object.entries(pages)) {
          await until(page, `${nick} sees the seeded message`,
            () => [...document.querySelectorAll('#messages li.message .text')].some((e) => e.textContent === 'welcome'),
            null, 5000);
        }

        // Clocks for the delivery time: when ana's form is submitted, and when
        // ana's message is added to bob's list (same machine, same clock).
        await ana.evaluate(() => {
          document.addEventListener('submit', (e) => {
            if (e.target.id === 'send-form') window.__submittedAt = Date.now();
          }, true);
        });
        await bob.evaluate((after) => {
          new MutationObserver((records) => {
            for (const r of records) {
              for (const node of r.addedNodes) {
                const id = node.getAttribute && Number(node.getAttribute('data-id'));
                if (id > after && !window.__seenAt) window.__seenAt = Date.now();
              }
            }
          }).observe(document.getElementById('messages'), { childList: true });
        }, seedId);

        // ana types key by key (real input events); bob's typing line, polled
        // every 2 s, must name her. Typing takes ~2.5 s plus 2 s of idle grace,
        // so at least one of bob's polls falls inside the window.
        const typed = ana.locator('#message').pressSequentially(MESSAGE, { delay: 40, timeout: 15_000 });
        await until(bob, 'bob sees "ana is typing" in #typing',
          () => (document.getElementById('typing').textContent || '').includes('ana is typing'),
          null, 5000);
        await typed;
        assert.equal(await ana.locator('#message').inputValue(), MESSAGE, 'the typed text in #message');

        await ana.locator('#send-form button[type=submit]').click({ timeout: 5000 });
        await until(bob, "bob sees ana's message", () => window.__seenAt, null, 3000);
        const submittedAt = await ana.evaluate(() => window.__submittedAt);
        const seenAt = await bob.evaluate(() => window.__seenAt);
        assert.ok(submittedAt, 'the send form was submitted');
        const delay = seenAt - submittedAt;
        assert.ok(delay <= 1000, `bob saw the message ${delay} ms after the submission (limit 1000 ms)`);
        t.diagnostic(`${backend}: bob saw ana's message ${delay} ms after she submitted it`);

        // Rendered as text in both lists: exact string, no element made from it.
        await until(ana, 'ana sees her own message',
          (after) => [...document.querySelectorAll('#messages li.message')].some((li) => Number(li.getAttribute('data-id')) > after),
          seedId, 3000);
        for (const [nick, page] of Object.entries(pages)) {
          const rows = await page.$$eval('#messages li.message', (lis) =>
            lis.map((li) => ({
              id: Number(li.getAttribute('data-id')),
              user: li.querySelector('.user')?.textContent,
              text: li.querySelector('.text')?.textContent,
              textChildren: li.querySelector('.text')?.children.length,
            })));
          assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', `window.__xss in ${nick}'s page (the message ran as a script)`);
          assert.equal(await page.locator('#messages script').count(), 0, `no <script> element in ${nick}'s #messages`);
          const sent = rows.filter((r) => r.id > seedId);
          assert.equal(sent.length, 1, `${nick}'s list has one new message: ${JSON.stringify(rows)}`);
          assert.equal(sent[0].user, 'ana', `${nick}'s .user span of the new message`);
          assert.equal(sent[0].text, MESSAGE, `${nick}'s .text span shows the typed string as text`);
          assert.equal(sent[0].textChildren, 0, `${nick}'s .text span holds no element`);
        }

        // Both present within 30 s; each page refreshes the count every 5 s.
        for (const [nick, page] of Object.entries(pages)) {
          await until(page, `${nick}'s #online shows 2`,
            () => document.getElementById('online').textContent.trim() === '2', null, 7000);
        }
      } catch (err) {
        const saved = await screenshots(`browser-${backend}`, pages);
        for (const file of saved) console.error(`screenshot: ${file}`);
        if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
        const output = ctx.server.output ? ctx.server.output() : ctx.server.proc.output.slice(-4000);
        console.error(`--- ${backend} server output (tail) ---\n${output}`);
        err.message += saved.length ? `\nscreenshots: ${saved.join(', ')}` : '';
        throw err;
      } finally {
        for (const page of Object.values(pages)) await page.context().close().catch(() => {});
      }
    });
  });
}

backendSuite('cometa', startCometa);
backendSuite('php', startPhp);
backendSuite('mixed', startMixed);
