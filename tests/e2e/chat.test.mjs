// The chat demo end to end: two headless Chromium pages running the wasm client chat through
// examples/chat_server.rs over permessage-deflate, and both reconnect when the server is killed
// and started again.
//
// Builds nothing: scripts/test-e2e.sh builds www/pkg and target/debug/examples/chat_server
// first. Loopback only; every wait is bounded; the server and the browser are killed at the
// end, pass or fail. Screenshots go to tests/artifacts/.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR ?? "target");
const serverBin = path.join(targetDir, "debug", "examples", "chat_server");
const www = path.join(root, "www");
const wasm = path.join(www, "pkg", "isosock_chat_client_bg.wasm");
const artifacts = path.join(root, "tests", "artifacts");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** Longest wait for any one thing (server start, a page state, a message). */
const WAIT_MS = 20_000;
/** The whole test. */
const TEST_TIMEOUT_MS = 150_000;

// Chromium as root on a machine without network: no sandbox, GPU, QUIC or background traffic.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-proxy-server",
];

// The one console error a page may log: Chromium's own line for a reconnect attempt that found
// no server (expected while the test has the server down). Anything else fails the test.
const EXPECTED_CONSOLE_ERROR = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/;

/** Everything to stop at the end, whatever happens. */
const resources = { servers: new Set(), context: null, userDataDir: null };

async function cleanup() {
  for (const server of resources.servers) await server.kill();
  const { context, userDataDir } = resources;
  resources.context = null;
  resources.userDataDir = null;
  if (context) await withTimeout(context.close(), 10_000, "closing Chromium").catch(() => {});
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}
after(cleanup);
// Last resort if the runner exits early: a synchronous kill of the servers.
process.on("exit", () => {
  for (const server of resources.servers) server.proc.kill("SIGKILL");
});

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts the chat server on 127.0.0.1:`port` (0: a free one) and resolves once it listens,
 * with its port. Retries briefly when the port is still taken (restart on the same port).
 */
async function startServer(port) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      return await startServerOnce(port, deadline);
    } catch (err) {
      if (!/in use/i.test(err.message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function startServerOnce(port, deadline) {
  const proc = spawn(serverBin, [String(port), www], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  const server = {
    proc,
    port: null,
    output: () => output,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await withTimeout(exited, 5_000, "chat server exit").catch(() => {});
      resources.servers.delete(server);
    },
  };
  resources.servers.add(server);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`chat server printed no address in time; output:\n${output}`)),
      Math.max(0, deadline - Date.now()),
    );
    const fail = (err) => {
      clearTimeout(timer);
      server.kill().then(() => reject(err));
    };
    const onData = (chunk) => {
      output += chunk;
      const m = /^chat server on http:\/\/127\.0\.0\.1:(\d+)\//m.exec(output);
      if (m) {
        clearTimeout(timer);
        server.port = Number(m[1]);
        resolve(server);
      }
    };
    proc.stdout.setEncoding("utf8").on("data", onData);
    proc.stderr.setEncoding("utf8").on("data", onData);
    proc.once("error", (err) => fail(err));
    exited.then(({ code, signal }) => {
      if (server.port === null) {
        fail(new Error(`chat server exited (${code ?? signal}) before listening:\n${output}`));
      }
    });
  });
}

/** Fails the test on any console error (but the expected one) or uncaught page error. */
function watchPage(page, name, problems) {
  page.on("console", (msg) => {
    if (msg.type() === "error" && !EXPECTED_CONSOLE_ERROR.test(msg.text())) {
      problems.push(`${name}: console error: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`${name}: page error: ${err.message}`));
  page.on("crash", () => problems.push(`${name}: the page crashed`));
}

function statusIs(page, state) {
  return page.locator(`#status[data-state="${state}"]`).waitFor({ timeout: WAIT_MS });
}

function statusIsNot(page, state) {
  return page.waitForFunction(
    (s) => document.getElementById("status")?.dataset.state !== s,
    state,
    { timeout: WAIT_MS },
  );
}

function onlineIs(page, n) {
  return page.locator(`#online[data-count="${n}"]`).waitFor({ timeout: WAIT_MS });
}

/**
 * What the chat server agrees to with a browser: permessage-deflate without context takeover
 * (its choice for a browser-facing server), which Chromium offers by itself.
 */
const DEFLATE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/**
 * Checks that `page` and the server agreed to DEFLATE for `nick`: as the page's client saw it
 * (`data-extensions` on `#status`, from `Conn::extensions`) and as the server logged it.
 */
async function checkCompression(page, server, nick) {
  const shown = await page.locator("#status").getAttribute("data-extensions", { timeout: WAIT_MS });
  assert.equal(shown, DEFLATE, `${nick}'s page`);
  const line = new RegExp(`^client \\d+ \\(${nick}\\) joined; extensions: (.*)$`, "m");
  const deadline = Date.now() + WAIT_MS;
  let m;
  while (!(m = line.exec(server.output())) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(m, `the server logged no join of ${nick}:\n${server.output()}`);
  assert.equal(m[1], DEFLATE, `the server's agreement with ${nick}`);
}

/** The message list's entry for `text` said by `nick`. */
function chatLine(page, nick, text) {
  return page
    .locator("#messages li.msg")
    .filter({ has: page.locator(".nick", { hasText: nick }) })
    .filter({ has: page.locator(".text", { hasText: text }) });
}

async function say(page, text) {
  // As a person would: switch to the tab first. (Playwright's click also waits for animation
  // frames, which a background tab gets rarely: about 2 s per click without this.)
  await page.bringToFront();
  await page.locator("#send:enabled").waitFor({ timeout: WAIT_MS });
  await page.fill("#text", text);
  await page.click("#send");
}

test("two pages chat through the server and reconnect after it restarts", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  assert.ok(
    existsSync(chromiumPath),
    `Chromium not found at ${chromiumPath}: install it (apt-get install chromium) or set CHROMIUM`,
  );
  assert.ok(existsSync(serverBin), `${serverBin} missing: run scripts/test-e2e.sh (it builds it)`);
  assert.ok(existsSync(wasm), `${wasm} missing: run scripts/build-www.sh`);

  // Failure screenshots of an earlier run would only mislead.
  for (const name of ["a", "b"]) await rm(path.join(artifacts, `chat-${name}-failed.png`), { force: true });

  const started = Date.now();
  const mark = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(2)} s: ${what}`);
  const problems = [];
  const pages = {};

  try {
    let server = await startServer(0);
    const { port } = server;
    const url = `http://127.0.0.1:${port}/`;
    mark(`chat server on ${url}`);

    resources.userDataDir = await mkdtemp(path.join(tmpdir(), "isosock-e2e-chromium-"));
    const context = await chromium.launchPersistentContext(resources.userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 880, height: 620 },
      timeout: WAIT_MS,
    });
    resources.context = context;
    context.setDefaultTimeout(WAIT_MS);
    mark(`Chromium ${context.browser()?.version() ?? ""} started`);

    pages.a = context.pages()[0] ?? (await context.newPage());
    pages.b = await context.newPage();
    watchPage(pages.a, "page A", problems);
    watchPage(pages.b, "page B", problems);

    // Join as two people.
    for (const [page, nick] of [
      [pages.a, "ann"],
      [pages.b, "bob"],
    ]) {
      await page.goto(url, { timeout: WAIT_MS });
      await statusIs(page, "idle");
      await page.fill("#nick", nick);
      await page.click("#join-button");
    }
    await Promise.all([statusIs(pages.a, "open"), statusIs(pages.b, "open")]);
    await Promise.all([onlineIs(pages.a, 2), onlineIs(pages.b, 2)]);
    mark("both pages joined");
    await checkCompression(pages.a, server, "ann");
    await checkCompression(pages.b, server, "bob");
    mark(`both pages compress: ${DEFLATE}`);

    // A speaks, B hears (and A sees its own line, marked as its own).
    await say(pages.a, "hello from ann");
    await chatLine(pages.b, "ann", "hello from ann").waitFor({ timeout: WAIT_MS });
    await chatLine(pages.a, "ann", "hello from ann").and(pages.a.locator(".mine")).waitFor({ timeout: WAIT_MS });
    mark("A -> B delivered");

    // The server dies without a close handshake: both pages notice and try to reconnect.
    await server.kill();
    await Promise.all([statusIsNot(pages.a, "open"), statusIsNot(pages.b, "open")]);
    for (const page of [pages.a, pages.b]) {
      await page
        .locator("#messages li.notice", { hasText: "Disconnected (1006 connection lost)" })
        .waitFor({ timeout: WAIT_MS });
      assert.equal(await page.locator("#send").isDisabled(), true, "send stays disabled while down");
    }
    mark("server killed; both pages show the drop");
    // Let each page fail at least one attempt against the dead port, so the restart below is
    // found by the backoff loop rather than by the first retry.
    for (const page of [pages.a, pages.b]) {
      await page.locator("#status-detail", { hasText: "server unreachable" }).waitFor({ timeout: WAIT_MS });
    }
    await mkdir(artifacts, { recursive: true });
    await pages.a.screenshot({ path: path.join(artifacts, "chat-a-down.png"), timeout: WAIT_MS });
    mark("both pages retried and failed while the server is down");

    // Same port again: both pages come back by themselves and say hello again.
    server = await startServer(port);
    assert.equal(server.port, port);
    mark("server restarted on the same port");
    await Promise.all([statusIs(pages.a, "open"), statusIs(pages.b, "open")]);
    await Promise.all([onlineIs(pages.a, 2), onlineIs(pages.b, 2)]);
    for (const page of [pages.a, pages.b]) {
      await page.locator("#messages li.notice", { hasText: "Reconnected." }).waitFor({ timeout: WAIT_MS });
    }
    mark("both pages reconnected");
    await checkCompression(pages.a, server, "ann");
    await checkCompression(pages.b, server, "bob");

    await say(pages.b, "hello again from bob");
    await chatLine(pages.a, "bob", "hello again from bob").waitFor({ timeout: WAIT_MS });
    await say(pages.a, "welcome back, bob");
    await chatLine(pages.b, "ann", "welcome back, bob").waitFor({ timeout: WAIT_MS });
    mark("B -> A delivered after the restart");

    await pages.a.screenshot({ path: path.join(artifacts, "chat-a.png"), timeout: WAIT_MS });
    await pages.b.screenshot({ path: path.join(artifacts, "chat-b.png"), timeout: WAIT_MS });
    mark("screenshots in tests/artifacts/");

    assert.deepEqual(problems, [], "the pages logged errors");
  } catch (err) {
    // Keep what the pages showed when it failed.
    await mkdir(artifacts, { recursive: true }).catch(() => {});
    for (const [name, page] of Object.entries(pages)) {
      await page
        .screenshot({ path: path.join(artifacts, `chat-${name}-failed.png`), timeout: 5_000 })
        .catch(() => {});
    }
    const outputs = [...resources.servers].map((s) => s.output()).join("\n");
    for (const line of problems) t.diagnostic(`page error: ${line}`);
    for (const line of outputs.split("\n").filter(Boolean)) t.diagnostic(`server: ${line}`);
    throw err;
  } finally {
    await cleanup();
  }
});
