"""The SMB analyzer on crafted SMB2 and SMB1 messages, and hostile input."""

from __future__ import annotations

import os
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers import smbstate
from sensor.proto.analyzers.smb import SMBAnalyzer
from sensor.proto.parsers import smb2

#: Fuzz examples: SENSOR_FUZZ=deep (make deep-fuzz) for a long run.
EXAMPLES = 5000 if os.environ.get("SENSOR_FUZZ") == "deep" else 300

CONN = ConnInfo("Ctest", "tcp", "10.0.0.1", 50000, "10.0.0.2", 445)
FID = bytes(range(16))


def nbss(msg: bytes) -> bytes:
    return struct.pack(">I", len(msg)) + msg


def hdr2(
    cmd: int, mid: int, response: bool = False, tree: int = 5, status: int = 0
) -> bytes:
    flags = smb2.FLAGS_SERVER_TO_REDIR if response else 0
    return (
        smb2.MAGIC
        + struct.pack("<HHIHHIIQIIQ", 64, 0, status, cmd, 1, flags, 0, mid, 0, tree, 7)
        + bytes(16)
    )


def tree_connect(mid: int, path: str) -> bytes:
    raw = path.encode("utf-16-le")
    return hdr2(3, mid) + struct.pack("<HHHH", 9, 0, 72, len(raw)) + raw


def tree_response(mid: int, share: int) -> bytes:
    return hdr2(3, mid, True) + struct.pack("<HBBIII", 16, share, 0, 0, 0, 0)


def create(mid: int, name: str) -> bytes:
    raw = name.encode("utf-16-le")
    body = struct.pack(
        "<HBBIQQIIIIIHHII", 57, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 120, len(raw), 0, 0
    )
    return hdr2(5, mid) + body + raw


def create_response(mid: int, size: int) -> bytes:
    ft = 116444736000000000 + 10_000_000 * 1_600_000_000
    body = struct.pack("<HBBIQQQQQQII", 89, 0, 0, 1, ft, ft, ft, ft, 0, size, 0, 0)
    return hdr2(5, mid, True) + body + FID + struct.pack("<II", 0, 0)


def write(mid: int, data: bytes) -> bytes:
    body = struct.pack("<HHIQ", 49, 112, len(data), 0) + FID + bytes(16)
    return hdr2(9, mid) + body + data


def read_req(mid: int) -> bytes:
    return hdr2(8, mid) + struct.pack("<HBBIQ", 49, 0, 0, 1024, 0) + FID + bytes(17)


def read_resp(mid: int, data: bytes) -> bytes:
    return (
        hdr2(8, mid, True) + struct.pack("<HBBIII", 17, 80, 0, len(data), 0, 0) + data
    )


class Pipe:
    def __init__(self) -> None:
        self.got: list[tuple[bool, bytes]] = []

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        self.got.append((is_orig, data))


def run(
    msgs: list[tuple[bool, bytes]], factory: Any = None
) -> tuple[SMBAnalyzer, list[Any]]:
    out: list[Any] = []
    a = SMBAnalyzer(CONN, lambda n, r: out.append((n, r)))
    a.state.factory = factory
    for i, (is_orig, msg) in enumerate(msgs):
        a.data(is_orig, 100.0 + i, nbss(msg))
    return a, out


def test_tree_connect_and_file_open() -> None:
    _, out = run([
        (True, tree_connect(1, "\\\\srv\\ADMIN$")), (False, tree_response(1, 1)),
        (True, create(2, "PSEXESVC.exe")), (False, create_response(2, 145568)),
    ])  # fmt: skip
    assert out[0] == ("smb_mapping", {
        "ts": 100.0, **CONN.id_fields(), "path": "\\\\srv\\ADMIN$", "share_type": "DISK"})  # fmt: skip
    name, rec = out[1]
    assert name == "smb_files"
    assert (rec["ts"], rec["action"], rec["name"], rec["size"]) == (
        102.0,
        "SMB::FILE_OPEN",
        "PSEXESVC.exe",
        145568,
    )
    assert rec["path"] == "\\\\srv\\ADMIN$"
    assert rec["times.modified"] == 1_600_000_000.0


def test_pipe_data_reaches_the_dcerpc_hook() -> None:
    pipes: dict[str, Pipe] = {}

    def factory(conn: ConnInfo, emit: Any, name: str, auth: Any = None) -> Pipe:
        pipes[name] = Pipe()
        return pipes[name]

    _, out = run([
        (True, tree_connect(1, "\\\\srv\\IPC$")), (False, tree_response(1, 2)),
        (True, create(2, "svcctl")), (False, create_response(2, 0)),
        (True, write(3, b"\x05\x00\x0b")), (True, read_req(4)), (False, read_resp(4, b"\x05\x00\x0c")),
    ], factory)  # fmt: skip
    assert [n for n, _ in out] == ["smb_mapping"]  # pipe opens stay out of smb_files
    assert pipes["svcctl"].got == [(True, b"\x05\x00\x0b"), (False, b"\x05\x00\x0c")]


def test_encrypted_smb3_is_noted() -> None:
    a, out = run([(True, smb2.TRANSFORM_MAGIC + bytes(60))])
    assert a.state.encrypted
    assert out[0][1]["name"] == "SMB_encrypted"


def test_lying_lengths_are_not_believed() -> None:
    msg = bytearray(tree_connect(1, "\\\\srv\\C$"))
    struct.pack_into("<H", msg, 64 + 6, 5000)  # PathLength past the end
    _, out = run([(True, bytes(msg)), (False, tree_response(1, 1))])
    assert out == []
    bad = bytearray(write(3, b"abc"))
    struct.pack_into("<I", bad, 64 + 4, 1 << 30)
    assert smb2.write_data(bytes(bad)) is None


def test_truncation_at_every_byte_never_raises() -> None:
    msgs = [
        tree_connect(1, "\\\\s\\IPC$"),
        create(2, "x"),
        create_response(2, 3),
        read_resp(4, b"zz"),
    ]
    for msg in msgs:
        for cut in range(len(msg)):
            a, _ = run([(True, msg[:cut]), (False, msg[:cut])])
            assert a.anomalies >= 0


def test_frame_split_across_chunks() -> None:
    out: list[Any] = []
    a = SMBAnalyzer(CONN, lambda n, r: out.append((n, r)))
    stream = nbss(tree_connect(1, "\\\\srv\\IPC$"))
    for i in range(len(stream)):
        a.data(True, 1.0, stream[i : i + 1])
    a.data(False, 2.0, nbss(tree_response(1, 2)))
    assert out[0][1]["share_type"] == "PIPE"


def test_table_bound_drops_oldest() -> None:
    table: dict[int, int] = {}
    for i in range(smbstate.MAX_ENTRIES + 5):
        smbstate._put(table, i, i)
    assert len(table) == smbstate.MAX_ENTRIES
    assert 0 not in table and smbstate.MAX_ENTRIES + 4 in table


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=8))
def test_fuzz_never_raises(chunks: list[tuple[bool, bytes]]) -> None:
    a = SMBAnalyzer(CONN, lambda n, r: None)
    for is_orig, data in chunks:
        a.data(is_orig, 1.0, data)
        a.data(is_orig, 1.0, nbss(b"\xfeSMB" + data))
        a.data(is_orig, 1.0, nbss(b"\xffSMB" + data))
    a.end(2.0)


def hdr1(cmd: int, mid: int, response: bool = False, tid: int = 9) -> bytes:
    flags = 0x80 if response else 0
    return b"\xffSMB" + struct.pack(
        "<BIBH12sHHHH", cmd, 0, flags, 0, bytes(12), tid, 1, 2, mid
    )


def smb1(
    cmd: int, mid: int, words: bytes, data: bytes, response: bool = False
) -> bytes:
    return (
        hdr1(cmd, mid, response)
        + bytes([len(words) // 2])
        + words
        + struct.pack("<H", len(data))
        + data
    )


def test_smb1_tree_create_and_transact_pipe() -> None:
    pipes: dict[str, Pipe] = {}

    def factory(conn: ConnInfo, emit: Any, name: str, auth: Any = None) -> Pipe:
        pipes[name] = Pipe()
        return pipes[name]

    fid = b"\x01\x40"
    tc = smb1(
        0x75,
        1,
        b"\xff\x00\x00\x00" + struct.pack("<HH", 0, 1),
        b"\x00\\\\SRV\\IPC$\x00?????\x00",
    )
    tc_r = smb1(0x75, 1, b"\xff\x00\x00\x00\x00\x00", b"IPC\x00\x00", True)
    cr = smb1(0xA2, 2, b"\xff\x00\x00\x00" + bytes(44), b"\\samr\x00")
    cr_r = smb1(0xA2, 2, b"\xff\x00\x00\x00\x00" + fid + bytes(61), b"", True)
    trans_words = struct.pack(
        "<HHHHBBHIHHHHHBBHH",
        0,
        3,
        0,
        1024,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        3,
        74,
        2,
        0,
        0x26,
        0x4001,
    )
    trans = smb1(0x25, 3, trans_words, b"\\PIPE\\\x00abc")
    trans_r = smb1(
        0x25,
        3,
        struct.pack("<HHHHHHHHHBB", 0, 2, 0, 0, 0, 0, 2, 55, 0, 0, 0),
        b"xy",
        True,
    )
    _, out = run(
        [
            (True, tc),
            (False, tc_r),
            (True, cr),
            (False, cr_r),
            (True, trans),
            (False, trans_r),
        ],
        factory,
    )

    assert out[0] == ("smb_mapping", {
        "ts": 100.0, **CONN.id_fields(), "path": "\\\\SRV\\IPC$", "service": "IPC", "share_type": "PIPE"})  # fmt: skip
    # Zeek logs SMB1 pipe opens that are not in SMB::pipe_filenames, without path.
    assert out[1] == ("smb_files", {
        "ts": 102.0, **CONN.id_fields(), "action": "SMB::FILE_OPEN", "name": "\\samr", "size": 0})  # fmt: skip
    assert pipes["samr"].got == [(True, b"abc"), (False, b"xy")]


def test_smb1_write_to_a_disk_share_reaches_files_log() -> None:
    """WRITE_ANDX content at its offsets, one files.log record at CLOSE."""
    fid = b"\x07\x40"
    tc = smb1(
        0x75, 1, b"\xff\x00\x00\x00" + struct.pack("<HH", 0, 1),
        b"\x00\\\\SRV\\ADMIN$\x00?????\x00",
    )  # fmt: skip
    tc_r = smb1(0x75, 1, b"\xff\x00\x00\x00\x00\x00", b"A:\x00NTFS\x00", True)
    cr = smb1(0xA2, 2, b"\xff\x00\x00\x00" + bytes(44), b"svc.exe\x00")
    cr_r = smb1(0xA2, 2, b"\xff\x00\x00\x00\x00" + fid + bytes(61), b"", True)

    def write(mid: int, offset: int, data: bytes) -> bytes:
        # 14 words; the data follows the byte count (32 + 1 + 28 + 2 = 63).
        words = (
            b"\xff\x00\x00\x00"
            + fid
            + struct.pack("<IIHHHHHI", offset, 0, 0, 0, 0, len(data), 63, 0)
        )
        return smb1(0x2F, mid, words, data)

    head = b"MZ" + bytes(98)
    close = smb1(0x04, 9, fid + b"\xff\xff\xff\xff", b"")
    _, out = run([
        (True, tc), (False, tc_r), (True, cr), (False, cr_r),
        (True, write(3, 0, head)), (True, write(4, 100, b"x" * 50)),
        (True, write(5, 300, b"y" * 10)), (True, close),
    ])  # fmt: skip
    files = [r for n, r in out if n == "files"]
    assert [
        (f["ts"], f["source"], f["filename"], f["is_orig"], f["seen_bytes"], f["missing_bytes"])
        for f in files
    ] == [(104.0, "SMB", "svc.exe", True, 160, 150)]  # fmt: skip
    assert "total_bytes" not in files[0]  # created empty: no size announced


def test_smb2_read_ends_at_the_announced_size() -> None:
    """A READ of the whole file closes its record (total_bytes reached)."""
    _, out = run([
        (True, tree_connect(1, "\\\\srv\\SYSVOL")), (False, tree_response(1, 1)),
        (True, create(2, "gpt.ini")), (False, create_response(2, 22)),
        (True, read_req(3)), (False, read_resp(3, b"[General]\r\nVersion=1\r\n")),
    ])  # fmt: skip
    files = [r for n, r in out if n == "files"]
    assert [
        (f["filename"], f["is_orig"], f["seen_bytes"], f["total_bytes"]) for f in files
    ] == [("gpt.ini", False, 22, 22)]
