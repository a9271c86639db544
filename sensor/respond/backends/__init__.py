"""Back-ends carry out intents: dry run, nftables, TCP reset.

Each back-end has the :class:`Backend` interface. ``apply`` puts one intent
in force (or extends it: applying again refreshes its expiry), ``remove``
lifts it, ``reconcile`` re-asserts the whole intended state (after a flush,
a reload or a restart), ``poll`` returns records of what happened since
(a reset sent, a failure found late), ``close`` releases what it holds.
A back-end raises :class:`BackendError` with one line when it cannot do
what is asked; the responder records the intent as failed.
"""

from __future__ import annotations

from typing import Any, Protocol

from sensor.respond.intent import Intent


class BackendError(Exception):
    """A back-end could not carry out an intent; the message says why."""


class Backend(Protocol):
    """What the responder asks of a back-end."""

    #: Name in the configuration and in ``actions.log``.
    name: str
    #: The actions this back-end carries out.
    actions: frozenset[str]

    def apply(self, intent: Intent, now: float) -> None: ...
    def remove(self, intent: Intent, now: float) -> None: ...
    def reconcile(self, intents: list[Intent], now: float) -> None: ...
    def poll(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


NAMES = ("dry-run", "nftables", "tcp-reset")


def make(name: str, **options: Any) -> Backend:
    """The back-end called ``name`` (one of :data:`NAMES`)."""
    if name == "dry-run":
        from sensor.respond.backends.dryrun import DryRun

        return DryRun()
    if name == "nftables":
        from sensor.respond.backends.nftables import NFTables

        return NFTables(quarantine_allow=options.get("quarantine_allow", ()))
    if name == "tcp-reset":
        from sensor.respond.backends.tcpreset import TCPReset

        return TCPReset(
            options["interface"], options.get("watch") or options["interface"]
        )
    raise BackendError(f"unknown back-end {name!r}: must be one of {', '.join(NAMES)}")
