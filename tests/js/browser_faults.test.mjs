// The npm package in a browser page when its server dies, in each engine of browsers.mjs: an
// echo server process streams 1 MB messages to the page, is killed with SIGKILL mid-stream (the
// page's pending read must reject with an IsosockError of kind ConnectionLost, close code 1006),
// and is restarted on the same port, where a new dial from the same page must work and echo.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";

import { ENGINE_NAMES, PAGE_ERROR_COLLECTOR, engines, openPage } from "./browsers.mjs";
import { ROOT, installTarball, serveDirectory, within } from "./helpers.mjs";

const T = { timeout: 90_000 };
const ECHO_SERVER = join(ROOT, "target", "debug", "examples", "echo_server");
const BIG = 1_000_000;
let dir;
let httpServer;

const PAGE = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<script>${PAGE_ERROR_COLLECTOR}</script>
<script type="importmap">
{ "imports": { "isosock": "./node_modules/isosock/isosock.js" } }
</script>
<script type="module">
import init, { Conn } from "isosock";
await init();
window.Conn = Conn;
document.body.dataset.ready = "yes";
</script>
</head>
<body>isosock fault test page</body>
</html>
`;

/**
 * Starts examples/echo_server as its own process on `port` (0: any free port); resolves once
 * it printed `listening on ws://127.0.0.1:PORT`.
 */
function startEchoServer(port) {
  if (!existsSync(ECHO_SERVER)) {
    throw new Error(`${ECHO_SERVER} is missing: run this through scripts/test-js.sh`);
  }
  const child = spawn(ECHO_SERVER, [String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  const stderr = [];
  child.stderr.on("data", (d) => stderr.push(d));
  const started = new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = /^listening on (ws:\/\/127\.0\.0\.1:(\d+))/.exec(line);
      if (m) resolve({ child, url: m[1], port: Number(m[2]) });
    });
    child.on("exit", (code, signal) =>
      reject(new Error(`echo_server exited (${code ?? signal}) before listening: ${Buffer.concat(stderr)}`)),
    );
  });
  return within(10_000, started, `echo_server start on port ${port}`);
}

/** Kills `child` with SIGKILL; resolves with the signal it died of. */
function kill(child) {
  const exited = new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
  child.kill("SIGKILL");
  return within(10_000, exited, "the killed echo_server's exit");
}

before(async () => {
  dir = installTarball();
  writeFileSync(join(dir, "index.html"), PAGE);
  httpServer = await serveDirectory(dir);
});

after(async () => {
  await new Promise((resolve) => (httpServer ? httpServer.close(resolve) : resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const engine of engines()) {
  describe(`the package in ${ENGINE_NAMES[engine]} when the server process dies`, () => suite(engine));
}

function suite(engine) {
  const NAME = ENGINE_NAMES[engine];
  let page;
  let echo;
  let killedUrl;

  before(async () => {
    page = await openPage(engine);
    await page.goto(`http://127.0.0.1:${httpServer.address().port}/index.html`);
    await page.waitForFunction(() => document.body?.dataset.ready === "yes");
  });

  after(async () => {
    if (echo && echo.child.exitCode === null && echo.child.signalCode === null) echo.child.kill("SIGKILL");
    await page?.close();
  });

  it(`rejects the pending read with ConnectionLost (1006), then dials the restarted server (${NAME})`, T, async () => {
    echo = await startEchoServer(0);
    const { url, port } = echo;

    // The page keeps four `!big 1000000` requests outstanding and reads in a loop, checking
    // every byte; it returns how the stream ended. It runs in the background: a WebDriver
    // session runs one command at a time, and the test must watch the page meanwhile.
    const streaming = await page.evaluateInBackground(
      async ({ url, big }) => {
        const conn = await Conn.dial(url, { readLimit: 2 * big });
        window.faultConn = conn;
        window.received = 0;
        let requested = 0;
        let corrupted = 0;
        let writeError;
        const request = () => {
          requested++;
          conn.write(`!big ${big}`).catch((e) => (writeError ??= e));
        };
        for (let i = 0; i < 4; i++) request();
        try {
          for (;;) {
            const msg = await conn.read();
            if (msg.type !== "binary" || msg.data.length !== big || msg.data.some((b) => b !== 0xab)) {
              corrupted++;
            }
            window.received++;
            request();
          }
        } catch (e) {
          let writeAfter;
          try {
            await conn.write("anyone there?");
            writeAfter = "write succeeded";
          } catch (w) {
            writeAfter = { name: w.name, kind: w.kind };
          }
          return {
            received: window.received,
            requested,
            corrupted,
            read: { isError: e instanceof Error, name: e.name, kind: e.kind, message: e.message, code: e.code },
            peerCloseFrame: conn.peerCloseFrame ?? null,
            writeAfter,
            writeErrorKind: writeError?.kind ?? null,
          };
        }
      },
      { url, big: BIG },
    );
    // Let the stream run, then kill the server in the middle of it.
    await page.waitForFunction(() => window.received >= 5, null, { timeout: 30_000 });
    killedUrl = url;
    const signal = await kill(echo.child);
    assert.equal(signal, "SIGKILL");
    const got = await streaming.result(20_000, "the page's read after the server was killed");
    console.log(
      `browser fault: received ${got.received} messages of ${BIG} bytes (${got.received * BIG} bytes) ` +
        `before the kill, ${got.requested - got.received} requests unanswered; the read rejected with ` +
        `${got.read.name} ${got.read.kind}: ${got.read.message}; a later write: ${JSON.stringify(got.writeAfter)}`,
    );
    assert.equal(got.corrupted, 0, "every message whole and intact");
    assert.ok(got.received >= 5, `${got.received} messages arrived`);
    assert.ok(got.requested > got.received, "the server was killed with requests still unanswered");
    assert.deepEqual(
      { isError: got.read.isError, name: got.read.name, kind: got.read.kind },
      { isError: true, name: "IsosockError", kind: "ConnectionLost" },
    );
    assert.match(got.read.message, /1006/);
    assert.equal(got.peerCloseFrame, null, "no close frame from a killed server");
    assert.deepEqual(got.writeAfter, { name: "IsosockError", kind: "ConnectionLost" });

    // The same port again, a new process: a new dial from the same page works and echoes.
    echo = await startEchoServer(port);
    assert.equal(echo.port, port);
    const again = await within(
      20_000,
      page.evaluate(async (url) => {
        const conn = await Conn.dial(url);
        await conn.write("after the restart");
        await conn.write(new Uint8Array([1, 2, 3]));
        const a = await conn.read();
        const b = await conn.read();
        await conn.close(1000, "done");
        return { a, b: { type: b.type, data: Array.from(b.data) }, frame: conn.peerCloseFrame };
      }, url),
      "a dial to the restarted server",
    );
    assert.deepEqual(again, {
      a: { type: "text", data: "after the restart" },
      b: { type: "binary", data: [1, 2, 3] },
      frame: { code: 1000, reason: "done" },
    });
  });

  it(`logged no page errors (${NAME})`, async () => {
    // Firefox may report the killed connection itself (a line of its own in the page's log, not
    // an error of the page's scripts; whether it arrived by now varies from run to run);
    // Chromium and WebKitGTK log nothing for it.
    const expected = {
      firefox: (p) => p === `page error: The connection to ${killedUrl}/ was interrupted while the page was loading.`,
    }[engine];
    const problems = await page.errors();
    assert.deepEqual(problems.filter((p) => !expected?.(p)), []);
    assert.ok(problems.length <= 1, `the killed connection reported once at most: ${problems.join("; ")}`);
  });
}
