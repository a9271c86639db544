"""kerberos.log against Zeek's on every shared capture that has one.

Records are paired by connection 4-tuple (uids differ between the two
tools) and then in time order. Only Zeek's records on port 88 count: its
AP records come from Kerberos inside SMB and DCE-RPC authentication,
which this analyzer does not follow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.analyzers.kerberos import KerberosAnalyzer
from sensor.proto.dispatch import Dispatcher
from tests.conftest import PCAPS, ROOT

ZEEK = PCAPS / "zeek-logs"
FIELDS = (
    "request_type", "client", "service", "success", "error_msg", "from",
    "till", "cipher", "forwardable", "renewable",
)  # fmt: skip
SCHEMA = json.loads((ROOT / "sensor/output/schemas/kerberos.schema.json").read_text())


def replay(capture: Path) -> list[dict[str, Any]]:
    engine = Engine()
    engine.analyzers = Dispatcher((KerberosAnalyzer,))
    out = []
    for batch in merge([CaptureFile(str(capture))]):
        out += [r for n, r in engine.process(batch) if n == "kerberos"]
    out += [r for n, r in engine.flush() if n == "kerberos"]
    return out


def key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])


def test_agreement_with_zeek_on_every_capture() -> None:
    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.FormatChecker()
    )
    total = equal = 0
    for zlog in sorted(ZEEK.glob("**/kerberos.log")):
        capture = PCAPS / zlog.parent.relative_to(ZEEK)
        ours = replay(capture)
        for rec in ours:
            errors = list(validator.iter_errors(rec))
            assert not errors, f"{capture.name}: {errors[0].message}"
        pending: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for rec in sorted(ours, key=lambda r: r["ts"]):
            pending.setdefault(key(rec), []).append(rec)
        lines = zlog.read_text().splitlines()
        zeek = [json.loads(x) for x in lines if x and not x.startswith("#")]
        zeek = [r for r in zeek if r["id.resp_p"] == 88]
        for z in zeek:
            got = pending.get(key(z)) or [{}]
            o = got.pop(0)
            same = all(o.get(f) == z.get(f) for f in FIELDS)
            assert same and abs(o["ts"] - z["ts"]) < 1e-5, (capture.name, z, o)
            equal += 1
        total += len(zeek)
        leftover = [r for v in pending.values() for r in v]
        assert not leftover, f"{capture.name}: records Zeek did not write: {leftover}"
    # Measured: 105 of 105 of Zeek's port-88 records equal in every field.
    assert total == 105 and equal == total


def test_overpass_the_hash_shows_rc4_first() -> None:
    """The overpass-the-hash AS-REQ asks for no AES type, RC4 first."""
    (rec,) = replay(PCAPS / "attacks/lateral/elcabezzonn_overpass-the-hash.pcap")
    assert rec["client"] == "chewbacca/picklesworth.local"
    assert rec["service"] == "krbtgt/PICKLESWORTH.LOCAL"
    assert rec["req_ciphers"][2:4] == ["rc4-hmac", "rc4-hmac-old"]
    assert not any(c.startswith("aes") for c in rec["req_ciphers"])
    assert rec["cipher"] == "aes256-cts-hmac-sha1-96" and rec["success"] is True


def test_rubeus_kerberoast_capture_holds_no_kerberos() -> None:
    """The shared Rubeus capture holds only its LDAP SPN search (port 389)."""
    path = PCAPS / "attacks/lateral/elcabezzonn_rubeus_kerberoast.pcap"
    assert replay(path) == []
