"""The nftables back-end: blocks as elements of named sets with timeouts.

Everything lives in one table of our own, ``inet sensor``, so that it never
touches the host's rules and ``sensord --cleanup`` removes it whole. One
base chain on the ``forward`` hook drops what the sets name; the sets have
``flags timeout`` and every element carries its own timeout (the intent's
remaining time), so the kernel lifts each block on time even when the
daemon is gone. Sets per address family:

========== ================================================ ============
set        element                                          action
========== ================================================ ============
``pair4``  device . destination (address or network)        block
``svc4``   device . destination . protocol . port           block + port
``quar4``  device                                           quarantine
``infra4`` allowed network (``response.quarantine_allow``)   quarantine
``enf4``   device                                           enforce
``peers4`` device . allowed peer                            enforce
========== ================================================ ============

(and the same ending in ``6``). Both directions are dropped, so replies to
a blocked device stop too.

Changes go to the kernel as atomic batches through the nftables JSON API,
in process, through ``libnftables.so.1`` (ctypes): no shell, no command
strings built from addresses. A new block is one ``add element`` batch
(well under a millisecond). Lifting, extending or re-asserting rebuilds
the table in one batch (table, chain, sets, ``flush`` and refill of every
set with the remaining timeouts), which the kernel applies atomically, so
there is no moment without the blocks that should be there. The reconciler
(:meth:`NFTables.reconcile`, called every ``response.reconcile_seconds``)
uses the same rebuild, which undoes a ``nft flush ruleset`` or a firewall
reload and refreshes every timeout.

The table is one per network namespace, and so is its owner: a second
daemon rebuilding it would wipe the first one's blocks at every reconcile.
The daemon holds :func:`table_lock` (a lock file named after the network
namespace, see :mod:`sensor.lockfile`) for as long as it runs with this
back-end; another daemon in the same namespace is refused at start, and
``sensord --cleanup`` refuses while it is held.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import math
import os
import threading
from collections.abc import Iterable
from typing import Any

from sensor.lockfile import LockFile, holder
from sensor.respond.backends import BackendError
from sensor.respond.intent import Intent

log = logging.getLogger(__name__)

FAMILY = "inet"
TABLE = "sensor"
CHAIN = "forward"
#: Before the usual filter chains (priority 0), so a drop here wins.
PRIORITY = -10

#: Where the table's lock file is: the service's RuntimeDirectory.
LOCK_DIR = "/run/sensor"

# libnftables output flags (include/nftables/libnftables.h).
_OUTPUT_JSON = 1 << 4

_T = {"family": FAMILY, "table": TABLE}


class NFT:
    """A libnftables context taking JSON commands (ctypes, in process)."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libnftables.so.1")
        except OSError as e:
            raise BackendError(
                f"nftables: cannot load libnftables.so.1 ({e}); install libnftables1"
            ) from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        # nft 1.0.6 parses JSON input only with JSON output set.
        lib.nft_ctx_output_set_flags(self.ctx, _OUTPUT_JSON)
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)
        self.lock = threading.Lock()

    def run(self, commands: list[dict[str, Any]]) -> dict[str, Any]:
        """Run one batch (atomic in the kernel); its JSON output, if any.

        Raises BackendError with nft's first error line on failure."""
        text = json.dumps({"nftables": commands}).encode()
        with self.lock:
            rc = self.lib.nft_run_cmd_from_buffer(self.ctx, text)
            out = self.lib.nft_ctx_get_output_buffer(self.ctx) or b""
            err = self.lib.nft_ctx_get_error_buffer(self.ctx) or b""
        if rc != 0:
            lines = [
                ln for ln in err.decode(errors="replace").splitlines() if "Error" in ln
            ]
            raise BackendError(f"nftables: {lines[0] if lines else 'batch failed'}")
        return json.loads(out) if out.strip() else {}

    def close(self) -> None:
        if self.ctx:
            self.lib.nft_ctx_free(self.ctx)
            self.ctx = None


def _ip(field: str, v: int) -> dict[str, Any]:
    return {"payload": {"protocol": "ip" if v == 4 else "ip6", "field": field}}


def _cat(*parts: Any) -> dict[str, Any]:
    return {"concat": list(parts)}


def _match(left: Any, right: str, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _rules() -> list[list[dict[str, Any]]]:
    """The chain's rules, as lists of JSON expressions."""
    rules = []
    drop = [{"counter": None}, {"drop": None}]
    for v in (4, 6):
        s, d = _ip("saddr", v), _ip("daddr", v)
        proto = {"meta": {"key": "l4proto"}}
        dport = {"payload": {"protocol": "th", "field": "dport"}}
        sport = {"payload": {"protocol": "th", "field": "sport"}}
        rules += [
            [_match(_cat(s, d), f"@pair{v}"), *drop],
            [_match(_cat(d, s), f"@pair{v}"), *drop],
            [_match(_cat(s, d, proto, dport), f"@svc{v}"), *drop],
            [_match(_cat(d, s, proto, sport), f"@svc{v}"), *drop],
            [_match(s, f"@quar{v}"), _match(d, f"@infra{v}", "!="), *drop],
            [_match(d, f"@quar{v}"), _match(s, f"@infra{v}", "!="), *drop],
            [_match(s, f"@enf{v}"), _match(_cat(s, d), f"@peers{v}", "!="), *drop],
            [_match(d, f"@enf{v}"), _match(_cat(d, s), f"@peers{v}", "!="), *drop],
        ]
    return rules


def _sets() -> dict[str, tuple[list[str] | str, list[str]]]:
    """Set name -> (type, flags)."""
    out: dict[str, tuple[list[str] | str, list[str]]] = {}
    for v in (4, 6):
        a = f"ipv{v}_addr"
        out[f"pair{v}"] = ([a, a], ["interval", "timeout"])
        out[f"svc{v}"] = ([a, a, "inet_proto", "inet_service"], ["interval", "timeout"])
        out[f"quar{v}"] = (a, ["timeout"])
        out[f"infra{v}"] = (a, ["interval"])
        out[f"enf{v}"] = (a, ["timeout"])
        out[f"peers{v}"] = ([a, a], ["interval", "timeout"])
    return out


def _net(text: str) -> tuple[int, Any]:
    """(version, JSON value) for an address or a network."""
    n = ipaddress.ip_network(text, strict=False)
    if n.prefixlen == n.max_prefixlen:
        return n.version, str(n.network_address)
    return n.version, {"prefix": {"addr": str(n.network_address), "len": n.prefixlen}}


def elements(intent: Intent) -> list[tuple[str, Any]]:
    """(set name, element value) for every element ``intent`` puts in force."""
    v = ipaddress.ip_address(intent.target).version
    out: list[tuple[str, Any]] = []
    if intent.action == "block":
        for net in intent.networks():
            nv, value = _net(net)
            if nv != v:
                continue  # an IPv4 device to an IPv6 destination cannot be
            if intent.port is not None:
                out.append(
                    (f"svc{v}", _cat(intent.target, value, intent.proto, intent.port))
                )
            else:
                out.append((f"pair{v}", _cat(intent.target, value)))
    elif intent.action == "quarantine":
        out.append((f"quar{v}", intent.target))
    elif intent.action == "enforce":
        out.append((f"enf{v}", intent.target))
        for peer in intent.allow:
            pv, value = _net(peer)
            if pv == v:
                out.append((f"peers{v}", _cat(intent.target, value)))
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class NFTables:
    """Blocks, enforcement and quarantine in the kernel's ``inet sensor`` table."""

    name = "nftables"
    actions = frozenset({"block", "enforce", "quarantine"})

    def __init__(
        self, quarantine_allow: Iterable[str] = (), nft: NFT | None = None
    ) -> None:
        self.nft = nft or NFT()
        self.quarantine_allow = list(quarantine_allow)
        #: (set, element key) -> expiry, for what we put in the kernel.
        self.elements: dict[tuple[str, str], float] = {}
        self.intents: dict[str, Intent] = {}
        #: Full rebuilds done (reconcile, lift, extend); the tests read it.
        self.rebuilds = 0

    def apply(self, intent: Intent, now: float) -> None:
        """Add the intent's elements with its remaining time as timeout; an
        element already there (an extension, a shared block) rebuilds."""
        self.intents[intent.id] = intent
        elems = elements(intent)
        if (
            any((s, _key(v)) in self.elements for s, v in elems)
            or not self.elements
            and self.rebuilds == 0
        ):
            self.reconcile(list(self.intents.values()), now)
            return
        batch = [
            {
                "add": {
                    "element": {
                        **_T,
                        "name": s,
                        "elem": [_elem(v, intent.expires - now)],
                    }
                }
            }
            for s, v in elems
        ]
        try:
            if batch:
                self.nft.run(batch)
        except BackendError as e:
            # The table may have been flushed under us: rebuild it whole.
            log.warning("%s; rebuilding the table", e)
            self.reconcile(list(self.intents.values()), now)
            return
        for s, v in elems:
            self.elements[(s, _key(v))] = intent.expires

    def remove(self, intent: Intent, now: float) -> None:
        """Lift the intent (others that share an element keep it)."""
        if self.intents.pop(intent.id, None) is not None:
            self.reconcile(list(self.intents.values()), now)

    def reconcile(self, intents: list[Intent], now: float) -> None:
        """Re-assert exactly ``intents`` in one atomic batch, timeouts refreshed."""
        self.intents = {
            i.id: i for i in intents if i.action in self.actions and i.expires > now
        }
        wanted: dict[tuple[str, str], tuple[Any, float]] = {}
        for intent in self.intents.values():
            for s, v in elements(intent):
                k = (s, _key(v))
                if k not in wanted or wanted[k][1] < intent.expires:
                    wanted[k] = (v, intent.expires)

        batch: list[dict[str, Any]] = [
            {"add": {"table": {"family": FAMILY, "name": TABLE}}},
            {
                "add": {
                    "chain": {
                        **_T,
                        "name": CHAIN,
                        "type": "filter",
                        "hook": "forward",
                        "prio": PRIORITY,
                        "policy": "accept",
                    }
                }
            },
        ]
        for name, (kind, flags) in _sets().items():
            batch.append(
                {"add": {"set": {**_T, "name": name, "type": kind, "flags": flags}}}
            )
            batch.append({"flush": {"set": {**_T, "name": name}}})
        batch.append({"flush": {"chain": {**_T, "name": CHAIN}}})
        batch += [
            {"add": {"rule": {**_T, "chain": CHAIN, "expr": r}}} for r in _rules()
        ]
        for net in self.quarantine_allow:
            v, value = _net(net)
            batch.append(
                {"add": {"element": {**_T, "name": f"infra{v}", "elem": [value]}}}
            )
        by_set: dict[str, list[Any]] = {}
        for (s, _), (v, expires) in wanted.items():
            by_set.setdefault(s, []).append(_elem(v, expires - now))
        for s, elems in by_set.items():
            batch.append({"add": {"element": {**_T, "name": s, "elem": elems}}})
        self.nft.run(batch)
        self.rebuilds += 1
        self.elements = {k: e for k, (_, e) in wanted.items()}

    def listed(self) -> dict[str, list[Any]]:
        """What the kernel holds now: set name -> element values (tests, API)."""
        out = self.nft.run([{"list": {"table": {"family": FAMILY, "name": TABLE}}}])
        sets: dict[str, list[Any]] = {}
        for item in out.get("nftables", []):
            if "set" in item:
                sets[item["set"]["name"]] = [
                    e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
                    for e in item["set"].get("elem", [])
                ]
        return sets

    def poll(self) -> list[dict[str, Any]]:
        return []

    def cleanup(self) -> None:
        """Remove the table and everything in it (``sensord --cleanup``)."""
        cleanup(self.nft)
        self.elements.clear()

    def close(self) -> None:
        """Release the context; the kernel keeps the blocks until they expire."""
        self.nft.close()


def _elem(value: Any, seconds: float) -> dict[str, Any]:
    # The JSON API takes whole seconds; round up so a block never ends early.
    return {"elem": {"val": value, "timeout": max(1, math.ceil(seconds))}}


class NoPermission(BackendError):
    """nftables refused for want of CAP_NET_ADMIN (sensord exits 77)."""


#: Capability number of CAP_NET_ADMIN (linux/capability.h).
CAP_NET_ADMIN = 12


def _has_net_admin() -> bool:
    # libnftables prints its own "you must be root" line on stderr when the
    # kernel refuses; asking first keeps sensord's message the only one.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True  # unknown: let the kernel decide


def cleanup(nft: NFT | None = None) -> bool:
    """Delete the ``inet sensor`` table; False when there was none.

    Raises :class:`NoPermission` without CAP_NET_ADMIN, BackendError when
    the table is there but cannot be removed: a table left in place is
    never reported as absent."""
    what = f"cannot remove table {FAMILY} {TABLE}"
    if not _has_net_admin():
        raise NoPermission(f"{what}: permission denied (needs CAP_NET_ADMIN)")
    nft = nft or NFT()
    try:
        nft.run([{"delete": {"table": {"family": FAMILY, "name": TABLE}}}])
    except BackendError as e:
        if "No such file or directory" in str(e):
            return False
        if "Operation not permitted" in str(e):
            raise NoPermission(
                f"{what}: permission denied (needs CAP_NET_ADMIN)"
            ) from None
        raise BackendError(f"{what}: {e}") from None
    return True


def table_lock() -> LockFile:
    """The lock of this network namespace's ``inet sensor`` table (not
    taken). The file is named after the namespace's inode, as ``ip netns
    identify`` tells namespaces apart, so that daemons in different
    namespaces (tests, containers) each own their own table."""
    netns = os.stat("/proc/self/ns/net").st_ino
    path = os.path.join(LOCK_DIR, f"nftables-{netns}.lock")
    return LockFile(path, f"table {FAMILY} {TABLE}")


def own_table() -> LockFile:
    """Take the table's lock for this process; :class:`sensor.lockfile.InUse`
    when another process has it, OSError when the lock cannot be made."""
    lock = table_lock()
    os.makedirs(LOCK_DIR, mode=0o755, exist_ok=True)
    lock.acquire()
    return lock


def table_owner() -> int | None:
    """The pid of the process that owns this namespace's table (0 when
    unknown), or None when no process does."""
    return holder(table_lock().path)
