// The Node.js entry of the isosock package. It loads the WebAssembly module synchronously when
// imported, so `await init()` is optional in Node.js (it resolves at once); in browsers and
// bundlers the package's default entry (isosock.js) needs `await init()` before first use.
//
// Node.js 22 and later have a global WebSocket, which isosock uses. On Node.js 20 and 21 start
// node with --experimental-websocket; without a global WebSocket, Conn.dial rejects with an
// IsosockError of kind "Unsupported" that says so.
import { readFileSync } from "node:fs";
import { initSync } from "./isosock.js";

const output = initSync({
  module: readFileSync(new URL("./isosock_bg.wasm", import.meta.url)),
});

export * from "./isosock.js";

/** Resolves at once: the module was loaded when this file was imported. */
export default async function init() {
  return output;
}
