"""The outbound request guard: every connection an `http` or `export` step makes is resolved, checked and then
made to the very address that was checked.

Loopback, private, link-local (cloud metadata lives at 169.254.169.254), carrier-grade NAT, multicast, reserved
and unspecified addresses are refused before any connection, whatever spelling the URL used (`2130706433`,
`0x7f.1`, `[::ffff:127.0.0.1]`, a name that resolves to 10.0.0.5). A workspace may allow named hosts
(`allowed_hosts` setting: `host` or `host:port`), which is how tests reach their servers on 127.0.0.1.

Because the check sits at connect time (a network backend under httpx), redirects are checked hop by hop and a
name cannot resolve to one address for the check and another for the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

Resolver = Callable[[str, int], Awaitable[list[str]]]

# Addresses that are not on the public internet and are not caught by the stdlib's flags on every version.
EXTRA_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)


class BlockedAddress(Exception):
    """A request the guard refused; the message names the host, the address and why."""


class UnresolvedHost(Exception):
    """A host name that resolved to no address: a lookup failure, not a refusal."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (numeric spellings such as 2130706433 included)."""
    import asyncio

    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise UnresolvedHost(f"cannot resolve host '{host}': {err.strerror}") from err
    return list(dict.fromkeys(str(info[4][0]) for info in found))


# The one place name resolution happens; tests replace it to make a name resolve to a private address.
_resolver: list[Resolver] = [system_resolver]


def set_resolver(resolver: Resolver | None) -> None:
    """Use `resolver` for every outbound connection (None: the system's)."""
    _resolver[0] = resolver or system_resolver


def refusal(address: str) -> str | None:
    """Why `address` may not be connected to, or None if it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "not a unicast internet address"
    if any(ip in net for net in EXTRA_BLOCKED if net.version == ip.version):
        return "a non-public address"
    if not ip.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    """Which hosts a workspace lets steps reach although they resolve to non-public addresses."""

    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def allowing(cls, hosts: Iterable[str]) -> NetworkPolicy:
        return cls(frozenset(h.strip().lower() for h in hosts if h.strip()))

    def allows(self, host: str, port: int) -> bool:
        name = host.strip("[]").lower()
        return (
            name in self.allowed_hosts
            or f"{name}:{port}" in self.allowed_hosts
            or (f"[{name}]:{port}" in self.allowed_hosts)
        )

    async def checked_address(self, host: str, port: int) -> str:
        """The address to connect to for `host`: resolved once, every answer checked; raises BlockedAddress (or
        UnresolvedHost)."""
        addresses = await _resolver[0](host.strip("[]"), port)
        if not addresses:
            raise UnresolvedHost(f"host '{host}' resolved to no address")
        if self.allows(host, port):
            return addresses[0]
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise BlockedAddress(
                    f"refused to connect to '{host}' ({address}): {reason}; "
                    f"allow it with `runsheet settings allowed_hosts '[\"{host}:{port}\"]'` if it is yours"
                )
        return addresses[0]
