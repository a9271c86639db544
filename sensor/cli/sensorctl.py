# PYTHON_ARGCOMPLETE_OK
"""sensorctl: see and steer the sensor through its gRPC API.

    sensorctl status
    sensorctl devices [--query TEXT] | device ID
    sensorctl alerts [--follow] [--since ID] | alert ID
    sensorctl incidents | incident ID
    sensorctl actions | approve ID --reason TEXT | clear ID --reason TEXT
    sensorctl extend ID --for 2h --reason TEXT
    sensorctl block SRC DST [--port P] --for 1h --reason TEXT
    sensorctl mode [MODE [--detection NAME | --tag TAG] --reason TEXT]

Tables for people; ``--json`` for scripts (one JSON document, or one
object per line with ``--follow``). The daemon is reached on its Unix
socket (``--socket``, default ``$SENSOR_SOCKET`` or
``/run/sensor/sensor.sock``) or over TCP (``--address HOST:PORT`` with TLS:
``--ca``, ``--token-file`` or ``--cert``/``--key``; ``--insecure`` only for
a daemon told ``--insecure-loopback``).

Exit status (:data:`EXIT_CODES`): 0 done; 1 the server failed; 2 wrong
usage or a request the server found invalid; 3 not found; 4 the object's
state forbids it (such as approving a cleared action); 5 refused (no or
wrong credentials, no permission, an action on a never-act device, every
follow stream taken); 6 the daemon cannot be reached;
130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shutil
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# gRPC's C core logs to stderr on its own (a failed TLS handshake is an
# "I1203 ... Handshake failed" line before ours); set before grpc is
# imported, and only when the user chose no verbosity of their own.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

from sensor.api.actions import parse_duration  # noqa: E402
from sensor.api.errors import InvalidArgument  # noqa: E402
from sensor.api.v1 import (  # noqa: E402
    actions_pb2,
    actions_pb2_grpc,
    alerts_pb2,
    alerts_pb2_grpc,
    common_pb2,
    devices_pb2,
    devices_pb2_grpc,
    mode_pb2,
    mode_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)

DEFAULT_SOCKET = "/run/sensor/sensor.sock"

EXIT_OK = 0
EXIT_SERVER = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_STATE = 4
EXIT_REFUSED = 5
EXIT_UNREACHABLE = 6
EXIT_INTERRUPTED = 130

#: gRPC status code -> exit status.
EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_USAGE,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_STATE,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_STATE,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_REFUSED,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_REFUSED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_REFUSED,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNREACHABLE,
}

MODES = {
    "observe": common_pb2.RESPONSE_MODE_OBSERVE,
    "confirm": common_pb2.RESPONSE_MODE_CONFIRM,
    "autonomous": common_pb2.RESPONSE_MODE_AUTONOMOUS,
    "unset": common_pb2.RESPONSE_MODE_UNSPECIFIED,
}
STATES = {
    "pending": actions_pb2.ACTION_STATE_PENDING,
    "active": actions_pb2.ACTION_STATE_ACTIVE,
    "cleared": actions_pb2.ACTION_STATE_CLEARED,
    "expired": actions_pb2.ACTION_STATE_EXPIRED,
    "observed": actions_pb2.ACTION_STATE_OBSERVED,
    "refused": actions_pb2.ACTION_STATE_REFUSED,
    "failed": actions_pb2.ACTION_STATE_FAILED,
    "done": actions_pb2.ACTION_STATE_DONE,
}


class Usage(Exception):
    """Wrong options found after parsing; exit 2 with the message."""


# -- option values -----------------------------------------------------------


def socket_path(text: str) -> str:
    """``--socket``: a path, not empty (an empty one would quietly mean the
    default socket)."""
    if not text:
        raise argparse.ArgumentTypeError(
            f"an empty path; leave --socket out for the default ({DEFAULT_SOCKET})"
        )
    return text


def address(text: str) -> str:
    """``--address``: HOST:PORT or [IPv6]:PORT with a port of 1 to 65535.

    gRPC would take a port above 65535 modulo 65536 and a missing one as
    443, and reach some other service or none."""
    if text.startswith("["):
        inner, close, rest = text[1:].partition("]")
        sep, port = rest[:1], rest[1:]
        if not close or (rest and sep != ":"):
            raise argparse.ArgumentTypeError(
                f"bad address {text!r}: expected [IPv6]:PORT"
            )
    else:
        inner, sep, port = text.rpartition(":")
        if ":" in inner:
            raise argparse.ArgumentTypeError(
                f"bad address {text!r}: write an IPv6 address as [ADDRESS]:PORT"
            )
    if not inner:
        raise argparse.ArgumentTypeError(
            f"bad address {text!r}: expected HOST:PORT or [IPv6]:PORT"
        )
    if not sep or not port:
        raise argparse.ArgumentTypeError(f"bad address {text!r}: the port is missing")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"bad address {text!r}: the port {port!r} is not a number from 1 to 65535"
        )
    return text


#: Longest --timeout.
MAX_TIMEOUT = 86400.0


def positive_seconds(text: str) -> float:
    """``--timeout``: seconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive seconds, got {text!r}")
    if value > MAX_TIMEOUT:
        # gRPC turns a deadline that far ahead into one already past.
        raise argparse.ArgumentTypeError(
            f"at most {MAX_TIMEOUT:g} seconds (a day), got {text!r}"
        )
    return value


def score(text: str) -> float:
    """``--min-score``: an alert score, 0 to 100."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a score, got {text!r}") from None
    if not 0 <= value <= 100:  # NaN fails too
        raise argparse.ArgumentTypeError(f"a score is 0 to 100, got {text!r}")
    return value


def count(text: str) -> int:
    """``--limit``: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, got {value}")
    return value


def duration(text: str) -> str:
    """``--for``: a duration such as 90s, 30m, 2h or 1h30m, more than 0;
    sent as given (the server parses it as well)."""
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text[:40]!r}")
    try:
        parse_duration(text)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def negative_values_joined(argv: list[str]) -> list[str]:
    """``--for -5m`` as ``--for=-5m``: argparse takes a value that starts
    with '-' and is not a plain number for an option, and would only say
    "expected one argument"; joined, --for's own check says what is wrong."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--for" and arg[:2] in {f"-{d}" for d in "0123456789."}:
            out[-1] = f"--for={arg}"
        else:
            out.append(arg)
    return out


#: Longest id, address, name or filter sensorctl sends: none the sensor
#: gives is near it (a domain name is at most 253 characters).
MAX_ID = 256


def ident(text: str) -> str:
    """An id, IP, MAC, name or filter value: at most MAX_ID characters, so
    that a pasted log line is refused here rather than by the server."""
    if len(text) > MAX_ID:
        raise argparse.ArgumentTypeError(
            f"{len(text)} characters, more than {MAX_ID}: not an id, address or "
            f"name (it starts {text[:40]!r})"
        )
    return text


def port(text: str) -> int:
    """``block --port``: 1 to 65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return int(text)


# -- connecting ---------------------------------------------------------------


class Client:
    """A channel to the daemon and the metadata every call carries."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.metadata: list[tuple[str, str]] = []
        self.timeout = args.timeout
        #: The Unix socket's path; None over TCP.
        self.path: str | None = None
        if args.address:
            self.target = args.address
            self.channel = self._tcp(args)
        else:
            path = args.socket or os.environ.get("SENSOR_SOCKET") or DEFAULT_SOCKET
            self.path = os.path.abspath(path)
            self.target = f"unix:{self.path}"
            self.channel = grpc.insecure_channel(self.target)

    def _tcp(self, args: argparse.Namespace) -> grpc.Channel:
        if args.token_file:
            try:
                with open(args.token_file) as f:
                    lines = [ln.split("#", 1)[0].split() for ln in f]
            except OSError as e:
                raise Usage(
                    f"{args.token_file}: cannot read the token: {e.strerror}"
                ) from None
            words = next((w for w in lines if w), None)
            if not words:
                raise Usage(f"{args.token_file}: no token in the file")
            # A line of the server's NAME TOKEN form works too: the last word.
            self.metadata.append(("authorization", f"Bearer {words[-1]}"))
        if args.insecure:
            return grpc.insecure_channel(args.address)
        if bool(args.cert) != bool(args.key):
            raise Usage("--cert and --key go together")

        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as e:
                raise Usage(f"{path}: cannot read: {e.strerror}") from None

        creds = grpc.ssl_channel_credentials(
            root_certificates=read(args.ca),
            private_key=read(args.key),
            certificate_chain=read(args.cert),
        )
        options = (
            [("grpc.ssl_target_name_override", args.server_name)]
            if args.server_name
            else []
        )
        return grpc.secure_channel(args.address, creds, options=options)

    def call(self, method: Callable[..., Any], request: Message) -> Any:
        """One unary call with the metadata and the timeout."""
        return method(request, metadata=self.metadata, timeout=self.timeout)

    def stream(self, method: Callable[..., Any], request: Message) -> Any:
        """One server-streaming call (no timeout: it follows)."""
        return method(request, metadata=self.metadata)


# -- output ------------------------------------------------------------------


def as_dict(msg: Message) -> dict[str, Any]:
    """A message as JSON-ready dict with the proto field names."""
    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=None, sort_keys=False))


def when(ts: float) -> str:
    """Seconds since the epoch as UTC text; '-' for 0."""
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def endpoint(e: common_pb2.Endpoint) -> str:
    host = e.domain or e.ip or "?"
    if e.domain and e.ip:
        host = f"{e.domain}({e.ip})"
    return f"{host}:{e.port}" if e.HasField("port") and e.port else host


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], out: Any = None
) -> None:
    """Columns padded to their widest cell; the last one is not padded."""
    out = out or sys.stdout
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for r in [list(headers)] + rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths)] + [r[-1]]
        print("  ".join(cells).rstrip(), file=out)


def _short(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 1)] + "…"


def _room() -> int:
    return max(shutil.get_terminal_size((120, 24)).columns, 60)


# -- commands ----------------------------------------------------------------


def cmd_status(c: Client, args: argparse.Namespace) -> int:
    s = c.call(
        status_pb2_grpc.StatusStub(c.channel).GetStatus, status_pb2.GetStatusRequest()
    )
    if args.json:
        emit_json(as_dict(s))
        return EXIT_OK
    mode = common_pb2.ResponseMode.Name(s.mode).removeprefix("RESPONSE_MODE_").lower()
    lines = [
        ("version", s.version),
        ("source", f"{s.source} ({'running' if s.running else 'finished'})"),
        ("uptime", f"{s.uptime_seconds:.0f} s"),
        ("packet time", when(s.packet_time)),
        ("packets", f"{s.packets} ({s.drops} dropped{', DEGRADED' if s.degraded else ''})"),
        ("connections", s.connections),
        ("mode", mode),
        ("learning", (f"{s.learning.devices_learning} of {s.learning.devices} devices "
                     f"({s.learning.progress:.0%} done)")),
        ("alerts", s.alerts),
        ("incidents", s.incidents),
        ("actions", f"{s.actions} ({s.actions_pending} pending)"),
    ]  # fmt: skip
    for w in s.capture if len(s.capture) > 1 else []:
        lines.append((f"worker {w.worker}", f"{w.packets} packets, {w.drops} drops"))
    for k, v in lines:
        print(f"{k + ':':<13} {v}")
    return EXIT_OK


def _pages(
    c: Client,
    method: Callable[..., Any],
    request: Callable[[common_pb2.PageRequest], Message],
    field: str,
    limit: int,
) -> list[Any]:
    """The items in ``field`` of every page ``method`` answers for
    ``request(page)``; at most ``limit`` of them unless it is 0."""
    out: list[Any] = []
    token = ""
    while True:
        page = common_pb2.PageRequest(page_size=500, page_token=token)
        reply = c.call(method, request(page))
        out.extend(getattr(reply, field))
        token = reply.page.next_page_token
        if not token or (limit and len(out) >= limit):
            return out[:limit] if limit else out


def cmd_devices(c: Client, args: argparse.Namespace) -> int:
    stub = devices_pb2_grpc.DevicesStub(c.channel)
    devices = _pages(
        c, stub.ListDevices,
        lambda page: devices_pb2.ListDevicesRequest(
            query=args.query or "", tag=args.tag or "", role=args.role or "",
            learning_only=args.learning, page=page,
        ),
        "devices", args.limit,
    )  # fmt: skip
    if args.json:
        emit_json([as_dict(d) for d in devices])
        return EXIT_OK
    table(
        ("ID", "IP", "MAC", "NAME", "ALERTS", "LAST SEEN", "ROLES"),
        (
            (
                d.id,
                d.ip,
                d.mac or "-",
                d.name or "-",
                d.alerts,
                when(d.last_seen),
                ",".join(d.roles) or "-",
            )
            for d in devices
        ),
    )
    return EXIT_OK


def cmd_device(c: Client, args: argparse.Namespace) -> int:
    r = c.call(
        devices_pb2_grpc.DevicesStub(c.channel).GetDevice,
        devices_pb2.GetDeviceRequest(id=args.id),
    )
    if args.json:
        emit_json(as_dict(r))
        return EXIT_OK
    d = r.device
    print(f"device {d.id}: {d.ip} {d.mac or ''} {d.name or ''}".rstrip())
    print(f"  seen {when(d.first_seen)} to {when(d.last_seen)}; "
          f"{'learning' if d.learning else 'learned'}; {d.alerts} alerts")  # fmt: skip
    if d.roles or d.tags:
        print(f"  roles: {', '.join(d.roles) or '-'}; tags: {', '.join(d.tags) or '-'}")
    for b in r.baselines:
        print(f"  {b.feature}: {b.value:g}")
    if r.peer_group:
        print(f"  peer group: {r.peer_group}")
    print("peers:")
    table(
        ("  PEER", "CONNS", "BYTES OUT", "BYTES IN", "LAST"),
        (
            (
                "  " + endpoint(p.endpoint),
                p.connections,
                p.bytes_out,
                p.bytes_in,
                when(p.last_seen),
            )
            for p in r.peers[:20]
        ),
    )
    if len(r.peers) > 20:
        print(f"  ... {len(r.peers) - 20} more (--json lists all)")
    print("services:")
    table(
        ("  SERVICE", "AS", "CONNS"),
        (("  " + s.name, s.direction, s.connections) for s in r.services[:20]),
    )
    if r.recent_alerts:
        print("recent alerts:")
        _alert_table(r.recent_alerts)
    return EXIT_OK


def _alert_filter(args: argparse.Namespace) -> alerts_pb2.AlertFilter:
    return alerts_pb2.AlertFilter(
        detections=args.detection or [],
        device=args.device or "",
        min_score=args.min_score or 0.0,
    )


def _alert_row(a: alerts_pb2.Alert) -> list[str]:
    return [a.id, when(a.ts), a.detection, f"{a.score:.0f}",
            f"{endpoint(a.src)} -> {endpoint(a.dst)}", a.summary]  # fmt: skip


def _alert_table(alerts: Sequence[alerts_pb2.Alert]) -> None:
    rows = [_alert_row(a) for a in alerts]
    room = _room() - 80
    for r in rows:
        r[-1] = _short(r[-1], max(room, 40))
    table(("ID", "TIME (UTC)", "DETECTION", "SCORE", "SRC -> DST", "SUMMARY"), rows)


def cmd_alerts(c: Client, args: argparse.Namespace) -> int:
    stub = alerts_pb2_grpc.AlertsStub(c.channel)
    if args.follow:
        return _follow_alerts(c, stub, args)
    alerts = _pages(
        c, stub.ListAlerts,
        lambda page: alerts_pb2.ListAlertsRequest(
            filter=_alert_filter(args), after_id=args.since or "", page=page
        ),
        "alerts", args.limit,
    )  # fmt: skip
    if args.json:
        emit_json([as_dict(a) for a in alerts])
    else:
        _alert_table(alerts)
    return EXIT_OK


def _follow_alerts(c: Client, stub: Any, args: argparse.Namespace) -> int:
    request = alerts_pb2.FollowAlertsRequest(
        filter=_alert_filter(args), after_id=args.since or "", from_start=args.all
    )
    # The daemon is reached first with a status call, which fails as any
    # call does when it cannot be: once the follow runs, UNAVAILABLE means
    # it went away. (Watching the channel's connectivity instead left gRPC's
    # polling thread behind, and the exit could hang on it.)
    c.call(status_pb2_grpc.StatusStub(c.channel).GetStatus, status_pb2.GetStatusRequest())
    stream = c.stream(stub.FollowAlerts, request)
    n = 0
    try:
        for a in stream:
            if args.json:
                print(json.dumps(as_dict(a)), flush=True)
            else:
                print("  ".join(_alert_row(a)), flush=True)
            n += 1
            if args.limit and n >= args.limit:
                stream.cancel()
                return EXIT_OK
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED:
            return EXIT_OK
        if e.code() != grpc.StatusCode.UNAVAILABLE:
            raise
    # A follow ends only by --limit: the stream ended (a daemon that stops
    # ends it; a lost connection fails it).
    print(
        f"sensorctl: {c.target}: the sensor stopped (or the connection was lost) "
        "while following",
        file=sys.stderr,
    )
    return EXIT_UNREACHABLE


def cmd_alert(c: Client, args: argparse.Namespace) -> int:
    a = c.call(
        alerts_pb2_grpc.AlertsStub(c.channel).GetAlert,
        alerts_pb2.GetAlertRequest(id=args.id),
    )
    if args.json:
        emit_json(as_dict(a))
        return EXIT_OK
    print(
        f"alert {a.id} ({a.detection}, score {a.score:.0f}, {a.mitre}) at {when(a.ts)}"
    )
    print(f"  {a.summary}")
    print(f"  {endpoint(a.src)} -> {endpoint(a.dst)}; incident {a.incident or '-'}")
    for r in a.reasons:
        value = json_format.MessageToJson(r.value, indent=None)
        base = json_format.MessageToJson(r.baseline, indent=None)
        print(f"  reason {r.feature}: {value} (baseline {base})")
    if a.uids:
        print(f"  connections: {' '.join(a.uids)}")
    return EXIT_OK


def cmd_incidents(c: Client, args: argparse.Namespace) -> int:
    stub = alerts_pb2_grpc.IncidentsStub(c.channel)
    incidents = _pages(
        c, stub.ListIncidents,
        lambda page: alerts_pb2.ListIncidentsRequest(
            filter=alerts_pb2.IncidentFilter(
                device=args.device or "", min_severity=args.min_severity or ""
            ),
            page=page,
        ),
        "incidents", args.limit,
    )  # fmt: skip
    if args.json:
        emit_json([as_dict(i) for i in incidents])
        return EXIT_OK
    table(
        ("ID", "SEVERITY", "FIRST (UTC)", "LAST", "ALERTS", "DEVICES", "TITLE"),
        (
            (
                i.id,
                i.severity,
                when(i.first),
                when(i.last),
                len(i.alerts),
                ",".join(i.devices),
                i.title,
            )
            for i in incidents
        ),
    )
    return EXIT_OK


def cmd_incident(c: Client, args: argparse.Namespace) -> int:
    r = c.call(
        alerts_pb2_grpc.IncidentsStub(c.channel).GetIncident,
        alerts_pb2.GetIncidentRequest(id=args.id),
    )
    if args.json:
        emit_json(as_dict(r))
        return EXIT_OK
    i = r.incident
    print(f"incident {i.id} ({i.severity}): {i.title}")
    print(f"  {when(i.first)} to {when(i.last)}; devices {', '.join(i.devices)}; "
          f"ATT&CK {', '.join(i.mitre) or '-'}")  # fmt: skip
    if i.narrative:
        print(f"  {i.narrative}")
    if r.alerts:
        _alert_table(r.alerts)
    return EXIT_OK


def _state(a: actions_pb2.Action) -> str:
    return actions_pb2.ActionState.Name(a.state).removeprefix("ACTION_STATE_").lower()


def _action_table(actions: Sequence[actions_pb2.Action]) -> None:
    def changed(a: actions_pb2.Action) -> str:
        if not a.history:
            return a.requested_by or "-"
        h = a.history[-1]
        return f"{h.change} by {h.who}"

    table(
        (
            "ID",
            "STATE",
            "ACTION",
            "DEVICE",
            "DESTINATION",
            "EXPIRES (UTC)",
            "LAST CHANGE",
            "REASON",
        ),
        (
            (
                a.id,
                _state(a),
                a.kind,
                endpoint(a.src),
                endpoint(a.dst),
                when(a.expires),
                changed(a),
                _short(a.reason, 40),
            )
            for a in actions
        ),
    )


def cmd_actions(c: Client, args: argparse.Namespace) -> int:
    stub = actions_pb2_grpc.ActionsStub(c.channel)
    f = actions_pb2.ActionFilter(
        states=[STATES[s] for s in args.state or []], device=args.device or ""
    )
    actions = _pages(
        c, stub.ListActions,
        lambda page: actions_pb2.ListActionsRequest(filter=f, page=page),
        "actions", args.limit,
    )  # fmt: skip
    if args.json:
        emit_json([as_dict(a) for a in actions])
    else:
        _action_table(actions)
    return EXIT_OK


def _one_action(a: actions_pb2.Action, args: argparse.Namespace) -> int:
    if args.json:
        emit_json(as_dict(a))
    else:
        _action_table([a])
    return EXIT_OK


def cmd_action(c: Client, args: argparse.Namespace) -> int:
    a = c.call(
        actions_pb2_grpc.ActionsStub(c.channel).GetAction,
        actions_pb2.GetActionRequest(id=args.id),
    )
    if args.json:
        return _one_action(a, args)
    _action_table([a])
    for h in a.history:
        print(f"  {when(h.ts)} {h.change} by {h.who}: {h.reason}")
    return EXIT_OK


def cmd_approve(c: Client, args: argparse.Namespace) -> int:
    stub = actions_pb2_grpc.ActionsStub(c.channel)
    a = c.call(
        stub.ApproveAction,
        actions_pb2.ApproveActionRequest(id=args.id, reason=args.reason),
    )
    return _one_action(a, args)


def cmd_clear(c: Client, args: argparse.Namespace) -> int:
    stub = actions_pb2_grpc.ActionsStub(c.channel)
    a = c.call(
        stub.ClearAction, actions_pb2.ClearActionRequest(id=args.id, reason=args.reason)
    )
    return _one_action(a, args)


def cmd_extend(c: Client, args: argparse.Namespace) -> int:
    stub = actions_pb2_grpc.ActionsStub(c.channel)
    a = c.call(
        stub.ExtendAction,
        actions_pb2.ExtendActionRequest(
            id=args.id, duration=args.duration, reason=args.reason
        ),
    )
    return _one_action(a, args)


def cmd_block(c: Client, args: argparse.Namespace) -> int:
    stub = actions_pb2_grpc.ActionsStub(c.channel)
    a = c.call(
        stub.CreateBlock,
        actions_pb2.CreateBlockRequest(
            src=args.src,
            dst=args.dst,
            port=args.port or 0,
            proto=args.proto or "",
            duration=args.duration,
            reason=args.reason,
        ),
    )
    return _one_action(a, args)


def cmd_mode(c: Client, args: argparse.Namespace) -> int:
    stub = mode_pb2_grpc.ModeStub(c.channel)
    if args.mode is None:
        if args.detection or args.tag:
            raise Usage("give the MODE to set for --detection or --tag")
        m = c.call(stub.GetMode, mode_pb2.GetModeRequest())
    else:
        if not args.reason:
            raise Usage("changing the mode needs --reason")
        if args.mode == "unset" and not (args.detection or args.tag):
            raise Usage("unset removes an override: give --detection or --tag")
        m = c.call(
            stub.SetMode,
            mode_pb2.SetModeRequest(
                mode=MODES[args.mode],
                detection=args.detection or "",
                tag=args.tag or "",
                reason=args.reason,
            ),
        )
    if args.json:
        emit_json(as_dict(m))
        return EXIT_OK

    def name(v: int) -> str:
        return common_pb2.ResponseMode.Name(v).removeprefix("RESPONSE_MODE_").lower()

    print(
        f"mode: {name(m.mode)}{' (stepped down to confirm)' if m.stepped_down else ''}"
    )
    for k, v in sorted(m.detections.items()):
        print(f"  detection {k}: {name(v)}")
    for k, v in sorted(m.tags.items()):
        print(f"  tag {k}: {name(v)}")
    return EXIT_OK


def cmd_completion(c: Client | None, args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode(["sensorctl"], shell=args.shell))
    return EXIT_OK


# -- command line ------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command line of sensorctl."""
    p = argparse.ArgumentParser(
        prog="sensorctl",
        description="See and steer the sensor through its API.",
        epilog="Exit status: 0 done, 1 server error, 2 usage or invalid request, "
        "3 not found, 4 state forbids it, 5 refused, 6 daemon unreachable.",
    )
    where = p.add_argument_group("where the daemon is")
    where.add_argument(
        "--socket",
        metavar="PATH",
        type=socket_path,
        help=f"Unix socket (default: $SENSOR_SOCKET or {DEFAULT_SOCKET})",
    )
    where.add_argument(
        "--address",
        type=address,
        metavar="HOST:PORT",
        help="TCP address; TLS unless --insecure",
    )
    where.add_argument(
        "--token-file", metavar="FILE", help="file holding the bearer token (TCP)"
    )
    where.add_argument(
        "--ca", metavar="FILE", help="CA certificate to check the server's (TCP)"
    )
    where.add_argument("--cert", metavar="FILE", help="client certificate (TCP)")
    where.add_argument("--key", metavar="FILE", help="client certificate's key (TCP)")
    where.add_argument(
        "--server-name",
        metavar="NAME",
        help="name to expect in the server's certificate",
    )
    where.add_argument(
        "--insecure",
        action="store_true",
        help="TCP without TLS (a daemon on loopback with --insecure-loopback)",
    )
    where.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds per call (default 10)",
    )
    p.add_argument("--json", action="store_true", help="JSON output for scripts")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, fn: Callable[..., int], help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(fn=fn)
        s.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
        )
        return s

    def limit(s: argparse.ArgumentParser) -> None:
        s.add_argument(
            "--limit", type=count, default=0, metavar="N",
            help="at most N items (default 0: all)",
        )

    cmd("status", cmd_status, "version, uptime, capture, mode, learning")
    s = cmd("devices", cmd_devices, "list devices")
    s.add_argument("--query", type=ident, help="substring of id, IP, MAC or name")
    s.add_argument("--tag", type=ident)
    s.add_argument("--role", type=ident)
    s.add_argument(
        "--learning", action="store_true", help="only devices still learning"
    )
    limit(s)
    s = cmd("device", cmd_device, "one device: model summary, peers, services, alerts")
    s.add_argument("id", type=ident, metavar="ID", help="device id, IP, MAC or name")
    s = cmd("alerts", cmd_alerts, "list or follow alerts")
    s.add_argument(
        "--follow", "-f", action="store_true", help="keep printing alerts as they come"
    )
    s.add_argument(
        "--since", type=ident, metavar="ID", help="only alerts after this one (resume a follow)"
    )
    s.add_argument(
        "--all",
        action="store_true",
        help="with --follow and no --since: existing alerts first",
    )
    s.add_argument(
        "--detection",
        action="append",
        type=ident,
        metavar="NAME",
        help="only this detection (repeatable)",
    )
    s.add_argument("--device", type=ident, help="only alerts about this device (IP, MAC, name)")
    s.add_argument("--min-score", type=score, metavar="N")
    limit(s)
    s = cmd("alert", cmd_alert, "one alert with its reasons")
    s.add_argument("id", type=ident, metavar="ID")
    s = cmd("incidents", cmd_incidents, "list incidents")
    s.add_argument("--device", type=ident)
    s.add_argument("--min-severity", choices=("low", "medium", "high", "critical"))
    limit(s)
    s = cmd("incident", cmd_incident, "one incident with its alerts")
    s.add_argument("id", type=ident, metavar="ID")
    s = cmd("actions", cmd_actions, "list actions")
    s.add_argument(
        "--state",
        action="append",
        choices=sorted(STATES),
        help="only this state (repeatable)",
    )
    s.add_argument("--device", type=ident)
    limit(s)
    s = cmd("action", cmd_action, "one action with its history")
    s.add_argument("id", type=ident, metavar="ID")
    for name, fn, help in (
        ("approve", cmd_approve, "put a pending action in force"),
        ("clear", cmd_clear, "lift an action"),
    ):
        s = cmd(name, fn, help)
        s.add_argument("id", type=ident, metavar="ID")
        s.add_argument("--reason", required=True, help="why (recorded with your name)")
    s = cmd("extend", cmd_extend, "move an action's expiry later")
    s.add_argument("id", type=ident, metavar="ID")
    s.add_argument(
        "--for",
        dest="duration",
        type=duration,
        required=True,
        metavar="DURATION",
        help="such as 30m, 2h, 1d",
    )
    s.add_argument("--reason", required=True)
    s = cmd("block", cmd_block, "block a device's traffic to one destination")
    s.add_argument("src", type=ident, metavar="SRC", help="device IP address")
    s.add_argument("dst", type=ident, metavar="DST", help="IP address, network or domain")
    s.add_argument("--port", type=port, metavar="P")
    s.add_argument("--proto", choices=("tcp", "udp"))
    s.add_argument(
        "--for", dest="duration", type=duration, required=True, metavar="DURATION",
        help="such as 1h",
    )
    s.add_argument("--reason", required=True)
    s = cmd("mode", cmd_mode, "show or set the response mode")
    s.add_argument(
        "mode", nargs="?", choices=sorted(MODES), help="unset removes an override"
    )
    which = s.add_mutually_exclusive_group()
    which.add_argument("--detection", type=ident, metavar="NAME", help="only for this detection")
    which.add_argument("--tag", type=ident, help="only for devices with this tag")
    s.add_argument("--reason")
    s = cmd("completion", cmd_completion, "print the shell completion script")
    s.add_argument(
        "shell", nargs="?", default="bash", choices=("bash", "zsh", "fish", "tcsh")
    )
    return p


#: What a terminal would act on rather than show: C0 and C1 controls
#: (escape sequences, carriage returns) and the bidirectional overrides
#: that reorder a line. Names, domains, user agents and reasons come from
#: the network or from other operators; they are shown escaped.
_UNSHOWN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def visible(text: str) -> str:
    """``text`` with what :data:`_UNSHOWN` matches written as escapes."""
    return _UNSHOWN.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


class _Visible:
    """A text stream that writes through :func:`visible`."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        return int(self._raw.write(visible(text)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sensorctl`` command."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Visible(sys.stdout), _Visible(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: Sequence[str] | None) -> int:
    p = parser()
    try:
        import argcomplete

        argcomplete.autocomplete(p)
    except ImportError:  # completion is a convenience
        pass
    args = p.parse_args(negative_values_joined(list(sys.argv[1:] if argv is None else argv)))
    client: Client | None = None
    try:
        if args.fn is not cmd_completion:
            client = Client(args)
        return int(args.fn(client, args))
    except Usage as e:
        print(f"sensorctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as e:
        return _rpc_error(e, client)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    finally:
        if client is not None:
            client.channel.close()


def socket_problem(path: str) -> str | None:
    """What keeps a Unix socket at ``path`` from being reached, in plain
    words; None when something listens on it (or the cause is another)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such socket; is sensord running? (systemctl status sensor)"
    except OSError as e:
        return None if e.errno == errno.EACCES else f"cannot look at it: {e.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return "not a socket (a directory)"
    if stat.S_ISREG(st.st_mode):
        return "not a socket (a regular file)"
    if not stat.S_ISSOCK(st.st_mode):
        return "not a socket"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2.0)
        probe.connect(path)
    except ConnectionRefusedError:
        return "nothing listens on it (a stale socket?)"
    except OSError:
        return None
    finally:
        probe.close()
    return None


#: How gRPC begins the text of a connection that failed; the last error
#: that follows is the cause.
_LAST_ERROR = re.compile(r"^failed to connect to all addresses; last error: ")


def _rpc_error(e: grpc.RpcError, client: Client | None) -> int:
    code = e.code()
    details = e.details() or code.name
    target = client.target if client else "?"
    if code == grpc.StatusCode.UNAVAILABLE:
        if "ermission denied" in details:
            print(
                f"sensorctl: {target}: permission denied (ask to be added to group sensor)",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        problem = socket_problem(client.path) if client and client.path else None
        if problem is None:
            problem = _LAST_ERROR.sub("", details)
        print(
            f"sensorctl: {target}: cannot reach the sensor: {problem}", file=sys.stderr
        )
        return EXIT_UNREACHABLE
    print(f"sensorctl: {details}", file=sys.stderr)
    return EXIT_CODES.get(code, EXIT_SERVER)


if __name__ == "__main__":
    sys.exit(main())
