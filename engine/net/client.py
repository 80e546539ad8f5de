"""The HTTP client `http` and `export` steps share: httpx over a network backend that checks every address
before connecting (guard.py), no proxies from the environment, one pooled client per event loop and policy."""

from __future__ import annotations

import asyncio
import ssl
import typing
from functools import lru_cache

import httpcore
import httpx

from engine.net.guard import NetworkPolicy

MAX_REDIRECTS = 5


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks each host, then connects to the checked address (TLS still verifies the name)."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self.policy.checked_address(host, port)
        return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[typing.Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable from steps")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # type: ignore[attr-defined,no-any-return]


def guarded_transport(policy: NetworkPolicy) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(verify=_ssl_context(), trust_env=False)
    # httpx builds its connection pool without a way to pass a network backend; this pool is the same one
    # with the guard underneath.
    transport._pool = httpcore.AsyncConnectionPool(  # noqa: SLF001
        ssl_context=_ssl_context(), max_connections=None, network_backend=GuardedBackend(policy)
    )
    return transport


_clients: dict[tuple[int, NetworkPolicy], httpx.AsyncClient] = {}


def client(policy: NetworkPolicy) -> httpx.AsyncClient:
    """This event loop's client for `policy` (a client cannot cross loops)."""
    key = (id(asyncio.get_running_loop()), policy)
    found = _clients.get(key)
    if found is None or found.is_closed:
        found = httpx.AsyncClient(
            transport=guarded_transport(policy),
            trust_env=False,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            timeout=None,
        )
        _clients[key] = found
    return found


async def close_clients() -> None:
    """Close this loop's clients (the runner calls it before its loop ends)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _clients if k[0] == loop]:
        await _clients.pop(key).aclose()
