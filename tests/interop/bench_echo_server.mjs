// Echo server on Node `ws` for isosock-bench's compression benchmark (`isosock-bench compression`).
// Usage: node bench_echo_server.mjs MODE [LIFETIME_S]; MODE is disabled, no-context-takeover or
// context-takeover. permessage-deflate as isosock does it: DEFLATE level 1, memLevel 8, a 32 KiB
// window, isosock's default thresholds (512 bytes without context takeover, 128 with it); in
// no-context-takeover mode both *_no_context_takeover parameters are answered. Prints
// `listening on ws://127.0.0.1:PORT`, then nothing; exits by itself after LIFETIME_S seconds
// (default 300).
import { WebSocketServer } from "ws";

const [mode = "disabled", lifetime = "300"] = process.argv.slice(2);
const zlibDeflateOptions = { level: 1, memLevel: 8 };
const perMessageDeflate = {
  disabled: false,
  "no-context-takeover": {
    zlibDeflateOptions,
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    threshold: 512,
  },
  "context-takeover": {
    zlibDeflateOptions,
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    threshold: 128,
  },
}[mode];
if (perMessageDeflate === undefined) {
  console.error(`unknown mode ${mode} (disabled, no-context-takeover or context-takeover)`);
  process.exit(2);
}

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 16 << 20, perMessageDeflate });
wss.on("listening", () => console.log(`listening on ws://127.0.0.1:${wss.address().port}`));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});
setTimeout(() => process.exit(0), Number(lifetime) * 1000).unref();
