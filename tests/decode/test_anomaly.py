"""Every anomaly name the decoders and the table emit is documented."""

from __future__ import annotations

import re

from sensor.decode.anomaly import ANOMALIES, is_known
from tests.conftest import ROOT

# String literals handed to the places that emit a name, and the names the
# DNS violation check returns.
_EMIT = re.compile(
    r'(?:_weird\(conn, |conn\.weird\(|_anomaly\(|anomaly = |anomaly or |return b"", )"(\w+)"'
)
_DNS = re.compile(r'return "(DNS_\w+)"')


def test_every_emitted_name_is_documented() -> None:
    sources = [*ROOT.glob("sensor/decode/*.py"), *ROOT.glob("sensor/flow/*.py")]
    used = {
        m
        for path in sources
        for pattern in (_EMIT, _DNS)
        for m in pattern.findall(path.read_text())
    }
    assert len(used) > 20
    assert sorted(u for u in used if not is_known(u)) == []


def test_every_name_has_a_meaning() -> None:
    for name, meaning in ANOMALIES.items():
        assert re.fullmatch(r"\w+", name)
        assert len(meaning) > 20, name
