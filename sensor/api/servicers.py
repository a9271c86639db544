"""The services of API v1 (proto/sensor/v1), reading an ApiState.

Every method runs through :func:`handle`: it asks the Authority who the
caller is (refusing those who may not call), takes the state's lock for
the read or change, and turns an :class:`sensor.api.errors.ApiError` into
its gRPC status code and message. Anything else is a bug: it is logged
with its traceback and the caller gets INTERNAL with the error's text.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from sensor.api import convert
from sensor.api.actions import need_reason, parse_duration, refusal
from sensor.api.auth import Authority, Caller
from sensor.api.errors import ApiError, InvalidArgument, cut, quote
from sensor.api.state import MODES, ApiState
from sensor.api.v1 import (
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
from sensor.detect.runner import load_all

log = logging.getLogger(__name__)

#: A servicer method as written here: it also gets the caller.
Method = Callable[[Any, Any, Any, Caller], Any]
#: The same method as gRPC calls it: (self, request, context).
Handler = Callable[[Any, Any, Any], Any]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
SEVERITIES = ("low", "medium", "high", "critical")


def handle(fn: Method) -> Handler:
    """Authorize the caller, run the method, map errors to status codes."""

    @functools.wraps(fn)
    def unary(self: Base, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            caller = self.authority.caller(context)
            return fn(self, request, context, caller)
        except ApiError as e:
            context.abort(e.code, cut(str(e)))
        except Exception as e:
            log.exception("api: %s failed", fn.__name__)
            context.abort(
                grpc.StatusCode.INTERNAL,
                cut(f"{fn.__name__}: {type(e).__name__}: {e}"),
            )

    @functools.wraps(fn)
    def stream(self: Base, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            caller = self.authority.caller(context)
            yield from fn(self, request, context, caller)
        except ApiError as e:
            context.abort(e.code, cut(str(e)))
        except Exception as e:
            log.exception("api: %s failed", fn.__name__)
            context.abort(
                grpc.StatusCode.INTERNAL,
                cut(f"{fn.__name__}: {type(e).__name__}: {e}"),
            )

    return stream if inspect.isgeneratorfunction(fn) else unary


def _page_size(req: common_pb2.PageRequest) -> int:
    size = req.page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidArgument(f"page_size {size}: at most {MAX_PAGE}")
    return int(size)


def _alert_token(token: str, length: int) -> tuple[int, int]:
    pos, _, total = token.partition(".")
    if not pos.isdigit() or not total.isdigit() or int(pos) > length:
        raise InvalidArgument(f"page_token {quote(token)}: not a token this list gave")
    return int(pos), int(total)


def _no_filter(f: alerts_pb2.AlertFilter) -> bool:
    return not (
        f.detections
        or f.min_score
        or f.since_ts
        or f.until_ts
        or f.incident
        or f.device
    )


def page(
    items: list[Any], req: common_pb2.PageRequest
) -> tuple[list[Any], common_pb2.PageReply]:
    """One page of ``items`` as the request asks, and where the list stands."""
    size = req.page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidArgument(f"page_size {size}: at most {MAX_PAGE}")
    token = req.page_token or "0"
    if not token.isdigit() or int(token) > len(items):
        raise InvalidArgument(
            f"page_token {quote(req.page_token)}: not a token this list gave"
        )
    start = int(token)
    end = start + size
    nxt = str(end) if end < len(items) else ""
    return items[start:end], common_pb2.PageReply(next_page_token=nxt, total=len(items))


class Base:
    """What every servicer has: the state and the authority."""

    def __init__(self, state: ApiState, authority: Authority) -> None:
        self.state = state
        self.authority = authority


class StatusServicer(Base, status_pb2_grpc.StatusServicer):
    """sensor.v1.Status."""

    @handle
    def GetStatus(self, request: Any, context: Any, caller: Caller) -> Any:
        with self.state.cond:
            s = self.state.status()
        totals = s["totals"]
        capture = s["capture"] or [
            {
                "worker": 0,
                "packets": totals.get("packets", 0),
                "bytes": totals.get("bytes", 0),
            }
        ]
        stats = [
            status_pb2.CaptureStats(
                worker=int(c.get("worker", 0)),
                packets=int(c.get("packets", 0)),
                drops=int(c.get("drops", 0)),
                drop_ratio=float(c.get("drop_ratio", 0.0)),
                bytes=int(c.get("bytes", 0)),
            )
            for c in capture
        ]
        devices, learning = s["devices"], s["devices_learning"]
        return status_pb2.GetStatusResponse(
            version=s["version"],
            uptime_seconds=s["uptime"],
            source=s["source"],
            running=s["running"],
            packet_time=s["packet_time"],
            capture=stats,
            packets=sum(c.packets for c in stats),
            drops=sum(c.drops for c in stats),
            degraded=s["degraded"],
            mode=convert.MODES[s["mode"]],
            learning=status_pb2.Learning(
                devices=devices,
                devices_learning=learning,
                progress=1.0 - learning / devices if devices else 1.0,
            ),
            alerts=s["alerts"],
            incidents=s["incidents"],
            actions=s["actions"],
            actions_pending=s["actions_pending"],
            connections=int(totals.get("connections", 0)),
        )


class DevicesServicer(Base, devices_pb2_grpc.DevicesServicer):
    """sensor.v1.Devices."""

    def _device(self, dev: Any) -> devices_pb2.Device:
        st = self.state
        info = st.model_device(dev.ip, dev.mac)
        d = devices_pb2.Device(
            id=str(getattr(info, "id", None) or dev.ip),
            ip=dev.ip,
            internal=True,
            first_seen=float(getattr(info, "first_seen", None) or dev.first_seen),
            last_seen=dev.last_seen,
            roles=list(getattr(info, "roles", None) or []),
            tags=list(getattr(info, "tags", None) or []),
            learning=st.learning(info),
            alerts=len(st.device_alerts(dev)),
        )
        mac = getattr(info, "mac", None) or dev.mac
        if mac:
            d.mac = mac
        for key in ("name", "vendor"):
            v = getattr(info, key, None)
            if v:
                setattr(d, key, str(v))
        return d

    @handle
    def ListDevices(self, request: Any, context: Any, caller: Caller) -> Any:
        q = request.query.lower()
        with self.state.cond:
            out = []
            for dev in sorted(self.state.devices.values(), key=lambda d: _ip_key(d.ip)):
                d = self._device(dev)
                text = f"{d.id} {d.ip} {d.mac} {d.name}".lower()
                if q and q not in text:
                    continue
                if request.tag and request.tag not in d.tags:
                    continue
                if request.role and request.role not in d.roles:
                    continue
                if request.learning_only and not d.learning:
                    continue
                out.append(d)
        items, reply = page(out, request.page)
        return devices_pb2.ListDevicesResponse(devices=items, page=reply)

    @handle
    def GetDevice(self, request: Any, context: Any, caller: Caller) -> Any:
        st = self.state
        with st.cond:
            dev = st.find_device(request.id)
            d = self._device(dev)
            info = st.model_device(dev.ip, dev.mac)
            baselines = []
            models = st.models()
            if info is not None and hasattr(models, "baseline"):
                for feature in (
                    "max_upload_bytes", "bytes_out_per_hour", "conns_per_hour",
                    "distinct_peers_per_hour",
                ):  # fmt: skip
                    v = models.baseline(info.id, feature)
                    if v is not None:
                        baselines.append(devices_pb2.Baseline(feature=feature, value=v))
            group = (
                models.peer_group(info.id)
                if info and hasattr(models, "peer_group")
                else None
            )
            peers = sorted(
                dev.peers.items(), key=lambda kv: (-kv[1].connections, kv[0])
            )
            services = sorted(dev.services.items(), key=lambda kv: (-kv[1], kv[0]))
            alerts = st.device_alerts(dev)
            n = request.recent_alerts or 20
            recent = [
                convert.alert(a, st.alert_position(str(a["id"])))
                for a in alerts[::-1][:n]
            ]
            rec = {
                "ip": dev.ip, "mac": dev.mac, "first_seen": dev.first_seen,
                "last_seen": dev.last_seen, "connections": dev.connections,
            }  # fmt: skip
            if info is not None and hasattr(info, "state"):
                rec["model"] = info.state()
        return devices_pb2.GetDeviceResponse(
            device=d,
            baselines=baselines,
            peer_group=group or "",
            peers=[
                devices_pb2.Peer(
                    endpoint=common_pb2.Endpoint(ip=ip),
                    connections=p.connections,
                    bytes_out=p.bytes_out,
                    bytes_in=p.bytes_in,
                    last_seen=p.last_seen,
                )
                for ip, p in peers
            ],
            services=[
                devices_pb2.Service(name=name, direction=direction, connections=c)
                for (name, direction), c in services
            ],
            recent_alerts=recent,
            record=convert.record(rec),
        )


def _ip_key(ip: str) -> tuple[int, str]:
    import ipaddress

    try:
        a = ipaddress.ip_address(ip)
        return (a.version, f"{int(a):040d}")
    except ValueError:
        return (9, ip)


def _alert_matches(st: ApiState, f: alerts_pb2.AlertFilter, a: dict[str, Any]) -> bool:
    if f.detections and a.get("detection") not in f.detections:
        return False
    if f.min_score and float(a.get("score") or 0) < f.min_score:
        return False
    ts = float(a.get("ts") or 0)
    if (f.since_ts and ts < f.since_ts) or (f.until_ts and ts >= f.until_ts):
        return False
    if f.incident and a.get("incident") != f.incident:
        return False
    if f.device:
        want = f.device.lower()
        names = {
            str(v).lower()
            for k in ("device", "src", "dst")
            for v in (a.get(k) or {}).values()
        }
        if want not in names:
            return False
    return True


class AlertsServicer(Base, alerts_pb2_grpc.AlertsServicer):
    """sensor.v1.Alerts."""

    @handle
    def ListAlerts(self, request: Any, context: Any, caller: Caller) -> Any:
        # The page token is "POSITION.TOTAL": where the next page starts in
        # the list of every alert, and how many matched at the first page,
        # so each page costs its own length, not the whole list's.
        st, f = self.state, request.filter
        size = _page_size(request.page)
        with st.cond:
            start = st.alert_position(request.after_id) if request.after_id else 0
            total = None
            if request.page.page_token:
                pos, total = _alert_token(request.page.page_token, len(st.alerts))
                start = max(start, pos)
            elif _no_filter(f):
                total = len(st.alerts) - start
            else:
                total = sum(1 for a in st.alerts[start:] if _alert_matches(st, f, a))
            found: list[tuple[int, dict[str, Any]]] = []
            pos = start
            while pos < len(st.alerts) and len(found) < size:
                a = st.alerts[pos]
                if _alert_matches(st, f, a):
                    found.append((pos, a))
                pos += 1
            more = (
                any(_alert_matches(st, f, a) for a in st.alerts[pos:])
                if len(found) == size and not _no_filter(f)
                else pos < len(st.alerts)
            )
            alerts = [convert.alert(a, i + 1) for i, a in found]
        token = f"{pos}.{total}" if more else ""
        return alerts_pb2.ListAlertsResponse(
            alerts=alerts,
            page=common_pb2.PageReply(next_page_token=token, total=total),
        )

    @handle
    def GetAlert(self, request: Any, context: Any, caller: Caller) -> Any:
        with self.state.cond:
            pos = self.state.alert_position(request.id)
            return convert.alert(self.state.alerts[pos - 1], pos)

    @handle
    def FollowAlerts(self, request: Any, context: Any, caller: Caller) -> Iterator[Any]:
        st = self.state
        with st.cond:
            if request.after_id:
                start = st.alert_position(request.after_id)
            else:
                start = 0 if request.from_start else len(st.alerts)
        with st.follow_slot():
            with st.cond:
                st.followers += 1
                st.cond.notify_all()
            log.info("api: %s follows alerts from position %d", caller.name, start)
            for pos, a in st.follow(lambda: st.alerts, start, context.is_active):
                if _alert_matches(st, request.filter, a):
                    yield convert.alert(a, pos + 1)


def _incident_matches(f: alerts_pb2.IncidentFilter, r: dict[str, Any]) -> bool:
    if f.min_severity:
        if f.min_severity not in SEVERITIES:
            raise InvalidArgument(
                f"min_severity {quote(f.min_severity)}: must be one of {', '.join(SEVERITIES)}"
            )
        sev = str(r.get("severity", "low"))
        if SEVERITIES.index(sev if sev in SEVERITIES else "low") < SEVERITIES.index(
            f.min_severity
        ):
            return False
    if f.since_ts and float(r.get("last") or 0) < f.since_ts:
        return False
    return not (
        f.device
        and f.device.lower()
        not in [s.lower() for s in convert._strings(r.get("devices"))]
    )


class IncidentsServicer(Base, alerts_pb2_grpc.IncidentsServicer):
    """sensor.v1.Incidents."""

    @handle
    def ListIncidents(self, request: Any, context: Any, caller: Caller) -> Any:
        st = self.state
        with st.cond:
            latest = sorted(st.incidents.values())
            out = [
                convert.incident(st.incident_log[i], i + 1)
                for i in latest
                if _incident_matches(request.filter, st.incident_log[i])
            ]
        items, reply = page(out, request.page)
        return alerts_pb2.ListIncidentsResponse(incidents=items, page=reply)

    @handle
    def GetIncident(self, request: Any, context: Any, caller: Caller) -> Any:
        st = self.state
        with st.cond:
            r, cursor = st.get_incident(request.id)
            inc = convert.incident(r, cursor)
            alerts = []
            for aid in inc.alerts:
                pos = st._alert_pos.get(aid)
                if pos is not None:
                    alerts.append(convert.alert(st.alerts[pos], pos + 1))
        return alerts_pb2.GetIncidentResponse(incident=inc, alerts=alerts)

    @handle
    def FollowIncidents(
        self, request: Any, context: Any, caller: Caller
    ) -> Iterator[Any]:
        st = self.state
        with st.cond:
            if request.after_cursor > len(st.incident_log):
                raise InvalidArgument(
                    f"after_cursor {request.after_cursor}: the server has only "
                    f"{len(st.incident_log)} incident records"
                )
            start = int(request.after_cursor) or (
                0 if request.from_start else len(st.incident_log)
            )
        with st.follow_slot():
            for pos, r in st.follow(lambda: st.incident_log, start, context.is_active):
                if _incident_matches(request.filter, r):
                    yield convert.incident(r, pos + 1)


class ActionsServicer(Base, actions_pb2_grpc.ActionsServicer):
    """sensor.v1.Actions."""

    def _msg(self, r: dict[str, Any]) -> actions_pb2.Action:
        return convert.action(r, self.state.action_history.get(str(r.get("id")), []))

    @handle
    def ListActions(self, request: Any, context: Any, caller: Caller) -> Any:
        st = self.state
        st.expire_actions()
        f = request.filter
        with st.cond:
            out = []
            for r in st.actions.values():
                a = self._msg(r)
                if f.states and a.state not in f.states:
                    continue
                if f.kind and a.kind != f.kind:
                    continue
                if f.device and f.device not in (a.src.ip, a.dst.ip):
                    continue
                out.append(a)
        items, reply = page(out, request.page)
        return actions_pb2.ListActionsResponse(actions=items, page=reply)

    @handle
    def GetAction(self, request: Any, context: Any, caller: Caller) -> Any:
        self.state.expire_actions()
        with self.state.cond:
            return self._msg(self.state.get_action(request.id))

    def _change(
        self, what: str, caller: Caller, fn: Callable[[], dict[str, Any]]
    ) -> Any:
        self.state.expire_actions()
        record = self.state.change_action(fn)
        log.info("api: %s: %s by %s", record.get("id"), what, caller.name)
        refused = refusal(record)
        if refused is not None:
            raise refused
        with self.state.cond:
            return self._msg(record)

    @handle
    def ApproveAction(self, request: Any, context: Any, caller: Caller) -> Any:
        reason = need_reason(request.reason, "approving an action")
        book = self.state.book
        return self._change(
            "approve", caller, lambda: book.approve(request.id, caller.name, reason)
        )

    @handle
    def ClearAction(self, request: Any, context: Any, caller: Caller) -> Any:
        reason = need_reason(request.reason, "clearing an action")
        book = self.state.book
        return self._change(
            "clear", caller, lambda: book.clear(request.id, caller.name, reason)
        )

    @handle
    def ExtendAction(self, request: Any, context: Any, caller: Caller) -> Any:
        seconds = parse_duration(request.duration)
        reason = need_reason(request.reason, "extending an action")
        book = self.state.book
        return self._change(
            "extend",
            caller,
            lambda: book.extend(request.id, seconds, caller.name, reason),
        )

    @handle
    def CreateBlock(self, request: Any, context: Any, caller: Caller) -> Any:
        seconds = parse_duration(request.duration)
        reason = need_reason(request.reason, "a block")
        book = self.state.book
        return self._change(
            "block",
            caller,
            lambda: book.block(
                request.src,
                request.dst,
                request.port or None,
                request.proto or None,
                seconds,
                caller.name,
                reason,
            ),
        )


class ModeServicer(Base, mode_pb2_grpc.ModeServicer):
    """sensor.v1.Mode."""

    def _settings(self) -> mode_pb2.ModeSettings:
        m = self.state.mode_settings()
        return mode_pb2.ModeSettings(
            mode=convert.MODES[m.mode],
            detections={k: convert.MODES[v] for k, v in m.detections.items()},
            tags={k: convert.MODES[v] for k, v in m.tags.items()},
            stepped_down=self.state.stepped_down(),
        )

    @handle
    def GetMode(self, request: Any, context: Any, caller: Caller) -> Any:
        with self.state.cond:
            return self._settings()

    @handle
    def SetMode(self, request: Any, context: Any, caller: Caller) -> Any:
        reason = need_reason(request.reason, "changing the mode")
        if request.detection and request.tag:
            raise InvalidArgument("give a detection or a tag, not both")
        mode = convert.MODE_NAMES.get(request.mode)
        if mode is None and not (request.detection or request.tag):
            raise InvalidArgument(f"mode: must be one of {', '.join(MODES)}")
        # A misspelt detection would never match an alert: the override
        # would do nothing, silently (as at load, sensor/config.py).
        known = load_all()
        if request.detection and request.detection not in known:
            raise InvalidArgument(
                f"detection {quote(request.detection)}: unknown detection "
                f"(known: {', '.join(sorted(known))})"
            )
        st = self.state
        key = request.detection or request.tag
        with st.cond:
            st.set_mode(mode, request.detection, request.tag, caller.name, reason)
            log.info(
                "api: mode %s%s set to %s by %s: %s",
                "detection " if request.detection else "tag " if request.tag else "default",
                key, mode or "(default)", caller.name, reason,
            )  # fmt: skip
            return self._settings()
