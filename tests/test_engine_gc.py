"""The engine leaves no reference cycles behind a finished connection.

Reference counting then frees a connection's analyzer state the moment it
ends, and the cyclic collector, which the engine makes rare (see
``sensor.engine.tune_gc``), has nothing to find. Checked with the
collector's own bookkeeping: every object it would free goes to
``gc.garbage`` instead (``DEBUG_SAVEALL``).
"""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzers.dhcp import DHCPAnalyzer
from sensor.proto.analyzers.dns import DNSAnalyzer
from sensor.proto.analyzers.http import HTTPAnalyzer
from sensor.proto.analyzers.smtp import SMTPAnalyzer
from sensor.proto.analyzers.ssh import SSHAnalyzer
from sensor.proto.analyzers.tls import TLSAnalyzer
from sensor.proto.dispatch import Dispatcher

ANALYZERS = (
    HTTPAnalyzer,
    DNSAnalyzer,
    SMTPAnalyzer,
    SSHAnalyzer,
    DHCPAnalyzer,
    TLSAnalyzer,
)

# HTTP with files and gzip, TLS with certificates, SMTP with attachments
# and STARTTLS, DNS over UDP and TCP, SSH.
CAPTURES = [
    "zeek/traces/wikipedia.pcap",
    "zeek/traces/http__get.pcap",
    "zeek/traces/tls__tls1.2.pcap",
    "zeek/traces/smtp.pcap",
    "suricata/smtp-url-base64/smtp-url-b64.pcap",
    "zeek/traces/ssh__ssh.pcap",
]


def garbage_after(paths: list[Path]) -> Counter[str]:
    """Replay ``paths`` through one engine; the types of the cyclic garbage.

    The engine itself stays alive (its hooks into the connection table are
    cycles of its own, made once per process).
    """
    engine = Engine()
    engine.analyzers = Dispatcher(ANALYZERS)
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for path in paths:
            records = []
            for batch in merge([CaptureFile(str(path))]):
                records += engine.process(batch)
            records += engine.flush()
            assert records, path
            del records
        gc.collect()
        return Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()


def test_finished_connections_leave_no_cycles(pcaps: Path) -> None:
    paths = [pcaps / name for name in CAPTURES if (pcaps / name).exists()]
    if len(paths) < len(CAPTURES):
        pytest.fail(f"expected captures missing under {pcaps}")
    assert garbage_after(paths) == Counter()
