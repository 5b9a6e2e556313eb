// The npm package in Node.js, installed from the packed tarball into an empty project: the
// README's example, echo of text and binary, close codes, typed errors, async iteration, the
// read limit, the negotiated permessage-deflate, and the error on a runtime without a global
// WebSocket.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import {
  ROOT,
  codeBlocks,
  echoUrl,
  importPackage,
  installTarball,
  jsonLike,
  noWebSocketFlags,
  records,
  rejectsWith,
  webSocketFlags,
  within,
} from "./helpers.mjs";

const T = { timeout: 30_000 };
let dir;
let Conn;
let url;

before(async () => {
  url = echoUrl();
  dir = installTarball();
  ({ Conn } = await importPackage(dir));
  assert.equal(typeof globalThis.WebSocket, "function", "the test runner needs a global WebSocket");
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function open(options) {
  return within(10_000, Conn.dial(url, options), "dial");
}

describe("the packed package", () => {
  it("ships what package.json lists and nothing else", T, () => {
    const files = execFileSync("tar", ["tzf", join(ROOT, "target", "npm", "isosock-0.1.0.tgz")], {
      encoding: "utf8",
    })
      .trim()
      .split("\n")
      .map((f) => f.replace(/^package\//, ""))
      .sort();
    assert.deepEqual(files, [
      "LICENSE-APACHE",
      "LICENSE-MIT",
      "README.md",
      "isosock.d.ts",
      "isosock.js",
      "isosock_bg.wasm",
      "isosock_bg.wasm.d.ts",
      "node.js",
      "package.json",
    ]);
    const pkg = JSON.parse(readFileSync(join(dir, "node_modules", "isosock", "package.json"), "utf8"));
    for (const field of ["name", "version", "license", "repository", "files", "types", "exports"]) {
      assert.ok(pkg[field], `package.json has ${field}`);
    }
  });

  for (const readme of [join("js", "npm", "README.md"), "README.md"]) {
    it(`runs the first JS example of ${readme} unchanged but for the server's port`, T, () => {
      const [example] = codeBlocks(join(ROOT, readme), "js");
      assert.ok(example, `${readme} has a js code block`);
      assert.match(example, /ws:\/\/127\.0\.0\.1:9001/);
      const script = join(dir, "readme-example.mjs");
      writeFileSync(script, example.replace("ws://127.0.0.1:9001", url));
      const out = execFileSync(process.execPath, [...webSocketFlags(), script], {
        cwd: dir,
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(out, "subprotocol: echo.v1\ntext hello\nbinary [ 1, 2, 3 ]\nclosed\n");
    });
  }

  it("says what is missing on a runtime without a global WebSocket", T, () => {
    const script = join(dir, "no-websocket.mjs");
    writeFileSync(
      script,
      `import { Conn } from "isosock";
       try { await Conn.dial(${JSON.stringify(url)}); console.log("dialed"); }
       catch (e) { console.log(JSON.stringify({ name: e.name, kind: e.kind, message: e.message })); }`,
    );
    const run = spawnSync(process.execPath, [...noWebSocketFlags(), script], {
      cwd: dir,
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const err = JSON.parse(run.stdout);
    assert.equal(err.name, "IsosockError");
    assert.equal(err.kind, "Unsupported");
    assert.match(err.message, /no global WebSocket/);
    assert.match(err.message, new RegExp(`Node\\.js ${process.versions.node.replace(/\./g, "\\.")}`));
  });
});

describe("Conn in Node.js", () => {
  it("echoes text, binary and empty messages of every byte kind", T, async () => {
    const conn = await open();
    const bytes = new Uint8Array(256).map((_, i) => i);
    const sent = [
      "hello",
      "ünïcödé ✓",
      "",
      bytes,
      bytes.buffer,
      Buffer.from("buffer bytes"),
      new DataView(bytes.buffer, 10, 5),
      new Uint16Array([0x0102, 0x0304]),
      new Uint8Array(0),
    ];
    for (const data of sent) await conn.write(data);
    const expect = (data) => {
      if (typeof data === "string") return { type: "text", data };
      const view = ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : new Uint8Array(data);
      return { type: "binary", data: Uint8Array.from(view) };
    };
    for (const data of sent) {
      const msg = await within(5_000, conn.read(), "read");
      assert.deepEqual(msg, expect(data));
    }
    await conn.close(1000, "done");
  });

  it("keeps the order of writes that were not awaited one by one", T, async () => {
    const conn = await open();
    await Promise.all(Array.from({ length: 200 }, (_, i) => conn.write(`message ${i}`)));
    for (let i = 0; i < 200; i++) {
      assert.deepEqual(await conn.read(), { type: "text", data: `message ${i}` });
    }
    await conn.close();
  });

  it("reads a 1 MiB message within a raised read limit", T, async () => {
    const conn = await open({ readLimit: 2 << 20 });
    await conn.write("!big 1048576");
    const msg = await within(10_000, conn.read(), "read");
    assert.equal(msg.type, "binary");
    assert.equal(msg.data.length, 1 << 20);
    assert.ok(msg.data.every((b) => b === 0xab));
    await conn.close();
  });

  it("fails a message over the read limit and closes", T, async () => {
    const conn = await open();
    await conn.write("!big 40000");
    const err = await rejectsWith("MessageTooBig", conn.read());
    assert.match(err.message, /40000/);
    await rejectsWith("MessageTooBig", conn.read());

    const small = await open();
    small.setReadLimit(10);
    await small.write("eleven char");
    await rejectsWith("MessageTooBig", small.read());
    assert.throws(() => small.setReadLimit(-1), { name: "IsosockError", kind: "InvalidArgument" });
  });

  it("delivers the peer's close code and reason to read", T, async () => {
    const conn = await open();
    await conn.write("!close 4001 server says bye");
    const err = await rejectsWith("Closed", conn.read());
    assert.equal(err.code, 4001);
    assert.equal(err.reason, "server says bye");
    assert.ok(err instanceof Error);
    assert.deepEqual(conn.peerCloseFrame, { code: 4001, reason: "server says bye" });
    await rejectsWith("Closed", conn.write("too late"));
  });

  it("iterates messages until a normal close, and throws on other codes", T, async () => {
    const conn = await open();
    for (const m of ["a", "b", "!close 1000 done"]) await conn.write(m);
    const got = [];
    for await (const msg of conn) got.push(msg.data);
    assert.deepEqual(got, ["a", "b"]);

    const other = await open();
    for (const m of ["x", "!close 4002 not normal"]) await other.write(m);
    const seen = [];
    const err = await rejectsWith(
      "Closed",
      (async () => {
        for await (const msg of other) seen.push(msg.data);
      })(),
    );
    assert.deepEqual(seen, ["x"]);
    assert.equal(err.code, 4002);

    // `break` leaves the connection open.
    const third = await open();
    await third.write("first");
    await third.write("second");
    for await (const msg of third) {
      assert.equal(msg.data, "first");
      break;
    }
    assert.deepEqual(await third.read(), { type: "text", data: "second" });
    await third.close();
  });

  it("closes with a handshake, and refuses what may not be sent", T, async () => {
    const conn = await open();
    await rejectsWith("InvalidArgument", conn.close(1005));
    await rejectsWith("InvalidArgument", conn.close(1000, "x".repeat(124)));
    await rejectsWith("InvalidArgument", conn.close(70000));
    await rejectsWith("InvalidArgument", conn.close(1000.5));
    // Nothing was sent by the refused calls: the connection still works.
    await conn.write("still open");
    assert.deepEqual(await conn.read(), { type: "text", data: "still open" });
    await conn.close(1001, "going away is sent as 1000 where browsers require it");
    await rejectsWith("AlreadyClosed", conn.write("after close"));
    await rejectsWith("AlreadyClosed", conn.close());
    assert.deepEqual(conn.peerCloseFrame?.code, 1000);

    const now = await open();
    const pending = now.read();
    now.closeNow();
    now.closeNow();
    await rejectsWith("AlreadyClosed", pending);
    await rejectsWith("AlreadyClosed", now.write("x"));
  });

  it("negotiates a subprotocol", T, async () => {
    const conn = await open({ subprotocols: ["nope.v0", "chat.v1"] });
    assert.equal(conn.subprotocol, "chat.v1");
    await conn.write("!subprotocol");
    assert.deepEqual(await conn.read(), { type: "text", data: "chat.v1" });
    await conn.close();
    const none = await open();
    assert.equal(none.subprotocol, undefined);
    await none.close();
  });

  it("shows the permessage-deflate that Node.js negotiated, and inflates large messages", T, async () => {
    // Node.js's WebSocket (undici) offers permessage-deflate by itself; the echo server accepts.
    const conn = await open({ readLimit: 2 << 20 });
    assert.match(conn.extensions, /^permessage-deflate/);
    await conn.write("!extensions");
    assert.deepEqual(await conn.read(), { type: "text", data: conn.extensions });
    for (const data of [jsonLike(512 << 10), records(512 << 10)]) {
      await conn.write(data);
      const msg = await within(10_000, conn.read(), "read");
      if (typeof data === "string") assert.ok(msg.type === "text" && msg.data === data, "text changed");
      else assert.ok(msg.type === "binary" && Buffer.from(msg.data).equals(data), "bytes changed");
    }
    await conn.close();
  });

  it("rejects bad arguments with typed errors", T, async () => {
    await rejectsWith("InvalidUrl", Conn.dial("http://127.0.0.1:1/"));
    await rejectsWith("InvalidUrl", Conn.dial("not a url"));
    await rejectsWith("InvalidArgument", Conn.dial(42));
    let err = await rejectsWith("InvalidArgument", Conn.dial(url, { readlimit: 5 }));
    assert.match(err.message, /unknown option "readlimit"/);
    err = await rejectsWith("InvalidArgument", Conn.dial(url, { readLimit: -1 }));
    assert.match(err.message, /readLimit/);
    await rejectsWith("InvalidArgument", Conn.dial(url, { readLimit: "1000" }));
    await rejectsWith("InvalidArgument", Conn.dial(url, { subprotocols: "chat.v1" }));
    await rejectsWith("InvalidArgument", Conn.dial(url, { subprotocols: ["bad token"] }));
    await rejectsWith("InvalidArgument", Conn.dial(url, { timeoutMs: Infinity }));
    await rejectsWith("InvalidArgument", Conn.dial(url, []));
    const conn = await open();
    await rejectsWith("InvalidArgument", conn.write(42));
    await rejectsWith("InvalidArgument", conn.write({ text: "hi" }));
    await conn.close();
  });

  it("accepts a URL object", T, async () => {
    const conn = await within(10_000, Conn.dial(new URL(url)), "dial");
    await conn.close();
  });

  it("reports a refused connection and a dial timeout", T, async () => {
    // Node.js 20's WebSocket fires `error` but never `close` for a refused connection (and
    // stays CONNECTING); the dial must still fail promptly rather than wait for its timeout.
    const started = Date.now();
    const err = await rejectsWith("Connect", Conn.dial("ws://127.0.0.1:1/", { timeoutMs: 60_000 }));
    assert.match(err.message, /could not open a WebSocket to ws:\/\/127\.0\.0\.1:1\//);
    assert.ok(Date.now() - started < 10_000, "the refused dial waited for its timeout");
    // A zero timeout fails unless the socket opened within the same turn of the event loop.
    let timeouts = 0;
    for (let i = 0; i < 5; i++) {
      try {
        (await Conn.dial(url, { timeoutMs: 0 })).closeNow();
      } catch (e) {
        assert.equal(e.kind, "Timeout", e.message);
        timeouts++;
      }
    }
    assert.ok(timeouts > 0, "a zero dial timeout never fired");
  });
});

describe("TypeScript declarations", () => {
  it("type-check a consumer that uses them, and reject misuse", T, () => {
    for (const f of ["consumer.ts", "tsconfig.json"]) {
      copyFileSync(join(ROOT, "tests", "js", "types", f), join(dir, f));
    }
    const tsc = join(ROOT, "tests", "js", "node_modules", ".bin", "tsc");
    const run = spawnSync(tsc, ["--noEmit", "-p", dir], { encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`);
  });
});
