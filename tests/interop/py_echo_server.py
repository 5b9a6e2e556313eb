"""Echo server on Python `websockets` for the interop tests.

Prints `PORT <n>` once listening on 127.0.0.1 (port 0 = any free port). Echoes every
message with its type; the text `!close <code> <reason>` makes it close with that code;
`!stop` ends the process. Prints `closed <code> <reason>` for each connection's close.
Exits by itself after 120 s.
"""
import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(ws):
    try:
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("!close "):
                _, code, *reason = msg.split(" ", 2)
                await ws.close(int(code), reason[0] if reason else "")
                break
            if msg == "!stop":
                asyncio.get_running_loop().stop()
                return
            await ws.send(msg)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    rcvd = ws.protocol.close_rcvd
    print(f"closed {rcvd.code if rcvd else 'none'} {rcvd.reason if rcvd else ''}", flush=True)


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with serve(handler, "127.0.0.1", port, max_size=16 << 20, subprotocols=["echo.v1"]) as server:
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.sleep(120)


asyncio.run(main())
