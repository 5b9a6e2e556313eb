// Echo server on Node `ws` for the interop tests; the same protocol as py_echo_server.py.
// Prints `PORT <n>`; `!close <code> <reason>` closes with that code; prints `closed <code> <reason>`
// per connection. Exits by itself after 120 s.
import { WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? 0);
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  maxPayload: 16 << 20,
  handleProtocols: (protocols) => (protocols.has("echo.v1") ? "echo.v1" : false),
});
wss.on("listening", () => console.log(`PORT ${wss.address().port}`));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? null : data.toString("utf8");
    if (text !== null && text.startsWith("!close ")) {
      const [, code, ...reason] = text.split(" ");
      ws.close(Number(code), reason.join(" "));
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on("close", (code, reason) => console.log(`closed ${code} ${reason.toString("utf8")}`));
});
setTimeout(() => process.exit(0), 120_000).unref();
