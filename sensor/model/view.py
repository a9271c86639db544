"""What detections may ask of the device models (issue: pattern of life).

Detections read the models through this interface only, so that they can
be tested with a small fake and the models can change inside. Every
question is answered in constant time. The ``kind`` of a value is one of
:data:`KINDS`.

Order matters: the pipeline lets detections see a record *before* the
models learn from it, so ``is_new_for_device`` answers "had this device
used it before this record?".
"""

from __future__ import annotations

from typing import Protocol

#: Kinds of value the models count per device and network-wide.
KINDS = (
    "ip",  # an external or internal peer address
    "domain",  # a registered domain (public-suffix aware), from DNS, SNI, Host
    "sni",  # a TLS server name as sent
    "ja3",
    "ja4",
    "ua",  # an HTTP user agent
    "service",  # "tcp/445" or a detected service name, used or offered
)


class DeviceInfo(Protocol):
    """The identity of a device, as detections see it."""

    id: str  # stable: the MAC when known, else the first IP
    mac: str | None
    vendor: str | None
    first_seen: float  # packet time
    roles: list[str]  # such as "domain_controller", "dns_server", "client"
    tags: list[str]  # operator tags from the configuration

    @property
    def ip(self) -> str | None:
        """The latest address."""

    @property
    def name(self) -> str | None:
        """DHCP host name, Kerberos or NTLM name, or a DNS name."""

    @property
    def internal(self) -> bool:
        """True when the device is in the local networks."""


class ModelView(Protocol):
    """Read-only questions about devices and the network."""

    def device(self, ip: str, mac: str | None = None) -> DeviceInfo | None:
        """The device that had ``ip`` (or ``mac``) last; None if never seen."""

    def is_internal(self, ip: str) -> bool:
        """True when ``ip`` is in the configured local networks."""

    def learning(self, device_id: str, now: float) -> bool:
        """True while the device is in its learning period."""

    def is_new_for_device(self, device_id: str, kind: str, value: str) -> bool:
        """True when the device has not used ``value`` (of ``kind``) before."""

    def network_devices(self, kind: str, value: str) -> int:
        """How many devices have used ``value``; 0 when none has."""

    def network_first_seen(self, kind: str, value: str) -> float | None:
        """Packet time ``value`` was first used on the network, None if never."""

    def baseline(self, device_id: str, feature: str) -> float | None:
        """A learned figure of the device, None before there is one.

        Features: ``"max_upload_bytes"`` (largest bytes sent to one peer in
        one connection, decayed over 30 days), ``"bytes_out_per_hour"``,
        ``"conns_per_hour"``, ``"distinct_peers_per_hour"``.
        """

    def peer_group(self, device_id: str) -> str | None:
        """The id of the device's peer group, None when it has none yet."""
