"""What one TLS session has shown: the ssl.log fields and the certificates.

:class:`Session` is fed parsed handshake messages and record events by
:class:`sensor.proto.analyzers.tls.TLSAnalyzer` and writes the ssl.log and
x509.log records. The rules for ``resumed``, ``version`` and ``curve`` are
Zeek's (``base/protocols/ssl/main.zeek``), so that the logs agree:

- ``resumed``: the ServerHello echoes the client's non-empty session id
  (TLS 1.2 and older, RFC 5246 7.4.1.3); or the client offered a session
  ticket with an empty id and sent ChangeCipherSpec without a
  ClientKeyExchange (RFC 5077 3.4); or both sides sent pre_shared_key
  (RFC 8446 4.2.11).
- ``version``: the server's one supported_versions entry, else the
  ServerHello's version.
- ``curve``: the named curve of an ECDHE ServerKeyExchange, or the
  server's key_share group (TLS 1.3).
"""

from __future__ import annotations

import secrets
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sensor.proto.analyzer import ConnInfo, Emit
from sensor.proto.parsers import ja, x509
from sensor.proto.parsers import tls as wire
from sensor.proto.parsers.tlsnames import ALERTS, CIPHERS, CURVES, named, version_name

# One letter per handshake type (Zeek's ssl_history; RFC 8446 4 and the
# IANA TLS HandshakeType registry). Unlisted types are "z".
_LETTERS = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x",
    12: "k", 13: "r", 14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u",
    23: "a", 24: "p", 254: "m",
}  # fmt: skip

#: Most letters in ``ssl_history`` (Zeek's ``SSL::max_ssl_history_length``);
#: later ones are dropped and counted.
MAX_HISTORY = 100

_CLASSIC = frozenset({0x0002, 0x0300, 0x0301, 0x0302, 0x0303})

#: Certificates remembered per dispatcher for x509.log de-duplication; past
#: it the oldest is forgotten (``X509_CACHE_EVICTED``) and may be logged again.
MAX_LOGGED_CERTS = 100_000

#: A certificate already logged is logged again after this much network
#: time (Zeek's ``X509::relog_known_certificates_after``, one day).
RELOG_AFTER = 86_400.0

_logged_certs: weakref.WeakKeyDictionary[
    Any, OrderedDict[tuple[str, bool, bool], float]
]
_logged_certs = weakref.WeakKeyDictionary()

#: Hello shapes whose fingerprints are kept, per kind (client, server); past
#: it the oldest is forgotten (``SSL_FINGERPRINT_CACHE_EVICTED``).
MAX_FINGERPRINTS = 1024

#: Largest hello shape kept, in cipher suites, extensions and bytes of the
#: extension bodies that the fingerprints read (real hellos have 30 to 150):
#: at most some 10 KiB a shape, 10 MiB a table. A larger one is
#: fingerprinted every time.
MAX_SHAPE = 256

#: Leads every shape key: a tuple of integers hashes alike in every
#: process, so without it a sender could craft cipher lists that collide
#: in the table and make each lookup walk all of it.
_SHAPE_SALT = secrets.randbits(62)

# JA3 and JA4 of a ClientHello read its version, its cipher list, its
# extension codes in order and the bodies of these extensions, nothing else
# (sensor.proto.parsers.ja); JA3S and JA4S of a ServerHello the same, with
# these bodies. A client program sends the same of these in every hello
# (that is what the fingerprints identify: beacons, agents, scanners), so
# the hashes are kept by them. Clients that send GREASE values (RFC 8701)
# or shuffle their extensions send a new shape each time and miss.
_CLIENT_PRINTED = (
    wire.EXT_SUPPORTED_GROUPS,
    wire.EXT_EC_POINT_FORMATS,
    wire.EXT_SIGNATURE_ALGORITHMS,
    wire.EXT_ALPN,
    wire.EXT_SUPPORTED_VERSIONS,
)
_SERVER_PRINTED = (wire.EXT_ALPN, wire.EXT_SUPPORTED_VERSIONS)
# (server, client): shape -> (JA3S, JA4S) or (JA3, JA4).
_prints: tuple[dict[tuple[Any, ...], tuple[str, str]], ...] = ({}, {})


@dataclass(frozen=True, slots=True)
class Handshake:
    """One handshake message: its type and body (RFC 8446 4)."""

    msg_type: int
    body: bytes


class Session:
    """The ssl.log record of one connection in the making."""

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        self.conn = conn
        self.emit = emit
        self.stats: dict[str, int] = {}
        self.ts: float | None = None
        self.established = False
        self.logged = False
        self.fields: dict[str, Any] = {}
        self.history: list[str] = []
        self.negotiated = 0
        self._version_set = False
        self._session_id = ""
        self._ticket_no_id = False
        self._cke_seen = False
        self._psk_offered = False
        self._hrr = False
        self._chains: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._seen: OrderedDict[tuple[str, bool, bool], float] | None = None

    # -- events from the record layer -----------------------------------------

    def start(self, ts: float) -> None:
        """A plaintext record was read: the session exists from ``ts`` on."""
        if self.ts is None:
            self.ts = ts

    def tls13_like(self) -> bool:
        """Whether the negotiated version is none of SSLv2 to TLS 1.2 (Zeek's test)."""
        return self.negotiated not in _CLASSIC

    def ciphertext(self, ts: float, both_encrypted: bool) -> None:
        """An encrypted record; with both sides encrypted the session is established."""
        if both_encrypted and not self.established:
            self.start(ts)
            self.established = True
            self.finish()

    def add_history(self, is_orig: bool, letter: str) -> None:
        """Append one ``ssl_history`` letter, upper case for the client."""
        if len(self.history) >= MAX_HISTORY:
            self._count("SSL_max_ssl_history_length_reached")
            return
        self.history.append(letter.upper() if is_orig else letter)

    def change_cipher_spec(self, is_orig: bool) -> None:
        """A ChangeCipherSpec record."""
        self.add_history(is_orig, "i")
        if is_orig and self._ticket_no_id and not self._cke_seen:
            self.fields["resumed"] = True

    def alert(self, is_orig: bool, description: int) -> None:
        """A plaintext alert (RFC 5246 7.2)."""
        self.add_history(is_orig, "l")
        self.fields["last_alert"] = named(ALERTS, description)

    def handshake(self, is_orig: bool, ts: float, msg: Handshake) -> None:
        """One complete handshake message; raises TLSDecodeError if it does not parse."""
        kind, body = msg.msg_type, msg.body
        if kind == wire.SERVER_HELLO:
            hello = wire.parse_server_hello(body)
            self._hrr = hello.random == wire.HRR_RANDOM
            self.add_history(is_orig, "j" if self._hrr else "s")
            self.server_hello(hello)
            return
        self.add_history(is_orig, _LETTERS.get(kind, "z"))
        if kind == wire.CLIENT_HELLO:
            self.client_hello(is_orig, ts, wire.parse_client_hello(body))
        elif kind == wire.CERTIFICATE:
            tls13 = self.negotiated != 0 and self.tls13_like()
            certs = wire.parse_certificates(body, tls13=tls13)
            self._certificates(is_orig, ts, certs)
        elif kind == 12:
            cipher = str(self.fields.get("cipher", ""))
            curve = wire.ecdh_server_curve(body)
            if curve is not None and ("_ECDHE_" in cipher or "_ECDH_ANON_" in cipher):
                self.fields["curve"] = named(CURVES, curve)
        elif kind == 16 and is_orig:
            self._cke_seen = True

    # -- hellos ------------------------------------------------------------

    def client_hello(self, is_orig: bool, ts: float, hello: wire.Hello) -> None:
        """A ClientHello (TLS or SSLv2 format)."""
        self.start(ts)
        if hello.sslv2:
            self.add_history(True, "c")
        first = dict(reversed(hello.extensions))  # each code's first extension
        ticket = first.get(wire.EXT_SESSION_TICKET)
        if ticket:
            self._ticket_no_id = True
        if first.get(wire.EXT_PRE_SHARED_KEY) is not None:
            self._psk_offered = True
        if hello.session_id and hello.session_id != bytes(32):
            self._session_id = hello.session_id.hex()
            self._ticket_no_id = False
        sni = first.get(wire.EXT_SERVER_NAME)
        if sni is not None:
            names = wire.server_names(sni)
            if names:
                self.fields["server_name"] = names[0]
        if "ja3" not in self.fields and not hello.sslv2:
            self.fields["ja3"], self.fields["ja4"] = self._fingerprints(
                hello, True, first
            )

    def server_hello(self, hello: wire.Hello) -> None:
        """A ServerHello or HelloRetryRequest."""
        raw = hello.extension(wire.EXT_SUPPORTED_VERSIONS)
        if raw is not None:
            versions = wire.supported_versions(raw, is_client=False)
            self.negotiated = versions[0]
            self.fields["version"] = version_name(versions[0])
            self._version_set = True
        if not self._version_set:
            self.negotiated = hello.version
            self.fields["version"] = version_name(hello.version)
        self.fields["cipher"] = named(CIPHERS, hello.ciphers[0])
        if (
            self._session_id
            and self._session_id == hello.session_id.hex()
            and self.negotiated >> 8 != 0x7F
            and self.negotiated != 0x0304
        ):
            self.fields["resumed"] = True
        if hello.extension(wire.EXT_PRE_SHARED_KEY) is not None and self._psk_offered:
            self.fields["resumed"] = True
        alpn = hello.extension(wire.EXT_ALPN)
        if alpn is not None:
            protos = wire.alpn_protocols(alpn)
            if protos:
                self.fields["next_protocol"] = protos[0].decode(
                    "ascii", "backslashreplace"
                )
        share = hello.extension(wire.EXT_KEY_SHARE)
        if share is not None:
            self.fields["curve"] = named(CURVES, wire.key_share_groups(share, False)[0])
        if "ja3s" not in self.fields:
            # The first ServerHello, a HelloRetryRequest included, as the
            # JA4 reference implementation fingerprints it.
            self.fields["ja3s"], self.fields["ja4s"] = self._fingerprints(
                hello, False, dict(reversed(hello.extensions))
            )

    def _fingerprints(
        self, hello: wire.Hello, client: bool, first: dict[int, bytes]
    ) -> tuple[str, str]:
        # (JA3, JA4) of a ClientHello or (JA3S, JA4S) of a ServerHello,
        # from the cache when a hello of the same shape was seen; ``first``
        # maps each extension code to its first body.
        printed = _CLIENT_PRINTED if client else _SERVER_PRINTED
        bodies = [first.get(code) for code in printed]
        key = (
            _SHAPE_SALT,
            hello.version,
            tuple(hello.ciphers),
            tuple([code for code, _ in hello.extensions]),
            *bodies,
        )
        cache = _prints[client]
        known = cache.get(key)
        if known is not None:
            return known

        if client:
            known = ja.ja3(hello), ja.ja4(hello)
        else:
            known = ja.ja3s(hello), ja.ja4s(hello)
        size = len(hello.ciphers) + len(hello.extensions)
        if size + sum([len(b) for b in bodies if b]) > MAX_SHAPE:
            return known
        if len(cache) >= MAX_FINGERPRINTS:
            del cache[next(iter(cache))]
            self._count("SSL_FINGERPRINT_CACHE_EVICTED")
        cache[key] = known
        return known

    def sslv2_server_hello(self, body: bytes) -> None:
        """An SSLv2 SERVER-HELLO (draft-hickman-netscape-ssl-00 2.6)."""
        if len(body) < 11:
            raise wire.TLSDecodeError(
                "SSL_TRUNCATED", f"sslv2 server hello: {len(body)} bytes < 11"
            )
        version = int.from_bytes(body[3:5], "big")
        if version != 0x0002:
            raise wire.TLSDecodeError(
                "SSL_BAD_V2_HELLO", f"sslv2 server hello: version {version}"
            )
        cert_len, spec_len = (
            int.from_bytes(body[5:7], "big"),
            int.from_bytes(body[7:9], "big"),
        )
        cert = body[11 : 11 + cert_len]
        specs = body[11 + cert_len : 11 + cert_len + spec_len]
        self.add_history(False, "s")
        self.negotiated = version
        self.fields["version"] = version_name(version)
        if len(specs) >= 3:
            self.fields["cipher"] = named(CIPHERS, int.from_bytes(specs[:3], "big"))
        if cert:
            self._certificates(False, self.ts or 0.0, [cert])

    # -- certificates ----------------------------------------------------------

    def _certificates(self, is_orig: bool, ts: float, certs: list[bytes]) -> None:
        if self._chains is None:
            self._chains = ([], [])
        chain = self._chains[is_orig]
        for der in certs:
            try:
                rec = x509.certificate_record(der)
            except x509.X509DecodeError as e:
                self._count(e.name)
                continue
            rec["host_cert"] = not chain and not is_orig
            rec["client_cert"] = is_orig
            chain.append(rec)
            self._log_cert(ts, rec)

    def _log_cert(self, ts: float, rec: dict[str, Any]) -> None:
        # Zeek logs a certificate once per (fingerprint, host, client) and
        # day, across connections: the cache belongs to the emit target.
        seen = self._seen
        if seen is None:
            owner = getattr(self.emit, "__self__", self.emit)
            seen = self._seen = _logged_certs.setdefault(owner, OrderedDict())
        key = (rec["fingerprint"], rec["host_cert"], rec["client_cert"])
        last = seen.get(key)
        if last is not None and ts - last < RELOG_AFTER:
            return
        seen[key] = ts
        seen.move_to_end(key)
        if len(seen) > MAX_LOGGED_CERTS:
            seen.popitem(last=False)
            self._count("X509_CACHE_EVICTED")
        self.emit("x509", {"ts": ts, **rec})

    # -- the record ------------------------------------------------------------

    def finish(self) -> None:
        """Write the ssl.log record once, if a TLS record was ever read."""
        if self.logged or self.ts is None:
            return
        self.logged = True
        rec: dict[str, Any] = {"ts": self.ts, **self.conn.id_fields()}
        rec.update(self.fields)
        rec.setdefault("resumed", False)
        rec["established"] = self.established
        rec["ssl_history"] = "".join(self.history)
        if self._chains is not None:
            server, client = self._chains
            rec["cert_chain_fps"] = [c["fingerprint"] for c in server]
            rec["client_cert_chain_fps"] = [c["fingerprint"] for c in client]
            if server:
                host = server[0]
                if "server_name" in rec:
                    rec["sni_matches_cert"] = x509.matches_host(
                        host, rec["server_name"]
                    )
                _copy(host, rec, "")
            if client:
                _copy(client[0], rec, "client_")
        self.emit("ssl", rec)

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1


def _copy(cert: dict[str, Any], rec: dict[str, Any], prefix: str) -> None:
    for src, dst in (
        ("certificate.subject", "subject"),
        ("certificate.issuer", "issuer"),
    ):
        if src in cert:
            rec[prefix + dst] = cert[src]
    if prefix:
        return
    for src, dst in (
        ("certificate.not_valid_before", "not_valid_before"),
        ("certificate.not_valid_after", "not_valid_after"),
        ("fingerprint", "cert_sha256"),
    ):
        if src in cert:
            rec[dst] = cert[src]
