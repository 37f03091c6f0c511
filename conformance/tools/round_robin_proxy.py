"""A round-robin HTTP proxy in front of several Parvis processes of one group (the suite's
PARVIS_TEST_CLUSTER mode): each request goes to the next process in turn, whatever its client,
so a client's consecutive requests (its registration's stages, a send and the /sync that shows
it, an upload and its download) land on different processes.

Sliding sync alone is kept on one process per access token: its connections live in a process's
memory, as the README's load-balancer configuration keeps them (spec/deviations.md).

    python round_robin_proxy.py LISTEN_PORT BACKEND_PORT [BACKEND_PORT ...]
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import zlib

import aiohttp
from aiohttp import web

# Not forwarded: they describe one hop, not the request.
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}

STICKY_PREFIXES = (
    "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
    "/_matrix/client/v5/sync",
)


def main() -> None:
    listen = int(sys.argv[1])
    backends = [f"http://127.0.0.1:{p}" for p in sys.argv[2:]]
    turn = itertools.cycle(range(len(backends)))
    session: aiohttp.ClientSession | None = None

    def backend_for(request: web.Request) -> str:
        if request.path.startswith(STICKY_PREFIXES):
            token = request.headers.get("Authorization", "") or request.query.get("access_token", "")
            return backends[zlib.crc32(token.encode()) % len(backends)]
        return backends[next(turn)]

    async def forward(request: web.Request) -> web.StreamResponse:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession(
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                connector=aiohttp.TCPConnector(limit=0),
            )
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        target = backend_for(request) + request.path_qs
        try:
            async with session.request(
                request.method,
                target,
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                out = web.Response(status=resp.status, body=data)
                for k, v in resp.headers.items():
                    if k.lower() not in HOP_HEADERS:
                        out.headers.add(k, v)
                # Which process answered (conformance/test_group.py checks the turns).
                out.headers["X-Parvis-Process"] = target.split("/")[2]
                return out
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            return web.json_response(
                {"errcode": "M_UNKNOWN", "error": f"proxy: {target}: {e!r}"}, status=502
            )

    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=listen, print=None, access_log=None)


if __name__ == "__main__":
    main()
