"""Small crafted records for model tests (documentation addresses outside)."""

from __future__ import annotations

from typing import Any

T0 = 1_700_000_000.0  # Tuesday 2023-11-14 22:13:20 UTC


def conn(
    ts: float,
    orig: str,
    resp: str,
    port: int,
    *,
    proto: str = "tcp",
    service: str | None = None,
    orig_mac: str | None = None,
    resp_mac: str | None = None,
    orig_bytes: int = 100,
    resp_bytes: int = 1000,
    state: str = "SF",
    uid: str = "C1",
) -> dict[str, Any]:
    """A conn.log record as the engine writes it."""
    r: dict[str, Any] = {
        "ts": ts,
        "uid": uid,
        "id.orig_h": orig,
        "id.orig_p": 50000,
        "id.resp_h": resp,
        "id.resp_p": port,
        "proto": proto,
        "orig_bytes": orig_bytes,
        "resp_bytes": resp_bytes,
        "conn_state": state,
        "orig_pkts": 3,
        "resp_pkts": 0 if state in ("S0",) else 3,
    }
    if service:
        r["service"] = service
    if orig_mac:
        r["orig_l2_addr"] = orig_mac
    if resp_mac:
        r["resp_l2_addr"] = resp_mac
    return r
