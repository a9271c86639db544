"""JSON-lines log files with Zeek's field names and field order.

One object per line, flat (``id.orig_h``, not nested), fields that are unset
left out, times as seconds with microsecond precision, as Zeek's JSON writer
(``LogAscii::use_json``) produces them, so that tools written for Zeek's logs
read ours.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from sensor.output import lock_logdir

log = logging.getLogger(__name__)

#: Field order per log, as Zeek writes them. Fields not listed go last.
FIELD_ORDER: dict[str, tuple[str, ...]] = {
    "conn": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "proto", "service", "duration", "orig_bytes", "resp_bytes",
        "conn_state", "local_orig", "local_resp", "missed_bytes", "history",
        "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
        "tunnel_parents", "ip_proto", "orig_l2_addr", "resp_l2_addr",
        "vlan", "inner_vlan", "community_id",
    ),
    "dns": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "proto", "trans_id", "rtt", "query", "qclass", "qclass_name", "qtype",
        "qtype_name", "rcode", "rcode_name", "AA", "TC", "RD", "RA", "Z",
        "answers", "TTLs", "rejected", "opcode", "opcode_name",
    ),
    "ssh": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "version", "auth_success", "auth_attempts", "direction", "client",
        "server", "cipher_alg", "mac_alg", "compression_alg", "kex_alg",
        "host_key_alg", "host_key", "host_key_fingerprint", "hasshVersion",
        "hassh", "hasshServer", "hasshAlgorithms", "hasshServerAlgorithms",
    ),
    "ntlm": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "username", "hostname", "domainname", "server_nb_computer_name",
        "server_dns_computer_name", "server_tree_name", "success",
    ),
    "kerberos": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "request_type", "client", "service", "success", "error_msg", "from",
        "till", "cipher", "forwardable", "renewable", "req_ciphers",
    ),
    "dce_rpc": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "rtt", "named_pipe", "endpoint", "operation",
    ),
    "dhcp": (
        "ts", "uids", "client_addr", "server_addr", "mac", "host_name",
        "client_fqdn", "domain", "requested_addr", "assigned_addr",
        "lease_time", "client_message", "server_message", "msg_types",
        "duration",
    ),
    "smb_mapping": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "path", "service", "native_file_system", "share_type",
    ),
    "smb_files": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "fuid", "action", "path", "name", "size", "prev_name",
        "times.modified", "times.accessed", "times.created", "times.changed",
    ),
    "arp": (
        "ts", "op", "src_mac", "src_ip", "dst_mac", "dst_ip", "gratuitous",
        "count", "vlan",
    ),
    "weird": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "name", "addl", "notice", "peer", "source",
    ),
    "http": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "trans_depth", "method", "host", "uri", "referrer", "version",
        "user_agent", "origin", "request_body_len", "response_body_len",
        "status_code", "status_msg", "info_code", "info_msg", "tags",
        "username", "password", "proxied", "orig_fuids", "orig_filenames",
        "orig_mime_types", "resp_fuids", "resp_filenames", "resp_mime_types",
    ),
    "files": (
        "ts", "fuid", "uid", "id.orig_h", "id.orig_p", "id.resp_h",
        "id.resp_p", "source", "depth", "analyzers", "mime_type", "filename",
        "duration", "local_orig", "is_orig", "seen_bytes", "total_bytes",
        "missing_bytes", "overflow_bytes", "timedout", "parent_fuid", "md5",
        "sha1", "sha256",
    ),
    "smtp": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "trans_depth", "helo", "mailfrom", "rcptto", "date", "from", "to",
        "cc", "reply_to", "msg_id", "in_reply_to", "subject",
        "x_originating_ip", "first_received", "second_received",
        "last_reply", "path", "user_agent", "tls", "fuids", "is_webmail",
        "urls",
    ),
    "ssl": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "version", "cipher", "curve", "server_name", "resumed", "last_alert",
        "next_protocol", "established", "ssl_history", "cert_chain_fps",
        "client_cert_chain_fps", "sni_matches_cert", "ja3", "ja3s", "ja4",
        "ja4s", "subject", "issuer", "client_subject", "client_issuer",
        "not_valid_before", "not_valid_after", "cert_sha256",
    ),
    "x509": (
        "ts", "fingerprint", "certificate.version", "certificate.serial",
        "certificate.subject", "certificate.issuer",
        "certificate.not_valid_before", "certificate.not_valid_after",
        "certificate.key_alg", "certificate.sig_alg", "certificate.key_type",
        "certificate.key_length", "certificate.exponent", "certificate.curve",
        "san.dns", "san.uri", "san.email", "san.ip", "basic_constraints.ca",
        "basic_constraints.path_len", "host_cert", "client_cert", "ja4x",
    ),
}  # fmt: skip

#: Fields that hold times or intervals, written with microsecond precision.
TIME_FIELDS = frozenset({"ts", "duration"})


def ordered(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with unset fields dropped, times rounded, in Zeek's order."""
    order = FIELD_ORDER.get(name, ())
    out: dict[str, Any] = {}
    for key in order:
        if key in record:
            out[key] = record[key]
    for key, value in record.items():
        if key not in out:
            out[key] = value
    for key in TIME_FIELDS & out.keys():
        out[key] = round(float(out[key]), 6)
    return {k: v for k, v in out.items() if v is not None}


class LogWriter:
    """Writes records to ``DIR/<log>.log``, opening each file when first used.

    Records are written line by line and flushed on :meth:`close`; a record
    is never split across lines, so a reader that stops at the last newline
    sees only whole records. The directory is locked while the writer is
    open (see :mod:`sensor.output`): another sensord writing there is
    refused with :class:`sensor.lockfile.InUse`.
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_logdir(logdir)  # before any file is truncated
        self._files: dict[str, IO[str]] = {}
        self.counts: dict[str, int] = {}

    def write(self, name: str, record: dict[str, Any]) -> None:
        """Append one record to ``<name>.log``."""
        f = self._files.get(name)
        if f is None:
            path = self.logdir / f"{name}.log"
            f = self._files[name] = open(path, "w", encoding="utf-8")
            log.debug("%s: writing", path)
        f.write(json.dumps(ordered(name, record), separators=(",", ":")))
        f.write("\n")
        self.counts[name] = self.counts.get(name, 0) + 1

    def close(self) -> None:
        """Flush and close every file, and let another process have the
        directory."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._lock.release()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
