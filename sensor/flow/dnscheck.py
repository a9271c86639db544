"""The DNS analyzer's protocol violations, which mark a connection's history.

Zeek gives up on its DNS analyzer when a message cannot be DNS: an opcode
other than QUERY, NOTIFY or UPDATE (on the NetBIOS name service port also
registration, release, WACK and refresh, RFC 1002 section 4.2.1.1), or more
than ``dns_max_queries`` (25) questions. Zeek 9 then writes ``X`` (``x``
for the responder's message) into the history, and the analyzer and its
10 s session timer are gone. (A malformed UPDATE zone section is only a
weird in Zeek, not a violation: the shared captures show no ``X`` for it.)

UDP carries one message per datagram. TCP frames each message with a
two-byte length (RFC 1035 section 4.2.2): the message is judged once all of
it has arrived, or at the end of the stream if it never does, which is where
Zeek's letter lands (after the ``F`` of a closing FIN, for instance). Only
in-order bytes are followed; the first ``HEAD`` bytes of the current message
and the count still missing are kept per direction.
"""

from __future__ import annotations

from sensor.flow.conn import Conn

HEAD = 12  # the DNS header is all that is judged
MAX_QUERIES = 25  # dns_max_queries
_OPCODES = (0, 4, 5)
_NETBIOS_OPCODES = (0, 4, 5, 6, 7, 8, 9)


def violation(msg: bytes, netbios: bool) -> str:
    """The weird name of Zeek's DNS violation for ``msg``, or ""."""
    if len(msg) < 12:
        return ""  # Zeek only notes a weird for a short message
    opcode = (msg[2] >> 3) & 0x0F
    if opcode not in (_NETBIOS_OPCODES if netbios else _OPCODES):
        return "DNS_unknown_opcode"
    if int.from_bytes(msg[4:6], "big") > MAX_QUERIES:
        return "DNS_Conn_count_too_large"
    return ""


def _violated(conn: Conn, name: str, is_orig: bool) -> bool:
    if not name:
        return False
    conn.weird(name)
    conn.add_history("X" if is_orig else "x")
    return True


def udp_message(conn: Conn, msg: bytes, is_orig: bool) -> bool:
    """Judge one datagram; True (and the history letter) on a violation."""
    return _violated(conn, violation(msg, conn.resp_p == 137), is_orig)


def tcp_data(conn: Conn, data: bytes, is_orig: bool) -> bool:
    """Follow in-order stream bytes; True once a message is a violation."""
    i = 0 if is_orig else 1
    while data:
        if conn.dns_need[i] == 0 and len(conn.dns_buf[i]) >= 2:
            conn.dns_buf[i] = b""  # the previous message was judged
        if not conn.dns_buf[i] or len(conn.dns_buf[i]) < 2:
            take = 2 - len(conn.dns_buf[i])
            conn.dns_buf[i] += data[:take]
            data = data[take:]
            if len(conn.dns_buf[i]) == 2:
                conn.dns_need[i] = int.from_bytes(conn.dns_buf[i], "big")
                if conn.dns_need[i] == 0:
                    conn.dns_buf[i] = b""
            continue
        take = min(conn.dns_need[i], len(data))
        room = HEAD + 2 - len(conn.dns_buf[i])
        if room > 0:
            conn.dns_buf[i] += data[: min(take, room)]
        conn.dns_need[i] -= take
        data = data[take:]
        if conn.dns_need[i] == 0 and _judge(conn, i, is_orig):
            return True
    return False


def tcp_eof(conn: Conn, is_orig: bool) -> bool:
    """The end of one direction: a partial message is judged as it is."""
    i = 0 if is_orig else 1
    if conn.dns_need[i] > 0 and len(conn.dns_buf[i]) > 2:
        conn.dns_need[i] = 0
        return _judge(conn, i, is_orig)
    return False


def _judge(conn: Conn, i: int, is_orig: bool) -> bool:
    return _violated(conn, violation(conn.dns_buf[i][2:], False), is_orig)
