// The npm package in headless Chromium: the tarball installed into an empty project, served from
// 127.0.0.1 and imported by a page through an import map (`import init, { Conn } from
// "isosock"`), driven with playwright-core and Debian's chromium (nothing downloads a browser):
// echo, close codes, iteration, refused connections and the permessage-deflate Chromium
// negotiates.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { echoUrl, installTarball, jsonLike, launchChromium, records, serveDirectory } from "./helpers.mjs";

const T = { timeout: 60_000 };
let dir;
let server;
let browser;
let page;
const problems = [];

const PAGE = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
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
<body>isosock package test page</body>
</html>
`;

before(async () => {
  dir = installTarball();
  writeFileSync(join(dir, "index.html"), PAGE);
  server = await serveDirectory(dir);
  browser = await launchChromium();
  page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
  await page.waitForSelector("body[data-ready=yes]");
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs `fn(url)` in the page, where `window.Conn` is the package's class. */
function inPage(fn) {
  return page.evaluate(fn, echoUrl());
}

describe("the package in headless Chromium", () => {
  it("loads through an import map and echoes text and binary", T, async () => {
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

  it("hands the peer's close code and reason to read as an IsosockError", T, async () => {
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

  it("iterates with for await until a normal close", T, async () => {
    const got = await inPage(async (url) => {
      const conn = await Conn.dial(url);
      for (const m of ["one", "two", "!close 1001 going away"]) await conn.write(m);
      const seen = [];
      for await (const msg of conn) seen.push(msg.data);
      return seen;
    });
    assert.deepEqual(got, ["one", "two"]);
  });

  it("never throws from close for codes browsers refuse", T, async () => {
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

  it("shows the permessage-deflate Chromium negotiated, and inflates large messages", T, async () => {
    const got = await page.evaluate(
      async ({ url, text, bytes }) => {
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
      { url: echoUrl(), text: jsonLike(512 << 10), bytes: records(512 << 10) },
    );
    assert.match(got.extensions, /^permessage-deflate/);
    assert.deepEqual(got, { extensions: got.extensions, server: got.extensions, text: true, binary: true });
  });

  it("reports a refused connection with the close code that followed", T, async () => {
    const got = await inPage(async () => {
      try {
        await Conn.dial("ws://127.0.0.1:1/");
        return "dialed";
      } catch (e) {
        return { kind: e.kind, message: e.message };
      }
    });
    assert.equal(got.kind, "Connect");
    assert.match(got.message, /1006/);
  });

  it("logged no page errors", () => {
    // The refused connection above makes Chromium log a network error for the socket; that
    // is the browser's own report, not an error of the page.
    const unexpected = problems.filter((p) => !/WebSocket connection to 'ws:\/\/127\.0\.0\.1:1\/' failed/.test(p));
    assert.deepEqual(unexpected, []);
  });
});
