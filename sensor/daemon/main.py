"""The live daemon's main process: starts workers, writes logs, obeys signals.

Process layout (see ``sensor.daemon.worker`` for the transport)::

    main ── opens the capture (sockets, rings, fanout, promiscuous mode),
     │      forks the workers, writes every log, samples capture health,
     │      talks to systemd, runs the pipeline (models, detections,
 │      incidents, response) over the workers' records
     ├── worker 0 ── ring 0 -> engine -> records ──pipe──> main
     └── worker 1 ── ring 1 -> engine -> records ──pipe──> main

Everything that can fail at start (interface, privileges, filter) is done
before the workers are forked, so a failure is one line and a non-zero
exit. ``READY=1`` goes to systemd only once every worker reads its ring.

Signals: SIGTERM or SIGINT stops gracefully, exit 0 (workers drain their
rings and flush every open connection, the main process writes what they
send, then closes the logs and puts the interface back as found), during
the start too; SIGHUP re-reads the configuration and applies the options
marked reloadable, keeping all state (one that comes during the start is
applied once the daemon runs; see ``sensor.daemon.signals``). The main
loop wakes at least every ``TICK`` seconds and pings the systemd watchdog,
so a hung main loop gets the service restarted.

Failures while running (a worker lost, the interface gone, a log that
cannot be written) stop the daemon as SIGTERM does and make it exit 1,
for systemd to restart it; nothing is left behind half-stopped.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from sensor import config as configuration
from sensor import respond
from sensor.capture.live import Capture, StartupError, open_capture
from sensor.daemon.health import Health
from sensor.daemon.notify import Notifier
from sensor.daemon.signals import take as held_signals
from sensor.daemon.worker import Worker
from sensor.lockfile import InUse, LockFile, check, holder, holder_text
from sensor.output.rotate import RotatingLogWriter
from sensor.pipeline import NOT_LOGGED, Pipeline
from sensor.respond import Responder
from sensor.respond.backends import BackendError

log = logging.getLogger("sensord")

#: Longest sleep of the main loop (seconds).
TICK = 0.2
#: Messages taken from one worker's pipe before the loop goes round.
MESSAGES_PER_WAKE = 16
#: How long workers get to start, and to drain and flush at stop.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 60.0
#: Seconds between checks that the interface still exists.
LINK_CHECK = 1.0
#: Socket errors after which the interface is checked at once: the kernel
#: sets ENETDOWN on a packet socket whose device goes down or away
#: (packet_notifier() in net/packet/af_packet.c).
LINK_ERRORS = (errno.ENETDOWN, errno.ENODEV, errno.ENXIO)
#: Set to 1 to make SIGUSR2 hang the main loop (tests the watchdog).
DEBUG_HANG_ENV = "SENSOR_DEBUG_HANG"
#: Exit status for an unusable configuration (sysexits EX_CONFIG).
EXIT_CONFIG = 78


def _run_worker(index: int, ring: Any, out: Connection, flow: Any) -> None:
    Worker(index, ring, out, flow).run()


class Daemon:
    """One interface, its workers, and the logs they feed."""

    def __init__(
        self,
        cfg: configuration.Config,
        overrides: dict[str, Any] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.overrides = overrides or {}
        self.notify = notifier or Notifier()
        self.capture: Capture | None = None
        self.procs: list[BaseProcess] = []
        self.pipes: list[Connection] = []
        self.totals: list[dict[str, Any]] = []
        self.done: set[int] = set()
        self.heard: dict[int, float] = {}
        self.interface_lost = False
        self.ready: set[int] = set()
        self.stopping = False
        self.reload_pending = False
        self.hang = False
        self.writer: RotatingLogWriter | None = None
        self.health = Health(cfg["capture.interface"], cfg["health.max_drop_ratio"])
        #: Models, detections, incidents and response over the workers' records.
        self.pipeline: Pipeline | None = None
        #: Batches of records the pipeline failed on (the error is logged).
        self.pipeline_errors = 0
        self._logged_errors: set[str] = set()
        #: The gRPC API ([api]; sensor.api), None when off.
        self.api: Any = None
        #: Exit status of loop(): 1 once a failure stopped the daemon.
        self.status = 0
        #: Whether stop() was called (it must run once, even on an error).
        self.stop_begun = False
        #: The nftables table's lock while this daemon owns the table.
        self.table_lock: LockFile | None = None

    # -- start -------------------------------------------------------------

    def start(self) -> None:
        """Open the capture and start the workers; StartupError on failure."""
        c = self.cfg
        n = c.workers()
        # A stop asked for while starting is a stop like any other: what
        # was opened is closed by stop(), and loop() returns at once.
        self._signals()
        preflight(c)
        if self.stopping:
            return
        self.capture = open_capture(
            c["capture.interface"],
            n,
            block_size=c["capture.block_size"],
            blocks=c["capture.blocks"],
            block_timeout_ms=c["capture.block_timeout_ms"],
            bpf_filter=c["capture.bpf_filter"],
            promiscuous=c["capture.promiscuous"],
            ignore_outgoing=c["capture.ignore_outgoing"],
        )
        if self.stopping:
            return
        ctx = multiprocessing.get_context("fork")
        flow = c.flow()
        for i, ring in enumerate(self.capture.rings):
            receive, send = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=_run_worker,
                args=(i, ring, send, flow),
                name=f"sensord-worker-{i}",
            )
            p.start()
            send.close()
            self.procs.append(p)
            self.pipes.append(receive)
            self.totals.append({})

        # Held from here to the end (preflight() only looked): the table,
        # the log directory and the response state each have one owner.
        if "nftables" in c["response.backends"]:
            self.table_lock = _own_table()
        try:
            self.writer = RotatingLogWriter(
                c["output.logdir"],
                c["output.rotate_bytes"],
                c["output.rotate_seconds"],
                c["output.keep"],
            )
        except InUse as e:
            raise StartupError(_logdir_in_use(c, e), EXIT_CONFIG) from None
        self.pipeline = build_pipeline(c)
        self._start_api()
        deadline = time.monotonic() + START_TIMEOUT
        while len(self.ready) < n and time.monotonic() < deadline and not self.stopping:
            self._receive(TICK)
            if self._dead_worker():
                raise StartupError(
                    f"{c['capture.interface']}: a capture worker exited while starting"
                )
        if self.stopping:
            return
        if len(self.ready) < n:
            raise StartupError(
                f"{c['capture.interface']}: only {len(self.ready)} of {n} capture workers started "
                f"within {START_TIMEOUT:.0f} s"
            )
        log.info("%s: capturing with %d worker%s (%s rings of %d x %d bytes)",
                 c["capture.interface"], n, "s" * (n != 1), type(self.capture.rings[0]).__module__,
                 c["capture.blocks"], c["capture.block_size"])  # fmt: skip
        self.notify.ready(f"capturing on {c['capture.interface']} with {n} workers")

    def _start_api(self) -> None:
        from sensor.api.serve import ServeError, start_live

        try:
            self.api = start_live(self.cfg, self.pipeline)
            if self.api is not None:
                self.api.state.worker_totals = lambda: list(self.totals)
        except ServeError as e:
            raise StartupError(f"api: {e}", 78) from None

    def _signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        if os.environ.get(DEBUG_HANG_ENV) == "1":
            signal.signal(signal.SIGUSR2, self._on_hang)
        for signum in held_signals():  # came before these handlers were set
            if signum == signal.SIGHUP:
                self.reload_pending = True
            else:
                self.stopping = True

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _on_hup(self, signum: int, frame: object) -> None:
        self.reload_pending = True

    def _on_hang(self, signum: int, frame: object) -> None:
        self.hang = True

    # -- run ---------------------------------------------------------------

    def loop(self) -> int:
        """Run until stopped; return the exit status."""
        c = self.cfg
        next_flush = next_health = next_link = time.monotonic()
        next_health += c["health.interval"]
        while not self.stopping:
            self._receive(TICK)
            if time.monotonic() >= next_link:
                self._check_interface()
                next_link = time.monotonic() + LINK_CHECK
            if self._dead_worker() or self._interface_gone():
                self.status = 1
                break
            if self.reload_pending:
                self.reload_pending = False
                self.reload()
            while self.hang:
                # Debug aid (SENSOR_DEBUG_HANG=1, SIGUSR2): a main loop that
                # no longer runs, so that the watchdog's restart can be tested.
                time.sleep(3600)
            self.notify.watchdog()
            self._tick()

            now = time.monotonic()
            if now >= next_flush:
                self._flush_logs()
                next_flush = now + self.cfg["output.flush_seconds"]
            if now >= next_health:
                self._health()
                next_health = now + self.cfg["health.interval"]
        self.stop()
        return self.status

    def _tick(self) -> None:
        # Packet time stands still on a quiet link: wall time moves the
        # detections' windows on (a "tick" record no stage logs) and the
        # responder's expiries, back-end news and reconciler.
        if self.pipeline is None or self.writer is None:
            return
        now = time.time()
        out = self._feed([("tick", {"ts": now})])
        responder = self.pipeline.responder
        if isinstance(responder, Responder):
            responder.policy.degraded = self.health.response_mode != "auto"
            out += responder.tick(now)
        if self.api is not None:  # operator changes, and expiries for the API
            self.api.state.publish_written(out)
            out += self.api.state.drain()
        for name, record in out:
            self._write(name, record)

    def _feed(
        self, records: list[tuple[str, dict[str, Any]]]
    ) -> list[tuple[str, dict[str, Any]]]:
        # A stage that fails must not stop capture and logging: the error is
        # logged (once per kind) and the records go on without it.
        if self.pipeline is None:
            return []
        try:
            if self.api is not None:  # under the API's lock, which keeps them
                return list(self.api.state.run(records, self.pipeline.feed))
            return self.pipeline.feed(records)
        except Exception as e:
            self.pipeline_errors += 1
            key = f"{type(e).__name__}: {e}"
            if key not in self._logged_errors:
                self._logged_errors.add(key)
                log.exception(
                    "pipeline: failed on a batch of records (%s); going on", key
                )
            return []

    def _receive(self, timeout: float) -> None:
        for conn in wait(self.pipes, timeout):
            assert isinstance(conn, Connection)
            try:
                # A bounded number per pipe and wake-up, so that one busy
                # worker cannot starve the others, the watchdog or health.
                for _ in range(MESSAGES_PER_WAKE):
                    self._handle(conn.recv())
                    if not conn.poll():
                        break
            except (EOFError, OSError):
                self.pipes.remove(conn)

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind, index = msg[0], msg[1]
        self.heard[index] = time.monotonic()
        if kind == "records":
            if self.writer is None:  # a start that failed before the logs opened
                return
            for name, record in msg[2]:
                if name not in NOT_LOGGED:  # early notices are for the pipeline
                    self._write(name, record)
            for name, record in self._feed(msg[2]):
                self._write(name, record)
        elif kind == "totals":
            seen = len(self.totals[index].get("socket_errors", ()))
            for err in msg[2]["socket_errors"][seen:]:
                log.warning("%s: worker %d: socket error: %s",
                            self.cfg["capture.interface"], index, os.strerror(err))  # fmt: skip
                if err in LINK_ERRORS:
                    self._check_interface()
            self.totals[index] = msg[2]
        elif kind == "ready":
            self.ready.add(index)
        elif kind == "done":
            self.done.add(index)

    def _dead_worker(self) -> bool:
        now = time.monotonic()
        for i, p in enumerate(self.procs):
            if not p.is_alive() and i not in self.done:
                log.error("%s: worker %d exited with status %s; stopping",
                          self.cfg["capture.interface"], i, p.exitcode)  # fmt: skip
                return True
            # A worker reports at least once a second; silence means it hangs,
            # which the systemd watchdog (fed by this process) cannot see.
            if (
                i in self.ready
                and i not in self.done
                and now - self.heard.get(i, now) > self.cfg["daemon.worker_timeout"]
            ):
                log.error("%s: worker %d silent for %.0f s; stopping",
                          self.cfg["capture.interface"], i, now - self.heard[i])  # fmt: skip
                # It would not flush either: what it holds is lost.
                p.kill()
                return True
        return False

    def _interface_gone(self) -> bool:
        # A removed interface (a USB NIC unplugged, a veth deleted) leaves the
        # sockets bound to an index that no longer exists: nothing more will
        # come. Checked every LINK_CHECK seconds and at once on a worker's
        # ENETDOWN; exit 1 so that systemd restarts. An interface that is
        # only down (link lost, ip link set down) keeps its index and its
        # sockets, which capture again once it is up: the daemon waits.
        if not self.interface_lost:
            return False
        log.error("%s: interface is gone; stopping", self.cfg["capture.interface"])
        return True

    def _check_interface(self) -> None:
        if self.capture is None:
            return
        try:
            index = socket.if_nametoindex(self.capture.interface)
        except OSError:
            index = 0
        self.interface_lost = index != self.capture.ifindex

    def _health(self) -> None:
        assert self.capture is not None
        self._check_interface()
        records = self.health.sample(time.time(), self.capture.stats(), self.totals)
        if self.api is not None:
            self.api.state.set_capture(self.capture.counters, self.health.degraded)
        for name, record in records:
            self._write(name, record)
        c = self.capture.counters
        self.notify.status(
            f"{self.capture.interface}: {len(c)} workers, {sum(x.packets for x in c)} packets, "
            f"{sum(x.drops for x in c)} dropped, response {self.health.response_mode}"
        )

    # -- logs --------------------------------------------------------------

    def _write(self, name: str, record: dict[str, Any]) -> None:
        if self.writer is None:  # not open yet, or failed: nothing to write to
            return
        try:
            self.writer.write(name, record)
        except OSError as e:
            self._logs_failed(e)

    def _flush_logs(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.tick()
            self.writer.flush()
        except OSError as e:
            self._logs_failed(e)

    def _logs_failed(self, e: OSError) -> None:
        # A full disk, a file system gone read-only, a directory removed:
        # the records cannot be kept, so the daemon stops as for SIGTERM
        # (workers ended, interface and socket restored) and exits 1 for
        # systemd to restart it. Records from then on are dropped.
        where = e.filename or self.cfg["output.logdir"]
        log.error("%s: cannot write: %s; stopping", where, e.strerror or e)
        assert self.writer is not None
        self.writer.abandon()
        self.writer = None
        self.stopping = True
        self.status = 1

    # -- reload and stop ---------------------------------------------------

    def reload(self) -> None:
        """Re-read the configuration file; apply what can change while running."""
        self.notify.reloading()
        try:
            new = configuration.load(self.cfg.path, self.overrides)
        except configuration.ConfigError as e:
            log.error("reload: %s; keeping the running configuration", e)
            self.notify.ready()
            return
        applied = []
        for name in self.cfg.changed(new):
            if not configuration.ALL[name].reload:
                log.warning(
                    "reload: %s: a change needs a restart; keeping %r",
                    name,
                    self.cfg[name],
                )
                new.values[name] = self.cfg[name]
                continue
            applied.append(name)
        try:
            if "capture.bpf_filter" in applied:
                assert self.capture is not None
                self.capture.set_filter(new["capture.bpf_filter"])
        except (StartupError, OSError) as e:
            log.error("reload: %s; keeping the running filter", e)
            new.values["capture.bpf_filter"] = self.cfg["capture.bpf_filter"]
            applied.remove("capture.bpf_filter")
        self.cfg = new
        if self.writer is not None:
            self.writer.rotate_bytes = new["output.rotate_bytes"]
            self.writer.rotate_seconds = new["output.rotate_seconds"]
            self.writer.keep = new["output.keep"]
        self.health.max_drop_ratio = new["health.max_drop_ratio"]
        if self.pipeline is not None and isinstance(self.pipeline.responder, Responder):
            responder = self.pipeline.responder
            with responder.lock:  # not between an API mode change's steps
                responder.policy.reconfigure(respond.policy_config(new.values))
                if responder.mode_from_configuration():
                    applied.append("response mode (the one set through the API is forgotten)")
        logging.getLogger().setLevel(new["daemon.log_level"].upper())
        log.info("reload: applied %s", ", ".join(applied) or "nothing (no change)")
        self.notify.ready()

    def _terminate(self) -> None:
        for i, p in enumerate(self.procs):
            if i not in self.done and p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Stop the workers, write what they flush, close logs and capture."""
        self.stop_begun = True
        self.notify.stopping()
        self._terminate()
        # Each pipe ends (EOF) once its worker has sent everything and exited.
        # SIGTERM goes again every second: a worker forked just before a
        # failed start may have had it before it set its handler, and lost it.
        deadline = time.monotonic() + STOP_TIMEOUT
        next_term = time.monotonic() + 1.0
        while self.pipes and time.monotonic() < deadline:
            self._receive(TICK)
            self.notify.watchdog()
            if time.monotonic() >= next_term:
                self._terminate()
                next_term = time.monotonic() + 1.0
        for p in self.procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                log.error("worker %s did not stop; killing it", p.name)
                p.kill()
        summary = ""
        if self.pipeline is not None:
            if self.writer is not None:
                try:
                    for name, record in self.pipeline.finish():
                        self._write(name, record)
                except Exception:
                    log.exception("pipeline: failed to finish; its last records are lost")
        if self.api is not None:
            # Before the responder closes: no operator change may reach it then.
            self.api.stop()
            for name, record in self.api.state.drain():
                self._write(name, record)
        if self.pipeline is not None and isinstance(self.pipeline.responder, Responder):
            self.pipeline.responder.close()
        if self.capture is not None:
            if self.writer is not None:
                self._health()
            if self.writer is not None:  # still: the health records may fail
                c = self.capture.counters
                records = ", ".join(
                    f"{n} {name}" for name, n in sorted(self.writer.counts.items())
                )
                summary = (
                    f": {sum(x.packets for x in c)} packets, {sum(x.drops for x in c)} dropped; "
                    f"records: {records or 'none'}"
                )
            self.capture.close()
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as e:
                self._logs_failed(e)
        if self.table_lock is not None:
            self.table_lock.release()
        if self.ready:
            log.info("%s: stopped%s", self.cfg["capture.interface"], summary)


def preflight(c: configuration.Config) -> None:
    """Check, before capture starts, what would otherwise fail only once
    the workers run: the log directory, the state file and the API's
    address. StartupError (exit 78) names the option and the problem."""
    logdir = c["output.logdir"]
    if os.path.exists(logdir) and not os.path.isdir(logdir):
        raise StartupError(
            f"output.logdir = {logdir!r}: the log directory is a file", EXIT_CONFIG
        )
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as e:
        raise StartupError(
            f"output.logdir = {logdir!r}: cannot create the log directory: {e.strerror}",
            EXIT_CONFIG,
        ) from None
    # Creating a file is the test that holds for every cause (permissions,
    # a read-only mount, no inodes left): access(2) misses some of them.
    try:
        fd, probe = tempfile.mkstemp(prefix=".sensord-", dir=logdir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StartupError(
            f"output.logdir = {logdir!r}: cannot write in the log directory: {e.strerror}",
            EXIT_CONFIG,
        ) from None

    state = c["model.state"]
    if os.path.exists(state):
        from sensor.model.store import StateError, Store

        try:
            Store(state).close()
        except StateError as e:
            raise StartupError(f"model.state = {state!r}: {e.strerror}", EXIT_CONFIG) from None

    _preflight_owners(c)
    _preflight_api(c)


def _preflight_owners(c: configuration.Config) -> None:
    # Another daemon owning the log directory, the response state or this
    # network namespace's nftables table: refused before capture starts.
    from sensor.output import LOCK
    from sensor.respond.backends.nftables import table_lock

    logdir = c["output.logdir"]
    try:
        check(os.path.join(logdir, LOCK), logdir)
    except InUse as e:
        raise StartupError(_logdir_in_use(c, e), EXIT_CONFIG) from None
    state = response_state(c)
    try:
        check(f"{state}.lock", state)
    except InUse as e:
        raise StartupError(_state_in_use(c, e), EXIT_CONFIG) from None
    if "nftables" in c["response.backends"]:
        pid = holder(table_lock().path)
        if pid is not None:
            raise StartupError(_table_in_use(pid), EXIT_CONFIG)


def _own_table() -> LockFile:
    from sensor.respond.backends.nftables import own_table

    try:
        return own_table()
    except InUse as e:
        raise StartupError(_table_in_use(e.pid), EXIT_CONFIG) from None
    except OSError as e:
        raise StartupError(
            f"response: nftables: cannot lock the table: {e.filename}: {e.strerror}",
            EXIT_CONFIG,
        ) from None


def _table_in_use(pid: int) -> str:
    return (
        f"response: nftables: {holder_text(pid)} owns the table inet sensor "
        "in this network namespace"
    )


def _logdir_in_use(c: configuration.Config, e: InUse) -> str:
    return f"output.logdir = {c['output.logdir']!r}: {e.strerror}"


def _state_in_use(c: configuration.Config, e: InUse) -> str:
    return (
        f"model.state = {c['model.state']!r}: the response state {e.filename} is "
        f"{e.strerror}; give each daemon a state directory of its own"
    )


def response_state(c: configuration.Config) -> str:
    """Where the live daemon keeps the response state: next to
    ``model.state``, or in the log directory when that directory does not
    exist."""
    state_dir = os.path.dirname(c["model.state"])
    if not os.path.isdir(state_dir):
        state_dir = c["output.logdir"]
    return os.path.join(state_dir, respond.STATE_FILE)


def _preflight_api(c: configuration.Config) -> None:
    from sensor.api.server import ServeError, check_listen

    listen = c["api.listen"]
    if not listen:
        return
    try:
        check_listen(listen, c["api.tls_cert"], c["api.tls_key"], c["api.client_ca"],
                     c["api.token_file"], c["api.insecure_loopback"])  # fmt: skip
    except ServeError as e:
        raise StartupError(f"api.listen = {listen!r}: {e}", EXIT_CONFIG) from None


def build_pipeline(c: configuration.Config) -> Pipeline:
    """The stages after the engine, as ``sensord``'s ``build_pipeline``
    makes them for a replay, but from the configuration and with the
    configured response back-ends; StartupError (exit 78) when the
    response cannot start."""
    from sensor.detect.runner import Detector
    from sensor.incident import IncidentBuilder
    from sensor.incident.ids import keep_ids
    from sensor.model import Models

    from sensor.model.store import StateError

    try:
        models = Models(c["model.state"], local_networks=c["model.local_networks"],
                        learning_days=c["model.learning_days"])  # fmt: skip
    except StateError as e:
        # A file that is there but unusable is refused, as --state does in a
        # replay (preflight() finds it first); a state that cannot be made
        # (no such directory) leaves the models in memory.
        if os.path.exists(c["model.state"]):
            raise StartupError(
                f"model.state = {c['model.state']!r}: {e.strerror}", EXIT_CONFIG
            ) from None
        log.warning(
            "model: %s: cannot open (%s); models kept in memory only",
            c["model.state"],
            e,
        )
        models = Models(None, local_networks=c["model.local_networks"])
    except Exception as e:  # noqa: BLE001 - a bad state file must not stop capture
        log.warning(
            "model: %s: cannot open (%s); models kept in memory only",
            c["model.state"],
            e,
        )
        models = Models(None, local_networks=c["model.local_networks"])
    problems = respond.policy_config(c.values).problems()
    if problems:
        raise StartupError(problems[0], EXIT_CONFIG)
    try:
        responder = respond.build(
            c.values,
            capture_interface=c["capture.interface"],
            state_dir=os.path.dirname(response_state(c)),
            tags=respond.model_tags(models),
        )
    except BackendError as e:
        raise StartupError(f"response: {e}", EXIT_CONFIG) from None
    except InUse as e:
        raise StartupError(_state_in_use(c, e), EXIT_CONFIG) from None
    log.info(
        "response: mode %s%s, back-ends %s",
        responder.policy.config.mode,
        " (set through the API before the restart)" if responder.mode_set else "",
        ", ".join(c["response.backends"]),
    )
    detector, incidents = Detector(models, c.detect), IncidentBuilder(models)
    keep_ids(models.store, detector, incidents)  # ids go on after a restart
    return Pipeline(models=models, detector=detector,
                    incidents=incidents, responder=responder)  # fmt: skip


def run(cfg: configuration.Config, overrides: dict[str, Any] | None = None) -> int:
    """Start the daemon and run it until stopped; return the exit status.

    Start-up failures (:class:`sensor.capture.live.StartupError`) propagate
    after everything opened so far is closed, for the caller to report.
    """
    daemon = Daemon(cfg, overrides)
    try:
        daemon.start()
    except BaseException:
        daemon.stopping = True
        daemon.stop()
        raise
    try:
        return daemon.loop()
    except BaseException:
        # Whatever went wrong, the workers must not outlive the main
        # process (its exit would wait for them forever) and the interface
        # and the API socket must be put back.
        if not daemon.stop_begun:
            daemon.stopping = True
            daemon.stop()
        raise
