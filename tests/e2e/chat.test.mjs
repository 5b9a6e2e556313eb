// The chat demo end to end, in each browser engine of tests/js/browsers.mjs (headless Chromium
// through playwright-core; Firefox ESR and WebKitGTK through their WebDriver servers and
// selenium-webdriver; ISOSOCK_BROWSERS picks them): two pages running the wasm client chat
// through examples/chat_server.rs over permessage-deflate, and both reconnect when the server is
// killed and started again.
//
// Builds nothing: scripts/test-e2e.sh builds www/pkg and target/debug/examples/chat_server
// first. Loopback only; every wait is bounded; the server and the browsers are killed at the
// end, pass or fail. Screenshots go to tests/artifacts/ (chat-<engine>-a.png, ...).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { ENGINE_NAMES, engines, openPage } from "../js/browsers.mjs";
import { chatLine, entry, onlineIs, say, statusIs, withTimeout } from "./pages.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR ?? "target");
const serverBin = path.join(targetDir, "debug", "examples", "chat_server");
const www = path.join(root, "www");
const wasm = path.join(www, "pkg", "isosock_chat_client_bg.wasm");
const artifacts = path.join(root, "tests", "artifacts");

/** Longest wait for any one thing (server start, a page state, a message). */
const WAIT_MS = 20_000;
/** The whole test, per engine. */
const TEST_TIMEOUT_MS = 150_000;

/**
 * What a browser itself may log while the test has the server down (its own report of a
 * reconnect attempt that found no server, or of the connection the kill cut), per engine.
 * Anything else fails the test. WebKitGTK's own log does not reach the page's error collector.
 */
const EXPECTED_ERRORS = {
  chromium: [/^console error: WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws' failed/],
  firefox: [
    /^page error: Firefox can.t establish a connection to the server at ws:\/\/127\.0\.0\.1:\d+\/ws\.$/,
    /^page error: The connection to ws:\/\/127\.0\.0\.1:\d+\/ws was interrupted while the page was loading\.$/,
  ],
  webkit: [],
};

/** Everything to stop at the end, whatever happens. */
const resources = { servers: new Set(), pages: new Set() };

async function cleanup() {
  for (const server of resources.servers) await server.kill();
  for (const page of resources.pages) await page.close();
  resources.pages.clear();
}
after(cleanup);
// Last resort if the runner exits early: a synchronous kill of the servers.
process.on("exit", () => {
  for (const server of resources.servers) server.proc.kill("SIGKILL");
});

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

/** The page's errors that are not the engine's expected ones. */
async function unexpectedErrors(page, name) {
  const expected = EXPECTED_ERRORS[page.engine];
  return (await page.errors()).filter((e) => !expected.some((re) => re.test(e))).map((e) => `${name}: ${e}`);
}

function statusIsNot(page, state) {
  return page.waitForFunction((s) => document.getElementById("status")?.dataset.state !== s, state);
}

/**
 * What the chat server agrees to with a browser: permessage-deflate without context takeover
 * (its choice for a browser-facing server), which every engine here offers by itself.
 */
const DEFLATE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/**
 * What the page sees of that agreement (`Conn::extensions`, the browser's
 * `WebSocket.extensions`): Chromium and WebKitGTK show the server's response header, Firefox
 * only the extension's name, without its parameters.
 */
const DEFLATE_SHOWN = { chromium: DEFLATE, firefox: "permessage-deflate", webkit: DEFLATE };

/**
 * Checks that `page` and the server agreed to DEFLATE for `nick`: as the page's client saw it
 * (`data-extensions` on `#status`, from `Conn::extensions`) and as the server logged it.
 */
async function checkCompression(page, server, nick) {
  const shown = await page.waitForFunction(() => document.getElementById("status")?.dataset.extensions ?? false);
  assert.equal(shown, DEFLATE_SHOWN[page.engine], `${nick}'s page`);
  const line = new RegExp(`^client \\d+ \\(${nick}\\) joined; extensions: (.*)$`, "m");
  const deadline = Date.now() + WAIT_MS;
  let m;
  while (!(m = line.exec(server.output())) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(m, `the server logged no join of ${nick}:\n${server.output()}`);
  assert.equal(m[1], DEFLATE, `the server's agreement with ${nick}`);
}

async function join(page, url, nick) {
  await page.goto(url);
  await statusIs(page, "idle");
  await page.fill("#nick", nick);
  await page.click("#join-button");
}

for (const engine of engines()) {
  const NAME = ENGINE_NAMES[engine];
  test(
    `two pages chat through the server and reconnect after it restarts (${NAME})`,
    { timeout: TEST_TIMEOUT_MS },
    (t) => chat(t, engine),
  );
}

async function chat(t, engine) {
  assert.ok(existsSync(serverBin), `${serverBin} missing: run scripts/test-e2e.sh (it builds it)`);
  assert.ok(existsSync(wasm), `${wasm} missing: run scripts/build-www.sh`);
  const shot = (name) => path.join(artifacts, `chat-${engine}-${name}.png`);

  // Failure screenshots of an earlier run would only mislead.
  for (const name of ["a", "b"]) await rm(shot(`${name}-failed`), { force: true });

  const started = Date.now();
  const mark = (what) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(2)} s: ${what}`);
  const problems = [];
  const pages = {};

  try {
    let server = await startServer(0);
    const { port } = server;
    const url = `http://127.0.0.1:${port}/`;
    mark(`chat server on ${url}`);

    // Two pages, each in a browser of its own (so neither is a throttled background tab).
    await Promise.all(
      ["a", "b"].map(async (name) => {
        pages[name] = await openPage(engine, { viewport: { width: 880, height: 620 }, timeout: WAIT_MS });
        resources.pages.add(pages[name]);
      }),
    );
    mark(`${pages.a.version} started, twice`);

    // Join as two people.
    await join(pages.a, url, "ann");
    await join(pages.b, url, "bob");
    await Promise.all([statusIs(pages.a, "open"), statusIs(pages.b, "open")]);
    await Promise.all([onlineIs(pages.a, 2), onlineIs(pages.b, 2)]);
    mark("both pages joined");
    await checkCompression(pages.a, server, "ann");
    await checkCompression(pages.b, server, "bob");
    mark(`both pages compress: ${DEFLATE}`);

    // A speaks, B hears (and A sees its own line, marked as its own).
    await say(pages.a, "hello from ann");
    await chatLine(pages.b, "ann", "hello from ann");
    await chatLine(pages.a, "ann", "hello from ann", { mine: true });
    mark("A -> B delivered");

    // The server dies without a close handshake: both pages notice and try to reconnect.
    await server.kill();
    await Promise.all([statusIsNot(pages.a, "open"), statusIsNot(pages.b, "open")]);
    for (const page of [pages.a, pages.b]) {
      await entry(page, "notice", "Disconnected (1006 connection lost)");
      assert.equal(
        await page.evaluate(() => document.getElementById("send").disabled),
        true,
        "send stays disabled while down",
      );
    }
    mark("server killed; both pages show the drop");
    // Let each page fail at least one attempt against the dead port, so the restart below is
    // found by the backoff loop rather than by the first retry.
    for (const page of [pages.a, pages.b]) {
      await page.waitForFunction(() => {
        const detail = document.getElementById("status-detail");
        return !!detail && !detail.hidden && detail.textContent.includes("server unreachable");
      });
    }
    await mkdir(artifacts, { recursive: true });
    await pages.a.screenshot(shot("a-down"));
    mark("both pages retried and failed while the server is down");

    // Same port again: both pages come back by themselves and say hello again.
    server = await startServer(port);
    assert.equal(server.port, port);
    mark("server restarted on the same port");
    await Promise.all([statusIs(pages.a, "open"), statusIs(pages.b, "open")]);
    await Promise.all([onlineIs(pages.a, 2), onlineIs(pages.b, 2)]);
    for (const page of [pages.a, pages.b]) await entry(page, "notice", "Reconnected.");
    mark("both pages reconnected");
    await checkCompression(pages.a, server, "ann");
    await checkCompression(pages.b, server, "bob");

    await say(pages.b, "hello again from bob");
    await chatLine(pages.a, "bob", "hello again from bob");
    await say(pages.a, "welcome back, bob");
    await chatLine(pages.b, "ann", "welcome back, bob");
    mark("B -> A delivered after the restart");

    await pages.a.screenshot(shot("a"));
    await pages.b.screenshot(shot("b"));
    mark("screenshots in tests/artifacts/");

    for (const [name, page] of Object.entries(pages)) {
      for (const line of await page.errors()) t.diagnostic(`page ${name} logged: ${line}`);
    }
    problems.push(...(await unexpectedErrors(pages.a, "page A")), ...(await unexpectedErrors(pages.b, "page B")));
    assert.deepEqual(problems, [], "the pages logged errors");
  } catch (err) {
    // Keep what the pages showed when it failed.
    await mkdir(artifacts, { recursive: true }).catch(() => {});
    for (const [name, page] of Object.entries(pages)) {
      await page.screenshot(shot(`${name}-failed`)).catch(() => {});
      for (const line of await page.errors().catch(() => [])) t.diagnostic(`page ${name}: ${line}`);
    }
    const outputs = [...resources.servers].map((s) => s.output()).join("\n");
    for (const line of outputs.split("\n").filter(Boolean)) t.diagnostic(`server: ${line}`);
    throw err;
  } finally {
    await cleanup();
  }
}
