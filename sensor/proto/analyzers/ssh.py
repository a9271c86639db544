"""ssh.log: versions, negotiated algorithms, host key and authentication.

The state machine is Zeek's SSH analyzer: each direction starts with its
identification line, then sends cleartext binary packets until its
SSH_MSG_NEWKEYS, after which everything is encrypted. Both KEXINIT messages
give the negotiated algorithms (the first client choice that the server
also offers, RFC 4253 7.1), the key-exchange reply gives the host key.

Design note on authentication (Zeek's packet-size heuristic, SSH.cc): once
the client has sent encrypted data, the first encrypted server segment is
taken as SSH_MSG_SERVICE_ACCEPT; a server segment 16 bytes shorter than it
is SSH_MSG_USERAUTH_SUCCESS, and a segment as long as the first one after
the SERVICE_ACCEPT is another USERAUTH_FAILURE. The sizes are those of the
stream chunks handed to :meth:`SSHAnalyzer.data`, i.e. TCP segments as the
connection table delivers them. It only works for SSH 2 and is skipped
when compression is on, as in Zeek.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any, ClassVar

from sensor.proto.analyzer import Analyzer, ConnInfo, Emit, SniffHint
from sensor.proto.analyzers.weird import WeirdReporter
from sensor.proto.parsers import ssh as p
from sensor.proto.parsers.text import zeek_text

log = logging.getLogger(__name__)

#: Zeek's DPD signatures for SSH off port 22: both sides must open so.
_SIGNATURE = re.compile(rb"^[sS][sS][hH]-[12]\.")
SSH_PORT = 22

#: Compression that defeats the size heuristic (Zeek's SSH::compression_algorithms).
COMPRESSION = frozenset({"zlib", "zlib@openssh.com"})
#: A first USERAUTH_FAILURE this much larger than SERVICE_ACCEPT is a banner.
BANNER_SLACK = 256
#: Encrypted segments watched for the authentication outcome at most; past
#: it (or when the heuristic cannot apply) the analyzer lets go of the
#: connection and writes its record at the end (``SSH_auth_undecided``).
MAX_ENCRYPTED_SEGMENTS = 20_000

# Zeek's analyzer knows these key exchanges; for any other it does not find
# the host key (ssh_unknown_kex_algorithm).
_KEX_EXACT = {
    "rsa1024-sha1": "rsa",
    "rsa2048-sha256": "rsa",
    "diffie-hellman-group1-sha1": "dh",
    "diffie-hellman-group14-sha1": "dh",
    "diffie-hellman-group-exchange-sha1": "gex",
    "diffie-hellman-group-exchange-sha256": "gex",
    "ecmqv-sha2": "ecc",
}
_KEX_PREFIX = (("gss-", "gss"), ("ecdh-sha2-", "ecc"), ("curve25519-sha256", "ecc"))
#: The message type that carries K_S for each kind (RFC 4253 8, 4419 3, 5656 4).
_HOST_KEY_MSG = {"dh": 31, "ecc": 31, "gex": 33}

# Zeek's default Site::local_nets: the private and special-use ranges.
_LOCAL = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
        "127.0.0.0/8", "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128",
    )
]  # fmt: skip


def _local(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in _LOCAL if net.version == ip.version)


def kex_kind(alg: str) -> str | None:
    """Which message layout Zeek expects for a key exchange, or None."""
    if alg in _KEX_EXACT:
        return _KEX_EXACT[alg]
    for prefix, kind in _KEX_PREFIX:
        if alg.startswith(prefix):
            return kind
    return None


def find_alg(client: list[str], server: list[str]) -> str:
    """RFC 4253 7.1: the first client algorithm the server also supports."""
    for alg in client:
        if alg in server:
            return alg
    return "Algorithm negotiation failed"


def major_version(line: str) -> str:
    """``2``, ``1`` or ``1.99`` from ``SSH-x.y-...``, or empty."""
    if len(line) >= 5 and line[4] in "12":
        return "1.99" if line[4] == "1" and line[6:8] == "99" else line[4]
    return ""


def session_version(client: str, server: str) -> int | None:
    """Zeek's rule for the version of a session (RFC 4253 5.1 for 1.99)."""
    c, s = major_version(client), major_version(server)
    if not c or not s:
        return None
    if c == s:
        return 2 if c == "1.99" else int(c)
    pair = {c, s}
    if pair == {"1.99", "2"}:
        return 2
    if pair == {"1.99", "1"}:
        return 1
    return 0


class SSHAnalyzer(Analyzer):
    """SSH on port 22 or wherever both sides open with ``SSH-``."""

    service: ClassVar[str] = "ssh"
    logs: ClassVar[tuple[str, ...]] = ("ssh",)
    protos: ClassVar[tuple[str, ...]] = ("tcp",)
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(
        ports=frozenset({SSH_PORT}),
        orig_first=frozenset(b"sS"),
        resp_first=frozenset(b"sS"),
    )

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.weirds = WeirdReporter(conn.id_fields(), "SSH", emit)
        self.counters = self.weirds.counters
        self._ts = 0.0  # time of the data being handled, for weirds
        self.rec: dict[str, Any] = {}
        self._phase = {True: "version", False: "version"}
        self._buf = {True: bytearray(), False: bytearray()}
        self._kexinit: dict[bool, p.KEXInit] = {}
        self._kind: str | None = None
        self._version: int | None = None
        self._gap = False
        self._logged = False
        # The authentication heuristic (see the module docstring).
        self._client_encrypted = False
        self._decided = False
        self._accept_size = 0
        self._failure_size = 0
        self._skipped_banner = False
        self._segments = 0
        # Off port 22, Zeek's signatures want ``SSH-1.`` or ``SSH-2.`` from
        # both sides before the analyzer is confirmed and anything logged.
        self._opened = {True: conn.resp_p == SSH_PORT, False: conn.resp_p == SSH_PORT}

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """Port 22 (Zeek registers it), or an identification line anywhere."""
        return conn.resp_p == SSH_PORT or bool(_SIGNATURE.match(data))

    def data(self, is_orig: bool, ts: float, data: bytes) -> None:
        """The next bytes of one direction, in stream order."""
        self._ts = ts
        if self._gap or self._phase[is_orig] == "dead":
            return
        if self._phase[is_orig] == "encrypted":
            self._encrypted(is_orig, len(data))
            return
        buf = self._buf[is_orig]
        if self._phase[is_orig] == "version" and not buf and _SIGNATURE.match(data):
            self._opened[is_orig] = True
            if self.rec and all(self._opened.values()) and self.conn.resp_p != SSH_PORT:
                # Off port 22 Zeek starts the analyzer only once both
                # signatures matched, so its record begins with this packet.
                self.rec["ts"] = ts
        buf += data
        if self._phase[is_orig] == "version":
            self._version_line(is_orig, ts, buf)
        if self._phase[is_orig] == "kex":
            self._packets(is_orig, buf)
        if self._phase[is_orig] == "encrypted" and buf:
            # The rest of the segment after NEWKEYS is already encrypted.
            size = len(buf)
            buf.clear()
            self._encrypted(is_orig, size)

    def gap(self, is_orig: bool, ts: float, length: int) -> None:
        """After a gap Zeek stops analysing the connection."""
        self._gap = True
        self._ts = ts
        self._count("SSH_content_gap")

    def end(self, ts: float) -> None:
        """Write the record unless a successful login already did."""
        self.done = True
        if self._logged or not self.rec or not all(self._opened.values()):
            return
        self._logged = True
        self.emit("ssh", self.rec)

    # -- cleartext -----------------------------------------------------------

    def _version_line(self, is_orig: bool, ts: float, buf: bytearray) -> None:
        found = p.split_line(bytes(buf[: p.MAX_VERSION_LINE + 1]))
        if found is None:
            if len(buf) > p.MAX_VERSION_LINE:
                self._count("SSH_version_line_too_long")
                self._phase[is_orig] = "dead"
                buf.clear()
            return
        line, used = found
        del buf[:used]
        self._session(ts)
        self.rec["client" if is_orig else "server"] = zeek_text(line)
        self._phase[is_orig] = "kex"
        client, server = self.rec.get("client", ""), self.rec.get("server", "")
        version = session_version(client, server)
        if version is not None:
            self._version = version
            self.rec["version"] = version
            # Packets the other side sent before this line waited for the
            # version (Zeek would misread them; reading them is kinder).
            if self._phase[not is_orig] == "kex" and self._buf[not is_orig]:
                self._packets(not is_orig, self._buf[not is_orig])

    def _packets(self, is_orig: bool, buf: bytearray) -> None:
        if self._version != 2:
            # Zeek cannot size packets before both versions are known, and
            # reads no SSH 1 key exchange here.
            # TODO: SSH 1 server host keys (SSH_SMSG_PUBLIC_KEY); rare today.
            if len(buf) > p.MAX_PACKET:
                buf.clear()
            return
        while self._phase[is_orig] == "kex":
            got = p.next_packet(buf)
            if isinstance(got, str):
                self._count(got)
                self._phase[is_orig] = "dead"
                buf.clear()
                return
            if isinstance(got, int):
                return
            size, msg_type, payload = got
            del buf[:size]
            self._message(is_orig, msg_type, payload)

    def _message(self, is_orig: bool, msg_type: int, payload: bytes) -> None:
        if msg_type == p.MSG_NEWKEYS:
            self._phase[is_orig] = "encrypted"
        elif msg_type == p.MSG_KEXINIT:
            kex = p.parse_kexinit(payload)
            if isinstance(kex, str):
                self._count(kex)
            elif is_orig not in self._kexinit:
                self._kexinit[is_orig] = kex
                self._hassh(is_orig, kex)
                if len(self._kexinit) == 2:
                    self._negotiate()
        elif self._kind and _HOST_KEY_MSG.get(self._kind) == msg_type:
            key = p.host_key_of(payload)
            if isinstance(key, str):
                self._count(key)
            else:
                self.rec["host_key"] = p.host_key_md5(key)
                self.rec["host_key_fingerprint"] = p.host_key_sha256(key)

    def _hassh(self, is_orig: bool, kex: p.KEXInit) -> None:
        algs = p.hassh_algorithms(kex, client=is_orig)
        self.rec["hasshVersion"] = "1.1"
        if is_orig:
            self.rec["hasshAlgorithms"] = zeek_text(algs.encode("latin-1"))
            self.rec["hassh"] = p.hassh(algs)
        else:
            self.rec["hasshServerAlgorithms"] = zeek_text(algs.encode("latin-1"))
            self.rec["hasshServer"] = p.hassh(algs)

    def _negotiate(self) -> None:
        c, s = self._kexinit[True].lists, self._kexinit[False].lists
        for field, name in (
            ("enc", "cipher_alg"),
            ("mac", "mac_alg"),
            ("comp", "compression_alg"),
        ):
            to_server = find_alg(c[f"{field}_c2s"], s[f"{field}_c2s"])
            to_client = find_alg(c[f"{field}_s2c"], s[f"{field}_s2c"])
            same = to_server == to_client
            self.rec[name] = (
                to_server if same else f"To server: {to_server}, to client: {to_client}"
            )
        self.rec["kex_alg"] = find_alg(c["kex"], s["kex"])
        self.rec["host_key_alg"] = find_alg(c["host_key"], s["host_key"])
        kex = next((a for a in c["kex"] if a in s["kex"]), None)
        self._kind = kex_kind(kex) if kex else None
        if kex and self._kind is None:
            self._count("ssh_unknown_kex_algorithm", kex)

    # -- encrypted -----------------------------------------------------------

    def _encrypted(self, is_orig: bool, size: int) -> None:
        self._segments += 1
        hopeless = self._version != 2 or self.rec.get("compression_alg") in COMPRESSION
        if self._decided or hopeless or self._segments > MAX_ENCRYPTED_SEGMENTS:
            if not self._decided and not hopeless:
                self._count("SSH_auth_undecided")
            self.done = True  # nothing more to learn from this connection
            return
        if is_orig:
            self._client_encrypted = True
            return
        if not self._client_encrypted:
            return
        if not self._accept_size:
            self._accept_size = size
        elif not self._failure_size and size + 16 == self._accept_size:
            self._attempt(True)
        elif not self._failure_size:
            if not self._skipped_banner and size - self._accept_size > BANNER_SLACK:
                self._skipped_banner = True
            else:
                self._failure_size = size
        elif size == self._failure_size:
            self._attempt(False)
        elif size - self._accept_size == -16:
            self._attempt(True)

    def _attempt(self, success: bool) -> None:
        # Zeek's ssh_auth_attempted handlers (base/protocols/ssh/main.zeek).
        if success:
            self._decided = True
        if (
            self.rec.get("auth_success")
            or self.rec.get("compression_alg") in COMPRESSION
        ):
            return
        self.rec["auth_success"] = success
        self.rec["auth_attempts"] = self.rec.get("auth_attempts", 0) + 1
        if success and not self._logged and all(self._opened.values()):
            self._logged = True
            self.done = True
            self.emit("ssh", dict(self.rec))

    def _session(self, ts: float) -> None:
        if self.rec:
            return
        self.rec = {"ts": ts, **self.conn.id_fields(), "auth_attempts": 0}
        orig, resp = _local(self.conn.orig_h), _local(self.conn.resp_h)
        if orig != resp:
            self.rec["direction"] = "OUTBOUND" if orig else "INBOUND"

    def _count(self, name: str, addl: str = "") -> None:
        self.weirds.report(self._ts, name, addl)
        self.anomalies += 1
