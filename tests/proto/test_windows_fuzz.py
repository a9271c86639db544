"""Mutation fuzzing of the Windows analyzers, seeded with real traffic.

Random bytes rarely get past an SMB or DCE-RPC header, so each analyzer is
also fed what it really received on the shared captures (recorded through
the engine: whole sessions, with NTLM, Kerberos AP, SPNEGO and DCE-RPC
over named pipes inside SMB), with bytes overwritten by extreme values,
lengths broken, spans cut out or repeated, and the stream re-chunked.
Every call must return: no exception, whatever the input.

150 examples per analyzer; ``SENSOR_FUZZ=deep`` (``make deep-fuzz``) runs
5,000, ``SENSOR_FUZZ_EXAMPLES=N`` N.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzer import Analyzer, ConnInfo
from sensor.proto.analyzers.dcerpc import DCERPCAnalyzer
from sensor.proto.analyzers.kerberos import KerberosAnalyzer
from sensor.proto.analyzers.ldap import LDAPAnalyzer
from sensor.proto.analyzers.smb import SMBAnalyzer
from sensor.proto.dispatch import Dispatcher
from tests.conftest import PCAPS

EXAMPLES = int(
    os.environ.get("SENSOR_FUZZ_EXAMPLES")
    or (5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 150)
)
#: Chunks kept per recorded connection (the start of a session holds the
#: negotiation, authentication and binds: the parsers' deepest paths).
MAX_CHUNKS = 24

L = "attacks/lateral/"
SEEDS: dict[type[Analyzer], list[str]] = {
    SMBAnalyzer: [
        L + "401trg_20171220_smb_psexec_add_user.pcap",  # SMB2, Kerberos, svcctl pipe
        L + "pcapattack_Discovery_dcerp_srvsvc_NetShareEnum.pcapng",  # NTLM, srvsvc
        L + "eternalsafety_doublepulsar-backdoor-connect-win7.pcap",  # SMB1
    ],
    DCERPCAnalyzer: [
        L + "elcabezzonn_invoke-wmiexec.pcap",  # DCOM, WMI, NTLM verifiers
        L + "elcabezzonn_poshc2_jscript_dcom.pcap",  # Kerberos verifiers
    ],
    KerberosAnalyzer: [
        L + "elcabezzonn_overpass-the-hash.pcap",
        "benign/winlab_2016-08-15_2009_macgyver.pcapng",
    ],
    LDAPAnalyzer: [L + "elcabezzonn_rubeus_kerberoast.pcap"],
}

Stream = tuple[str, tuple[tuple[bool, bytes], ...]]


@lru_cache(maxsize=None)
def recorded(cls: type[Analyzer]) -> tuple[Stream, ...]:
    """(proto, chunks) of every connection ``cls`` read on its seed captures."""
    streams: list[list[tuple[bool, bytes]]] = []
    protos: list[str] = []

    class Recorder(cls):  # type: ignore[misc, valid-type]
        def __init__(self, conn: ConnInfo, emit: Any) -> None:
            super().__init__(conn, emit)
            self._chunks: list[tuple[bool, bytes]] = []
            streams.append(self._chunks)
            protos.append(conn.proto)

        def data(self, is_orig: bool, ts: float, data: bytes) -> None:
            if len(self._chunks) < MAX_CHUNKS:
                self._chunks.append((is_orig, bytes(data)))
            super().data(is_orig, ts, data)

    for capture in SEEDS[cls]:
        engine = Engine()
        engine.analyzers = Dispatcher((Recorder,))
        for batch in merge([CaptureFile(str(PCAPS / capture))]):
            engine.process(batch)
        engine.flush()
    out = tuple((p, tuple(s)) for p, s in zip(protos, streams) if s)
    assert out, f"{cls.__name__}: its seed captures gave it nothing to read"
    return out


EXTREMES = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00\x00\x80",
            b"\xff\xff\xff\xff", b"\x30\x84\xff\xff\xff\xff"]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, cls: type[Analyzer]) -> tuple[str, list[tuple[bool, bytes]]]:
    """One recorded connection with a few mutations, re-chunked."""
    streams = recorded(cls)
    proto, chunks = streams[draw(st.integers(0, len(streams) - 1))]
    out = [(o, bytearray(c)) for o, c in chunks]
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(out) - 1))
        buf = out[i][1]
        if not buf:
            continue
        at = draw(st.integers(0, len(buf) - 1))
        kind = draw(st.sampled_from(["set", "flip", "cut", "repeat", "truncate"]))
        if kind == "set":
            buf[at : at + 4] = draw(st.sampled_from(EXTREMES))
        elif kind == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del buf[at : at + draw(st.integers(1, 64))]
        elif kind == "repeat":
            buf[at:at] = buf[at : at + draw(st.integers(1, 64))]
        else:
            del buf[at:]
    if proto == "udp":  # datagrams stay whole
        return proto, [(o, bytes(b)) for o, b in out]
    # TCP: the same bytes per direction, cut at other places.
    rechunked: list[tuple[bool, bytes]] = []
    for o, b in out:
        step = draw(st.sampled_from([0, 1, 7, 100]))
        if step == 0:
            rechunked.append((o, bytes(b)))
        else:
            rechunked += [(o, bytes(b[k : k + step])) for k in range(0, len(b), step)]
    return proto, rechunked


def feed(cls: type[Analyzer], proto: str, chunks: list[tuple[bool, bytes]]) -> None:
    conn = ConnInfo("CFZ", proto, "192.0.2.10", 49700, "192.0.2.1", 445)
    a = cls(conn, lambda name, rec: None)
    for i, (is_orig, data) in enumerate(chunks):
        a.data(is_orig, 1.0 + i, data)
    a.end(1000.0)


@pytest.mark.parametrize("cls", list(SEEDS), ids=lambda c: c.__name__)
def test_recorded_sessions_replay_cleanly(cls: type[Analyzer]) -> None:
    """The seeds themselves, fed outside the engine, as the fuzzer feeds them."""
    for proto, chunks in recorded(cls):
        feed(cls, proto, list(chunks))


def _fuzz(cls: type[Analyzer]) -> Any:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(cls))
    def run(case: tuple[str, list[tuple[bool, bytes]]]) -> None:
        feed(cls, *case)

    return run


@pytest.mark.parametrize("cls", list(SEEDS), ids=lambda c: c.__name__)
def test_mutated_sessions_never_raise(cls: type[Analyzer]) -> None:
    _fuzz(cls)()
