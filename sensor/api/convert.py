"""Records (as the logs hold them) to the API's protobuf messages.

The typed fields follow the records' documented fields; each message of an
incident, action or device also carries the whole record (``Record``), so a
field the records gain before the messages do is not lost to clients.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format, struct_pb2

from sensor.api.v1 import actions_pb2, alerts_pb2, common_pb2

ACTION_STATES = {
    "pending": actions_pb2.ACTION_STATE_PENDING,
    "active": actions_pb2.ACTION_STATE_ACTIVE,
    "cleared": actions_pb2.ACTION_STATE_CLEARED,
    "expired": actions_pb2.ACTION_STATE_EXPIRED,
    "observed": actions_pb2.ACTION_STATE_OBSERVED,
    "refused": actions_pb2.ACTION_STATE_REFUSED,
    "failed": actions_pb2.ACTION_STATE_FAILED,
    "done": actions_pb2.ACTION_STATE_DONE,
}

MODES = {
    "observe": common_pb2.RESPONSE_MODE_OBSERVE,
    "confirm": common_pb2.RESPONSE_MODE_CONFIRM,
    "autonomous": common_pb2.RESPONSE_MODE_AUTONOMOUS,
}
MODE_NAMES = {v: k for k, v in MODES.items()}


def _plain(value: Any) -> Any:
    # Records are JSON objects; anything else (a set, a tuple) becomes JSON's.
    return json.loads(json.dumps(value, default=str))


def record(fields: dict[str, Any]) -> common_pb2.Record:
    """A log record as a Record message."""
    s = struct_pb2.Struct()
    s.update(_plain(fields))
    return common_pb2.Record(fields=s)


def value(v: Any) -> struct_pb2.Value:
    """Any JSON value as a protobuf Value."""
    return json_format.ParseDict(_plain(v), struct_pb2.Value())


def endpoint(d: dict[str, Any] | None) -> common_pb2.Endpoint:
    """An alert's src/dst dict as an Endpoint."""
    d = d or {}
    e = common_pb2.Endpoint()
    if d.get("ip") is not None:
        e.ip = str(d["ip"])
    if d.get("port") is not None:
        e.port = int(d["port"])
    if d.get("domain") is not None:
        e.domain = str(d["domain"])
    return e


def device_ref(d: dict[str, Any] | None) -> common_pb2.DeviceRef:
    """An alert's device dict as a DeviceRef."""
    d = d or {}
    return common_pb2.DeviceRef(
        **{k: str(d[k]) for k in ("ip", "mac", "name", "id") if d.get(k) is not None}
    )


def alert(r: dict[str, Any], seq: int) -> alerts_pb2.Alert:
    """An alerts.log record as an Alert; ``seq`` is its position from 1."""
    return alerts_pb2.Alert(
        id=str(r.get("id", "")),
        ts=float(r.get("ts") or 0.0),
        detection=str(r.get("detection", "")),
        score=float(r.get("score") or 0.0),
        device=device_ref(r.get("device")),
        src=endpoint(r.get("src")),
        dst=endpoint(r.get("dst")),
        uids=[str(u) for u in r.get("uids") or []],
        summary=str(r.get("summary", "")),
        reasons=[
            alerts_pb2.Reason(
                feature=str(x.get("feature", "")),
                value=value(x.get("value")),
                baseline=value(x.get("baseline")),
            )
            for x in r.get("reasons") or []
        ],
        mitre=str(r.get("mitre") or ""),
        incident=str(r.get("incident") or ""),
        seq=seq,
    )


def _strings(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (str, int, float)):
        return [str(v)]
    out = []
    for x in v:
        if isinstance(x, dict):
            x = x.get("id") or x.get("ip") or x.get("name") or json.dumps(x)
        out.append(str(x))
    return out


def incident(r: dict[str, Any], cursor: int) -> alerts_pb2.Incident:
    """An incidents.log record as an Incident."""
    return alerts_pb2.Incident(
        id=str(r.get("id", "")),
        title=str(r.get("title", "")),
        severity=str(r.get("severity", "")),
        devices=_strings(r.get("devices")),
        first=float(r.get("first") or 0.0),
        last=float(r.get("last") or 0.0),
        alerts=_strings(r.get("alerts")),
        mitre=_strings(r.get("mitre")),
        narrative=str(r.get("narrative", "")),
        cursor=cursor,
        record=record(r),
    )


def action(r: dict[str, Any], history: list[dict[str, Any]]) -> actions_pb2.Action:
    """An actions.log record (sensor.respond.intent.Intent.record, plus the
    change fields) as an Action."""
    dst = common_pb2.Endpoint()
    if r.get("dst_ip") or r.get("dst_net"):
        dst.ip = str(r.get("dst_ip") or r.get("dst_net"))
    if r.get("dst_domain"):
        dst.domain = str(r["dst_domain"])
    if r.get("port"):
        dst.port = int(r["port"])
    src = common_pb2.Endpoint(ip=str(r["target"])) if r.get("target") else None
    conn = r.get("conn")
    if conn and len(conn) == 4:  # reset: (device ip, port, peer ip, port)
        src = common_pb2.Endpoint(ip=str(conn[0]), port=int(conn[1]))
        dst = common_pb2.Endpoint(ip=str(conn[2]), port=int(conn[3]))
    reason = str(r.get("reason", ""))
    return actions_pb2.Action(
        id=str(r.get("id", "")),
        kind=str(r.get("action", "")),
        state=ACTION_STATES.get(
            str(r.get("state")), actions_pb2.ACTION_STATE_UNSPECIFIED
        ),
        src=src,
        dst=dst,
        proto=str(r.get("proto") or ""),
        reason=reason,
        alert=str(r.get("alert") or (reason if reason.startswith("A") else "")),
        incident=str(r.get("incident") or (reason if reason.startswith("I") else "")),
        requested_by=str(r.get("requested_by", "")),
        created=float(r.get("created") or 0.0),
        expires=float(r.get("expires") or 0.0),
        backend=str(r.get("backend") or "dry-run"),
        history=[
            actions_pb2.ActionChange(
                ts=float(h.get("ts") or 0.0),
                change=str(h.get("change", "")),
                who=str(h.get("who", "")),
                reason=str(h.get("reason", "")),
            )
            for h in history
        ],
        record=record(r),
    )
