"""Every shared capture reads to the end, agreeing with capinfos and across readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.capture.builders import assert_batches_equal, shared_captures
from tests.capture.conftest import CapInfo
from tests.conftest import PCAPS

CAPTURES = shared_captures()
IDS = [str(p.relative_to(PCAPS)) for p in CAPTURES]

# Captures known to hold records longer than their file's snaplen; the
# readers keep such records and report them once.
OVER_SNAPLEN = {"zeek/traces/trunc__trunc-hdr.pcap"}


def test_shared_captures_were_found() -> None:
    # The catalog lists 113 captures; fewer means the shared folder moved.
    assert len(CAPTURES) >= 100
    assert any(p.suffix == ".pcapng" for p in CAPTURES)


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_reads_to_the_end_like_capinfos(
    reader: Any, path: Path, capinfos: dict[Path, CapInfo]
) -> None:
    expected = capinfos[path]
    capture = reader(path)
    batches = list(capture)

    assert capture.packets == sum(len(b) for b in batches) == expected.packets
    assert capture.bytes == sum(len(b.data) for b in batches)
    assert sum(int(b.wirelens.sum()) for b in batches) == expected.wire_bytes
    name = str(path.relative_to(PCAPS))
    if name in OVER_SNAPLEN:
        assert len(capture.problems) == 1 and "> snaplen" in capture.problems[0]
    else:
        assert capture.problems == []

    # Batch invariants: packets back to back, arrays of the documented types.
    for b in batches:
        assert 0 < len(b) <= 4096
        assert b.offsets.dtype == np.int64 and b.ts.dtype == np.int64
        assert b.caplens.dtype == np.uint32 and b.wirelens.dtype == np.uint32
        assert b.linktypes.dtype == np.uint16
        assert b.offsets[0] == 0
        assert np.array_equal(b.offsets[1:], (b.offsets + b.caplens)[:-1])
        assert int(b.offsets[-1]) + int(b.caplens[-1]) == len(b.data)

    # capinfos prints times at the file's precision (6 or 9 digits).
    ts = np.concatenate([b.ts for b in batches])
    step = 10 ** (9 - expected.digits)
    assert int(ts.min()) // step * step == expected.first_ns
    assert int(ts.max()) // step * step == expected.last_ns


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_both_readers_give_identical_batches(both: tuple[Any, Any], path: Path) -> None:
    compiled, python = both
    for size in (4096, 97):
        a, b = compiled(path, batch_size=size), python(path, batch_size=size)
        assert_batches_equal(list(a), list(b))
        assert (a.packets, a.bytes, a.problems) == (b.packets, b.bytes, b.problems)


def test_link_types_of_shared_captures(reader: Any) -> None:
    # Linux cooked capture v1 (113) and BSD loopback (LINKTYPE_NULL, 0: the
    # catalog says this one was made with DLT_NULL).
    cooked = reader(PCAPS / "suricata/output-multi-eve/input.pcap")
    loopback = reader(PCAPS / "suricata/smtp-url-base64/smtp-url-b64.pcap")
    assert {int(t) for b in cooked for t in b.linktypes} == {113}
    assert {int(t) for b in loopback for t in b.linktypes} == {0}
