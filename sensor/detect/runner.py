"""The Detector: every registered detection, fed the records it wants.

Detections live one per module in this package and add themselves to
:data:`sensor.detect.base.REGISTRY` with ``@register``; the runner imports
every module of the package (:func:`load_all`), so adding a detection
touches no shared list. It then

- builds each detection with its ``[detect.<name>]`` overrides (an unknown
  section or threshold is an error that names it);
- routes each record to the detections whose ``logs`` name its log;
- calls ``tick(now)`` as packet time advances (every ``tick_seconds`` of
  packet time, not of wall time, so replays are deterministic);
- drops an alert that carries no reason (and counts it: a detection that
  cannot say why has a bug), and suppresses repeats of one detection about
  one device and destination within ``dedup_seconds`` unless the score rose
  by ``dedup_rise`` points;
- gives every alert an id, ``A`` and a zero-padded counter that continues
  from ``first_id`` (a persisted state passes its next id back in).

A detection that raises is logged once, counted, and skipped for that
record; the others go on.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections import Counter
from typing import Any

import sensor.detect
from sensor.detect.alert import Alert
from sensor.detect.base import REGISTRY, Detection, ThresholdError
from sensor.detect.support import BoundedTable, is_private
from sensor.model.view import DeviceInfo, ModelView

log = logging.getLogger(__name__)

_LOADED = False


def load_all() -> dict[str, type[Detection]]:
    """Import every module of ``sensor.detect`` once; return the registry."""
    global _LOADED
    if not _LOADED:
        for mod in pkgutil.iter_modules(sensor.detect.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"sensor.detect.{mod.name}")
        _LOADED = True
    return REGISTRY


class NoModels:
    """A ModelView for running without device models: nothing is known.

    Every device is unknown, nothing is learning, every value is new and
    seen by no device, and "internal" means a private address. Detections
    that need a baseline stay quiet or score low on it.
    """

    def device(self, ip: str, mac: str | None = None) -> DeviceInfo | None:
        """Always None: no device is known."""
        return None

    def is_internal(self, ip: str) -> bool:
        """Private, link-local and ULA addresses count as internal."""
        return is_private(ip)

    def learning(self, device_id: str, now: float) -> bool:
        """Never learning: there is nothing to learn into."""
        return False

    def is_new_for_device(self, device_id: str, kind: str, value: str) -> bool:
        """Always True."""
        return True

    def network_devices(self, kind: str, value: str) -> int:
        """Always 0."""
        return 0

    def network_first_seen(self, kind: str, value: str) -> float | None:
        """Always None."""
        return None

    def baseline(self, device_id: str, feature: str) -> float | None:
        """Always None."""
        return None

    def peer_group(self, device_id: str) -> str | None:
        """Always None."""
        return None


def overrides_from(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``[detect]`` table of a parsed TOML file as runner overrides.

    ``{"scan.port": {"ports": 50}}`` and the dotted-key form TOML gives for
    ``[detect.scan.port]`` (``{"scan": {"port": {"ports": 50}}}``) both work.
    """
    out: dict[str, dict[str, Any]] = {}
    load_all()

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else key
            if name in REGISTRY and isinstance(value, dict):
                out[name] = dict(value)
            elif isinstance(value, dict):
                walk(name, value)
            else:
                raise ThresholdError(f"detect.{name}: not a detection section")

    walk("", table)
    return out


class Detector:
    """Runs the detections over records; implements the pipeline's Detector."""

    def __init__(
        self,
        models: ModelView | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
        *,
        only: list[str] | None = None,
        tick_seconds: float = 1.0,
        dedup_seconds: float = 600.0,
        dedup_rise: float = 15.0,
        first_id: int = 1,
        dedup_limit: int = 100_000,
    ) -> None:
        registry = load_all()
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(registry))
        if unknown:
            raise ThresholdError(
                f"detect.{unknown[0]}: unknown detection "
                f"(known: {', '.join(sorted(registry))})"
            )
        names = sorted(registry) if only is None else list(only)
        self.models: ModelView = models if models is not None else NoModels()
        self.detections: list[Detection] = [
            registry[n](self.models, overrides.get(n)) for n in names
        ]
        self.by_log: dict[str, list[Detection]] = {}
        for d in self.detections:
            for name in d.logs:
                self.by_log.setdefault(name, []).append(d)

        self.tick_seconds = tick_seconds
        self.dedup_seconds = dedup_seconds
        self.dedup_rise = dedup_rise
        self.next_id = first_id
        self.now = 0.0
        self._next_tick = 0.0
        self._recent: BoundedTable[tuple[str, str, str, str], tuple[float, float]] = (
            BoundedTable(dedup_limit)
        )
        self._failed: set[str] = set()
        #: Counters: ``alerts``, ``suppressed``, ``no_reason``, ``errors``,
        #: and ``alerts.<detection>``.
        self.counters: Counter[str] = Counter()

    def observe(self, log_name: str, record: dict[str, Any]) -> list[Alert]:
        """One finished record: tick if packet time moved on, then route it."""
        out: list[Alert] = []
        ts = record.get("ts")
        if isinstance(ts, (int, float)) and ts > self.now:
            self.now = float(ts)
            if self.now >= self._next_tick:
                out.extend(self._tick(self.now))
        for d in self.by_log.get(log_name, ()):
            out.extend(self._run(d, "observe", log_name, record))
        return out

    def finish(self, now: float) -> list[Alert]:
        """End of input: a last tick, then every detection's finish."""
        now = max(now, self.now)
        out = self._tick(now)
        for d in self.detections:
            out.extend(self._run(d, "finish", now))
        return out

    def _tick(self, now: float) -> list[Alert]:
        self._next_tick = now + self.tick_seconds
        out: list[Alert] = []
        for d in self.detections:
            out.extend(self._run(d, "tick", now))
        return out

    def _run(self, d: Detection, method: str, *args: Any) -> list[Alert]:
        """The accepted alerts of ``d.<method>(*args)``; none when it raised."""
        try:
            found = getattr(d, method)(*args)
        except Exception:  # noqa: BLE001 - one detection must not stop the others
            self._error(d, method)
            return []
        return self._accept(found) if found else []

    def _error(self, d: Detection, where: str) -> None:
        self.counters["errors"] += 1
        if d.name not in self._failed:
            self._failed.add(d.name)
            log.exception("detect.%s: %s failed; the record is skipped", d.name, where)

    def _accept(self, alerts: list[Alert]) -> list[Alert]:
        """Reason check, de-duplication and ids."""
        out = []
        for a in alerts:
            if not a.reasons or not a.summary:
                self.counters["no_reason"] += 1
                log.warning("detect.%s: alert without reasons dropped", a.detection)
                continue
            a.score = float(min(100.0, max(0.0, a.score)))
            key = (
                a.detection,
                a.device.ip or a.device.mac or "",
                a.dst.ip or a.dst.domain or "",
                str(a.dst.port or ""),
            )
            seen = self._recent.get(key)
            if (
                seen is not None
                and a.ts - seen[0] < self.dedup_seconds
                and a.score < seen[1] + self.dedup_rise
            ):
                self.counters["suppressed"] += 1
                continue
            self._recent.put(key, (a.ts, a.score))
            a.id = f"A{self.next_id:08d}"
            self.next_id += 1
            self.counters["alerts"] += 1
            self.counters[f"alerts.{a.detection}"] += 1
            out.append(a)
        return out
