"""advance(): network time moves on without packets, so idle connections end."""

from __future__ import annotations

import importlib

import pytest

from tests.flow.craft import batch, eth, ipv4, udp

SEC = 1_000_000_000


def table_module(impl: str):  # type: ignore[no-untyped-def]
    return importlib.import_module("sensor._ext.flow" if impl == "compiled" else "sensor.flow.table")


def test_idle_udp_connection_ends_on_advance(impl: str) -> None:
    flow = table_module(impl)
    table = flow.ConnTable(None)
    start = 1_700_000_000 * SEC
    frame = eth(ipv4("192.0.2.1", "192.0.2.2", 17, udp(5000, 9999, b"x")))

    assert table.process(batch([(start / SEC, frame)])).conns == []
    assert table.advance(start + 30 * SEC).conns == []  # udp inactivity is 60 s
    ended = table.advance(start + 61 * SEC).conns

    assert len(ended) == 1
    assert ended[0]["id.orig_h"] == "192.0.2.1" and ended[0]["id.resp_p"] == 9999
    assert table.stats()["conns_open"] == 0
    assert table.advance(start).conns == []  # time never goes back
    assert table.flush().conns == []
