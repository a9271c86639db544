"""The API server: a Unix socket by default, TCP only with TLS.

``listen`` is ``unix:PATH`` (or a path) or ``HOST:PORT`` (``[::1]:PORT``
for IPv6). On TCP the server refuses to start without TLS (a certificate
and key) and a way to know the caller (a token file, or a CA to check
client certificates against), unless ``insecure_loopback`` is set and the
host is a loopback address: then it listens in the clear on loopback only.

Besides the sensor's services it serves gRPC health checking
(``grpc.health.v1.Health``) and server reflection, so ``grpcurl`` and
load balancers work without the proto files.

Each follower (FollowAlerts, FollowIncidents) holds one of the server's
``max_workers`` threads for as long as it follows.
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import re
import shutil
import socket
import ssl
import stat
import tempfile
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sensor.api import servicers
from sensor.api.auth import Authority, UnixFront, read_tokens
from sensor.api.state import ApiState
from sensor.api.v1 import (
    actions_pb2,
    actions_pb2_grpc,
    alerts_pb2,
    alerts_pb2_grpc,
    devices_pb2,
    devices_pb2_grpc,
    mode_pb2,
    mode_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/sensor/sensor.sock"

#: Server threads never taken by follow streams.
FREE_THREADS = 8

#: A host name (RFC 1123 labels), for HOST:PORT.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")

LOOPBACK_NAMES = ("localhost",)


class ServeError(Exception):
    """The server cannot start as asked; the message is one line."""


@dataclass(frozen=True)
class Listen:
    """Where to listen: a Unix socket path, or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return (
            f"[{self.host}]:{self.port}"
            if ":" in str(self.host)
            else f"{self.host}:{self.port}"
        )


def parse_listen(spec: str) -> Listen:
    """``unix:PATH``, an absolute path, ``HOST:PORT`` or ``[V6]:PORT``."""
    if spec.startswith("unix:"):
        path = spec[5:]
        if not path:
            raise ServeError(f"{spec!r}: unix: needs a socket path")
        return Listen(path=path)
    if spec.startswith(("/", "./")):
        return Listen(path=spec)
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServeError(
            f"{spec!r}: expected unix:PATH or HOST:PORT (such as 127.0.0.1:7650)"
        )
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ServeError(f"{spec!r}: a host is needed (0.0.0.0 for every IPv4 address)")
    if ":" in host or not re.search(r"[^0-9.]", host):
        # Written as an address (IPv6, or digits and dots): it must be one.
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ServeError(f"{spec!r}: {host} is not an IP address") from None
    elif not _HOST_NAME.fullmatch(host):
        raise ServeError(f"{spec!r}: {host} is neither an IP address nor a host name")
    return Listen(host=host, port=int(port))


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ServeError(f"{path}: cannot read the {what}: {e.strerror}") from None


def check_tls(cert: str, key: str, client_ca: str | None) -> None:
    """ServeError naming the file when the certificate, its key or the
    client CA cannot be loaded."""
    # gRPC reports a certificate it cannot use only as "Failed to bind to
    # address"; the files are checked here so that the message names them.
    if b"-----BEGIN CERTIFICATE-----" not in _read(cert, "TLS certificate"):
        raise ServeError(f"cannot load certificate {cert}: no PEM certificate in it")
    if b"PRIVATE KEY-----" not in _read(key, "TLS key"):
        raise ServeError(f"cannot load key {key}: no PEM private key in it")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as e:
        raise ServeError(
            f"cannot load certificate {cert} with key {key}: {e.reason or e}"
        ) from None
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as e:
            raise ServeError(
                f"cannot load client CA certificate {client_ca}: {e.reason or e}"
            ) from None


def check_tcp_free(host: str, port: int) -> None:
    """ServeError when ``host:port`` cannot be bound (in use, no such
    address), checked with a plain socket so that the daemon can refuse
    before capture starts. The port is released at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ServeError(f"{host}:{port}: cannot listen: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
    except OSError as e:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ServeError(f"{where}: cannot listen: {e.strerror}") from None
    finally:
        s.close()


def check_unix_path(path: str) -> None:
    """ServeError when ``path`` holds anything but a socket: the API never
    deletes a file it did not make (a stale socket may be replaced)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ServeError(f"{path}: cannot listen: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ServeError(
            f"{path}: cannot listen: it is a directory (give the socket's own path, "
            f"such as {os.path.join(path, 'sensor.sock')})"
        )
    if not stat.S_ISSOCK(st.st_mode):
        raise ServeError(
            f"{path}: cannot listen: a file that is not a socket is in the way"
        )


def check_tcp_security(
    where: Listen,
    cert: str | None,
    key: str | None,
    client_ca: str | None,
    tokens: bool,
    insecure_loopback: bool,
) -> bool:
    """ServeError when TCP at ``where`` would be served without TLS and a
    way to know the caller, other than in the clear on loopback with
    ``insecure_loopback``. Returns True for that clear case, False for TLS.
    ``tokens`` tells whether a token file is given."""
    if not cert and not key and not client_ca and not tokens:
        if not insecure_loopback:
            raise ServeError(
                f"{where}: TCP needs TLS (api.tls_cert, api.tls_key) and a token file "
                "or client certificates (api.client_ca); or --insecure-loopback on 127.0.0.1/::1"
            )
        if not is_loopback(str(where.host)):
            raise ServeError(
                f"{where}: --insecure-loopback listens only on 127.0.0.1, ::1 or localhost, not {where.host}"
            )
        return True
    if not cert or not key:
        raise ServeError(f"{where}: TCP needs both a TLS certificate and its key")
    if not tokens and not client_ca:
        raise ServeError(
            f"{where}: TCP needs a way to know the caller: a token file or a CA for client certificates"
        )
    return False


def check_listen(
    listen: str,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    client_ca: str | None = None,
    token_file: str | None = None,
    insecure_loopback: bool = False,
) -> None:
    """What can be known before serving, checked without starting anything:
    the address parses and is free, nothing but a socket is at the path,
    TCP is served with TLS and a way to know the caller (or in the clear
    on loopback when allowed), and the certificate and key load. The token
    file's lines are checked by the caller. ServeError with one line if not."""
    where = parse_listen(listen)
    if where.path is not None:
        check_unix_path(os.path.abspath(where.path))
        return
    clear = check_tcp_security(
        where, tls_cert, tls_key, client_ca, bool(token_file), insecure_loopback
    )
    if not clear:
        check_tls(str(tls_cert), str(tls_key), client_ca)
    check_tcp_free(str(where.host), where.port)


class ApiServer:
    """The gRPC server over an ApiState. ``start()``, then ``stop()``.

    A Unix socket gets ``socket_mode`` and ``socket_group``. When the group
    does not exist, the daemon (``group_matters``) warns and the socket
    keeps its group; a replay says it at INFO and makes the socket
    owner-only."""

    def __init__(
        self,
        state: ApiState,
        listen: str,
        *,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        client_ca: str | None = None,
        token_file: str | None = None,
        insecure_loopback: bool = False,
        socket_mode: int = 0o660,
        socket_group: str = "sensor",
        group_matters: bool = True,
        max_workers: int = 32,
    ) -> None:
        self.state = state
        # Each follow stream holds a thread while it follows: some are kept
        # for every other call.
        state.max_following = max(1, max_workers - FREE_THREADS)
        self.listen = parse_listen(listen)
        self._front: UnixFront | None = None
        self._scratch: str | None = None

        tokens: dict[str, str] = {}
        if token_file:
            try:
                tokens = read_tokens(token_file)
            except OSError as e:
                raise ServeError(
                    f"{token_file}: cannot read the token file: {e.strerror}"
                ) from None
            except ValueError as e:
                raise ServeError(str(e)) from None
        gid = None
        if self.listen.is_unix and socket_group:
            gid = self._group(socket_group, group_matters)
            if gid is None and not group_matters:
                socket_mode &= 0o700  # no group to share it with: owner-only
        self.authority = Authority(
            tokens, group=gid, loopback_insecure=insecure_loopback
        )

        interceptors: list[grpc.ServerInterceptor] = (
            [self.authority.tokens] if tokens else []
        )
        self.server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=max_workers, thread_name_prefix="api"
            ),
            interceptors=interceptors,
        )
        self._add_services()

        if self.listen.is_unix:
            self._listen_unix(socket_mode, gid)
        else:
            self._listen_tcp(tls_cert, tls_key, client_ca, tokens, insecure_loopback)

    @staticmethod
    def _group(name: str, matters: bool) -> int | None:
        # A daemon's missing group is a warning: its members were meant to
        # call. A replay on a developer's machine rarely has the group.
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            if matters:
                log.warning(
                    "api: group %s does not exist; the socket keeps the daemon's group",
                    name,
                )
            else:
                log.info(
                    "api: group %s does not exist; the socket is the owner's only",
                    name,
                )
            return None

    def _add_services(self) -> None:
        st, auth = self.state, self.authority
        status_pb2_grpc.add_StatusServicer_to_server(
            servicers.StatusServicer(st, auth), self.server
        )
        devices_pb2_grpc.add_DevicesServicer_to_server(
            servicers.DevicesServicer(st, auth), self.server
        )
        alerts_pb2_grpc.add_AlertsServicer_to_server(
            servicers.AlertsServicer(st, auth), self.server
        )
        alerts_pb2_grpc.add_IncidentsServicer_to_server(
            servicers.IncidentsServicer(st, auth), self.server
        )
        actions_pb2_grpc.add_ActionsServicer_to_server(
            servicers.ActionsServicer(st, auth), self.server
        )
        mode_pb2_grpc.add_ModeServicer_to_server(
            servicers.ModeServicer(st, auth), self.server
        )

        names = [
            status_pb2.DESCRIPTOR.services_by_name["Status"].full_name,
            devices_pb2.DESCRIPTOR.services_by_name["Devices"].full_name,
            alerts_pb2.DESCRIPTOR.services_by_name["Alerts"].full_name,
            alerts_pb2.DESCRIPTOR.services_by_name["Incidents"].full_name,
            actions_pb2.DESCRIPTOR.services_by_name["Actions"].full_name,
            mode_pb2.DESCRIPTOR.services_by_name["Mode"].full_name,
        ]
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ["", *names]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )

    def _listen_unix(self, mode: int, gid: int | None) -> None:
        path = os.path.abspath(str(self.listen.path))
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise ServeError(f"{path}: directory {parent} does not exist")
        check_unix_path(path)
        # gRPC's own socket sits in a directory only this process may enter;
        # the public socket in front of it checks each caller's credentials.
        self._scratch = tempfile.mkdtemp(prefix="sensor-api-")
        os.chmod(self._scratch, 0o700)
        inner = os.path.join(self._scratch, "grpc.sock")
        if self._bind(f"unix:{inner}") == 0:
            raise ServeError(f"{inner}: cannot listen")
        try:
            self._front = UnixFront(path, inner, self.authority, mode, gid)
        except OSError as e:
            raise ServeError(f"{path}: cannot listen: {e.strerror or e}") from None

    def _listen_tcp(
        self,
        cert: str | None,
        key: str | None,
        client_ca: str | None,
        tokens: dict[str, str],
        insecure_loopback: bool,
    ) -> None:
        host, port = str(self.listen.host), self.listen.port
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        clear = check_tcp_security(
            self.listen, cert, key, client_ca, bool(tokens), insecure_loopback
        )
        if clear:
            check_tcp_free(host, port)
            if self._bind(address) == 0:
                raise ServeError(f"{self.listen}: cannot listen (address in use?)")
            log.warning(
                "api: listening without TLS or authentication on %s", self.listen
            )
            return
        assert cert is not None and key is not None
        check_tls(cert, key, client_ca)
        check_tcp_free(host, port)
        creds = grpc.ssl_server_credentials(
            [(_read(key, "TLS key"), _read(cert, "TLS certificate"))],
            root_certificates=_read(client_ca, "client CA") if client_ca else None,
            require_client_auth=bool(client_ca) and not tokens,
        )
        if self._bind(address, creds) == 0:
            raise ServeError(f"{self.listen}: cannot listen (address in use?)")

    def _bind(self, address: str, creds: grpc.ServerCredentials | None = None) -> int:
        # grpcio >= 1.60 raises RuntimeError where older ones returned 0.
        try:
            if creds is None:
                return int(self.server.add_insecure_port(address))
            return int(self.server.add_secure_port(address, creds))
        except RuntimeError:
            return 0

    def start(self) -> None:
        """Start serving."""
        self.server.start()
        if self._front is not None:
            self._front.start()
        log.info("api: serving on %s", self.listen)

    def stop(self, grace: float = 1.0) -> None:
        """Stop: followers' streams end, the socket is removed."""
        self.state.close()
        self.health.enter_graceful_shutdown()
        if self._front is not None:
            self._front.stop()
        self.server.stop(grace).wait()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
