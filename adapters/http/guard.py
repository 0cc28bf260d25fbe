"""Which addresses outbound HTTP may reach, checked where the connection is made.

A URL given by a user is fetched by our workers, inside our network: without a guard it could
read the cloud's metadata service (169.254.169.254), a database on loopback or any private
host. The check runs in the connection itself (``GuardedBackend.connect_tcp``): the host is
resolved once, every address it resolves to is checked, and the socket is opened to a checked
address. So every redirect hop is checked, and a name that resolves to a public address for a
check and to a private one for the request (DNS rebinding) gains nothing. TLS still verifies
the certificate against the host name (httpcore sends the URL's host as SNI).
"""

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore

from domain.errors import PermanentError, TransientError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddressError(PermanentError):
    """The host resolves to an address outbound requests may not reach."""


def _kind(address: IpAddress) -> str | None:
    """Why an address is off limits, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind(address.ipv4_mapped)
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("unspecified", address.is_unspecified), ("multicast", address.is_multicast),
              ("private", address.is_private), ("reserved", address.is_reserved))
    return next((name for name, hit in checks if hit), None)


@dataclass(frozen=True)
class AddressGuard:
    """``allow_private``: every address may be reached (a local stack, tests).
    ``allowed_networks``: these networks may be reached although they are not public."""

    allow_private: bool = False
    allowed_networks: tuple[IpNetwork, ...] = field(default_factory=tuple)
    #: The setting that lifts the guard, named in every refusal.
    setting_name: str = "CONVERSA_FETCH__ALLOW_PRIVATE_ADDRESSES"

    @classmethod
    def of(cls, allow_private: bool, networks: Iterable[str]) -> "AddressGuard":
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def check(self, host: str, address: str) -> None:
        """BlockedAddressError unless ``address`` (one that ``host`` resolved to) may be
        reached."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        kind = _kind(ip)
        if kind is None or self.allow_private:
            return
        if any(ip in network for network in self.allowed_networks):
            return
        shown = host if host == str(ip) else f"{host} resolves to {ip}"
        raise BlockedAddressError(
            f"refused to connect: {shown}, a {kind} address (outbound requests reach public "
            f"addresses only; set {self.setting_name}=true to allow it)")

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, each checked; the first one is connected to."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            # no such name is the URL's fault; a resolver that failed this time is not
            kind = PermanentError if exc.errno == socket.EAI_NONAME else TransientError
            raise kind(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check(host, address)
        return addresses


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the guard allows."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None
                    ) -> httpcore.NetworkStream:
        address = self._guard.resolve(host, port)[0]
        return super().connect_tcp(address, port, timeout, local_address, socket_options)
