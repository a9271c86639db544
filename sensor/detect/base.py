"""The detection interface: a module per detection, thresholds beside it.

A detection is a class with a fixed ``name`` (operators and tests filter on
it), an ATT&CK technique, and its thresholds declared as
:class:`Threshold` objects in ``thresholds``. The configuration may override
any of them under ``[detect.<name>]``; :meth:`Detection.configure` checks
the name, type and range of each override, and the daemon's configuration
runs the same check when it loads (:mod:`sensor.config`).

Detections take records as the engine finished them (``(log, record)``,
the same records the logs hold) in packet-time order, read the device
models through :class:`sensor.model.view.ModelView`, and hand back alerts.
They do no I/O. ``tick`` runs as packet time passes, for detections that
judge a window (beacons, scans); ``finish`` at the end of input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sensor.detect.alert import Alert
from sensor.detect.names import NameCache
from sensor.model.view import ModelView


class ThresholdError(ValueError):
    """An override names an unknown threshold, or its value has the wrong
    type or lies outside the threshold's range."""


@dataclass(frozen=True)
class Range:
    """The values a threshold allows: from ``low`` (excluded when ``above``)
    up to ``high`` (included), or without an upper end when ``high`` is None.
    NaN is never inside."""

    low: float
    high: float | None = None
    above: bool = False

    def __contains__(self, value: float) -> bool:
        # Written so that every comparison with NaN fails.
        inside = self.low < value if self.above else self.low <= value
        return inside and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.high is not None:
            return f"between {self.low:g} and {self.high:g}"
        return f"{'>' if self.above else '>='} {self.low:g}"


#: A number of events that makes a finding, or the size of a table: 0 would
#: make every window a finding, divide by zero or keep nothing.
COUNT = Range(1)
#: A count, size in bytes or rate for which 0 still means something ("no
#: minimum", "used by no other device").
NON_NEGATIVE = Range(0)
#: A duration in seconds (a window, a timeout, a period).
SECONDS = Range(0, above=True)
#: A multiple or tolerance that divides or scales a measure.
POSITIVE = Range(0, above=True)
#: A share, a probability, or a factor that lowers a score.
SHARE = Range(0, 1)
#: An alert score, as in :class:`sensor.detect.alert.Alert`.
SCORE = Range(0, 100)


@dataclass(frozen=True)
class Threshold:
    """One tunable of a detection: a name, a default, a sentence, and the
    values it allows (docs/detections.md shows all four)."""

    name: str
    default: int | float
    doc: str
    allowed: Range

    def check(self, detection: str, value: Any) -> Any:
        """``value`` as this threshold's type, or ThresholdError saying why."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ThresholdError(
                f"detect.{detection}.{self.name}: expected {kind.__name__}, "
                f"got {type(value).__name__} {value!r}"
            )
        if value not in self.allowed:
            raise ThresholdError(
                f"detect.{detection}.{self.name} = {value!r}: must be {self.allowed}"
            )
        return value


class Detection:
    """Base class of every detection.

    Subclasses set ``name``, ``mitre`` and ``thresholds`` and override
    :meth:`observe` (and :meth:`tick` / :meth:`finish` if they keep
    windows). Threshold values are read as ``self.t["name"]``.
    """

    name: ClassVar[str] = ""
    mitre: ClassVar[str] = ""
    #: The logs whose records this detection wants; others are not passed.
    logs: ClassVar[tuple[str, ...]] = ()
    thresholds: ClassVar[tuple[Threshold, ...]] = ()

    def __init__(self, models: ModelView, overrides: dict[str, Any] | None = None):
        self.models = models
        self.t: dict[str, Any] = {t.name: t.default for t in self.thresholds}
        self.configure(overrides or {})

    def configure(self, overrides: dict[str, Any]) -> None:
        """Apply ``[detect.<name>]`` overrides; ThresholdError if one is bad."""
        known = {t.name: t for t in self.thresholds}
        for key, value in overrides.items():
            if key not in known:
                raise ThresholdError(
                    f"detect.{self.name}.{key}: unknown threshold "
                    f"(known: {', '.join(sorted(known)) or 'none'})"
                )
            self.t[key] = known[key].check(self.name, value)

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """One finished record; return the alerts it completes."""
        return []

    def tick(self, now: float) -> list[Alert]:
        """Packet time has reached ``now``; return alerts of closed windows."""
        return []

    def finish(self, now: float) -> list[Alert]:
        """End of input: judge what is still open."""
        return []


class NamedConnDetection(Detection):
    """A detection of conn records that knows the names they went to.

    The ssl, http and dns records teach :attr:`names` which name each
    connection or address stands for; conn records go to
    :meth:`observe_conn`, which asks ``self.names.name_of``.
    """

    logs = ("conn", "ssl", "http", "dns")

    def __init__(self, models: ModelView, overrides: dict[str, Any] | None = None):
        super().__init__(models, overrides)
        self.names = NameCache()

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Names from ssl, http and dns; conn records to :meth:`observe_conn`."""
        if log != "conn":
            self.names.observe(log, record)
            return []
        return self.observe_conn(record)

    def observe_conn(self, record: dict[str, Any]) -> list[Alert]:
        """One finished conn record; return the alerts it completes."""
        return []


#: Every detection class by name, filled by :func:`register`.
REGISTRY: dict[str, type[Detection]] = {}


def register(cls: type[Detection]) -> type[Detection]:
    """Class decorator: add a detection to :data:`REGISTRY`."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"detection {cls.__name__}: missing or duplicate name {cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls
