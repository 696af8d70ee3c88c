// Real-browser test of the "talk to a stranger" chat: its frozen page
// (legacy_php/omegle/public/) driven by headless Chromium, two strangers, against
// each backend: cometa --profile omegle alone, the PHP reference alone (php -S),
// and the mixed deployment (Debian's nginx with deploy/nginx-omegle.conf serving
// the page, php-fpm with deploy/php-fpm-pool.conf for the PHP endpoints, cometa on
// a unix socket for listenToReceive.php).
//
//   cargo build && node --test tests/browser/
//
// Env: COMETA_BIN (default target/debug/cometa), CHROMIUM_BIN (default
// /usr/bin/chromium); CI=true turns a missing chromium, php, nginx or php-fpm
// into a failure instead of a skip. Every wait is bounded; servers are stopped
// in `after`.

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
  fpmMain,
  freePort,
  id,
  isRoot,
  missingChromium,
  missingPhp,
  missingStack,
  nginxMain,
  reEscape,
  render,
  screenshots,
  sleep,
  startProcess,
  stopProcess,
  until,
  waitForFile,
  waitForOutput,
} from './harness.mjs';

const STATIC_DIR = path.join(ROOT, 'legacy_php', 'omegle', 'public');
const SCHEMA = path.join(ROOT, 'profiles', 'omegle.schema.sql');
const HOLD = '5';

// What ana types: markup (the page inserts messages as HTML, so bob sees bold
// text), an accent and an astral character.
const ANA_SAYS = '<b>bold</b> café 😀';
const ANA_SEES_OWN = 'You: bold café 😀';
const BOB_SEES_ANA = 'Stranger: bold café 😀';
// What bob types: the page puts it in the URL unencoded, so PHP reads the `+`
// as a space; his own line shows what he typed.
const BOB_SAYS = '1+1 is <i>two</i> 🙂';
const BOB_SEES_OWN = 'You: 1+1 is two 🙂';
const ANA_SEES_BOB = 'Stranger: 1 1 is two 🙂';

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/** POSTs `endpoint` with an empty body, as the page does; resolves with the body. */
async function post(base, endpoint) {
  const res = await fetch(`${base}/${endpoint}`, { method: 'POST', signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.text() };
}

/** Waits (bounded) until the server answers getNumberOfUsers.php with a number. */
async function waitReady(proc, base, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.name} exited (${proc.exitCode}) before it was ready`);
    try {
      const { status, body } = await post(base, 'getNumberOfUsers.php');
      if (status === 200 && /^\d+$/.test(body)) return;
      last = `${status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  throw new Error(`not ready within ${ms} ms: ${last}`);
}

/** `cometa migrate --profile omegle --db DB`: the five tables. */
function migrate(db) {
  const res = spawnSync(COMETA_BIN, ['migrate', '--profile', 'omegle', '--db', db], {
    cwd: ROOT, encoding: 'utf8', timeout: 30_000,
  });
  if (res.error || res.status !== 0) {
    throw new Error(`cometa migrate --profile omegle failed: ${res.error?.message ?? ''} ${res.stderr ?? ''}`);
  }
}

/** The schema straight from profiles/omegle.schema.sql, with PHP's PDO (no cometa). */
function schemaByPhp(db) {
  const res = spawnSync('php', ['-r', '$p = new PDO("sqlite:" . $argv[1]); $p->exec(file_get_contents($argv[2]));', db, SCHEMA], {
    encoding: 'utf8', timeout: 30_000,
  });
  if (res.error || res.status !== 0) {
    throw new Error(`applying ${SCHEMA} with php failed: ${res.error?.message ?? ''} ${res.stdout} ${res.stderr}`);
  }
}

/** cometa's arguments; its admin listener (counters) on a loopback port. */
function cometaArgs(listen, db) {
  return [
    '--profile', 'omegle', '--listen', listen, '--db', db, '--hold', HOLD, '--static-dir', STATIC_DIR,
    '--admin-listen', '127.0.0.1:0',
  ];
}

/** The admin listener's base URL, from cometa's second stdout line. */
async function adminBase(proc) {
  const m = await waitForOutput(proc, /cometa admin on (http:\/\/127\.0\.0\.1:\d+)/, 15_000);
  return m[1];
}

async function startCometa(db) {
  migrate(db);
  const proc = startProcess(COMETA_BIN, cometaArgs('127.0.0.1:0', db), { NO_COLOR: '1' });
  proc.name = 'cometa';
  try {
    const m = await waitForOutput(proc, /cometa listening on (http:\/\/127\.0\.0\.1:\d+)/, 15_000);
    const base = m[1];
    const admin = await adminBase(proc);
    await waitReady(proc, base);
    return { base, admin: () => admin, output: () => proc.output.slice(-4000), stop: () => stopProcess(proc) };
  } catch (err) {
    await stopProcess(proc);
    err.message += `\n--- cometa output ---\n${proc.output}`;
    throw err;
  }
}

async function startPhp(db) {
  schemaByPhp(db);
  let lastError;
  // The port is free when picked but may be taken before php binds it: retry.
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = startProcess('php', ['-S', `127.0.0.1:${port}`, '-t', STATIC_DIR], {
      PHP_CLI_SERVER_WORKERS: '8',
      CHAT_DB: db,
    });
    proc.name = 'php -S';
    try {
      await waitReady(proc, base);
      return { base, output: () => proc.output.slice(-4000), stop: () => stopProcess(proc) };
    } catch (err) {
      await stopProcess(proc);
      lastError = new Error(`php -S on port ${port} (attempt ${attempt}): ${err.message}\n--- php output ---\n${proc.output}`);
    }
  }
  throw lastError;
}

/**
 * The mixed deployment: php-fpm and cometa on unix sockets in the test's
 * folder, nginx on a loopback port in front, with deploy/nginx-omegle.conf and
 * deploy/php-fpm-pool.conf rendered as an operator renders them
 * (listenToReceive.php to cometa).
 */
async function startMixed(db) {
  migrate(db);
  const dir = path.dirname(db);
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
    fs.writeFileSync(path.join(dir, 'php-fpm.conf'), fpmMain(dir));
    const fpmArgs = ['-F', '-y', path.join(dir, 'php-fpm.conf'), '-p', dir];
    if (isRoot()) fpmArgs.push('-R');
    const fpm = startProcess(findTool('php-fpm8.2'), fpmArgs);
    fpm.name = 'php-fpm';
    procs.push(fpm);
    await waitForFile(fpm, fpmSock, 15_000);

    // cometa, restartable on the same socket (the restart check below).
    let cometa = null;
    let admin = null;
    const startCometaHere = async () => {
      cometa = startProcess(COMETA_BIN, cometaArgs(`unix:${cometaSock}`, db), { NO_COLOR: '1' });
      cometa.name = 'cometa';
      procs.push(cometa);
      await waitForOutput(cometa, new RegExp(`cometa listening on unix:${reEscape(cometaSock)}`), 15_000);
      admin = await adminBase(cometa);
    };
    const stopCometaHere = async () => {
      await stopProcess(cometa);
      if (!cometa.exited) throw new Error('cometa did not exit on SIGTERM');
    };
    await startCometaHere();

    for (const f of ['mime.types', 'fastcgi_params']) {
      fs.copyFileSync(path.join('/etc/nginx', f), path.join(dir, f));
    }
    let lastError;
    // nginx's port may be taken before it binds: retry.
    for (let attempt = 1; attempt <= 5; attempt++) {
      const port = await freePort();
      fs.writeFileSync(path.join(dir, 'site.conf'), render('nginx-omegle.conf', {
        LISTEN: `127.0.0.1:${port}`,
        SERVER_NAME: 'localhost',
        ROOT: STATIC_DIR,
        PHP_FPM: `unix:${fpmSock}`,
        COMETA: `unix:${cometaSock}`,
        COMETA_ENDPOINTS: 'listenToReceive',
      }));
      fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxMain(dir));
      const nginx = startProcess(findTool('nginx'), [
        '-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'nginx-error.log'), '-g', 'daemon off;',
      ]);
      nginx.name = 'nginx';
      procs.push(nginx);
      const base = `http://127.0.0.1:${port}`;
      try {
        await waitReady(nginx, base);
        return {
          base,
          output,
          stop,
          admin: () => admin,
          stopCometa: stopCometaHere,
          startCometa: startCometaHere,
          stopFpm: () => stopProcess(fpm),
        };
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

/** Waits (bounded) until cometa's `/_cometa/stats` (on its admin listener) counts a held request. */
async function heldByCometa(admin, ms) {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${admin}/_cometa/stats`, { signal: AbortSignal.timeout(1000) });
      last = await res.text();
      const m = last.match(/"waiters":(\d+)/);
      if (res.status === 200 && m && Number(m[1]) > 0) return;
    } catch (err) {
      last = err.message;
    }
    await sleep(50);
  }
  throw new Error(`no poll held by cometa within ${ms} ms: /_cometa/stats answered ${last}`);
}

/** Why this backend cannot run here, or null. */
function missingTool(backend) {
  const missing = missingChromium() ?? missingPhp();
  if (missing) return missing;
  return backend === 'mixed' ? missingStack() : null;
}

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

/** The log's lines as the user reads them (`You: …`, `Stranger: …`). */
function logLines(page) {
  return page.$$eval('#log .logitem', (items) => items.map((i) => i.textContent));
}

/** Waits until the page's log holds exactly `lines`. */
async function logIs(page, who, lines, timeout) {
  await until(page, `${who}'s log is ${JSON.stringify(lines)}`,
    (want) => JSON.stringify([...document.querySelectorAll('#log .logitem')].map((i) => i.textContent)) === JSON.stringify(want),
    lines, timeout).catch(async (err) => {
    err.message += `; it is ${JSON.stringify(await logLines(page))}`;
    throw err;
  });
}

async function stateIs(page, who, state, timeout) {
  await until(page, `${who}'s page is ${state}`,
    (s) => document.body.getAttribute('data-state') === s, state, timeout);
}

async function countIs(page, who, n, timeout) {
  await until(page, `${who}'s page shows ${n} online`,
    (want) => document.getElementById('count').textContent === want, String(n), timeout);
}

async function typingShown(page, who, shown, timeout) {
  await until(page, `${who}'s "Stranger is typing" line ${shown ? 'shown' : 'hidden'}`,
    (want) => (getComputedStyle(document.getElementById('typing')).visibility === 'visible') === want,
    shown, timeout);
}

/**
 * The mixed deployment only: cometa restarts while both pages chat. While it is
 * down, nginx answers the poll with an empty 200 (never an error page, which the
 * page would show as the stranger's message); ana's message, sent through
 * php-fpm meanwhile, reaches bob once cometa is back, and nothing else shows.
 */
async function restartCometa(t, server, { ana, bob }) {
  const before = { ana: await logLines(ana), bob: await logLines(bob) };
  // When each of bob's polls was sent.
  const sentAt = new Map();
  const onRequest = (req) => {
    if (req.url().includes('listenToReceive.php')) sentAt.set(req, Date.now());
  };
  bob.on('request', onRequest);
  try {
    await server.stopCometa();
    const stoppedAt = Date.now();

    // A poll of bob's page sent while cometa is down gets an empty 200.
    const gap = await bob.waitForResponse(
      (res) => (sentAt.get(res.request()) ?? 0) > stoppedAt,
      { timeout: 5000 },
    );
    assert.equal(gap.status(), 200, "bob's poll while cometa is down");
    assert.equal(gap.headers()['content-type'], 'text/html; charset=UTF-8');
    assert.equal(await gap.text(), '', "bob's poll while cometa is down has an empty body");
    const direct = await fetch(`${server.base}/listenToReceive.php?userId=1`, {
      method: 'POST', signal: AbortSignal.timeout(5000),
    });
    assert.deepEqual(
      [direct.status, direct.headers.get('content-type'), await direct.text()],
      [200, 'text/html; charset=UTF-8', ''],
      'a poll through nginx while cometa is down',
    );

    // ana writes meanwhile (sendMsg.php is php-fpm's).
    await ana.locator('#msg').pressSequentially('still there?', { delay: 10, timeout: 5000 });
    await ana.locator('#msg').press('Enter', { timeout: 5000 });
    await logIs(ana, 'ana', [...before.ana, 'You: still there?'], 2000);

    await server.startCometa();
    const backAt = Date.now();
    await logIs(bob, 'bob', [...before.bob, 'Stranger: still there?'], 6000);
    t.diagnostic(`mixed: bob got the message sent during the restart ${Date.now() - backAt} ms after cometa was back`);
    await stateIs(bob, 'bob', 'chatting', 1000);
    await stateIs(ana, 'ana', 'chatting', 1000);
  } finally {
    bob.off('request', onRequest);
  }
}

// ---------------------------------------------------------------------------
// The test, once per backend
// ---------------------------------------------------------------------------

function backendSuite(backend, start) {
  const name = `talk to a stranger in Chromium against ${backend}`;
  const setUp = { prefix: `cometa-omegle-${backend}-`, db: 'omegle.sqlite', start };
  browserSuite(name, missingTool(backend), setUp, (ctx) => {
    const pageErrors = [];

    test('two strangers: paired, chat both ways, typing line, log, one leaves', { timeout: 90_000 }, async (t) => {
      const { base } = ctx.server;
      const pages = {};
      try {
        for (const who of ['ana', 'bob']) {
          const context = await ctx.browser.newContext();
          const page = await context.newPage();
          page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
          pages[who] = page;
          const res = await page.goto(`${base}/`, { timeout: 10_000 });
          assert.equal(res?.status(), 200, `${who}: GET / answered ${res?.status()}`);
          await stateIs(page, who, 'idle', 2000);
          await countIs(page, who, 0, 5000);
        }
        const { ana, bob } = pages;

        // ana starts and waits: nobody else yet.
        await ana.locator('#start').click({ timeout: 5000 });
        await stateIs(ana, 'ana', 'waiting', 2000);
        await until(ana, 'ana sees she is looking for a stranger',
          () => document.getElementById('status').textContent.includes('Looking for someone'), null, 2000);
        await countIs(bob, 'bob', 1, 5000);

        // bob starts: he is paired with ana at once, she on her next try (2 s).
        const pairedAt = Date.now();
        await bob.locator('#start').click({ timeout: 5000 });
        await stateIs(bob, 'bob', 'chatting', 5000);
        await stateIs(ana, 'ana', 'chatting', 5000);
        t.diagnostic(`${backend}: both paired ${Date.now() - pairedAt} ms after bob pressed start`);
        if (ctx.server.admin) {
          // The polls are cometa's: it holds them (through nginx too).
          await heldByCometa(ctx.server.admin(), 3000);
        }
        for (const [who, page] of Object.entries(pages)) {
          await until(page, `${who} is told a stranger is there`,
            () => document.getElementById('status').textContent.includes('chatting with a random stranger'), null, 1000);
          await countIs(page, who, 2, 5000);
        }

        // ana types key by key: bob's typing line (polled every 2 s) shows it.
        await ana.locator('#msg').pressSequentially(ANA_SAYS, { delay: 30, timeout: 10_000 });
        await typingShown(bob, 'bob', true, 5000);
        const sentAt = Date.now();
        await ana.locator('#msg').press('Enter', { timeout: 5000 });
        await logIs(ana, 'ana', [ANA_SEES_OWN], 2000);
        assert.equal(await ana.locator('#msg').inputValue(), '', "ana's box is emptied by the send");
        await logIs(bob, 'bob', [BOB_SEES_ANA], 5000);
        t.diagnostic(`${backend}: bob saw ana's message ${Date.now() - sentAt} ms after she pressed Enter`);
        assert.equal(await bob.locator('#log .strangermsg b').textContent(), 'bold',
          "the markup of ana's message is rendered as HTML in bob's log");
        // Her box is empty again: stopTyping.php, and bob's line goes.
        await typingShown(bob, 'bob', false, 5000);

        // bob answers with the Send button.
        await bob.locator('#msg').pressSequentially(BOB_SAYS, { delay: 20, timeout: 10_000 });
        await typingShown(ana, 'ana', true, 5000);
        await bob.locator('#send').click({ timeout: 5000 });
        await logIs(bob, 'bob', [BOB_SEES_ANA, BOB_SEES_OWN], 2000);
        await logIs(ana, 'ana', [ANA_SEES_OWN, ANA_SEES_BOB], 5000);
        assert.equal(await ana.locator('#log .strangermsg i').textContent(), 'two');
        await typingShown(ana, 'ana', false, 5000);

        if (ctx.server.stopCometa) {
          await restartCometa(t, ctx.server, { ana, bob });
        }

        // ana saves the log: a new window with what her page shows.
        const anaLog = await logLines(ana);
        const [logWindow] = await Promise.all([
          ana.waitForEvent('popup', { timeout: 5000 }),
          ana.locator('#savelog').click({ timeout: 5000 }),
        ]);
        pages.savedLog = logWindow;
        await until(logWindow, "the saved log shows ana's chat",
          (want) => JSON.stringify([...document.querySelectorAll('.logitem')].map((i) => i.textContent)) === JSON.stringify(want),
          anaLog, 5000);
        await logWindow.close();
        delete pages.savedLog;

        // bob disconnects (and confirms): ana is told the stranger left.
        bob.once('dialog', (dialog) => {
          assert.equal(dialog.type(), 'confirm');
          dialog.accept();
        });
        const leftAt = Date.now();
        await bob.locator('#disconnect').click({ timeout: 5000 });
        await stateIs(bob, 'bob', 'disconnected', 2000);
        await until(bob, 'bob is told he left',
          () => document.getElementById('status').textContent === 'You have disconnected.', null, 1000);
        await stateIs(ana, 'ana', 'disconnected', 5000);
        t.diagnostic(`${backend}: ana saw bob leave ${Date.now() - leftAt} ms after he confirmed`);
        await until(ana, 'ana is told the stranger left',
          () => document.getElementById('status').textContent === 'Stranger has disconnected.', null, 1000);
        assert.equal(await ana.locator('#msg').isDisabled(), true, "ana's box is disabled once the stranger left");
        // ana's page left too (leaveChat.php on the sentinel): nobody online.
        for (const [who, page] of Object.entries(pages)) await countIs(page, who, 0, 5000);

        // ana starts a new chat, then closes her tab: onbeforeunload leaves.
        await ana.locator('#newchat').click({ timeout: 5000 });
        await stateIs(ana, 'ana', 'waiting', 2000);
        assert.deepEqual(await logLines(ana), [], "a new chat starts with an empty log");
        await countIs(bob, 'bob', 1, 5000);
        await ana.close({ runBeforeUnload: true });
        await countIs(bob, 'bob', 0, 5000);

        if (ctx.server.stopFpm) {
          // php-fpm down: nginx answers its endpoints with an empty 200 too.
          await ctx.server.stopFpm();
          for (const ep of ['getNumberOfUsers.php', 'sendMsg.php?userId=1&strangerId=2&msg=x', 'startChat.php']) {
            const res = await fetch(`${base}/${ep}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
            assert.deepEqual(
              [res.status, res.headers.get('content-type'), await res.text()],
              [200, 'text/html; charset=UTF-8', ''],
              `${ep} through nginx while php-fpm is down`,
            );
          }
        }

        assert.deepEqual(pageErrors, [], 'no script error in the pages');
      } catch (err) {
        const saved = await screenshots(`omegle-${backend}`, pages);
        for (const file of saved) console.error(`screenshot: ${file}`);
        if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
        console.error(`--- ${backend} server output (tail) ---\n${ctx.server.output()}`);
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
