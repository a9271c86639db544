"""sensord: the sensor daemon. It replays capture files or captures live.

    sensord --replay FILE [FILE ...] --logdir DIR
    sensord --config /etc/sensor/sensor.toml
    sensord --interface IFACE [--workers N] [--logdir DIR]

In a replay, packet timestamps are the only clock: the result does not
depend on how fast the machine is or on the time of day. Live capture runs
until SIGTERM (see ``sensor.daemon.main``); options on the command line
override the configuration file's.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sensor import __version__, _impl
from sensor.capture.batch import Batch
from sensor.capture.errors import CaptureError
from sensor.capture.merge import merge
from sensor.decode.packet import LINK_TYPES
from sensor.engine import Engine
from sensor.output.zeeklog import LogWriter
from sensor.pipeline import Pipeline

log = logging.getLogger("sensord")

EXIT_OK = 0
EXIT_NOTHING_READ = 1
EXIT_USAGE = 2
#: A capability is missing (sysexits EX_NOPERM); systemd does not restart.
EXIT_NOPERM = 77
#: The configuration is unusable (sysexits EX_CONFIG); systemd does not restart.
EXIT_CONFIG = 78


def parser() -> argparse.ArgumentParser:
    """The command line of sensord."""
    p = argparse.ArgumentParser(
        prog="sensord",
        description="Network detection and response sensor.",
    )
    p.add_argument("--version", action="version", version=f"sensord {__version__}")
    p.add_argument(
        "--replay",
        nargs="+",
        metavar="FILE",
        help="pcap or pcapng files to replay at full speed, merged in time order",
    )
    p.add_argument(
        "--learn",
        nargs="+",
        metavar="FILE",
        help="with --replay: replay these captures first so the device models learn "
        "a baseline; their logs and alerts are not written",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="capture live as this TOML configuration says (sample: packaging/sensor.toml)",
    )
    p.add_argument(
        "--interface",
        metavar="IFACE",
        help="capture live from this interface (overrides capture.interface)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="live capture: worker processes, 0 for one per core (overrides capture.workers)",
    )
    p.add_argument(
        "--logdir",
        type=_directory,
        default=None,
        metavar="DIR",
        help="directory for conn.log, weird.log and the other logs "
        "(default: . for --replay and --interface, output.logdir with --config)",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto shows it on a terminal (default: auto)",
    )
    p.add_argument(
        "--state",
        metavar="PATH",
        type=_file,
        help="with --replay: keep the device models in this SQLite file, loaded at "
        "start and saved as packet time passes (default: models are not kept)",
    )
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="remove the response's nftables table (inet sensor) and exit",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    from sensor.api.serve import add_options

    add_options(p)
    return p


def _directory(text: str) -> str:
    """``--logdir``: a path, not empty (an empty one would mean the
    current directory without saying so)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give . for the current directory")
    return text


def _file(text: str) -> str:
    """``--state``: a path, not empty (an empty one would keep nothing
    without saying so)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give the file's path")
    return text


def count_unread(batch: Batch, unread: dict[int, int]) -> None:
    """Count the batch's packets of link types the decoder does not read
    into ``unread`` (link type -> packets), so that the replay can say so
    rather than leave it to weird.log alone."""
    kinds, counts = np.unique(batch.linktypes, return_counts=True)
    for linktype, n in zip(kinds.tolist(), counts.tolist(), strict=True):
        if linktype not in LINK_TYPES:
            unread[linktype] = unread.get(linktype, 0) + n


def open_captures(paths: Sequence[str]) -> tuple[list[object], list[str]]:
    """Open every capture; return those that opened and one error line each for the rest."""
    reader = _impl.load("pcap", "sensor.capture.pcapfile")
    opened, errors = [], []
    for path in paths:
        try:
            opened.append(reader.CaptureFile(path))
        except CaptureError as e:
            errors.append(str(e))
    return opened, errors


#: Descriptors a replay needs besides its captures: logs, the state
#: database, the API's sockets and threads, the interpreter's own.
SPARE_FDS = 64


def room_for_files(count: int) -> str | None:
    """Make room to hold ``count`` captures open at once (they are merged in
    time order, so all are open together): the soft RLIMIT_NOFILE is raised
    to the hard one when needed. Returns why it cannot be done, or None."""
    import resource

    need = count + SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return None
    if hard == resource.RLIM_INFINITY or need <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return None
    return (
        f"{count} capture files are more than can be open at once: the limit is "
        f"{hard} open files (ulimit -n) and about {SPARE_FDS} are needed besides; "
        "merge them first (mergecap) or raise the hard limit"
    )


def with_progress(batches: Iterator[Batch], total: int, show: bool) -> Iterator[Batch]:
    """Pass batches through, advancing a byte-based progress bar when ``show``."""
    if not show:
        yield from batches
        return
    from tqdm import tqdm

    with tqdm(
        total=total, unit="B", unit_scale=True, desc="replay", leave=False
    ) as bar:
        done = 0
        for batch in batches:
            # Record headers are about 16 bytes in pcap and 32 in pcapng.
            step = int(batch.caplens.sum()) + 24 * len(batch)
            step = min(step, max(total - done, 0))
            done += step
            bar.update(step)
            yield batch


def build_pipeline(args: argparse.Namespace) -> Pipeline:
    """The stages after the engine for a replay, as the options ask.

    Each stage is built by its own package: models (``--state``), the
    detections and incidents, and the response policy (dry run in a
    replay).
    """
    from sensor.detect.runner import Detector
    from sensor.incident import IncidentBuilder
    from sensor.incident.ids import keep_ids
    from sensor.model import Models
    from sensor.respond import build, model_tags

    models = Models(getattr(args, "state", None))
    detector, incidents = Detector(models), IncidentBuilder(models)
    keep_ids(models.store, detector, incidents)
    return Pipeline(
        models=models,
        detector=detector,
        incidents=incidents,
        responder=build({}, replay=True, tags=model_tags(models)),
    )


def learn(files: Sequence[object], pipeline: Pipeline, show: bool) -> None:
    """The learn phase of a replay: the models alone see these captures.

    The engine runs as in a replay, but its records go to the models only:
    nothing is written, nothing is detected. A fresh engine then replays
    the captures to score, so no connection spans the two phases. Damage
    found while reading (a truncated file) is reported as a replay's is.
    """
    if pipeline.models is None:
        print(
            "sensord: --learn: no device models in this build; nothing learned",
            file=sys.stderr,
        )
        return
    learner = Pipeline(models=pipeline.models)
    engine = Engine()
    total = sum(os.path.getsize(f.path) for f in files)  # type: ignore[attr-defined]
    for batch in with_progress(merge(files), total, show):  # type: ignore[arg-type]
        learner.feed(engine.process(batch))
    learner.feed(engine.flush())
    for f in files:
        for problem in getattr(f, "problems", ()):
            print(f"sensord: --learn: {problem}", file=sys.stderr)
    t = engine.totals
    print(f"sensord: learned from {t.packets} packets, {t.connections} connections")


def serve_api(
    args: argparse.Namespace, pipeline: Pipeline, out: LogWriter, stop: Any = None
) -> Any:
    """The API server for ``--serve`` (started, and with ``--serve-wait``
    waited on unless ``stop`` is set), or None without it."""
    if not args.serve:
        return None
    from sensor.api.serve import ServeError, start

    try:
        return start(args, pipeline, out.write, stop=stop)
    except ServeError as e:
        print(f"sensord: --serve {e}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def check_token_file(path: str) -> str | None:
    """Why the API's token file cannot be used (starting with its path), or
    None: checked before the replay, so that a bad line stops the daemon
    before anything is read or written."""
    from sensor.api.auth import read_tokens

    try:
        read_tokens(path)
    except OSError as e:
        return f"{path}: cannot read the token file: {e.strerror}"
    except ValueError as e:
        return str(e)
    return None


def replay(args: argparse.Namespace) -> int:
    """Run the pipeline over the capture files; return the exit status."""
    # Every --learn file must open: a baseline learned from part of what
    # was asked would score the replay against the wrong normal.
    if args.serve:  # before anything is learned or replayed
        from sensor.api.server import ServeError, check_listen

        if args.token_file:  # its lines first, as the server reads them
            problem = check_token_file(args.token_file)
            if problem:
                print(f"sensord: --token-file {problem}", file=sys.stderr)
                return EXIT_CONFIG
        try:
            check_listen(args.serve, args.tls_cert, args.tls_key, args.client_ca,
                         args.token_file, args.insecure_loopback)  # fmt: skip
        except ServeError as e:
            print(f"sensord: --serve {e}", file=sys.stderr)
            return EXIT_CONFIG
    too_many = room_for_files(len(args.replay) + len(args.learn or ()))
    if too_many:
        print(f"sensord: --replay: {too_many}", file=sys.stderr)
        return EXIT_NOTHING_READ
    learn_files, learn_errors = open_captures(args.learn or ())
    for line in learn_errors:
        print(f"sensord: --learn: {line}", file=sys.stderr)
    if learn_errors:
        return EXIT_NOTHING_READ
    files, errors = open_captures(args.replay)
    for line in errors:
        print(f"sensord: {line}", file=sys.stderr)
    if not files:
        return EXIT_NOTHING_READ

    args.logdir = args.logdir or "."
    if os.path.exists(args.logdir) and not os.path.isdir(args.logdir):
        print(
            f"sensord: --logdir {args.logdir}: the log directory is a file",
            file=sys.stderr,
        )
        return EXIT_NOTHING_READ
    show = args.progress == "always" or (
        args.progress == "auto" and sys.stderr.isatty()
    )
    total = sum(os.path.getsize(f.path) for f in files)  # type: ignore[attr-defined]
    engine = Engine()
    pipeline = build_pipeline(args)
    if learn_files:
        learn(learn_files, pipeline, show)
    # Served, SIGTERM and SIGINT are noted (not acted upon at once) from
    # the server's start: a stop during --serve-wait or the replay still
    # closes the logs whole and removes the socket.
    signals = None
    if args.serve:
        from sensor.api.serve import StopSignals

        signals = StopSignals()
    with LogWriter(args.logdir) as out, signals or contextlib.nullcontext():
        api = serve_api(args, pipeline, out, signals and signals.event)
        if signals is not None and signals.event.is_set():
            api.stop()
            print(
                f"sensord: stopped by {signals.name} before the replay (--serve-wait); "
                "nothing replayed",
                file=sys.stderr,
            )
            return 128 + signals.signum
        started = time.perf_counter()  # after --serve-wait: the replay alone
        cut_short = False
        unread: dict[int, int] = {}
        for batch in with_progress(merge(files), total, show):  # type: ignore[arg-type]
            if signals is not None and signals.event.is_set():
                cut_short = True
                break
            count_unread(batch, unread)
            records = engine.process(batch)
            if api is not None:  # the API's state runs the pipeline under its lock
                api.state.feed(records)
                api.state.set_totals(engine.totals)
                continue
            for name, record in records:
                out.write(name, record)
            for name, record in pipeline.feed(records):
                out.write(name, record)
        records = engine.flush()
        if api is not None:
            api.state.feed(records)
            api.state.set_totals(engine.totals)
            api.state.finish()
            elapsed = time.perf_counter() - started  # the replay, not the serving
        else:
            for name, record in records:
                out.write(name, record)
            for name, record in pipeline.feed(records):
                out.write(name, record)
            for name, record in pipeline.finish():
                out.write(name, record)
        if cut_short:
            api.stop()  # the connections open at the stop were written above
        elif api is not None:
            from sensor.api.serve import wait_for_signal

            wait_for_signal(api, out, signals)
    if api is None:
        elapsed = time.perf_counter() - started

    for f in files:
        for problem in getattr(f, "problems", ()):
            print(f"sensord: {problem}", file=sys.stderr)
    for linktype, n in sorted(unread.items()):
        print(
            f"sensord: {n} packets of link type {linktype}, which the decoder does "
            "not read, were counted but not decoded (weird.log: unknown_link_type)",
            file=sys.stderr,
        )
    t = engine.totals
    rate = t.packets / elapsed if elapsed > 0 else 0.0
    print(
        f"sensord: {t.packets} packets, {t.bytes} bytes, {t.connections} connections, "
        f"{t.anomalies} anomalies in {elapsed:.2f} s ({rate:,.0f} packets/s)"
    )
    if cut_short:
        assert signals is not None
        print(
            f"sensord: stopped by {signals.name} during the replay; the logs hold "
            "the packets read until then",
            file=sys.stderr,
        )
        return 128 + signals.signum
    if t.packets == 0 and (errors or any(getattr(f, "problems", ()) for f in files)):
        return EXIT_NOTHING_READ
    return EXIT_OK


def live(args: argparse.Namespace) -> int:
    """Capture from an interface until stopped; return the exit status."""
    from sensor import config
    from sensor.capture.live import StartupError
    from sensor.daemon.main import run

    overrides: dict[str, object] = {}
    if args.interface is not None:
        overrides["capture.interface"] = args.interface
    if args.workers is not None:
        overrides["capture.workers"] = args.workers
    if args.logdir is not None or args.config is None:
        overrides["output.logdir"] = args.logdir or "."
    if args.verbose:
        overrides["daemon.log_level"] = "debug"
    try:
        cfg = config.load(args.config, overrides)
    except config.ConfigError as e:
        print(f"sensord: {e}", file=sys.stderr)
        return EXIT_CONFIG
    logging.getLogger().setLevel(cfg["daemon.log_level"].upper())
    try:
        return run(cfg, overrides)
    except StartupError as e:
        print(f"sensord: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(
            f"sensord: {e.filename or cfg['output.logdir']}: {e.strerror}",
            file=sys.stderr,
        )
        return EXIT_NOTHING_READ


def cleanup() -> int:
    """``sensord --cleanup``: remove the nftables table; the exit status."""
    from sensor.respond import cleanup as remove
    from sensor.respond.backends import BackendError
    from sensor.respond.backends.nftables import NoPermission

    try:
        print(f"sensord: {remove()}")
    except NoPermission as e:
        print(f"sensord: --cleanup: {e}", file=sys.stderr)
        return EXIT_NOPERM
    except BackendError as e:
        print(f"sensord: --cleanup: {e}", file=sys.stderr)
        return EXIT_NOTHING_READ
    return EXIT_OK


#: Options of ``--serve`` (besides --socket-group, which has a default).
SERVE_OPTIONS = ("tls_cert", "tls_key", "client_ca", "token_file", "insecure_loopback", "serve_wait")
#: Of those, the ones a Unix socket has no use for: its group guards it.
TCP_OPTIONS = ("tls_cert", "tls_key", "client_ca", "token_file", "insecure_loopback")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def contradictory(args: argparse.Namespace) -> str | None:
    """Why the options contradict each other (one line), or None. An option
    that would be silently ignored counts: the user meant something by it."""
    is_live = args.config is not None or args.interface is not None
    if args.cleanup:
        others = [o for o in ("replay", "learn", "config", "interface", "serve")
                  if getattr(args, o)]  # fmt: skip
        if others:
            return (
                f"--cleanup removes the nftables table and exits; it cannot be "
                f"combined with {_flag(others[0])}"
            )
        return None
    if args.replay and not is_live:
        if args.workers is not None:
            return "--workers is for live capture (--config or --interface); a replay runs in one process"
        given = [o for o in SERVE_OPTIONS if getattr(args, o)]
        if given and not args.serve:
            return f"{_flag(given[0])} needs --serve"
        if args.serve and args.serve.startswith(("unix:", "/", "./")):  # parse_listen's test
            tcp = [o for o in TCP_OPTIONS if getattr(args, o)]
            if tcp:
                return (
                    f"{_flag(tcp[0])} is for --serve HOST:PORT; a Unix socket is "
                    "guarded by its group (--socket-group)"
                )
    if is_live and not args.replay:
        given = [o for o in ("serve", *SERVE_OPTIONS, "state") if getattr(args, o)]
        if given:
            where = "model.state" if given[0] == "state" else "[api]"
            return (
                f"{_flag(given[0])} is for --replay; live capture takes {where} "
                "from the configuration"
            )
    return None


class _OwnLoggersOnly(logging.Filter):
    """Lets through every record of sensor's own loggers, and a library's
    only from WARNING up: under -v, pyroute2 would log each netlink message
    at DEBUG and drown the daemon's own lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.split(".", 1)[0] in ("sensor", "sensord")
        return own or record.levelno >= logging.WARNING


def setup_logging(verbose: bool) -> None:
    """Log to stderr at INFO, or DEBUG with -v; libraries at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(name)s: %(levelname)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OwnLoggersOnly())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sensord`` command."""
    p = parser()
    args = p.parse_args(argv)
    contradiction = contradictory(args)
    if contradiction:
        p.error(contradiction)
    if args.cleanup:
        return cleanup()
    is_live = args.config is not None or args.interface is not None
    if args.replay and is_live:
        p.error("--replay cannot be combined with --config or --interface")
    if args.learn and not args.replay:
        p.error("--learn needs --replay")
    if not args.replay and not is_live:
        p.error("one of --replay, --config or --interface is needed")
    if is_live:  # a SIGHUP or SIGTERM before the daemon runs is held for it
        from sensor.daemon.signals import hold

        hold()
    setup_logging(args.verbose)
    try:
        return live(args) if is_live else replay(args)
    except KeyboardInterrupt:
        print("sensord: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(
            f"sensord: {e.filename or args.logdir or '.'}: {e.strerror}",
            file=sys.stderr,
        )
        return EXIT_NOTHING_READ


if __name__ == "__main__":
    sys.exit(main())
