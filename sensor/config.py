"""The daemon's configuration: a TOML file, every option declared once here.

Each option is an :class:`Option` in :data:`OPTIONS`, with its dotted name
(``section.key`` as written in the file), type, default, help text, an
optional check, and whether SIGHUP applies it to a running daemon. The
sample configuration (``packaging/sensor.toml``) is generated from these
declarations (:func:`sample`), so the two cannot drift apart.

The connection table's limits come from :class:`sensor.flow.table.FlowConfig`
(section ``[flow]``): its fields are the options, with their types and
defaults, so they too are declared once, next to the code that uses them.

Errors are :class:`ConfigError`, one line that names the option, the value
and why it is wrong, for example ``capture.workers = -1: must be between 0
and 256``. ``[detect.<name>]`` sections override a detection's thresholds;
each is checked against the type and range the detection declares
(:class:`sensor.detect.base.Threshold`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensor.flow.table import FlowConfig


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line."""


Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Option:
    """One configuration option."""

    #: ``section.key``, as written in the TOML file.
    name: str
    #: Python type the value must have (int accepts no bool; float accepts int).
    type: type
    default: Any
    help: str
    #: Returns why a value is wrong, or None when it is fine.
    check: Check | None = None
    #: Whether SIGHUP applies a new value; others need a restart.
    reload: bool = False
    #: Value written in the sample configuration instead of the default.
    example: Any = None


def _at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be >= {low:g}"


def _between(low: float, high: float) -> Check:
    why = f"must be between {low:g} and {high:g}"
    return lambda v: None if low <= v <= high else why


def _ratio(v: float) -> str | None:
    return None if 0.0 <= v <= 1.0 else "must be between 0 and 1"


#: Most capture workers: one PACKET_FANOUT group joined with a 32-bit
#: argument, as sensor/capture/live.py does, holds at most 256 sockets
#: (fanout_add() in net/packet/af_packet.c; the 257th gets ENOSPC).
MAX_WORKERS = 256


#: Most bytes in one ring block, and most blocks in one worker's ring. The
#: kernel allocates every block of every ring when capture starts, from
#: memory that cannot be swapped: a mistyped value (100000 blocks of 1 MiB
#: is 100 GB) would stall the start for minutes, then fail or wake the OOM
#: killer. These bounds are far above any useful ring (the default is 64
#: blocks of 1 MiB); the rings of all workers together are further held
#: to half of the machine's memory (:data:`MAX_RING_SHARE`).
MAX_BLOCK_SIZE = 256 << 20
MAX_BLOCKS = 65536
#: Share of the machine's memory (MemTotal) the rings may take at most.
MAX_RING_SHARE = 0.5


def _power_of_two_pages(v: int) -> str | None:
    # The kernel wants a ring block to be a power-of-two number of pages
    # (packet_set_ring() in net/packet/af_packet.c).
    if v > MAX_BLOCK_SIZE:
        return f"must be at most {MAX_BLOCK_SIZE}"
    page = os.sysconf("SC_PAGE_SIZE")
    pages = v // page
    if v % page or pages & (pages - 1):
        return f"must be a power-of-two multiple of the page size ({page})"
    return None


def _networks(v: list[Any]) -> str | None:
    for n in v:
        try:
            ipaddress.ip_network(n, strict=False)
        except (TypeError, ValueError):
            return f"{n!r} is not a network such as 10.0.0.0/8"
    return None


def _one_of(*ok: str) -> Check:
    return lambda v: None if v in ok else f"must be one of {', '.join(ok)}"


def _strings(v: list[Any]) -> str | None:
    bad = [x for x in v if not isinstance(x, str) or not x.strip()]
    return f"{bad[0]!r}: must be a non-empty string" if bad else None


def _backends(v: list[Any]) -> str | None:
    from sensor.respond.backends import NAMES

    why = _strings(v)
    if why:
        return why
    bad = [x for x in v if x not in NAMES]
    if bad:
        return f"unknown back-end {bad[0]!r}: must be one of {', '.join(NAMES)}"
    return None


def _listen(v: str) -> str | None:
    if not v or v.startswith("unix:") or v.startswith("/"):
        return None
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be unix:PATH, HOST:PORT or empty"
    return None


def _octal_mode(v: str) -> str | None:
    try:
        mode = int(v, 8)
    except ValueError:
        return "must be octal permissions such as 0660"
    return None if 0 <= mode <= 0o777 else "must be octal permissions such as 0660"


def _level(v: str) -> str | None:
    ok = ("debug", "info", "warning", "error")
    return None if v.lower() in ok else f"must be one of {', '.join(ok)}"


OPTIONS: tuple[Option, ...] = (
    Option("capture.interface", str, "", "Interface on the mirror (SPAN) port to capture from; needed.", example="eth1"),
    Option("capture.workers", int, 0, f"Worker processes sharing the capture by flow hash (PACKET_FANOUT); 0 means one per core. At most {MAX_WORKERS}, the most sockets the kernel puts in one fanout group.", _between(0, MAX_WORKERS)),
    Option("capture.promiscuous", bool, True, "Put the interface in promiscuous mode (through netlink) while capturing; restored at exit."),
    Option("capture.bpf_filter", str, "", "Kernel packet filter in tcpdump syntax; empty captures everything. SIGHUP applies a change.", reload=True),
    Option("capture.block_size", int, 1 << 20, f"Bytes per ring block (TPACKET_V3); a power-of-two number of pages, at most {MAX_BLOCK_SIZE} (256 MiB).", _power_of_two_pages),
    Option("capture.blocks", int, 64, f"Ring blocks per worker, between 2 and {MAX_BLOCKS}; block_size * blocks is the kernel buffer of each worker, and the buffers of all workers together may take at most half of the machine's memory (MemTotal).", _between(2, MAX_BLOCKS)),
    Option("capture.block_timeout_ms", int, 20, "A partly filled block is handed over after this many milliseconds, which bounds latency on a quiet link.", _at_least(1)),
    Option("capture.ignore_outgoing", bool, True, "Skip frames this host sends on the interface (a mirror port sends none)."),
    Option("output.logdir", str, "/var/log/sensor", "Directory for conn.log, weird.log, health.log and the others."),
    Option("output.rotate_bytes", int, 256 << 20, "Rotate a log once it holds this many bytes; 0 turns size rotation off.", _at_least(0), reload=True),
    Option("output.rotate_seconds", int, 3600, "Rotate every log this often (seconds); 0 turns time rotation off.", _at_least(0), reload=True),
    Option("output.keep", int, 48, "Rotated files kept per log; older ones are deleted. 0 keeps all.", _at_least(0), reload=True),
    Option("output.flush_seconds", float, 1.0, "Longest time a finished record waits in memory before it is written to its log.", _at_least(0.0), reload=True),
    Option("health.interval", float, 60.0, "Seconds between capture health records (packets, drops, drop rate per worker).", _at_least(1.0), reload=True),
    Option("health.max_drop_ratio", float, 0.001, "Share of packets dropped in one interval above which capture counts as degraded: a health alert is raised and autonomous response steps down to confirm.", _ratio, reload=True),
    Option("daemon.worker_timeout", float, 30.0, "A worker silent this long (seconds) is taken as hung: the daemon stops and exits 1, for systemd to restart it.", _at_least(2.0), reload=True),
    Option("daemon.log_level", str, "info", "Level of the daemon's own messages (journald): debug, info, warning or error.", _level, reload=True),
    Option("model.state", str, "/var/lib/sensor/state.db", "SQLite file of the device models (identities, behaviour, rarity, versions), reloaded at start."),
    Option("model.learning_days", float, 7.0, "Days of packet time after a device is first seen during which its anomalies are scored down.", _at_least(0.0)),
    Option("model.local_networks", list, ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10"], "Networks whose addresses are internal devices; others are outside peers.", _networks),
    Option("response.mode", str, "observe", "Response mode for detections not listed below: observe (record what would be done), confirm (pending until an operator approves) or autonomous. See docs/response.md.", _one_of("observe", "confirm", "autonomous"), reload=True),
    Option("response.autonomous", list, [], "Detections whose actions are carried out at once (autonomous), e.g. [\"scan.port\"].", _strings, reload=True),
    Option("response.confirm", list, [], "Detections whose actions wait for an operator's approval.", _strings, reload=True),
    Option("response.min_score", float, 0.0, "Alerts scoring below this (0-100) are only recorded (observe).", _at_least(0.0), reload=True),
    Option("response.autonomous_min_score", float, 0.0, "Autonomous actions need at least this score; below it they wait for approval.", _at_least(0.0), reload=True),
    Option("response.actions", list, [], "Actions per detection as \"detection=action[+action]\" (reset, block, enforce, quarantine); unlisted detections block the device's access to the alert's destination, except device.new, which asks for nothing.", _strings, reload=True),
    Option("response.observe_tags", list, [], "Device tags (or model roles) whose devices are only observed, never acted on without an operator creating the action.", _strings, reload=True),
    Option("response.confirm_tags", list, [], "Device tags (or model roles) whose devices' actions always wait for approval.", _strings, reload=True),
    Option("response.never_act_networks", list, [], "Networks whose devices are never acted on, whoever asks (gateways, DNS servers, domain controllers).", _networks, reload=True),
    Option("response.never_act_tags", list, ["gateway", "dns_server", "domain_controller"], "Device tags (or model roles) never acted on, whoever asks.", _strings, reload=True),
    Option("response.device_tags", list, [], "Tags for devices by address, as \"address=tag[,tag]\", e.g. \"192.0.2.1=gateway\".", _strings, reload=True),
    Option("response.backends", list, ["dry-run"], "Back-ends that carry actions out: dry-run (nothing is touched), nftables (blocks, enforce, quarantine in the table inet sensor), tcp-reset (resets injected on response.interface).", _backends),
    Option("response.interface", str, "", "Interface on which tcp-reset injects its frames; empty: the capture interface. It must reach both ends of the connections (a switch port, not only the mirror)."),
    Option("response.breaker_limit", int, 20, "Circuit breaker: at most this many autonomous actions per window; more fall back to confirm and raise RESPONSE_BREAKER_TRIPPED.", _at_least(1), reload=True),
    Option("response.breaker_window", float, 60.0, "Circuit breaker window (seconds).", _at_least(1.0), reload=True),
    Option("response.reset_seconds", float, 10.0, "How long a reset waits for a packet of its connection (seconds).", _at_least(1.0), reload=True),
    Option("response.block_seconds", float, 3600.0, "Default life of a block (seconds); every action expires.", _at_least(1.0), reload=True),
    Option("response.enforce_seconds", float, 3600.0, "Default life of an enforce action (seconds).", _at_least(1.0), reload=True),
    Option("response.quarantine_seconds", float, 3600.0, "Default life of a quarantine (seconds).", _at_least(1.0), reload=True),
    Option("response.jitter", float, 0.1, "Expiries are spread over up to this share of the duration, so blocks made together do not lapse in the same second.", _ratio, reload=True),
    Option("response.quarantine_allow", list, [], "Networks a quarantined device may still reach (DNS, DHCP, the gateway).", _networks),
    Option("response.reconcile_seconds", float, 10.0, "How often the intended blocks are re-asserted in the kernel (after a flush or reload) and their timeouts refreshed (seconds).", _at_least(1.0)),
    Option("api.listen", str, "unix:/run/sensor/sensor.sock", "Where the gRPC API listens (sensorctl, the console): unix:PATH, or HOST:PORT, which needs TLS and tokens or client certificates; empty turns the API off. See docs/api.md.", _listen),
    Option("api.socket_mode", str, "0660", "Unix socket: its permissions, in octal.", _octal_mode),
    Option("api.socket_group", str, "sensor", "Unix socket: its group; root, the daemon's user and this group's members may call."),
    Option("api.tls_cert", str, "", "TCP: the server's TLS certificate (PEM file)."),
    Option("api.tls_key", str, "", "TCP: the certificate's private key (PEM file)."),
    Option("api.token_file", str, "", "TCP: bearer tokens, one \"NAME TOKEN\" per line (not readable by others); the name goes into the audit trail."),
    Option("api.client_ca", str, "", "TCP: accept client certificates signed by this CA (PEM file); the certificate's common name goes into the audit trail."),
    Option("api.insecure_loopback", bool, False, "TCP: allow listening without TLS or credentials, only on 127.0.0.1 or ::1 (for a local console; never on a network)."),
)  # fmt: skip


def _flow_options() -> tuple[Option, ...]:
    out = []
    for f in dataclasses.fields(FlowConfig):
        default = f.default
        kind = type(default)
        check = _at_least(0)
        help = f"Connection table: see FlowConfig.{f.name} in sensor/flow/table.py."
        out.append(Option(f"flow.{f.name}", kind, default, help, check))
    return tuple(out)


ALL: dict[str, Option] = {o.name: o for o in OPTIONS + _flow_options()}


class Config:
    """Validated option values, by dotted name (``cfg["capture.workers"]``)."""

    def __init__(
        self,
        values: dict[str, Any],
        path: str | None = None,
        detect: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.values = values
        #: The file read, or None for defaults and command-line values only.
        self.path = path
        #: ``[detect.<name>]`` threshold overrides, checked, by detection.
        self.detect = detect or {}

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def flow(self) -> FlowConfig:
        """The ``[flow]`` section as the connection table's FlowConfig."""
        kw = {k[5:]: v for k, v in self.values.items() if k.startswith("flow.")}
        return FlowConfig(**kw)

    def workers(self) -> int:
        """Worker processes to run: the option, or one per core when 0
        (at most :data:`MAX_WORKERS`)."""
        n = int(self.values["capture.workers"])
        return n if n > 0 else max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))

    def changed(self, other: Config) -> list[str]:
        """Names of the options whose values differ in ``other``."""
        return [k for k in ALL if self.values[k] != other.values[k]]


def _convert(opt: Option, value: Any) -> Any:
    if opt.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, opt.type) or (opt.type is int and isinstance(value, bool)):
        raise ConfigError(
            f"{opt.name} = {value!r}: must be {opt.type.__name__}, not {type(value).__name__}"
        )
    why = opt.check(value) if opt.check else None
    if why:
        raise ConfigError(f"{opt.name} = {value!r}: {why}")
    return value


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (None: defaults only), apply ``overrides``, validate.

    Raises :class:`ConfigError` with one line naming the file or option.
    """
    given: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                given = _flatten(tomllib.load(f))
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"{path}: not valid TOML: not UTF-8 text "
                f"(byte 0x{e.object[e.start]:02x} at offset {e.start})"
            ) from None
    given.update(overrides or {})

    values = {name: opt.default for name, opt in ALL.items()}
    detect: dict[str, dict[str, Any]] = {}
    for name, value in given.items():
        if name.startswith("detect."):
            _detect_override(name, value, detect)
            continue
        opt = ALL.get(name)
        if opt is None:
            raise ConfigError(
                f"{name}: unknown option (see the sample packaging/sensor.toml)"
            )
        values[name] = _convert(opt, value)
    if not values["capture.interface"]:
        raise ConfigError(
            "capture.interface = '': an interface to capture from is needed"
        )
    _check_response(values)
    config = Config(values, path, detect)
    _check_rings(config)
    return config


def memory_total() -> int | None:
    """The machine's memory in bytes (MemTotal in /proc/meminfo), or None
    where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024  # the file says kB: KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_rings(config: Config) -> None:
    # Each option is within its own bounds; together they may still ask
    # for more memory than the machine has (see MAX_BLOCK_SIZE).
    total = memory_total()
    if total is None:
        return
    workers, blocks = config.workers(), config["capture.blocks"]
    block_size = config["capture.block_size"]
    rings = workers * blocks * block_size
    if rings > total * MAX_RING_SHARE:
        raise ConfigError(
            f"capture.blocks = {blocks}: the capture rings would take "
            f"{rings >> 20} MiB ({workers} workers x {blocks} blocks x "
            f"{block_size} bytes), more than half of this machine's memory "
            f"({total >> 20} MiB)"
        )


def _check_response(values: dict[str, Any]) -> None:
    # The [response] options that only make sense together (actions,
    # device tags) are checked by the policy that reads them, here at load
    # so that a mistake stops the start before capture, not after.
    from sensor.detect.runner import load_all
    from sensor.respond import policy_config

    problems = policy_config(values).problems()
    if problems:
        raise ConfigError(problems[0])

    # A misspelt detection would silently fall back to response.mode.
    known = load_all()
    named = [("response.autonomous", d) for d in values["response.autonomous"]]
    named += [("response.confirm", d) for d in values["response.confirm"]]
    named += [("response.actions", a.partition("=")[0].strip())
              for a in values["response.actions"]]  # fmt: skip
    for option, detection in named:
        if detection not in known:
            raise ConfigError(
                f"{option}: {detection!r}: unknown detection "
                f"(known: {', '.join(sorted(known))})"
            )
    both = set(values["response.autonomous"]) & set(values["response.confirm"])
    if both:
        raise ConfigError(
            f"response.autonomous and response.confirm both list {sorted(both)[0]!r}"
        )


def _detect_override(name: str, value: Any, into: dict[str, dict[str, Any]]) -> None:
    """Check one ``detect.<detection>.<threshold>`` value against the name,
    type and range the detection declares (sensor/detect/, docs/detections.md)."""
    from sensor.detect.base import ThresholdError
    from sensor.detect.runner import load_all

    registry = load_all()
    detection, _, key = name[len("detect.") :].rpartition(".")
    cls = registry.get(detection)
    if cls is None:
        raise ConfigError(
            f"{name}: unknown detection {detection!r} (known: {', '.join(sorted(registry))})"
        )
    known = {t.name: t for t in cls.thresholds}
    if key not in known:
        raise ConfigError(
            f"{name}: unknown threshold of {detection} (known: {', '.join(sorted(known))})"
        )
    try:
        into.setdefault(detection, {})[key] = known[key].check(detection, value)
    except ThresholdError as e:
        raise ConfigError(str(e)) from None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def sample() -> str:
    """The commented sample configuration, every option at its default."""
    lines = [
        "# sensord configuration (TOML). Every option but the interface is shown",
        "# at its default; generated by `python3 -m sensor.config` (sensor/config.py).",
    ]
    section = ""
    for opt in ALL.values():
        head, key = opt.name.split(".", 1)
        if head != section:
            section = head
            lines += ["", f"[{section}]"]
        lines.append(f"# {opt.help}" + ("" if opt.reload else " (restart to change)"))
        value = opt.default if opt.example is None else opt.example
        lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(sample(), end="")
