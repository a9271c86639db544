"""Serving the API from sensord: options, start, and the wait for a signal.

``sensord --replay FILE --serve unix:PATH`` starts the server before the
replay (so ``sensorctl alerts --follow`` sees alerts as they are raised),
replays, then keeps serving the replayed state until SIGTERM or SIGINT.
From the start of the server on, those signals are noted by
:class:`StopSignals` and acted upon between batches, so that a stop during
``--serve-wait`` or the replay still closes the logs and removes the socket.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sensor.api.server import ApiServer, ServeError, parse_listen
from sensor.api.state import ApiState

log = logging.getLogger(__name__)

__all__ = ["ServeError", "StopSignals", "add_options", "start", "wait_for_signal"]

#: Longest sleep of ``--serve-wait`` between looks at the stop signals.
WAIT_SLICE = 0.2


class StopSignals:
    """SIGTERM and SIGINT noted while in a ``with`` block, not acted upon
    at once: the replay looks at :attr:`event` between batches, and the
    wait for a signal returns when it is set. The previous handlers are put
    back at the end of the block."""

    def __init__(self) -> None:
        self.event = threading.Event()
        #: The first signal received, 0 before.
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old[s] = signal.signal(s, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def _note(self, signum: int, frame: Any) -> None:
        if not self.event.is_set():
            self.signum = signum
        self.event.set()

    @property
    def name(self) -> str:
        """SIGTERM or SIGINT, the signal received."""
        return signal.Signals(self.signum).name


def add_options(p: argparse.ArgumentParser) -> None:
    """sensord's API options."""
    g = p.add_argument_group("API (with --replay; live capture reads [api])")
    g.add_argument(
        "--serve",
        type=_listen,
        metavar="unix:PATH|HOST:PORT",
        help="serve the gRPC API there during and after the replay, until SIGTERM or SIGINT",
    )
    g.add_argument(
        "--serve-wait",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="with --serve: replay only once a client follows alerts, or after S seconds",
    )
    g.add_argument(
        "--tls-cert", metavar="FILE", help="TCP: the server's certificate (PEM)"
    )
    g.add_argument("--tls-key", metavar="FILE", help="TCP: its private key (PEM)")
    g.add_argument(
        "--client-ca",
        metavar="FILE",
        help="TCP: accept client certificates signed by this CA",
    )
    g.add_argument(
        "--token-file", metavar="FILE", help="TCP: bearer tokens, NAME TOKEN per line"
    )
    g.add_argument(
        "--insecure-loopback",
        action="store_true",
        help="TCP: allow listening without TLS or credentials, on 127.0.0.1/::1 only",
    )
    g.add_argument("--socket-group", metavar="GROUP",
                   help="Unix socket: its group, whose members may call (default sensor; "
                        "when it does not exist, the socket is the owner's only)")  # fmt: skip


def _listen(text: str) -> str:
    """``--serve``: unix:PATH, a path, HOST:PORT or [V6]:PORT (as given)."""
    try:
        parse_listen(text)
    except ServeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _seconds(text: str) -> float:
    """``--serve-wait``: seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text!r}")
    return value


def start(
    args: argparse.Namespace,
    pipeline: Any,
    write: Callable[[str, dict[str, Any]], None],
    source: str = "replay",
    stop: threading.Event | None = None,
) -> ApiServer:
    """Build the state over ``pipeline`` and start serving; ServeError if
    the options do not allow it. With ``--serve-wait``, return once a client
    follows alerts, the time is up, or ``stop`` is set."""
    state = ApiState(source, pipeline, write)
    writer = getattr(write, "__self__", None)
    state.flush = lambda: _flush(writer)
    server = ApiServer(
        state,
        args.serve,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        token_file=args.token_file,
        insecure_loopback=args.insecure_loopback,
        # Most machines a replay runs on have no group sensor: unless named,
        # its absence is no warning (the socket is then the owner's only).
        socket_group="sensor" if args.socket_group is None else args.socket_group,
        group_matters=args.socket_group is not None,
    )
    server.start()
    if args.serve_wait > 0:
        deadline = time.monotonic() + args.serve_wait
        stopped = stop.is_set if stop is not None else lambda: False
        with state.cond:
            # In slices: a signal handler runs, but does not end the wait.
            while state.followers == 0 and not stopped():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                state.cond.wait(min(left, WAIT_SLICE))
    return server


def start_live(cfg: Any, pipeline: Any) -> ApiServer | None:
    """The daemon's API as ``[api]`` says, started; None when ``api.listen``
    is empty or the socket cannot be made (logged: capture goes on without
    the API). ServeError when the options are unsafe or wrong (TCP without
    TLS and credentials): the daemon must not start so."""
    listen = cfg["api.listen"]
    if not listen:
        log.info("api: off (api.listen is empty)")
        return None
    state = ApiState("live", pipeline, write=None)
    options = {
        "tls_cert": cfg["api.tls_cert"] or None,
        "tls_key": cfg["api.tls_key"] or None,
        "client_ca": cfg["api.client_ca"] or None,
        "token_file": cfg["api.token_file"] or None,
        "insecure_loopback": cfg["api.insecure_loopback"],
        "socket_mode": int(cfg["api.socket_mode"], 8),
        "socket_group": cfg["api.socket_group"],
    }
    where = parse_listen(listen)
    if where.path is not None:
        try:
            os.makedirs(
                os.path.dirname(os.path.abspath(where.path)), 0o755, exist_ok=True
            )
            server = ApiServer(state, listen, **options)
        except (OSError, ServeError) as e:
            log.error(
                "api: %s: cannot serve: %s; capture goes on without the API", listen, e
            )
            return None
    else:
        server = ApiServer(state, listen, **options)
    server.start()
    return server


def _flush(out: Any) -> None:
    if out is None:
        return
    # TODO: LogWriter has no flush of its own yet; its files are flushed
    # here so that a served replay's logs (actions.log) are readable.
    with_flush = getattr(out, "flush", None)
    if with_flush is not None:
        with_flush()
        return
    for f in list(getattr(out, "_files", {}).values()):
        f.flush()


def wait_for_signal(
    server: ApiServer, out: Any = None, signals: StopSignals | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then stop the server. ``out`` (the
    log writer) is flushed every second. ``signals``: the ones noted since
    the server started, so that none is lost in between."""
    if signals is None:
        with StopSignals() as own:
            wait_for_signal(server, out, own)
        return
    print(
        f"sensord: replay done; serving on {server.listen} until SIGTERM or SIGINT",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            with server.state.cond:
                _flush(out)
            if signals.event.wait(1.0):
                break
            server.state.expire_actions()
    finally:
        server.stop()
