// Echo server on Node `ws` for the interop tests; the same protocol as py_echo_server.py.
//
// Usage: node node_echo_server.mjs [PORT] [--deflate context|nocontext|window9|window8|off]
//
// Prints `PORT <n>`; echoes every message with its type, messages over 64 KiB as several
// 64 KiB frames (a fragmented message, text split wherever the bytes fall, with a ping after
// the first fragment). Commands:
// `!close <code> <reason>` closes with that code; `!extensions` answers with the
// permessage-deflate agreement as ws applies it (see `describe`), or `none`; `!stats` answers
// with what this side compressed and inflated (see `countCompression`). Prints
// `closed <code> <reason>` per connection. Exits by itself after 120 s.
//
// `--deflate` configures permessage-deflate (RFC 7692); without it ws's default applies (off
// for a server, offered by a client). Every mode compresses every message (threshold 0):
// - `context`: context takeover both ways, ws's default windows (15 bits);
// - `nocontext`: both `*_no_context_takeover` parameters asked for (server: imposed);
// - `window9`: context takeover, 9-bit windows both ways;
// - `window8`: context takeover, the other side's window limited to 8 bits (with which zlib
//   cannot compress, so it should send uncompressed), this side's to 9;
// - `off`: no compression offered or accepted.
//
// node_client.mjs imports `echo` and `deflateOptions` from here for its `--echo` mode.
import { WebSocketServer } from "ws";
import { pathToFileURL } from "node:url";

export const DEFLATE_MODES = ["context", "nocontext", "window9", "window8", "off"];
const FRAGMENT = 64 << 10;
const PMD = "permessage-deflate";

/// ws options setting `perMessageDeflate` for a `--deflate` mode (none: ws's default), for a
/// server or a client.
export function deflateOptions(mode, isServer) {
  switch (mode) {
    case undefined:
      return {};
    case "off":
      return { perMessageDeflate: false };
    case "context":
      return { perMessageDeflate: { threshold: 0 } };
    case "nocontext":
      return {
        perMessageDeflate: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true },
      };
    case "window9":
      return { perMessageDeflate: { threshold: 0, serverMaxWindowBits: 9, clientMaxWindowBits: 9 } };
    case "window8": {
      const [ours, theirs] = isServer ? [9, 8] : [8, 9];
      return { perMessageDeflate: { threshold: 0, serverMaxWindowBits: ours, clientMaxWindowBits: theirs } };
    }
    default:
      throw new Error(`unknown --deflate mode ${mode}; expected one of ${DEFLATE_MODES}`);
  }
}

/// The `--deflate` value among `args`, checked.
export function deflateArg(args) {
  const i = args.indexOf("--deflate");
  if (i < 0) return undefined;
  const mode = args[i + 1];
  deflateOptions(mode);
  return mode;
}

// The agreement as ws applies it: `permessage-deflate out=<context|nocontext>/<bits>
// in=<context|nocontext>/<bits>`, `out` being this side's compressor and `in` its decompressor.
// ws's public `extensions` names the extensions only; the parameters its compressor and
// decompressor read are those of the extension object it keeps in `_extensions`.
function describe(ws, isServer) {
  const pmd = ws._extensions[PMD];
  if (!pmd) return ws.extensions || "none";
  const [self, other] = isServer ? ["server", "client"] : ["client", "server"];
  const p = pmd.params;
  const ctx = (side) => (p[`${side}_no_context_takeover`] ? "nocontext" : "context");
  const bits = (side) => (typeof p[`${side}_max_window_bits`] === "number" ? p[`${side}_max_window_bits`] : 15);
  return `${ws.extensions} out=${ctx(self)}/${bits(self)} in=${ctx(other)}/${bits(other)}`;
}

// Counts, from now on, what the permessage-deflate extension of `ws` decompresses and
// compresses: `in_msgs` compressed messages received, `in_wire` their compressed bytes and
// `in_bytes` what they inflated to, `out_msgs` messages sent compressed. ws has no public
// counter, so the extension object's (per-frame) compress and decompress are wrapped.
function countCompression(ws) {
  const stats = { in_msgs: 0, in_wire: 0, in_bytes: 0, out_msgs: 0 };
  const pmd = ws._extensions[PMD];
  if (pmd) {
    const decompress = pmd.decompress.bind(pmd);
    pmd.decompress = (data, fin, cb) => {
      stats.in_wire += data.length;
      decompress(data, fin, (err, buf) => {
        if (!err) {
          stats.in_bytes += buf.length;
          stats.in_msgs += fin ? 1 : 0;
        }
        cb(err, buf);
      });
    };
    const compress = pmd.compress.bind(pmd);
    pmd.compress = (data, fin, cb) => {
      stats.out_msgs += fin ? 1 : 0;
      compress(data, fin, cb);
    };
  }
  return stats;
}

/// Echoes messages on `ws`, obeying the commands, until it closes; `onClose(code, reason)`
/// is called then.
export function echo(ws, isServer, onClose) {
  const stats = countCompression(ws);
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? null : data.toString("utf8");
    if (text !== null && text.startsWith("!close ")) {
      const [, code, ...reason] = text.split(" ");
      ws.close(Number(code), reason.join(" "));
      return;
    }
    if (text === "!extensions") {
      ws.send(describe(ws, isServer));
    } else if (text === "!stats") {
      ws.send(Object.entries(stats).map(([k, v]) => `${k}=${v}`).join(" "));
    } else {
      for (let i = 0; i < data.length || i === 0; i += FRAGMENT) {
        const fin = i + FRAGMENT >= data.length;
        ws.send(data.subarray(i, i + FRAGMENT), { binary: isBinary, fin });
        // ws keeps its frames in order, so the ping goes between the first two fragments.
        if (i === 0 && !fin) ws.ping();
      }
    }
  });
  ws.on("close", (code, reason) => onClose(code, reason.toString("utf8")));
}

function main(args) {
  const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 0);
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port,
    maxPayload: 16 << 20,
    ...deflateOptions(deflateArg(args), true),
    handleProtocols: (protocols) => (protocols.has("echo.v1") ? "echo.v1" : false),
  });
  wss.on("listening", () => console.log(`PORT ${wss.address().port}`));
  wss.on("connection", (ws) => {
    echo(ws, true, (code, reason) => console.log(`closed ${code} ${reason}`));
  });
  setTimeout(() => process.exit(0), 120_000).unref();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2));
}
