// Client on Node `ws` for the interop tests: node client -> isosock server.
//
// Usage: node node_client.mjs URL [--deflate context|nocontext|window9|window8|off] [--echo]
//
// By default: the same checks as py_client.py (echo, server close 4005, client close 4006
// "node done"). With `--echo`: connects once and acts as node_echo_server.mjs's echo peer (the
// same commands, so the isosock server drives the test), prints `closed <code> <reason>` when
// the server closes, and exits 0 if it closed cleanly. `--deflate` configures
// permessage-deflate as in node_echo_server.mjs (ws's default, offered, without it). Exits by
// itself after 60 s.
import WebSocket from "ws";
import assert from "node:assert/strict";
import { deflateArg, deflateOptions, echo } from "./node_echo_server.mjs";

const args = process.argv.slice(2);
const url = args[0];
const options = { maxPayload: 16 << 20, ...deflateOptions(deflateArg(args), false) };
setTimeout(() => { console.error("timed out"); process.exit(2); }, 60_000).unref();

function open(u) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(u, options);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}
function next(ws) {
  return new Promise((resolve, reject) => {
    ws.once("message", (data, isBinary) => resolve(isBinary ? data : data.toString("utf8")));
    ws.once("close", (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
  });
}
function closed(ws) {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve([code, reason.toString("utf8")])));
}

if (args.includes("--echo")) {
  // The echo starts within the `open` event: a message that came with the handshake response
  // is emitted before an `await open(...)` would resume.
  const ws = new WebSocket(url, options);
  ws.once("open", () =>
    echo(ws, false, (code, reason) => {
      console.log(`closed ${code} ${reason}`);
      process.exit(code === 1005 || code === 1006 ? 1 : 0);
    }),
  );
  ws.once("error", (e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  await checks();
}

async function checks() {
  const ws = await open(url);
  for (const msg of ["hello from node", "ünïcödé ✓", Buffer.from([0, 1, 254, 255]), Buffer.alloc(100_000, 7)]) {
    ws.send(msg);
    const got = await next(ws);
    assert.deepEqual(got, msg);
    console.log(`echo ${typeof msg === "string" ? "text" : "binary"} ${msg.length} ok`);
  }
  const done = closed(ws);
  ws.send("!close 4005 server says bye");
  const [code, reason] = await done;
  assert.equal(code, 4005);
  assert.equal(reason, "server says bye");
  console.log(`server close ${code} ${reason} ok`);

  const ws2 = await open(url);
  ws2.send("ping?");
  assert.equal(await next(ws2), "ping?");
  const done2 = closed(ws2);
  ws2.close(4006, "node done");
  const [code2] = await done2;
  assert.equal(code2, 4006);
  console.log("client close 4006 ok");
}
