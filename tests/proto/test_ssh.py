"""SSH parser and analyzer: handshake, host key, hassh, auth heuristic, fuzzing."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers import ssh as ssh_mod
from sensor.proto.analyzers.ssh import SSHAnalyzer, find_alg, session_version
from sensor.proto.parsers import ssh as p

EXAMPLES = 3000 if os.environ.get("SENSOR_FUZZ") == "deep" else 100
ROOT = Path(__file__).resolve().parents[2]
CHECK = {
    log: jsonschema.Draft202012Validator(
        json.loads((ROOT / f"sensor/output/schemas/{log}.schema.json").read_text()),
        format_checker=jsonschema.FormatChecker(),
    )
    for log in ("ssh", "weird")
}
CONN = ConnInfo("Cssh1", "tcp", "192.168.1.5", 50000, "203.0.113.9", 22)


def string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def packet(msg_type: int, payload: bytes) -> bytes:
    body = bytes([msg_type]) + payload
    pad = 8 - (len(body) + 5) % 8 + 4
    return struct.pack(">IB", len(body) + pad + 1, pad) + body + bytes(pad)


def kexinit(kex: bytes, hostkey: bytes, enc: bytes, mac: bytes, comp: bytes) -> bytes:
    lists = [kex, hostkey, enc, enc, mac, mac, comp, comp, b"", b""]
    return packet(20, bytes(16) + b"".join(map(string, lists)) + b"\x00" + bytes(4))


CLIENT_KEX = kexinit(
    b"curve25519-sha256,ecdh-sha2-nistp256",
    b"ssh-ed25519,rsa-sha2-512",
    b"aes128-ctr,chacha20-poly1305@openssh.com",
    b"hmac-sha2-256",
    b"none,zlib@openssh.com",
)
SERVER_KEX = kexinit(
    b"ecdh-sha2-nistp256,curve25519-sha256",
    b"rsa-sha2-512,ssh-ed25519",
    b"chacha20-poly1305@openssh.com,aes128-ctr",
    b"hmac-sha2-256",
    b"none",
)
HOST_KEY = string(b"ssh-ed25519") + string(bytes(range(32)))
ECDH_REPLY = packet(31, string(HOST_KEY) + string(b"Q" * 32) + string(b"sig"))
NEWKEYS = packet(21, b"")


def run(
    segments: list[tuple[bool, bytes | int]], conn: ConnInfo = CONN
) -> list[dict[str, Any]]:
    """Feed segments (bytes, or an int for that many encrypted bytes)."""
    out: list[tuple[str, dict[str, Any]]] = []
    a = SSHAnalyzer(conn, lambda log, rec: out.append((log, rec)))
    for i, (is_orig, seg) in enumerate(segments):
        a.data(is_orig, 10.0 + i, bytes(seg) if isinstance(seg, int) else seg)
    a.end(99.0)
    for log, rec in out:
        assert not [e.message for e in CHECK[log].iter_errors(rec)], rec
    return [rec for log, rec in out if log == "ssh"]


HANDSHAKE: list[tuple[bool, bytes | int]] = [
    (False, b"SSH-2.0-OpenSSH_9.6\r\n"),
    (True, b"SSH-2.0-OpenSSH_9.0\r\n" + CLIENT_KEX),
    (False, SERVER_KEX),
    (True, packet(30, string(b"C" * 32))),
    (False, ECDH_REPLY + NEWKEYS),
    (True, NEWKEYS + bytes(44)),  # NEWKEYS then SERVICE_REQUEST
]


def test_handshake_fields() -> None:
    (rec,) = run(HANDSHAKE)
    assert rec["ts"] == 10.0 and rec["version"] == 2
    assert (
        rec["client"] == "SSH-2.0-OpenSSH_9.0"
        and rec["server"] == "SSH-2.0-OpenSSH_9.6"
    )
    assert rec["kex_alg"] == "curve25519-sha256"
    assert rec["host_key_alg"] == "ssh-ed25519"
    assert rec["cipher_alg"] == "aes128-ctr" and rec["compression_alg"] == "none"
    assert rec["host_key"] == ":".join(
        f"{b:02x}" for b in hashlib.md5(HOST_KEY).digest()
    )
    assert (
        rec["host_key_fingerprint"].startswith("SHA256:")
        and len(rec["host_key_fingerprint"]) == 39
    )
    algs = "curve25519-sha256,ecdh-sha2-nistp256;aes128-ctr,chacha20-poly1305@openssh.com;hmac-sha2-256;none,zlib@openssh.com"
    assert rec["hasshAlgorithms"] == algs
    assert rec["hassh"] == hashlib.md5(algs.encode()).hexdigest()
    assert rec["direction"] == "OUTBOUND"
    assert rec["auth_attempts"] == 0 and "auth_success" not in rec


def test_failures_then_success() -> None:
    # SERVICE_ACCEPT 52 bytes, then two failures of 68, then a success of 36.
    segs = HANDSHAKE + [
        (False, 52),
        (True, 100),
        (False, 68),
        (True, 100),
        (False, 68),
        (True, 100),
        (False, 36),
    ]
    (rec,) = run(segs)
    assert rec["auth_success"] is True and rec["auth_attempts"] == 2


def test_failures_only() -> None:
    segs = HANDSHAKE + [
        (False, 52),
        (True, 100),
        (False, 68),
        (True, 100),
        (False, 68),
        (False, 68),
    ]
    (rec,) = run(segs)
    assert rec["auth_success"] is False and rec["auth_attempts"] == 2


def test_none_auth_success() -> None:
    (rec,) = run(HANDSHAKE + [(False, 52), (False, 36)])
    assert rec["auth_success"] is True and rec["auth_attempts"] == 1


def test_split_at_every_byte_gives_the_same_algorithms() -> None:
    want = run(HANDSHAKE)[0]
    stream = b"".join(s for o, s in HANDSHAKE[:3] if isinstance(s, bytes) and not o)
    for cut in range(0, len(stream), 7):
        segs = [(False, stream[:cut]), (False, stream[cut:])] + [
            s for s in HANDSHAKE if s[0]
        ]
        (rec,) = run(segs)
        assert (
            rec["server"] == want["server"]
            and rec["hasshServer"] == want["hasshServer"]
        )


def test_off_port_22_needs_both_banners() -> None:
    other = ConnInfo("Cssh2", "tcp", "10.0.0.1", 40000, "10.0.0.2", 902)
    assert SSHAnalyzer.sniff(other, False, b"SSH-2.0-x\r\n")
    assert run([(False, b"SSH-2.0-OpenSSH_9.6\r\n"), (True, b"hello\r\n")], other) == []
    assert len(run(HANDSHAKE, other)) == 1


def test_gap_stops_analysis() -> None:
    out: list[dict[str, Any]] = []
    a = SSHAnalyzer(CONN, lambda log, rec: out.append(rec))
    a.data(False, 1.0, b"SSH-2.0-OpenSSH_9.6\r\n")
    a.gap(True, 1.5, 10)
    a.data(True, 1.0, b"SSH-2.0-OpenSSH_9.0\r\n")
    a.end(2.0)
    assert (out[0]["name"], out[0]["ts"], out[0]["source"]) == (
        "SSH_content_gap",
        1.5,
        "SSH",
    )
    out.pop(0)
    assert out[0]["server"] == "SSH-2.0-OpenSSH_9.6" and "client" not in out[0]
    assert a.counters == {"SSH_content_gap": 1}


def test_hostile_lengths_are_named() -> None:
    assert p.next_packet(b"\xff\xff\xff\xff\x04\x14") == "SSH_packet_length_invalid"
    assert (
        p.next_packet(b"\x00\x00\x00\x08\x09\x14" + bytes(8))
        == "SSH_padding_length_invalid"
    )
    assert p.next_packet(b"\x00\x00\x00\x08") == 6
    assert p.next_packet(b"\x00\x00\x00\x08\x04\x14") == 12
    lying = bytes(16) + struct.pack(">I", 1 << 30) + b"kex"
    assert p.parse_kexinit(lying) == "SSH_string_truncated"
    assert p.host_key_of(b"\x00\x00") == "SSH_string_truncated"


def test_kexinit_truncated_at_every_field() -> None:
    payload = CLIENT_KEX[6:]
    for end in range(len(payload)):
        got = p.parse_kexinit(payload[:end])
        assert got == "SSH_string_truncated" or isinstance(got, p.KEXInit)


def test_version_rules() -> None:
    assert session_version("SSH-2.0-a", "SSH-1.99-b") == 2
    assert session_version("SSH-1.5-a", "SSH-1.99-b") == 1
    assert session_version("SSH-1.5-a", "SSH-2.0-b") == 0
    assert session_version("SSH-2.0-a", "") is None
    assert find_alg(["a", "b"], ["c"]) == "Algorithm negotiation failed"


def test_endless_version_line_is_bounded() -> None:
    out: list[dict[str, Any]] = []
    a = SSHAnalyzer(CONN, lambda log, rec: out.append(rec))
    for _ in range(10):
        a.data(True, 1.0, b"S" * 1000)
    assert len(a._buf[True]) == 0 and a.counters == {"SSH_version_line_too_long": 1}


def test_hassh_of_suricata_capture(pcaps: Path, tmp_path: Path) -> None:
    from tests.proto.analyzer_harness import replay

    replay(pcaps / "suricata/ssh-hassh/input.pcap", tmp_path, True)
    (rec,) = [
        json.loads(line) for line in (tmp_path / "ssh.log").read_text().splitlines()
    ]
    # suricata/ssh-hassh/test.yaml
    assert rec["hassh"] == "2dd6531c7e89d3c925db9214711be76a"
    assert rec["hasshServer"] == "6832f1ce43d4397c2c0a3e2f8c94334e"
    assert rec["hasshServerAlgorithms"].endswith(";none,zlib@openssh.com")


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=8))
def test_fuzz_never_raises(segments: list[tuple[bool, bytes]]) -> None:
    prefix: list[tuple[bool, bytes | int]] = [
        (False, b"SSH-2.0-s\r\n"),
        (True, b"SSH-2.0-c\r\n"),
    ]
    run(prefix + list(segments))


def test_analyzer_lets_go_when_nothing_more_can_be_learnt() -> None:
    out: list[dict[str, Any]] = []
    a = SSHAnalyzer(CONN, lambda log, rec: out.append(rec))
    for i, (is_orig, seg) in enumerate(HANDSHAKE):
        a.data(is_orig, float(i), bytes(seg) if isinstance(seg, int) else seg)
    assert not a.done
    for _ in range(3):  # SERVICE_ACCEPT, then sizes that tell nothing
        a.data(False, 9.0, bytes(52 + _ * 300))
    a._segments = ssh_mod.MAX_ENCRYPTED_SEGMENTS
    a.data(False, 9.5, bytes(100))
    assert a.done and a.counters == {"SSH_auth_undecided": 1}
    a.end(10.0)
    weird, rec = out
    assert weird["name"] == "SSH_auth_undecided" and "auth_success" not in rec
