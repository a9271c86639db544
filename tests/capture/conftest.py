"""Fixtures for the capture tests: both readers, and capinfos' view of the captures."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.capture.builders import shared_captures

IMPLEMENTATIONS = {"compiled": "sensor._ext.pcap", "python": "sensor.capture.pcapfile"}


def load_reader(name: str) -> Any:
    """The CaptureFile class of one implementation; skip (fail in CI) if not built."""
    try:
        return importlib.import_module(IMPLEMENTATIONS[name]).CaptureFile
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"compiled capture reader not built: {e}")
        pytest.skip(f"compiled capture reader not built: {e}")


@pytest.fixture(params=list(IMPLEMENTATIONS))
def reader(request: pytest.FixtureRequest) -> Any:
    """``CaptureFile`` of the compiled reader, then of the pure-Python twin."""
    return load_reader(request.param)


@pytest.fixture()
def both() -> tuple[Any, Any]:
    """Both readers at once, (compiled, python), for differential tests."""
    return load_reader("compiled"), load_reader("python")


class CapInfo(NamedTuple):
    """What capinfos says about one capture."""

    packets: int
    #: Sum of the packets' lengths on the wire.
    wire_bytes: int
    #: Earliest and latest packet time, ns, at the precision capinfos prints.
    first_ns: int | None
    last_ns: int | None
    #: Digits after the decimal point that capinfos printed (6 or 9).
    digits: int


@pytest.fixture(scope="session")
def capinfos() -> dict[Path, CapInfo]:
    """``capinfos -c -M -d -a -e -S`` over every shared capture, in one run."""
    paths = shared_captures()
    if not paths:
        pytest.fail("no shared captures found; set SENSOR_SHARED")
    if shutil.which("capinfos") is None:
        if os.environ.get("CI"):
            pytest.fail("capinfos (wireshark-common) is not installed")
        pytest.skip("capinfos (wireshark-common) is not installed")
    out = subprocess.run(
        ["capinfos", "-c", "-M", "-d", "-a", "-e", "-S", "-T", "-r", *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    table = {}
    for line in out.splitlines():
        name, count, size, first, last = line.split("\t")
        digits = len(first.partition(".")[2])
        table[Path(name)] = CapInfo(
            int(count),
            int(size),
            _ns(first),
            _ns(last),
            digits if first != "n/a" else 0,
        )
    return table


def _ns(seconds: str) -> int | None:
    return None if seconds == "n/a" else int(Decimal(seconds) * 1_000_000_000)
