// The npm package through a bundler: an app that imports `isosock` is built with Vite (which
// must find and emit the .wasm from the package's `new URL(..., import.meta.url)`), served
// from 127.0.0.1 and run against the echo server in each engine of browsers.mjs (built once).
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { build } from "vite";

import { ENGINE_NAMES, PAGE_ERROR_COLLECTOR, engines, openPage } from "./browsers.mjs";
import { echoUrl, installTarball, serveDirectory } from "./helpers.mjs";

const T = { timeout: 90_000 };
let dir;
let server;

const INDEX = `<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><script>${PAGE_ERROR_COLLECTOR}</script></head>
<body><pre id="out"></pre><script type="module" src="./main.js"></script></body>
</html>
`;

// The app reads the echo server's URL from the page's query string.
const MAIN = `import init, { Conn } from "isosock";

async function main() {
  await init();
  const url = new URLSearchParams(location.search).get("echo");
  const conn = await Conn.dial(url);
  await conn.write("bundled");
  await conn.write(new Uint8Array([7, 8, 9]));
  const a = await conn.read();
  const b = await conn.read();
  await conn.close(4000, "done");
  return { a, b: { type: b.type, data: Array.from(b.data) }, frame: conn.peerCloseFrame };
}

main().then(
  (r) => { document.getElementById("out").textContent = JSON.stringify(r); },
  (e) => { document.getElementById("out").textContent = JSON.stringify({ error: e.kind ?? String(e), message: e.message }); },
);
`;

before(async () => {
  dir = installTarball();
  writeFileSync(join(dir, "index.html"), INDEX);
  writeFileSync(join(dir, "main.js"), MAIN);
  mkdirSync(join(dir, "dist"));
  await build({
    root: dir,
    logLevel: "warn",
    configFile: false,
    build: { outDir: join(dir, "dist"), emptyOutDir: true },
  });
  server = await serveDirectory(join(dir, "dist"));
});

after(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the package bundled by Vite", () => {
  it("emits the wasm module as an asset", () => {
    const assets = readdirSync(join(dir, "dist", "assets"));
    assert.ok(assets.some((f) => f.endsWith(".wasm")), `no .wasm among ${assets.join(", ")}`);
  });

  for (const engine of engines()) {
    it(`runs in ${ENGINE_NAMES[engine]} and echoes through isosock`, T, async () => {
      const page = await openPage(engine);
      try {
        const port = server.address().port;
        await page.goto(`http://127.0.0.1:${port}/index.html?echo=${encodeURIComponent(echoUrl())}`);
        await page.waitForFunction(() => document.getElementById("out")?.textContent !== "", null, {
          timeout: 20_000,
        });
        const result = JSON.parse(await page.textContent("#out"));
        assert.deepEqual(result, {
          a: { type: "text", data: "bundled" },
          b: { type: "binary", data: [7, 8, 9] },
          frame: { code: 4000, reason: "done" },
        });
        assert.deepEqual(await page.errors(), []);
      } finally {
        await page.close();
      }
    });
  }
});
