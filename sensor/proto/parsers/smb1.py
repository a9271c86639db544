"""SMB1 (CIFS) messages: the 32-byte header and the commands read.

Layouts are those of [MS-CIFS] 2.2. A message is a header, a word block
(WordCount, then that many 16-bit words) and a byte block (ByteCount, then
bytes); AndX commands chain further blocks at offsets from the header
start ([MS-CIFS] 2.2.3.4). Functions return a record or None and never
raise on hostile input.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER_LEN = 32
MAGIC = b"\xffSMB"
FLAGS_REPLY = 0x80
FLAGS2_UNICODE = 0x8000

CLOSE = 0x04
TRANSACTION = 0x25
SESSION_SETUP_ANDX = 0x73
READ_ANDX = 0x2E
WRITE_ANDX = 0x2F
TREE_CONNECT_ANDX = 0x75
NT_CREATE_ANDX = 0xA2
TRANSACTION2 = 0x32
TRANSACTION2_SECONDARY = 0x33
NT_TRANSACT = 0xA0
#: [MS-CIFS] 2.2.6.13: TRANS2_SESSION_SETUP, reserved and not implemented by
#: servers; the DoublePulsar implant's "ping" and command channel.
TRANS2_SESSION_SETUP = 0x000E
#: The DoublePulsar implant answers its ping with the request's MultiplexID
#: plus 0x10 (a server answers with the request's own).
DOUBLEPULSAR_MID_SHIFT = 0x10
#: The AndX commands whose chain is followed ([MS-CIFS] 2.2.4).
ANDX = frozenset(
    {0x24, 0x2D, READ_ANDX, WRITE_ANDX, 0x73, 0x74, TREE_CONNECT_ANDX, NT_CREATE_ANDX}
)
NO_ANDX = 0xFF
#: [MS-CIFS] 2.2.5.6: TransactNmPipe, a write and a read on a pipe.
TRANS_TRANSACT_NMPIPE = 0x26
#: [MS-CIFS] 2.2.4.55.2 Service of a TREE_CONNECT_ANDX response.
SHARE_TYPES = {"A:": "DISK", "IPC": "PIPE", "LPT1:": "PRINT", "COMM": "COMM"}
_MAX_CHAIN = 16

# Command, Status, Flags, Flags2 at 4; TID, PIDLow, UID, MID at 24.
_HEAD = struct.Struct("<BIBH")
_IDS = struct.Struct("<HHHH")
_U16 = struct.Struct("<H")


# Header and Block are named tuples, not dataclasses: one of each is made
# per message, and a tuple is built several times faster.
class Header(NamedTuple):
    """The fields of the SMB1 header ([MS-CIFS] 2.2.3.1) the analyzer needs."""

    command: int
    status: int
    flags: int
    flags2: int
    tid: int
    uid: int
    mid: int

    @property
    def is_response(self) -> bool:
        """Whether the server sent it."""
        return bool(self.flags & FLAGS_REPLY)

    @property
    def unicode(self) -> bool:
        """Whether strings are UTF-16 ([MS-CIFS] 2.2.3.1 Flags2)."""
        return bool(self.flags2 & FLAGS2_UNICODE)


class Block(NamedTuple):
    """One command of a message: its words and bytes, and where bytes start.

    The byte block is not copied out of the message (a WRITE_ANDX carries
    the data written there): :attr:`data` cuts it when asked.
    """

    command: int
    words: bytes
    data_off: int  # offset of ``data`` from the header start
    data_end: int  # ... and of its end, within the message
    msg: bytes

    @property
    def data(self) -> bytes:
        """The byte block (ByteCount bytes, fewer if the message ends first)."""
        return self.msg[self.data_off : self.data_end]


def parse_header(msg: bytes) -> Header | str:
    """The header at the start of ``msg``, or an anomaly name."""
    if len(msg) < HEADER_LEN + 1:
        return "SMB1_header_truncated"
    if msg[:4] != MAGIC:
        return "SMB1_bad_magic"
    command, status, flags, flags2 = _HEAD.unpack_from(msg, 4)
    tid, _pid, uid, mid = _IDS.unpack_from(msg, 24)
    return Header(command, status, flags, flags2, tid, uid, mid)


def _block(msg: bytes, off: int, command: int) -> Block | None:
    if off >= len(msg):
        return None
    count = msg[off]
    end_words = off + 1 + 2 * count
    if end_words + 2 > len(msg):
        # Error responses may have no byte count; the words alone are kept.
        if end_words <= len(msg):
            words = msg[off + 1 : end_words]
            return Block(command, words, end_words, end_words, msg)
        return None
    nbytes = _U16.unpack_from(msg, end_words)[0]
    start = end_words + 2
    end = min(start + nbytes, len(msg))
    return Block(command, msg[off + 1 : end_words], start, end, msg)


def blocks(msg: bytes, header: Header) -> list[Block]:
    """The command blocks of a message, following its AndX chain."""
    out: list[Block] = []
    command, off, seen = header.command, HEADER_LEN, set()
    while len(out) < _MAX_CHAIN:
        block = _block(msg, off, command)
        if block is None:
            break
        out.append(block)
        if command not in ANDX or len(block.words) < 4:
            break
        command, next_off = block.words[0], _U16.unpack_from(block.words, 2)[0]
        # A chain that loops or points backwards is cut, not followed.
        if command == NO_ANDX or next_off <= off or next_off in seen:
            break
        seen.add(next_off)
        off = next_off
    return out


def first_block(msg: bytes, header: Header) -> Block | None:
    """The message's own command block, without following its AndX chain."""
    return _block(msg, HEADER_LEN, header.command)


def string(msg: bytes, off: int, unicode: bool) -> tuple[str, int]:
    """A NUL-terminated string at ``off``: (text, offset after it).

    Unicode strings are aligned to two bytes from the header start
    ([MS-CIFS] 2.2.1.1); a string without its NUL runs to the end.
    """
    if unicode:
        if off % 2:
            off += 1
        end = off
        while end + 1 < len(msg) and msg[end : end + 2] != b"\x00\x00":
            end += 2
        return msg[off:end].decode("utf-16-le", "replace"), end + 2
    end = msg.find(b"\x00", off)
    if end < 0:
        end = len(msg)
    return msg[off:end].decode("latin-1"), end + 1


def u16(buf: bytes, off: int) -> int | None:
    """The little-endian 16-bit value at ``off``, or None past the end."""
    if off + 2 > len(buf):
        return None
    return int(_U16.unpack_from(buf, off)[0])


def data_at(msg: bytes, off: int, length: int) -> bytes | None:
    """``length`` bytes at ``off`` of the message; None if the length lies."""
    if off < HEADER_LEN or off + length > len(msg):
        return None
    return msg[off : off + length]


def session_setup_blob(msg: bytes, block: Block, response: bool) -> bytes | None:
    """SESSION_SETUP_ANDX with extended security ([MS-SMB] 2.2.4.6): the
    security blob (SPNEGO or NTLMSSP) that opens the byte block.

    The request has 12 words with SecurityBlobLength at word 7; the
    response 4 words with it at word 3. Other forms carry no blob.
    """
    w = block.words
    if response:
        length = u16(w, 6) if len(w) == 8 else None
    else:
        length = u16(w, 14) if len(w) == 24 else None
    if not length:
        return None
    return data_at(msg, block.data_off, length)
