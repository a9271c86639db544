"""An encrypted SMB3 session through the whole engine: conn.log says smb,
weird.log says SMB_encrypted once with the session id, nothing else is
read out of the encrypted messages."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.proto.parsers import smb2 as p
from tests.capture.builders import pcap_header, pcap_record
from tests.proto.builders import nbss, smb2
from tests.proto.test_winrm import frame

SESSION = 0x0000400000000009


def transform(body: bytes, session: int = SESSION) -> bytes:
    """An SMB3 TRANSFORM_HEADER ([MS-SMB2] 2.2.41) over ``body`` (which
    stands for the ciphertext: random bytes, as AES would give)."""
    head = p.TRANSFORM_MAGIC + os.urandom(16) + os.urandom(11) + bytes(5)
    head += struct.pack("<IHHQ", len(body), 0, 1, session)
    return head + body


def conversation(path: Path, talk: list[tuple[bool, bytes]]) -> list[tuple[str, Any]]:
    """Write a TCP connection 10.0.0.5:50000 -> 10.0.0.1:445 carrying
    ``talk`` (client?, payload) to ``path`` and replay it."""
    cli, srv = [1000], [9000]
    pkts = [
        frame(5, 1, 50000, 445, cli[0], 0, 0x02, b""),
        frame(1, 5, 445, 50000, srv[0], cli[0] + 1, 0x12, b""),
        frame(5, 1, 50000, 445, cli[0] + 1, srv[0] + 1, 0x10, b""),
    ]
    cli[0] += 1
    srv[0] += 1
    for from_client, data in talk:
        if from_client:
            pkts.append(frame(5, 1, 50000, 445, cli[0], srv[0], 0x18, data))
            cli[0] += len(data)
        else:
            pkts.append(frame(1, 5, 445, 50000, srv[0], cli[0], 0x18, data))
            srv[0] += len(data)
    pkts += [
        frame(5, 1, 50000, 445, cli[0], srv[0], 0x11, b""),
        frame(1, 5, 445, 50000, srv[0], cli[0] + 1, 0x11, b""),
        frame(5, 1, 50000, 445, cli[0] + 1, srv[0] + 1, 0x10, b""),
    ]
    path.write_bytes(
        pcap_header()
        + b"".join(pcap_record(100 + i, 0, pkt) for i, pkt in enumerate(pkts))
    )
    engine = Engine()
    out: list[tuple[str, Any]] = []
    for batch in merge([CaptureFile(str(path))]):
        out += engine.process(batch)
    return out + engine.flush()


def test_encrypted_session_is_logged_as_such(tmp_path: Path) -> None:
    # Negotiate and session setup are in the clear; then every message,
    # the tree connect to a share included, is under a transform header.
    talk = [
        (True, nbss(smb2(0x00, bytes(36)))),  # NEGOTIATE
        (False, nbss(smb2(0x00, bytes(64), response=True))),
        (True, nbss(transform(os.urandom(120)))),  # TREE_CONNECT, sealed
        (False, nbss(transform(os.urandom(80)))),
        (True, nbss(transform(os.urandom(300)))),
        (False, nbss(transform(os.urandom(900)))),
    ]
    out = conversation(tmp_path / "smb3.pcap", talk)
    (conn,) = [r for n, r in out if n == "conn"]
    assert conn["service"] == "smb"
    weird = [r for n, r in out if n == "weird"]
    assert [(w["uid"], w["name"], w["addl"]) for w in weird] == [
        (conn["uid"], "SMB_encrypted", "session 0x0000400000000009")
    ]
    assert weird[0]["ts"] == 105.0  # the first sealed message (packet 6)
    assert not [n for n, _ in out if n in ("smb_mapping", "smb_files", "files")]


def test_plain_session_has_no_such_weird(tmp_path: Path) -> None:
    talk = [
        (True, nbss(smb2(0x00, bytes(36)))),
        (False, nbss(smb2(0x00, bytes(64), response=True))),
        (True, nbss(smb2(0x01, bytes(24)))),  # SESSION_SETUP
        (False, nbss(smb2(0x01, bytes(8), response=True))),
    ]
    out = conversation(tmp_path / "smb2.pcap", talk)
    assert [r["service"] for n, r in out if n == "conn"] == ["smb"]
    assert [r for n, r in out if n == "weird"] == []


def test_short_transform_header_is_counted_without_a_session() -> None:
    assert p.transform_session(transform(b"x")) == SESSION
    assert p.transform_session(transform(b"x")[:51]) is None
    assert p.transform_session(b"\xfeSMB" + bytes(60)) is None
