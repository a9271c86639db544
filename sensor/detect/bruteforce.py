"""bruteforce.login: many login attempts from one source to one service
(ATT&CK T1110).

Two kinds of evidence, per (source, server, port):

- *failures the protocol shows*: SSH connections that Zeek-style analysis
  marks ``auth_success: false`` (counting ``auth_attempts``), Kerberos
  AS/TGS errors that mean a wrong password or an unknown user, NTLM
  logins that failed, HTTP 401 answers to requests that carried
  credentials;
- *SMB sessions of small failed-sized exchanges*: a tool that guesses
  inside one SMB connection (nmap's smb-brute sends thousands of SMB1
  session setups without NTLMSSP, so no ntlm.log record shows them) leaves
  a connection of many quick request/answer pairs whose answers are as
  small as an error status; a file session answers with data;
- *login-shaped connections* where the outcome is hidden (encrypted SSH,
  FTP without its own log, RDP, VNC, Telnet): many short connections to one
  login service whose client sends about the same number of bytes each
  time, which is what a password-guessing tool looks like; people retyping
  a password open a handful.

A window is judged when quiet for ``idle_seconds`` or after
``window_seconds``. A success after the failures raises the score: the
guess may have worked. Guessing is plain attack behaviour, so the score
is not lowered while the device is learning.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    NON_NEGATIVE,
    SECONDS,
    SHARE,
    Detection,
    Threshold,
    register,
)
from sensor.detect.support import (
    BoundedTable,
    conn_ends,
    device_ref,
    duration,
    log_score,
    uid_sample,
    within,
)

#: Ports of login services whose connections are counted when the outcome
#: is not visible, and the names used in summaries.
LOGIN_PORTS = {21: "FTP", 22: "SSH", 23: "Telnet", 3389: "RDP", 5900: "VNC"}
LOGIN_SERVICES = {
    "ssh": "SSH",
    "ftp": "FTP",
    "telnet": "Telnet",
    "rdp": "RDP",
    "vnc": "VNC",
}
_NAMES = {
    **LOGIN_PORTS,
    88: "Kerberos",
    139: "SMB",
    445: "SMB",
    80: "HTTP",
    443: "HTTPS",
}

# Kerberos errors of a wrong password or a guessed user name (RFC 4120
# 7.5.9; Zeek writes the names).
_KRB_FAILURES = frozenset(
    {
        "KDC_ERR_PREAUTH_FAILED",
        "KRB_AP_ERR_BAD_INTEGRITY",
        "KDC_ERR_C_PRINCIPAL_UNKNOWN",
    }
)


@dataclass
class _Tries:
    first: float
    last: float
    service: str
    mac: str | None = None
    failures: int = 0
    failure_records: int = 0
    successes: int = 0
    success_uid: str | None = None
    conns: int = 0
    smb_exchanges: int = 0
    smb_answer_bytes: float = 0.0
    sizes: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=set)


@register
class BruteForce(Detection):
    """Password guessing against SSH, FTP, SMB, Kerberos, RDP or HTTP."""

    name = "bruteforce.login"
    mitre = "T1110"
    logs = ("conn", "ssh", "kerberos", "ntlm", "http")
    thresholds = (
        Threshold("failures", 10, "Failed logins the protocol shows, from one source to one service, within the window.", COUNT),
        Threshold("connections", 20, "Short connections to one login service (SSH, FTP, Telnet, RDP, VNC) from one source within the window, when the outcome is not visible.", COUNT),
        Threshold("similar_share", 0.7, "Share of those connections whose client bytes are within 30% of the median: guessing tools repeat themselves.", SHARE),
        Threshold("short_seconds", 60.0, "Median duration below which login connections count as short.", SECONDS),
        Threshold("per_minute", 6.0, "Login connections per minute over their span, at least: a monitoring check every 30 s is alike and short too, but slow.", NON_NEGATIVE),
        Threshold("smb_exchanges", 300, "Request/answer pairs in SMB connections from one source to one server within the window, counted when the answers are error-sized.", COUNT),
        Threshold("smb_answer_bytes", 120.0, "Mean size (IP bytes) of the server's packets at or below which SMB answers count as error-sized.", NON_NEGATIVE),
        Threshold("smb_per_second", 5.0, "Exchanges per second of connection time, at least: a guessing tool does not pause.", NON_NEGATIVE),
        Threshold("window_seconds", 900.0, "Longest span of one judged window.", SECONDS),
        Threshold("idle_seconds", 120.0, "A window with no attempt for this long is judged.", SECONDS),
        Threshold("max_pairs", 50_000, "Source/service pairs tracked at once; the least recent is dropped at the limit.", COUNT),
    )  # fmt: skip

    def __init__(self, models: Any, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(models, overrides)
        self.tries: BoundedTable[tuple[str, str, int], _Tries] = BoundedTable(
            self.t["max_pairs"]
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        src, _, dst, dport = conn_ends(record)
        if not src or not dst:
            return []
        uid = record.get("uid")

        # Which kind of evidence the record is, if any.
        failed = 0
        success = False
        conn_bytes: int | None = None
        service = _NAMES.get(dport, f"port {dport}")
        user = None
        smb = 0
        if log == "conn":
            svc = record.get("service") or ""
            if "smb" in svc.split(","):
                smb = self._smb_exchanges(record)
                if not smb:
                    return []
                service = "SMB"
            names = [LOGIN_SERVICES[s] for s in svc.split(",") if s in LOGIN_SERVICES]
            if names:
                service = names[0]
            elif not smb and (dport not in LOGIN_PORTS or record.get("proto") != "tcp"):
                return []
            if not smb:
                if not record.get("orig_bytes"):
                    return []  # no login without client bytes (a scan probe)
                conn_bytes = int(record["orig_bytes"])
        elif log == "ssh":
            service = "SSH"
            ok = record.get("auth_success")
            if ok is True:
                success = True
            elif ok is False:
                failed = max(1, int(record.get("auth_attempts") or 0))
            else:
                return []
        elif log == "kerberos":
            service = "Kerberos"
            err = record.get("error_msg")
            if record.get("success") is True:
                success = True
            elif err in _KRB_FAILURES:
                failed = 1
                user = record.get("client")
            else:
                return []
        elif log == "ntlm":
            if record.get("success") is True:
                success = True
            elif record.get("success") is False:
                failed = 1
                user = record.get("username")
            else:
                return []
        elif log == "http":
            code = record.get("status_code")
            # Only a 401 to a request that carried a user name (Basic) is a
            # refused login: NTLM and Negotiate answer 401 twice on the way
            # to a success, and their failures come from ntlm.log.
            if code == 401 and record.get("username"):
                failed = 1
                user = record.get("username")
                service = "HTTP authentication"
            else:
                return []
        else:
            return []

        # Add to the window of (source, server, port).
        ts = float(record["ts"])
        out: list[Alert] = []
        key = (src, dst, dport)
        w = self.tries.get(key)
        if w is not None and ts - w.first > self.t["window_seconds"]:
            out.extend(self._judge(key, w))
            w = None
        if w is None:
            w = _Tries(ts, ts, service)
            self.tries.put(key, w)
        w.last = max(
            w.last,
            ts + (float(record.get("duration") or 0.0) if log == "conn" else 0.0),
        )
        if record.get("orig_l2_addr"):
            w.mac = record["orig_l2_addr"]
        if conn_bytes is not None:
            w.conns += 1
            if len(w.sizes) < 2000:
                w.sizes.append(conn_bytes)
                w.durations.append(float(record.get("duration") or 0.0))
        if smb:
            answer = float(record.get("resp_ip_bytes") or 0) / max(
                1, int(record.get("resp_pkts") or 0)
            )
            w.smb_answer_bytes = (
                w.smb_answer_bytes * w.smb_exchanges + answer * smb
            ) / (w.smb_exchanges + smb)
            w.smb_exchanges += smb
        if failed:
            w.failures += failed
            w.failure_records += 1
        if success:
            w.successes += 1
            if w.failures and w.success_uid is None:
                w.success_uid = uid
        if user and len(w.users) < 1000:
            w.users.add(str(user))
        if (
            uid
            and len(w.uids) < 400
            and (failed or smb or conn_bytes is not None)
            and uid not in w.uids[-3:]
        ):
            w.uids.append(uid)
        return out

    def tick(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, w in self.tries.items():
            if (
                now - w.last > self.t["idle_seconds"]
                or now - w.first > self.t["window_seconds"]
            ):
                out.extend(self._judge(key, w))
        return out

    def finish(self, now: float) -> list[Alert]:
        out: list[Alert] = []
        for key, w in self.tries.items():
            out.extend(self._judge(key, w))
        return out

    def _judge(self, key: tuple[str, str, int], w: _Tries) -> list[Alert]:
        self.tries.pop(key)
        src, dst, port = key
        window = duration(self.t["window_seconds"])
        span = within(w.last - w.first)
        reasons: list[Reason] = []

        # Failures the protocol reported win over connection shapes.
        if w.failures >= self.t["failures"]:
            score = log_score(w.failures, self.t["failures"])
            summary = (
                f"{src} failed {w.failures} {w.service} logins on {dst} port {port} "
                f"{span}"
            )
            if w.conns:
                summary += f" over {w.conns} connections"
            summary += f"; fewer than {self.t['failures']} failures in {window} are normal for a person."
            reasons.append(
                Reason(
                    "failed_logins", w.failures, f"< {self.t['failures']} in {window}"
                )
            )
        elif w.smb_exchanges >= self.t["smb_exchanges"]:
            score = log_score(w.smb_exchanges, self.t["smb_exchanges"], base=50.0)
            summary = (
                f"{src} made {w.smb_exchanges} quick SMB request/answer exchanges with {dst} "
                f"port {port} {span}, the answers averaging {w.smb_answer_bytes:.0f} bytes, "
                f"the size of an error status such as a refused login; a file session answers "
                f"with data, and fewer than {self.t['smb_exchanges']} such exchanges in {window} are normal."
            )
            reasons += [
                Reason(
                    "smb_small_exchanges",
                    w.smb_exchanges,
                    f"< {self.t['smb_exchanges']} in {window}",
                ),
                Reason(
                    "smb_mean_answer_ip_bytes",
                    round(w.smb_answer_bytes, 1),
                    f"> {self.t['smb_answer_bytes']} for a file session",
                ),
            ]
        else:
            shaped = self._shaped(w)
            if shaped is None:
                return []
            similar, median_bytes, median_seconds = shaped
            score = log_score(w.conns, self.t["connections"], base=52.0)
            summary = (
                f"{src} opened {w.conns} short {w.service} connections to {dst} port {port} "
                f"{span}, {similar} of them with about {median_bytes} bytes from the client "
                f"(median {median_seconds:.1f} s), as a password-guessing tool does; "
                f"a person logs in with fewer than {self.t['connections']} in {window}."
            )
            reasons += [
                Reason(
                    "login_connections",
                    w.conns,
                    f"< {self.t['connections']} in {window}",
                ),
                Reason(
                    "similar_size_share",
                    round(similar / w.conns, 3),
                    f">= {self.t['similar_share']} for a tool",
                ),
                Reason("median_client_bytes", median_bytes, None),
                Reason(
                    "median_duration_s",
                    round(median_seconds, 3),
                    f"< {self.t['short_seconds']}",
                ),
            ]
        if w.users:
            names = sorted(w.users)
            reasons.append(
                Reason(
                    "user_names",
                    ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
                    None,
                )
            )
        if w.success_uid is not None:
            score = min(100.0, score + 15.0)
            summary += f" A login then succeeded (connection {w.success_uid})."
            reasons.append(Reason("success_after_failures", True, False))

        uids = uid_sample(w.uids)
        if w.success_uid and w.success_uid not in uids:
            uids.append(w.success_uid)
        return [
            Alert(
                ts=w.first,
                detection=self.name,
                score=score,
                device=device_ref(self.models, src, w.mac),
                src=Endpoint(ip=src),
                dst=Endpoint(ip=dst, port=port),
                summary=summary,
                reasons=reasons,
                mitre=self.mitre,
                uids=uids,
            )
        ]

    def _smb_exchanges(self, record: dict[str, Any]) -> int:
        """Request/answer pairs of an SMB connection when its answers are
        error-sized and quick, else 0."""
        sent = int(record.get("orig_pkts") or 0)
        got = int(record.get("resp_pkts") or 0)
        pairs = min(sent, got)
        if pairs < 20:
            return 0
        answer = float(record.get("resp_ip_bytes") or 0) / got
        seconds = float(record.get("duration") or 0.0)
        if (
            answer > self.t["smb_answer_bytes"]
            or pairs / max(seconds, 1.0) < self.t["smb_per_second"]
        ):
            return 0
        return pairs

    def _shaped(self, w: _Tries) -> tuple[int, int, float] | None:
        """(similar, median bytes, median seconds) when the connections look
        like a guessing tool's, else None."""
        if w.conns < self.t["connections"] or not w.sizes:
            return None
        median_bytes = int(statistics.median(w.sizes))
        tolerance = max(0.3 * median_bytes, 16)
        similar = sum(1 for b in w.sizes if abs(b - median_bytes) <= tolerance)
        median_seconds = float(statistics.median(w.durations))
        rate = 60.0 * w.conns / max(w.last - w.first, 60.0)
        if (
            similar / len(w.sizes) < self.t["similar_share"]
            or median_seconds >= self.t["short_seconds"]
            or rate < self.t["per_minute"]
        ):
            return None
        return similar * w.conns // len(w.sizes), median_bytes, median_seconds
