"""UidSample keeps the first and the latest uids, nothing more."""

from __future__ import annotations

from sensor.detect.evidence import UidSample


def test_first_and_latest_ten() -> None:
    s = UidSample()
    for i in range(1000):
        s.add(f"C{i}")
        s.add(f"C{i}")  # the same connection twice in a row counts once
    assert s.uids() == [f"C{i}" for i in range(10)] + [
        f"C{i}" for i in range(990, 1000)
    ]
    assert len(s.first) == 10 and len(s.last) == 10


def test_short_and_junk() -> None:
    s = UidSample(half=2)
    for uid in ("C1", None, "", 7, "C1", "C2", "C3"):
        s.add(uid)
    assert s.uids() == ["C1", "C2", "C3"]
