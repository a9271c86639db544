"""What the API serves, and the one place that knows the other stages.

:class:`ApiState` sits beside the :class:`sensor.pipeline.Pipeline`: the
runner (``sensord --replay --serve``, later the daemon) hands it every batch
of finished records with :meth:`ApiState.feed`, which runs the pipeline
under the state's lock, writes everything through the log writer, and keeps
what the API answers from:

- alerts (``alerts`` records), in the order they were raised, by id;
- incidents (``incidents`` records; an update comes again), by id;
- actions (``actions`` records and the operators' changes), with history;
- devices: a bounded tally of connections per internal address (peers and
  services), enriched by the device models when they run;
- capture counters and the response mode.

gRPC threads read under the same lock, so they never see the models or the
lists halfway through a change. :meth:`follow_alerts` waits on the lock's
condition for new alerts.

Design note (resume without loss or repeat): an alert's place in
:attr:`ApiState.alerts` never changes and the list only grows, so "every
alert after id X" is the slice after X's position, read under the lock;
a follower keeps its position, not a time, so alerts with equal
timestamps are neither skipped nor repeated.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sensor import __version__
from sensor.api.actions import DryRunBook, ResponderBook
from sensor.api.errors import InvalidArgument, NotFound, ResourceExhausted, quote

log = logging.getLogger(__name__)

Record = tuple[str, dict[str, Any]]
Write = Callable[[str, dict[str, Any]], None]

#: Bounds of the device tally. At a limit new entries are not tracked and
#: ``ApiState.dropped`` counts them.
MAX_DEVICES = 65536
MAX_PEERS = 256
MAX_SERVICES = 128

MODES = ("observe", "confirm", "autonomous")


#: Follow streams at once, by default (see ApiServer's threads).
MAX_FOLLOWING = 24


def is_internal(ip: str) -> bool:
    """Private, link-local and ULA addresses: devices of the local network
    when no device models say otherwise."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    # 255.255.255.255 is "private" to ipaddress (it is reserved, as is all
    # of 240.0.0.0/4), and loopback too: neither is a device on the network.
    return (a.is_private or a.is_link_local) and not (
        a.is_multicast or a.is_unspecified or a.is_loopback or a.is_reserved
    )


@dataclass
class PeerTally:
    """Connections of one device to one peer."""

    connections: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    last_seen: float = 0.0
    domain: str | None = None


@dataclass
class DeviceTally:
    """What the API counted of one internal address."""

    ip: str
    mac: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    connections: int = 0
    peers: dict[str, PeerTally] = field(default_factory=dict)
    #: (service, "used" or "offered") -> connections
    services: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class ModeSettings:
    """The response mode: a default and overrides by detection and tag."""

    mode: str = "confirm"
    detections: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def for_alert(self, detection: str, tags: list[str]) -> str:
        """The mode that applies: the most careful tag override, else the
        detection's, else the default."""
        by_tag = [self.tags[t] for t in tags if t in self.tags]
        if by_tag:
            return min(by_tag, key=MODES.index)
        return self.detections.get(detection, self.mode)


class ApiState:
    """Everything the API reads, fed from the pipeline's records.

    ``source`` is ``"replay"`` or ``"live"``. ``pipeline`` may be None (a
    test feeds records directly with :meth:`publish`).
    """

    def __init__(
        self,
        source: str,
        pipeline: Any = None,
        write: Write | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.write = write
        #: Live: the workers' latest totals (one dict each: packets, bytes,
        #: connections), read at each status call; None in a replay.
        self.worker_totals: Callable[[], list[dict[str, Any]]] | None = None
        #: Records of operator changes waiting for the runner to write them
        #: (live: the daemon's main thread alone writes logs); see drain().
        self.outbox: list[Record] = []
        #: Makes written records readable (the log writer's flush), or None.
        self.flush: Callable[[], None] | None = None
        self.clock = clock
        self.started = clock()
        self.cond = threading.Condition()
        self.running = True
        self.closed = False
        #: Clients that followed alerts so far (``sensord --serve-wait``).
        self.followers = 0
        #: Follow streams open now, and the most that may be (the server
        #: sets it below its thread count: each holds a thread).
        self.following = 0
        self.max_following = MAX_FOLLOWING

        self.alerts: list[dict[str, Any]] = []
        self._alert_pos: dict[str, int] = {}
        self._alerts_by_ip: dict[str, list[int]] = {}
        self.incident_log: list[dict[str, Any]] = []
        self.incidents: dict[str, int] = {}  # id -> index in incident_log
        self.actions: dict[str, dict[str, Any]] = {}
        self.action_history: dict[str, list[dict[str, Any]]] = {}
        self.devices: dict[str, DeviceTally] = {}
        self.dropped = {"devices": 0, "peers": 0, "services": 0}
        self.packet_time = 0.0
        self.totals: dict[str, int] = {}
        self.capture: list[dict[str, Any]] = []
        self.degraded = False
        self.mode = ModeSettings()

        # Operator changes go to the response stage when it takes them;
        # until then the API keeps actions itself (dry run), and proposes
        # pending blocks for alerts when no response stage runs at all.
        responder = getattr(pipeline, "responder", None)
        self.book: Any = DryRunBook(self._now, propose=responder is None)
        if responder is not None and all(
            hasattr(responder, m) for m in ("approve", "clear", "extend", "block")
        ):
            self.book = ResponderBook(responder)
            # Open intents the live daemon read back from its state file.
            restored = getattr(responder, "restored", None)
            for record in restored() if restored is not None else []:
                self._add_action(record)

    # -- feeding (the runner's thread) ------------------------------------

    def feed(self, records: list[Record]) -> None:
        """Run engine records through the pipeline, write and keep them all."""
        with self.cond:
            out = list(records)
            if self.pipeline is not None:
                out += self.pipeline.feed(records)
            self._take(out)

    def finish(self) -> None:
        """End of input: finish the pipeline, write and keep its records."""
        with self.cond:
            out = self.pipeline.finish() if self.pipeline is not None else []
            self._take(out)
            self.running = False
            self.cond.notify_all()

    def publish(self, records: list[Record]) -> None:
        """Keep (and write) records that did not come through :meth:`feed`."""
        with self.cond:
            self._take(records)

    def run(
        self, records: list[Record], feed: Callable[[list[Record]], list[Record]]
    ) -> list[Record]:
        """Live: run ``feed`` (the pipeline) under the lock over records the
        caller writes itself; keep them and what ``feed`` made; return that."""
        with self.cond:
            out = feed(records)
            self._take(records + out, write=False)
            return out

    def publish_written(self, records: list[Record]) -> None:
        """Live: keep records the caller writes itself."""
        with self.cond:
            self._take(records, write=False)

    def drain(self) -> list[Record]:
        """Live: the records of operator changes since the last drain, for
        the caller to write (once)."""
        with self.cond:
            out, self.outbox = self.outbox, []
            return out

    def set_capture(self, counters: Any, degraded: bool) -> None:
        """Live: the kernel counters of each worker and whether capture is
        degraded."""
        with self.cond:
            self.capture = [
                {
                    "worker": i,
                    "packets": int(c.packets),
                    "drops": int(c.drops),
                    "drop_ratio": c.drops / c.packets if c.packets else 0.0,
                }
                for i, c in enumerate(counters)
            ]
            self.totals["packets"] = sum(int(c.packets) for c in counters)
            self.degraded = degraded

    def set_totals(
        self, totals: Any, capture: list[dict[str, Any]] | None = None
    ) -> None:
        """Capture counters: an engine's Totals and, live, one dict per worker
        (``worker``, ``packets``, ``drops``, ``drop_ratio``, ``bytes``)."""
        self.totals = {
            "packets": int(totals.packets),
            "bytes": int(totals.bytes),
            "connections": int(totals.connections),
        }
        if capture is not None:
            self.capture = capture

    def close(self) -> None:
        """The server stops: followers end their streams."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _take(self, records: list[Record], write: bool = True) -> None:
        # Called with the lock held. Alerts may make fallback proposals,
        # which are records too: the loop runs over a growing list.
        i = 0
        while i < len(records):
            name, record = records[i]
            i += 1
            if write and self.write is not None:
                self.write(name, record)
            ts = record.get("ts")
            if isinstance(ts, (int, float)) and ts > self.packet_time:
                self.packet_time = float(ts)
            if name == "conn":
                self._count_conn(record)
            elif name == "alerts":
                self._add_alert(record)
                proposed = self._propose(record)
                if proposed is not None:
                    records.append(("actions", proposed))
            elif name == "incidents":
                self._add_incident(record)
            elif name == "actions":
                self._add_action(record)
        if records:
            self.cond.notify_all()

    def _add_alert(self, record: dict[str, Any]) -> None:
        pos = len(self.alerts)
        if not record.get("id"):
            record = dict(record, id=f"S{pos + 1:06d}")
        self.alerts.append(record)
        self._alert_pos[str(record["id"])] = pos
        ips = {(record.get(k) or {}).get("ip") for k in ("device", "src", "dst")} - {
            None
        }
        for ip in ips:
            self._alerts_by_ip.setdefault(str(ip), []).append(pos)

    def _add_incident(self, record: dict[str, Any]) -> None:
        self.incident_log.append(record)
        if record.get("id"):
            self.incidents[str(record["id"])] = len(self.incident_log) - 1

    def _add_action(self, record: dict[str, Any]) -> None:
        aid = str(record.get("id") or "")
        if not aid:
            return
        self.actions[aid] = record
        if isinstance(self.book, DryRunBook):
            self.book.observe(record)
        change = {
            "ts": record.get("changed", record.get("ts", record.get("created", 0.0))),
            "change": record.get("change") or record.get("state", ""),
            "who": record.get("who") or record.get("requested_by", ""),
            "reason": record.get("change_reason") or record.get("reason", ""),
        }
        self.action_history.setdefault(aid, []).append(change)

    def _propose(self, alert: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(self.book, DryRunBook):
            return None
        proposed = self.book.consider(alert)
        if proposed is None:
            return None
        mode = self.mode.for_alert(
            str(alert.get("detection", "")),
            self._tags((alert.get("device") or {}).get("ip")),
        )
        if mode != "confirm":
            proposed["state"] = "observed" if mode == "observe" else "active"
            proposed["mode"] = mode
        return proposed

    def _count_conn(self, r: dict[str, Any]) -> None:
        ts = float(r.get("ts") or 0.0)
        end = ts + float(r.get("duration") or 0.0)
        orig, resp = r.get("id.orig_h"), r.get("id.resp_h")
        if not isinstance(orig, str) or not isinstance(resp, str):
            return
        proto = str(r.get("proto", ""))
        port = r.get("id.resp_p")
        services = [f"{proto}/{port}"] + [
            s for s in str(r.get("service") or "").split(",") if s
        ]
        out_b, in_b = int(r.get("orig_bytes") or 0), int(r.get("resp_bytes") or 0)
        for ip, mac, peer, sent, got, direction in (
            (orig, r.get("orig_l2_addr"), resp, out_b, in_b, "used"),
            (resp, r.get("resp_l2_addr"), orig, in_b, out_b, "offered"),
        ):
            if not is_internal(ip):
                continue
            dev = self.devices.get(ip)
            if dev is None:
                if len(self.devices) >= MAX_DEVICES:
                    self.dropped["devices"] += 1
                    continue
                dev = self.devices[ip] = DeviceTally(ip, first_seen=ts)
            dev.mac = mac if isinstance(mac, str) else dev.mac
            dev.last_seen = max(dev.last_seen, end)
            dev.connections += 1
            p = dev.peers.get(peer)
            if p is None and len(dev.peers) < MAX_PEERS:
                p = dev.peers[peer] = PeerTally()
            if p is None:
                self.dropped["peers"] += 1
            else:
                p.connections += 1
                p.bytes_out += sent
                p.bytes_in += got
                p.last_seen = max(p.last_seen, end)
            for s in services:
                key = (s, direction)
                if key in dev.services or len(dev.services) < MAX_SERVICES:
                    dev.services[key] = dev.services.get(key, 0) + 1
                else:
                    self.dropped["services"] += 1

    # -- reading (gRPC threads; callers hold self.cond) --------------------

    def _now(self) -> float:
        """The clock of actions: packet time in a replay, wall time live."""
        return self.packet_time if self.source == "replay" else self.clock()

    def models(self) -> Any:
        """The device models (a ModelView) when the pipeline has them."""
        return getattr(self.pipeline, "models", None)

    def model_device(self, ip: str | None, mac: str | None = None) -> Any:
        """The models' DeviceInfo for an address, or None."""
        m = self.models()
        if m is None or not ip or not hasattr(m, "device"):
            return None
        try:
            return m.device(ip, mac)
        except Exception:  # the models are another stage: never fail a read
            log.exception("models: device(%s) failed", ip)
            return None

    def learning(self, info: Any) -> bool:
        """True while the models say the device is learning."""
        m = self.models()
        if m is None or info is None or not hasattr(m, "learning"):
            return False
        return bool(m.learning(info.id, self.packet_time))

    def _tags(self, ip: str | None) -> list[str]:
        info = self.model_device(ip)
        return list(getattr(info, "tags", None) or [])

    def find_device(self, key: str) -> DeviceTally:
        """The device with this id, IP, MAC or name; NotFound otherwise."""
        k = key.strip().lower()
        if not k:
            raise InvalidArgument("device id is missing: give an id, IP address or MAC")
        if k in self.devices:
            return self.devices[k]
        for dev in self.devices.values():
            info = self.model_device(dev.ip, dev.mac)
            names = {dev.ip.lower(), (dev.mac or "").lower()}
            if info is not None:
                names |= {str(info.id).lower(), str(info.name or "").lower()}
            if k in names:
                return dev
        raise NotFound(
            f"no device {quote(key)}: not an id, IP address, MAC or name the sensor has seen"
        )

    def device_alerts(self, dev: DeviceTally) -> list[dict[str, Any]]:
        """Alerts naming the device's address, oldest first."""
        return [self.alerts[i] for i in self._alerts_by_ip.get(dev.ip, [])]

    def alert_position(self, alert_id: str) -> int:
        """Index just after the alert ``alert_id``; NotFound if unknown."""
        pos = self._alert_pos.get(alert_id)
        if pos is None:
            raise NotFound(
                f"no alert {quote(alert_id)}: it is not one this server has "
                f"(it knows {len(self.alerts)} alert"
                f"{'' if len(self.alerts) == 1 else 's'})"
            )
        return pos + 1

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        """One alert record; NotFound if unknown."""
        return self.alerts[self.alert_position(alert_id) - 1]

    def get_incident(self, incident_id: str) -> tuple[dict[str, Any], int]:
        """The latest record of an incident and its cursor; NotFound if unknown."""
        i = self.incidents.get(incident_id)
        if i is None:
            raise NotFound(
                f"no incident {quote(incident_id)} (sensorctl incidents lists them)"
            )
        return self.incident_log[i], i + 1

    def get_action(self, action_id: str) -> dict[str, Any]:
        """The latest record of an action; NotFound if unknown."""
        a = self.actions.get(action_id)
        if a is None:
            raise NotFound(f"no action {quote(action_id)} (sensorctl actions lists them)")
        return a

    @contextlib.contextmanager
    def follow_slot(self) -> Iterator[None]:
        """Hold one of the ``max_following`` follow streams for as long as
        the block runs; ResourceExhausted when all are taken, so that the
        server keeps threads for ordinary calls."""
        with self.cond:
            if self.following >= self.max_following:
                raise ResourceExhausted(
                    f"{self.following} follow streams are open, the most this "
                    "server takes at once; end one (or use alerts without "
                    "--follow, or --since ID to page)"
                )
            self.following += 1
        try:
            yield
        finally:
            with self.cond:
                self.following -= 1

    def follow(
        self,
        log_list: Callable[[], list[dict[str, Any]]],
        start: int,
        active: Callable[[], bool],
        wait: float = 0.5,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (position, record) of a growing list from ``start`` on, as
        records come, until the server closes or ``active()`` turns False."""
        pos = start
        while True:
            with self.cond:
                items = log_list()
                while pos >= len(items) and not self.closed and active():
                    self.cond.wait(wait)
                    items = log_list()
                batch = items[pos:]
                done = self.closed or not active()
            for item in batch:
                pos += 1
                yield pos - 1, item
            if done and not batch:
                return

    # -- operator changes ---------------------------------------------------

    def change_action(self, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one operator change (a book method) and keep its record."""
        with self.cond:
            record = fn()
            self._take([("actions", record)])
            if self.write is None:
                self.outbox.append(("actions", record))
            if self.flush is not None:
                self.flush()
            return record

    def expire_actions(self) -> None:
        """Let actions whose time has passed expire (fallback book only)."""
        if isinstance(self.book, DryRunBook):
            with self.cond:
                self._take([("actions", r) for r in self.book.expire()])

    def policy(self) -> Any:
        """The response stage's policy (sensor.respond.policy.Policy), or None."""
        return getattr(getattr(self.pipeline, "responder", None), "policy", None)

    def mode_settings(self) -> ModeSettings:
        """The response mode now: the policy's when a response stage runs."""
        policy = self.policy()
        if policy is None:
            return self.mode
        c = policy.config
        return ModeSettings(
            mode=c.mode,
            detections={
                **{d: "confirm" for d in c.confirm},
                **{d: "autonomous" for d in c.autonomous},
            },
            tags={
                **{t: "confirm" for t in c.confirm_tags},
                **{t: "observe" for t in c.observe_tags},
            },
        )

    def set_mode(
        self,
        mode: str | None,
        detection: str = "",
        tag: str = "",
        who: str = "",
        reason: str = "",
    ) -> None:
        """Set the default mode, or a detection's or tag's override (None
        removes the override). InvalidArgument for what the policy cannot
        express: it knows per-detection confirm and autonomous, and per-tag
        observe and confirm (a tag only makes response more careful). The
        live daemon's responder keeps the result, with ``who`` and
        ``reason``, across restarts."""
        policy = self.policy()
        if policy is None:
            table = self.mode.detections if detection else self.mode.tags
            if not (detection or tag):
                self.mode.mode = str(mode)
            elif mode is None:
                table.pop(detection or tag, None)
            else:
                table[detection or tag] = mode
            return
        lock = getattr(self.pipeline.responder, "lock", None) or threading.RLock()
        with lock:
            c = policy.config  # a SIGHUP replaces it, under the same lock
            if not (detection or tag):
                c.mode = str(mode)
            elif detection:
                if mode == "observe":
                    raise InvalidArgument(
                        f"mode observe for detection {detection}: the policy has no "
                        "per-detection observe; set response.min_score, or observe as the default"
                    )
                c.confirm = [d for d in c.confirm if d != detection]
                c.autonomous = [d for d in c.autonomous if d != detection]
                if mode is not None:
                    getattr(c, mode).append(detection)
            else:
                if mode == "autonomous":
                    raise InvalidArgument(
                        f"mode autonomous for tag {tag}: a tag can only make response "
                        "more careful (observe or confirm)"
                    )
                c.confirm_tags = [t for t in c.confirm_tags if t != tag]
                c.observe_tags = [t for t in c.observe_tags if t != tag]
                if mode is not None:
                    getattr(c, f"{mode}_tags").append(tag)
            remember = getattr(self.pipeline.responder, "mode_changed", None)
            if remember is not None:
                remember(who, reason)

    def stepped_down(self) -> bool:
        """True when degraded capture holds response at confirm."""
        policy = self.policy()
        return bool(getattr(policy, "degraded", False)) or self.degraded

    def status(self) -> dict[str, Any]:
        """Figures of the Status service."""
        states = [a.get("state") for a in self.actions.values()]
        learning = total = 0
        if self.models() is not None:
            for dev in self.devices.values():
                info = self.model_device(dev.ip, dev.mac)
                if info is not None:
                    total += 1
                    learning += self.learning(info)
        totals = dict(self.totals)
        capture = list(self.capture)
        if self.worker_totals is not None:
            workers = self.worker_totals()
            for key in ("bytes", "connections"):
                totals[key] = sum(int(w.get(key, 0)) for w in workers)
            if not capture:  # before the first health sample: what workers read
                capture = [
                    {
                        "worker": i,
                        "packets": int(w.get("packets", 0)),
                        "bytes": int(w.get("bytes", 0)),
                    }
                    for i, w in enumerate(workers)
                ]
            for i, w in enumerate(workers):
                if i < len(capture):
                    capture[i] = dict(capture[i], bytes=int(w.get("bytes", 0)))
        return {
            "version": __version__,
            "uptime": self.clock() - self.started,
            "source": self.source,
            "running": self.running,
            "packet_time": self.packet_time,
            "totals": totals,
            "capture": capture,
            "degraded": self.stepped_down(),
            "mode": self.mode_settings().mode,
            "devices": total,
            "devices_learning": learning,
            "alerts": len(self.alerts),
            "incidents": len(self.incidents),
            "actions": len(self.actions),
            "actions_pending": states.count("pending"),
        }
