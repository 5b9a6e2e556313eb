"""Echo server on Python `websockets` for the interop tests.

Usage: py_echo_server.py [PORT] [--deflate context|nocontext|window9|window8|off]

Prints `PORT <n>` once listening on 127.0.0.1 (port 0 = any free port). Echoes every
message with its type; messages over 64 KiB go back as several 64 KiB frames (a fragmented
message). Text commands:
- `!close <code> <reason>`: closes with that code;
- `!stop`: ends the process;
- `!extensions`: answers with the permessage-deflate agreement as this side applies it (see
  `describe`), or `none`;
- `!stats`: answers with what this side compressed and inflated (see `count_compression`).
Prints `closed <code> <reason>` for each connection's close. Exits by itself after 120 s.

`--deflate` configures permessage-deflate (RFC 7692); without it websockets' default applies
(compression on, `context` below):
- `context`: websockets' default: context takeover both ways, 12-bit windows both ways;
- `nocontext`: the same, but both `*_no_context_takeover` parameters are required;
- `window9`: context takeover, 9-bit windows both ways;
- `window8`: context takeover, the other side's window limited to 8 bits (with which zlib
  cannot compress, so it should send uncompressed), this side's to 9 (websockets' least);
- `off`: no compression offered or accepted.
websockets compresses every data message once compression is agreed.

py_client.py imports `echo` and `deflate_options` from here for its `--echo` mode.
"""
import argparse
import asyncio

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode

DEFLATE_MODES = ("context", "nocontext", "window9", "window8", "off")
# Messages longer than this are echoed as a fragmented message of frames this long.
FRAGMENT = 64 << 10


def deflate_options(mode, *, server):
    """Keyword arguments of serve() (server) or connect() for a `--deflate` mode."""
    if mode is None:
        return {}
    if mode == "off":
        return {"compression": None}
    # websockets' own defaults (enable_server/client_permessage_deflate), plus the mode's change.
    if server:
        params = {"server_max_window_bits": 12, "client_max_window_bits": 12}
        factory = ServerPerMessageDeflateFactory
    else:
        params = {}
        factory = ClientPerMessageDeflateFactory
    if mode == "nocontext":
        params.update(server_no_context_takeover=True, client_no_context_takeover=True)
    elif mode == "window9":
        params.update(server_max_window_bits=9, client_max_window_bits=9)
    elif mode == "window8":
        theirs, ours = ("client", "server") if server else ("server", "client")
        params.update({f"{theirs}_max_window_bits": 8, f"{ours}_max_window_bits": 9})
    ext = factory(**params, compress_settings={"memLevel": 5})
    return {"compression": None, "extensions": [ext]}


def describe(ws):
    """The agreement as websockets applies it: `permessage-deflate out=<context|nocontext>/<bits>
    in=<context|nocontext>/<bits>`, where `out` is this side's compressor and `in` its
    decompressor (whether each keeps its window between messages, and the window size)."""
    parts = []
    for ext in ws.protocol.extensions:
        if isinstance(ext, PerMessageDeflate):
            out = "nocontext" if ext.local_no_context_takeover else "context"
            inn = "nocontext" if ext.remote_no_context_takeover else "context"
            parts.append(
                f"{ext.name} out={out}/{ext.local_max_window_bits} "
                f"in={inn}/{ext.remote_max_window_bits}"
            )
        else:
            parts.append(ext.name)
    return ", ".join(parts) or "none"


def count_compression(ws):
    """Counts, from now on, what the permessage-deflate extension of `ws` decodes and encodes:
    `in_msgs` compressed messages received, `in_wire` their compressed bytes and `in_bytes` the
    bytes they inflated to, `out_msgs` messages sent compressed. websockets has no public
    counter, so the extension object's decode and encode are wrapped."""
    stats = {"in_msgs": 0, "in_wire": 0, "in_bytes": 0, "out_msgs": 0}
    for ext in ws.protocol.extensions:
        if not isinstance(ext, PerMessageDeflate):
            continue
        decode, encode = ext.decode, ext.encode

        def counted_decode(frame, *, max_size=None, ext=ext, decode=decode):
            compressed = frame.rsv1 or (frame.opcode is Opcode.CONT and ext.decode_cont_data)
            out = decode(frame, max_size=max_size)
            if compressed:
                stats["in_wire"] += len(frame.data)
                stats["in_bytes"] += len(out.data)
                stats["in_msgs"] += frame.fin
            return out

        def counted_encode(frame, encode=encode):
            out = encode(frame)
            stats["out_msgs"] += out.rsv1
            return out

        ext.decode, ext.encode = counted_decode, counted_encode
    return stats


async def echo(ws):
    """Echoes messages on `ws`, obeying the commands, until it closes; returns the close frame
    received (None if there was none)."""
    stats = count_compression(ws)
    try:
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("!close "):
                _, code, *reason = msg.split(" ", 2)
                await ws.close(int(code), reason[0] if reason else "")
                break
            if msg == "!stop":
                asyncio.get_running_loop().stop()
                return None
            if msg == "!extensions":
                await ws.send(describe(ws))
            elif msg == "!stats":
                await ws.send(" ".join(f"{k}={v}" for k, v in stats.items()))
            elif len(msg) > FRAGMENT:
                await ws.send([msg[i : i + FRAGMENT] for i in range(0, len(msg), FRAGMENT)])
            else:
                await ws.send(msg)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    return ws.protocol.close_rcvd


async def handler(ws):
    rcvd = await echo(ws)
    print(f"closed {rcvd.code if rcvd else 'none'} {rcvd.reason if rcvd else ''}", flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("--deflate", choices=DEFLATE_MODES)
    args = parser.parse_args()
    async with serve(
        handler,
        "127.0.0.1",
        args.port,
        max_size=16 << 20,
        subprotocols=["echo.v1"],
        **deflate_options(args.deflate, server=True),
    ) as server:
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.sleep(120)


if __name__ == "__main__":
    asyncio.run(main())
