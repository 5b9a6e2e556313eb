// The npm package in a browser page, in each engine of browsers.mjs (Chromium through
// playwright-core; Firefox ESR and WebKitGTK through their WebDriver servers and
// selenium-webdriver; ISOSOCK_BROWSERS picks them): the tarball installed into an empty project,
// served from 127.0.0.1 and imported by a page through an import map (`import init, { Conn }
// from "isosock"`); nothing downloads a browser. Echo, close codes, iteration, refused
// connections and the permessage-deflate each browser negotiates.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ENGINE_NAMES, PAGE_ERROR_COLLECTOR, engines, openPage } from "./browsers.mjs";
import { echoUrl, installTarball, jsonLike, records, serveDirectory, startEchoServer } from "./helpers.mjs";

const T = { timeout: 60_000 };
let dir;
let server;

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
import init, { Conn, ReconnectingConn } from "isosock";
await init();
window.Conn = Conn;
window.ReconnectingConn = ReconnectingConn;
document.body.dataset.ready = "yes";
</script>
</head>
<body>isosock package test page</body>
</html>
`;

// A page that fails in every way the error collection must see.
const FAILING_PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><script>${PAGE_ERROR_COLLECTOR}</script></head>
<body>
<script>
console.error("an error on the console");
Promise.reject(new Error("a rejection nobody handles"));
setTimeout(() => { throw new Error("an uncaught error"); }, 0);
setTimeout(() => { document.body.dataset.done = "yes"; }, 100);
</script>
</body>
</html>
`;

// What each browser itself logs for the refused connection to ws://127.0.0.1:1/ below: its own
// report, not an error of the page. (WebKitGTK's log is not visible to the page's collector.)
const REFUSED_LOG = {
  chromium: /^console error: WebSocket connection to 'ws:\/\/127\.0\.0\.1:1\/' failed/,
  firefox: /^page error: Firefox can.t establish a connection to the server at ws:\/\/127\.0\.0\.1:1\/\.$/,
  webkit: null,
};

before(() => {
  dir = installTarball();
  writeFileSync(join(dir, "index.html"), PAGE);
  writeFileSync(join(dir, "failing.html"), FAILING_PAGE);
});

before(async () => {
  server = await serveDirectory(dir);
});

after(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const engine of engines()) {
  describe(`the package in ${ENGINE_NAMES[engine]}`, () => suite(engine));
}

function suite(engine) {
  const NAME = ENGINE_NAMES[engine];
  let page;

  before(async () => {
    page = await openPage(engine);
    await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
    await page.waitForFunction(() => document.body?.dataset.ready === "yes");
  });

  after(() => page?.close());

  /** Runs `fn(url)` in the page, where `window.Conn` is the package's class. */
  function inPage(fn) {
    return page.evaluate(fn, echoUrl());
  }

  it(`loads through an import map and echoes text and binary (${NAME})`, T, async () => {
    const got = await inPage(async (url) => {
      const conn = await Conn.dial(url, { subprotocols: ["echo.v1"] });
      await conn.write("hello from the page");
      await conn.write(new Uint8Array([0, 1, 2, 255]));
      const a = await conn.read();
      const b = await conn.read();
      await conn.close(1000, "bye");
      return {
        subprotocol: conn.subprotocol,
        a,
        b: { type: b.type, data: Array.from(b.data), isU8: b.data instanceof Uint8Array },
      };
    });
    assert.deepEqual(got, {
      subprotocol: "echo.v1",
      a: { type: "text", data: "hello from the page" },
      b: { type: "binary", data: [0, 1, 2, 255], isU8: true },
    });
  });

  it(`hands the peer's close code and reason to read as an IsosockError (${NAME})`, T, async () => {
    const got = await inPage(async (url) => {
      const conn = await Conn.dial(url);
      await conn.write("!close 4003 from the server");
      try {
        await conn.read();
        return "read succeeded";
      } catch (e) {
        return {
          isError: e instanceof Error,
          name: e.name,
          kind: e.kind,
          code: e.code,
          reason: e.reason,
          frame: conn.peerCloseFrame,
        };
      }
    });
    assert.deepEqual(got, {
      isError: true,
      name: "IsosockError",
      kind: "Closed",
      code: 4003,
      reason: "from the server",
      frame: { code: 4003, reason: "from the server" },
    });
  });

  it(`iterates with for await until a normal close (${NAME})`, T, async () => {
    const got = await inPage(async (url) => {
      const conn = await Conn.dial(url);
      for (const m of ["one", "two", "!close 1001 going away"]) await conn.write(m);
      const seen = [];
      for await (const msg of conn) seen.push(msg.data);
      return seen;
    });
    assert.deepEqual(got, ["one", "two"]);
  });

  it(`never throws from close for codes browsers refuse (${NAME})`, T, async () => {
    const got = await inPage(async (url) => {
      const out = [];
      for (const code of [1001, 1008, 1011, 3000, 4999]) {
        const conn = await Conn.dial(url);
        await conn.close(code, "reason kept");
        out.push(conn.peerCloseFrame.code);
      }
      return out;
    });
    // The echo server answers with the code it received: refused codes went out as 1000.
    assert.deepEqual(got, [1000, 1000, 1000, 3000, 4999]);
  });

  it(`shows the permessage-deflate the browser negotiated, and inflates large messages (${NAME})`, T, async (t) => {
    const got = await page.evaluate(
      async ({ url, text, byteList }) => {
        const bytes = Uint8Array.from(byteList);
        const conn = await Conn.dial(url, { readLimit: 2 << 20 });
        await conn.write("!extensions");
        const server = (await conn.read()).data;
        await conn.write(text);
        const t = await conn.read();
        await conn.write(bytes);
        const b = await conn.read();
        await conn.close();
        const same = b.data.length === bytes.length && b.data.every((x, i) => x === bytes[i]);
        return {
          extensions: conn.extensions,
          server,
          text: t.type === "text" && t.data === text,
          binary: b.type === "binary" && same,
        };
      },
      // An array: WebDriver passes JSON, which has no Uint8Array.
      { url: echoUrl(), text: jsonLike(512 << 10), byteList: Array.from(records(512 << 10)) },
    );
    t.diagnostic(`${NAME} negotiated: ${got.extensions}`);
    assert.match(got.extensions, /^permessage-deflate/);
    assert.deepEqual(got, { extensions: got.extensions, server: got.extensions, text: true, binary: true });
  });

  it(`reports a refused connection with the close code that followed (${NAME})`, T, async () => {
    const got = await inPage(async () => {
      try {
        await Conn.dial("ws://127.0.0.1:1/");
        return "dialed";
      } catch (e) {
        return { kind: e.kind, message: e.message };
      }
    });
    assert.equal(got.kind, "Connect");
    // Chromium and Firefox follow the error event with a close event (1006) at once;
    // WebKitGTK fires the error event alone (readyState still CONNECTING) and no close event
    // follows, so isosock reports the error after its 500 ms wait.
    const expected = {
      chromium: /1006/,
      firefox: /1006/,
      webkit: /an error event, and no close event within 500ms/,
    }[engine];
    assert.match(got.message, expected);
  });

  it(`logged no page errors (${NAME})`, async () => {
    // The refused connection above makes the browser log a network error for the socket; that
    // is the browser's own report, not an error of the page.
    const unexpected = (await page.errors()).filter((p) => !REFUSED_LOG[engine]?.test(p));
    assert.deepEqual(unexpected, []);
  });

  it(`ReconnectingConn says hello again after its server is killed and restarted (${NAME})`, T, async () => {
    // A page of its own: the browser logs the dropped and refused sockets as errors, which
    // the page-errors check above must not see.
    let echo = await startEchoServer();
    const other = await openPage(engine);
    try {
      await other.goto(`http://127.0.0.1:${server.address().port}/index.html`);
      await other.waitForFunction(() => document.body?.dataset.ready === "yes");
      await other.evaluate((url) => {
        window.states = [];
        window.texts = [];
        let hellos = 0;
        window.rc = ReconnectingConn.start(url, {
          initialDelayMs: 50,
          maxDelayMs: 300,
          onOpen: async (conn) => {
            hellos += 1;
            await conn.write(`hello ${hellos}`);
          },
          onState: (state) => window.states.push(state.type),
        });
        (async () => {
          for await (const msg of window.rc) window.texts.push(msg.data);
          window.texts.push("<end>");
        })();
      }, echo.url);
      await other.waitForFunction(() => window.texts.includes("hello 1"));
      const port = echo.port;
      await echo.kill();
      await other.waitForFunction(() => window.states.includes("disconnected"));
      echo = await startEchoServer(port);
      await other.waitForFunction(() => window.texts.includes("hello 2"));
      const got = await other.evaluate(async () => {
        await window.rc.close();
        for (let i = 0; i < 100 && !window.texts.includes("<end>"); i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        return { texts: window.texts, states: window.states, state: window.rc.state.type };
      });
      assert.deepEqual(got.texts, ["hello 1", "hello 2", "<end>"]);
      assert.equal(got.states.filter((s) => s === "open").length, 2, got.states.join(" "));
      assert.equal(got.state, "closed");
      const network = /WebSocket connection to|can.t establish a connection|was interrupted/;
      assert.deepEqual((await other.errors()).filter((e) => !network.test(e)), []);
    } finally {
      await other.close();
      await echo.kill();
    }
  });

  it(`sees a page's uncaught error, unhandled rejection and console.error (${NAME})`, T, async () => {
    // The check above must be able to fail: a page that does all three is caught.
    const other = await openPage(engine);
    try {
      await other.goto(`http://127.0.0.1:${server.address().port}/failing.html`);
      await other.waitForFunction(() => document.body?.dataset.done === "yes");
      const errors = (await other.errors()).join("\n");
      assert.match(errors, /an error on the console/);
      assert.match(errors, /a rejection nobody handles/);
      assert.match(errors, /an uncaught error/);
    } finally {
      await other.close();
    }
  });
}
