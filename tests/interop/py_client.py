"""Client on Python `websockets` for the interop tests: python client -> isosock server.

Usage: py_client.py URL [--deflate context|nocontext|window9|window8|off] [--echo]

By default: checks text/binary echo, a server-initiated close with 4005, and closes a second
connection itself with 4006 "py done". Prints one line per check and exits non-zero on the
first failure.

With `--echo`: connects once and acts as py_echo_server.py's echo peer (the same commands,
so the isosock server drives the test), prints `closed <code> <reason>` when the server
closes, and exits 0 if it closed cleanly.

`--deflate` configures permessage-deflate as in py_echo_server.py (websockets' default, on,
without it). Exits by itself after 60 s.
"""
import argparse
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from py_echo_server import DEFLATE_MODES, deflate_options, echo


async def checks(url, opts):
    async with connect(url, max_size=16 << 20, **opts) as ws:
        for msg in ["hello from python", "ünïcödé ✓", b"\x00\x01\xfe\xff", bytes(range(256)) * 400]:
            await ws.send(msg)
            got = await ws.recv()
            assert got == msg, f"echo mismatch: {got!r:.80} != {msg!r:.80}"
            print(f"echo {'text' if isinstance(msg, str) else 'binary'} {len(msg)} ok", flush=True)
        await ws.send("!close 4005 server says bye")
        try:
            await ws.recv()
            raise AssertionError("expected the server to close")
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None and rcvd.code == 4005, f"close frame {rcvd}"
        assert rcvd.reason == "server says bye", rcvd.reason
        print(f"server close {rcvd.code} {rcvd.reason} ok", flush=True)
    async with connect(url, **opts) as ws:
        await ws.send("ping?")
        assert await ws.recv() == "ping?"
        await ws.close(4006, "py done")
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None and rcvd.code == 4006, f"close reply {rcvd}"
        print("client close 4006 ok", flush=True)


async def echo_peer(url, opts):
    async with connect(url, max_size=16 << 20, **opts) as ws:
        rcvd = await echo(ws)
    print(f"closed {rcvd.code if rcvd else 'none'} {rcvd.reason if rcvd else ''}", flush=True)
    if rcvd is None:
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--deflate", choices=DEFLATE_MODES)
    parser.add_argument("--echo", action="store_true")
    args = parser.parse_args()
    opts = deflate_options(args.deflate, server=False)
    run = echo_peer if args.echo else checks
    asyncio.run(asyncio.wait_for(run(args.url, opts), 60))


main()
