"""Client on Python `websockets` for the interop tests: python client -> isosock server.

Usage: py_client.py URL. Checks text/binary echo, a server-initiated close with 4005, and
closes a second connection itself with 4006 "py done". Prints one line per check and exits
non-zero on the first failure.
"""
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def main(url):
    async with connect(url, max_size=16 << 20) as ws:
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
    async with connect(url) as ws:
        await ws.send("ping?")
        assert await ws.recv() == "ping?"
        await ws.close(4006, "py done")
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None and rcvd.code == 4006, f"close reply {rcvd}"
        print("client close 4006 ok", flush=True)


asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
