"""Echo server on Python `websockets` for isosock-bench's compression benchmark.

Usage: python bench_echo_server.py MODE [LIFETIME_S]; MODE is disabled, no-context-takeover or
context-takeover. permessage-deflate as isosock does it: DEFLATE level 1, memLevel 8, a 32 KiB
window (websockets has no threshold: it compresses every message); in no-context-takeover mode
both *_no_context_takeover parameters are answered. Prints `listening on ws://127.0.0.1:PORT`,
then nothing; exits by itself after LIFETIME_S seconds (default 300).
"""
import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except ConnectionClosed:
        pass


def extensions(mode):
    if mode == "disabled":
        return None
    if mode not in ("no-context-takeover", "context-takeover"):
        sys.exit(f"unknown mode {mode} (disabled, no-context-takeover or context-takeover)")
    nct = mode == "no-context-takeover"
    return [
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=nct,
            client_no_context_takeover=nct,
            compress_settings={"level": 1, "memLevel": 8},
        )
    ]


async def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "disabled"
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 300
    exts = extensions(mode)
    async with serve(
        echo, "127.0.0.1", 0, max_size=16 << 20, compression=None, extensions=exts
    ) as server:
        print(f"listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.sleep(lifetime)


asyncio.run(main())
