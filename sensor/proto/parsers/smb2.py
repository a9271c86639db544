"""SMB2/3 messages: NBSS framing, the 64-byte header and the commands read.

Layouts are those of [MS-SMB2] 2.2; the framing is RFC 1002 4.3.1 (one type
byte, then the length), which direct TCP on port 445 reads as one zero byte
and a 24-bit length ([MS-SMB2] 2.1); the two agree on every session message. Every function
takes bytes and returns a record, ``None`` when the message is not the
expected one, or the name of an anomaly; none raises on hostile input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

#: A frame longer than this is not believed. Direct TCP gives the length 24
#: bits ([MS-SMB2] 2.1), and READ/WRITE may carry up to 8 MiB ([MS-SMB2]
#: 3.3.5.2: MaxReadSize), so the bound is 8 MiB and a header's worth.
MAX_FRAME = (8 << 20) + 1024
HEADER_LEN = 64
MAGIC = b"\xfeSMB"
#: [MS-SMB2] 2.2.41: an encrypted message starts with a transform header.
TRANSFORM_MAGIC = b"\xfdSMB"
#: The transform header: magic, Signature (16), Nonce (16),
#: OriginalMessageSize (4), Reserved (2), Flags (2), SessionId (8).
TRANSFORM_LEN = 52

FLAGS_SERVER_TO_REDIR = 0x1
FLAGS_ASYNC = 0x2
STATUS_SUCCESS = 0
STATUS_PENDING = 0x103
#: Pipe reads longer than the buffer end with this and still carry data.
STATUS_BUFFER_OVERFLOW = 0x80000005

SESSION_SETUP = 0x01
TREE_CONNECT = 0x03
CREATE = 0x05
CLOSE = 0x06
READ = 0x08
WRITE = 0x09
IOCTL = 0x0B
SET_INFO = 0x11

#: [MS-FSCC] 2.3.49: a write and a read on a pipe in one call (DCE-RPC binds).
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
#: [MS-SMB2] 2.2.10 ShareType.
SHARE_TYPES = {1: "DISK", 2: "PIPE", 3: "PRINT"}
#: [MS-FSCC] 2.4 information classes read from SET_INFO.
FILE_RENAME_INFORMATION = 10
FILE_DISPOSITION_INFORMATION = 13

# FILETIME counts 100 ns ticks from 1601-01-01; the epoch is this many after.
_FILETIME_EPOCH = 116444736000000000


#: Status and Command at 8, Flags, NextCommand and MessageId at 16, TreeId
#: and SessionId at 36 ([MS-SMB2] 2.2.1.2).
_HEAD = struct.Struct("<8xIH2xIIQ4xIQ")


# A named tuple, not a dataclass: one is made per message, and a tuple is
# built several times faster.
class Header(NamedTuple):
    """The fields of the SMB2 header ([MS-SMB2] 2.2.1) the analyzer needs."""

    command: int
    status: int
    flags: int
    next_command: int
    message_id: int
    tree_id: int
    session_id: int

    @property
    def is_response(self) -> bool:
        """Whether the server sent it."""
        return bool(self.flags & FLAGS_SERVER_TO_REDIR)


def filetime(value: int) -> float | None:
    """Seconds since the epoch from a FILETIME, or None for 0 (unset)."""
    if value == 0:
        return None
    return (value - _FILETIME_EPOCH) / 1e7


def next_frame(
    buf: bytes | bytearray, start: int = 0
) -> tuple[int, int, bytes] | int | str:
    """The NBSS frame at ``start`` of ``buf``: (bytes used, type, message).

    Returns the number of bytes still needed when the frame is incomplete,
    or ``SMB_frame_too_large`` when its length is past :data:`MAX_FRAME`.
    """
    have = len(buf) - start
    if have < 4:
        return 4 - have
    length = (buf[start + 1] << 16) | (buf[start + 2] << 8) | buf[start + 3]
    if length > MAX_FRAME:
        return "SMB_frame_too_large"
    if have < 4 + length:
        return 4 + length - have
    return 4 + length, buf[start], bytes(buf[start + 4 : start + 4 + length])


def parse_header(msg: bytes) -> Header | str:
    """The header at the start of ``msg``, or an anomaly name."""
    if len(msg) < HEADER_LEN:
        return "SMB2_header_truncated"
    if msg[:4] != MAGIC:
        return "SMB2_bad_magic"
    status, command, flags, next_command, message_id, tree_id, session_id = (
        _HEAD.unpack_from(msg)
    )
    if flags & FLAGS_ASYNC:
        tree_id = 0  # AsyncId's high half, not a tree
    return Header(command, status, flags, next_command, message_id, tree_id, session_id)


def split_compound(msg: bytes) -> list[bytes]:
    """The messages of a compound chain ([MS-SMB2] 3.2.4.1.4), each alone.

    A NextCommand that points backwards or past the end ends the chain.
    """
    out: list[bytes] = []
    off = 0
    while off + HEADER_LEN <= len(msg) and len(out) < 64:
        nxt = struct.unpack_from("<I", msg, off + 20)[0]
        if nxt == 0 or nxt < HEADER_LEN or off + nxt > len(msg):
            out.append(msg[off:])
            break
        out.append(msg[off : off + nxt])
        off += nxt
    return out


def _utf16(msg: bytes, off: int, length: int) -> str | None:
    if off < HEADER_LEN or length < 0 or off + length > len(msg):
        return None
    return msg[off : off + length].decode("utf-16-le", "replace").rstrip("\x00")


def tree_connect_path(msg: bytes) -> str | None:
    """TREE_CONNECT request ([MS-SMB2] 2.2.9): the share path, ``\\\\srv\\share``."""
    if len(msg) < HEADER_LEN + 8:
        return None
    off, length = struct.unpack_from("<HH", msg, HEADER_LEN + 4)
    return _utf16(msg, off, length)


def tree_connect_share_type(msg: bytes) -> str | None:
    """TREE_CONNECT response ([MS-SMB2] 2.2.10): DISK, PIPE or PRINT."""
    if len(msg) < HEADER_LEN + 3:
        return None
    return SHARE_TYPES.get(msg[HEADER_LEN + 2])


def create_name(msg: bytes) -> str | None:
    """CREATE request ([MS-SMB2] 2.2.13): the file name, relative to the share."""
    if len(msg) < HEADER_LEN + 48:
        return None
    off, length = struct.unpack_from("<HH", msg, HEADER_LEN + 44)
    if length == 0:
        return ""
    return _utf16(msg, off, length)


#: [MS-SMB2] 2.2.13 CreateOptions: the file goes when its last handle closes.
FILE_DELETE_ON_CLOSE = 0x1000


def create_options(msg: bytes) -> int:
    """CREATE request: CreateOptions, or 0 when the message is too short."""
    if len(msg) < HEADER_LEN + 44:
        return 0
    return int(struct.unpack_from("<I", msg, HEADER_LEN + 40)[0])


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """CREATE response ([MS-SMB2] 2.2.14): file id, times and size."""

    file_id: bytes
    created: float | None
    accessed: float | None
    modified: float | None
    changed: float | None
    size: int


def create_response(msg: bytes) -> CreateResponse | None:
    """The CREATE response in ``msg``, or None when it is too short."""
    if len(msg) < HEADER_LEN + 80:
        return None
    times = struct.unpack_from("<QQQQ", msg, HEADER_LEN + 8)
    size = struct.unpack_from("<Q", msg, HEADER_LEN + 48)[0]
    file_id = msg[HEADER_LEN + 64 : HEADER_LEN + 80]
    c, a, w, ch = (filetime(t) for t in times)
    return CreateResponse(file_id, c, a, w, ch, size)


def file_id_at(msg: bytes, body_off: int) -> bytes | None:
    """The 16-byte FileId at ``body_off`` of the body, or None if cut short."""
    start = HEADER_LEN + body_off
    if len(msg) < start + 16:
        return None
    return msg[start : start + 16]


def _slice(msg: bytes, off: int, length: int) -> bytes | None:
    # Offsets count from the start of the header; a length that runs past
    # the message is a lie, and the data is not believed.
    if off < HEADER_LEN or length < 0 or off + length > len(msg):
        return None
    return msg[off : off + length]


def write_data(msg: bytes) -> bytes | None:
    """WRITE request ([MS-SMB2] 2.2.21): the data written."""
    if len(msg) < HEADER_LEN + 32:
        return None
    off, length = struct.unpack_from("<HI", msg, HEADER_LEN + 2)
    return _slice(msg, off, length)


def read_data(msg: bytes) -> bytes | None:
    """READ response ([MS-SMB2] 2.2.20): the data read."""
    if len(msg) < HEADER_LEN + 16:
        return None
    off = msg[HEADER_LEN + 2]
    length = struct.unpack_from("<I", msg, HEADER_LEN + 4)[0]
    return _slice(msg, off, length)


def ioctl(msg: bytes, response: bool) -> tuple[int, bytes, bytes | None] | None:
    """IOCTL ([MS-SMB2] 2.2.31, 2.2.32): control code, FileId, the payload.

    The payload is the input buffer of a request, the output of a response.
    """
    if len(msg) < HEADER_LEN + 48:
        return None
    code = struct.unpack_from("<I", msg, HEADER_LEN + 4)[0]
    file_id = msg[HEADER_LEN + 8 : HEADER_LEN + 24]
    at = HEADER_LEN + (32 if response else 24)
    off, length = struct.unpack_from("<II", msg, at)
    return code, file_id, _slice(msg, off, length)


def set_info(msg: bytes) -> tuple[int, int, bytes, bytes | None] | None:
    """SET_INFO request ([MS-SMB2] 2.2.39): type, class, FileId, buffer."""
    if len(msg) < HEADER_LEN + 32:
        return None
    info_type, info_class, length, off = struct.unpack_from(
        "<BBIH", msg, HEADER_LEN + 2
    )
    file_id = msg[HEADER_LEN + 16 : HEADER_LEN + 32]
    return info_type, info_class, file_id, _slice(msg, off, length)


def rename_target(buf: bytes) -> str | None:
    """FILE_RENAME_INFORMATION_TYPE_2 ([MS-FSCC] 2.4.37.2): the new name."""
    if len(buf) < 20:
        return None
    length = struct.unpack_from("<I", buf, 16)[0]
    if 20 + length > len(buf):
        return None
    return buf[20 : 20 + length].decode("utf-16-le", "replace")


def session_setup_blob(msg: bytes, response: bool) -> bytes | None:
    """SESSION_SETUP ([MS-SMB2] 2.2.5, 2.2.6): the security buffer.

    It holds SPNEGO, or bare NTLMSSP or Kerberos, for the GSSAPI analyzers.
    """
    at = HEADER_LEN + (4 if response else 12)
    if len(msg) < at + 4:
        return None
    off, length = struct.unpack_from("<HH", msg, at)
    return _slice(msg, off, length) if length else None


def io_offset(msg: bytes) -> int | None:
    """READ or WRITE request ([MS-SMB2] 2.2.19, 2.2.21): the file offset."""
    if len(msg) < HEADER_LEN + 16:
        return None
    return int(struct.unpack_from("<Q", msg, HEADER_LEN + 8)[0])


def transform_session(msg: bytes) -> int | None:
    """The SessionId of an encrypted message's transform header ([MS-SMB2]
    2.2.41), or None when the header is cut short."""
    if len(msg) < TRANSFORM_LEN or msg[:4] != TRANSFORM_MAGIC:
        return None
    return int.from_bytes(msg[44:52], "little")
