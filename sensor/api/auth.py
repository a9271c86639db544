"""Who is calling, and may they.

On the Unix socket the kernel says who the caller is: SO_PEERCRED gives the
uid, gid and pid of the process that connected (unix(7)). gRPC does not
hand a connection's file descriptor to Python, so :class:`UnixFront` owns
the public socket: it accepts a connection, reads the peer's credentials,
and relays the bytes to the gRPC server's own socket in a private
directory, from a client socket bound to a unique abstract name. The
server then sees that name as the call's peer (``unix-abstract:NAME``) and
:func:`caller` finds the credentials by it. The socket file's mode and
group (0660, ``sensor``) are the first gate; the uid check here is the
second: root, the daemon's own user and members of the socket's group.

Over TCP there is TLS and then either a bearer token (``authorization:
Bearer TOKEN`` metadata, checked against a token file by
:class:`TokenInterceptor`) or a client certificate signed by the given CA;
the caller is the token's name or the certificate's common name.
"""

from __future__ import annotations

import grp
import hmac
import logging
import os
import pwd
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from sensor.api.errors import PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """The identity of a caller, as the audit trail records it."""

    #: A Unix user name, ``token:NAME``, ``cert:COMMON-NAME`` or ``loopback``.
    name: str
    uid: int | None = None
    pid: int | None = None


def user_name(uid: int) -> str:
    """The login name of ``uid``, or ``uid:N`` when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def in_group(uid: int, gid: int, group: int | None) -> bool:
    """True when the user (primary ``gid``) is a member of ``group``."""
    if group is None:
        return False
    if gid == group:
        return True
    try:
        return user_name(uid) in grp.getgrgid(group).gr_mem
    except KeyError:
        return False


def read_tokens(path: str) -> dict[str, str]:
    """Tokens of a token file: ``NAME TOKEN`` per line (a line with only a
    token is named ``token``); ``#`` starts a comment. Token -> name.

    The file must not be readable by others (mode 0600 or 0640): a readable
    token is no secret. Raises ValueError naming the file and the problem.
    """
    st = os.stat(path)
    if st.st_mode & 0o004:
        raise ValueError(f"{path}: token file is readable by every user; chmod o-r it")
    tokens: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        try:
            lines = f.readlines()
        except UnicodeDecodeError:
            raise ValueError(f"{path}: token file is not UTF-8 text") from None
        for n, line in enumerate(lines, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) > 2:
                raise ValueError(
                    f"{path}:{n}: expected NAME TOKEN or TOKEN, got {len(words)} words"
                )
            name, token = (
                ("token", words[0]) if len(words) == 1 else (words[0], words[1])
            )
            if len(token) < 16:
                what = f"the token of {name!r}" if len(words) == 2 else "the token"
                raise ValueError(
                    f"{path}:{n}: {what} is {len(token)} characters, expected at "
                    "least 16 (a line is NAME TOKEN, or a TOKEN alone)"
                )
            if tokens.get(token, name) != name:
                # The audit trail names callers by their token's name.
                raise ValueError(
                    f"{path}:{n}: {name!r} has the token of {tokens[token]!r}: "
                    "each name needs a token of its own"
                )
            tokens[token] = name
    if not tokens:
        raise ValueError(f"{path}: no token in the file")
    return tokens


def bearer(metadata: Any) -> str | None:
    """The bearer token of a call's metadata, or None."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every TCP call without a valid bearer token (UNAUTHENTICATED).

    Calls that came through :class:`UnixFront` are left to :func:`caller`.
    """

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def name(self, token: str | None) -> str | None:
        """The name of a valid token (compared in constant time), else None."""
        if not token:
            return None
        for known, name in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return name
        return None

    def intercept_service(
        self, continuation: Callable[[Any], Any], details: Any
    ) -> Any:
        """Let the call through, or answer it with UNAUTHENTICATED."""
        if self.name(bearer(details.invocation_metadata)) is not None:
            return continuation(details)
        # No peer in the details: a Unix caller has no token but is
        # checked by caller(); this handler only refuses TCP peers.
        handler = continuation(details)
        if handler is None:
            return None
        return _guarded(handler, self)


def _guarded(handler: Any, interceptor: TokenInterceptor) -> Any:
    def check(context: grpc.ServicerContext) -> None:
        verified = context.auth_context().get("x509_common_name")
        if not context.peer().startswith("unix") and not verified:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, _refusal(context))

    def wrap(fn: Any) -> Any:
        if fn is None:
            return None

        def inner(request: Any, context: grpc.ServicerContext) -> Any:
            check(context)
            return fn(request, context)

        return inner

    return handler._replace(
        unary_unary=wrap(handler.unary_unary),
        unary_stream=wrap(handler.unary_stream),
        stream_unary=wrap(handler.stream_unary),
        stream_stream=wrap(handler.stream_stream),
    )


class Authority:
    """Decides who a call's caller is and whether they may call."""

    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        group: int | None = None,
        loopback_insecure: bool = False,
    ) -> None:
        self.tokens = TokenInterceptor(tokens or {})
        #: Gid of the socket's group; its members may call.
        self.group = group
        self.loopback_insecure = loopback_insecure
        #: Abstract client names of UnixFront -> (uid, gid, pid).
        self.unix_peers: dict[str, tuple[int, int, int]] = {}
        self.lock = threading.Lock()

    def caller(self, context: grpc.ServicerContext) -> Caller:
        """The caller of this call; PermissionDenied / Unauthenticated when
        they may not call."""
        peer = context.peer()
        if peer.startswith("unix-abstract:"):
            with self.lock:
                creds = self.unix_peers.get(peer[len("unix-abstract:") :])
            if creds is None:
                raise Unauthenticated(
                    "caller not known: connect through the sensor's socket"
                )
            uid, gid, pid = creds
            name = user_name(uid)
            if uid not in (0, os.geteuid()) and not in_group(uid, gid, self.group):
                group = _group_name(self.group)
                raise PermissionDenied(
                    f"user {name} (uid {uid}) may not use the sensor's API: "
                    f"only root, the daemon's user and members of group {group} may"
                )
            return Caller(name, uid, pid)
        token = self.tokens.name(bearer(context.invocation_metadata()))
        if token is not None:
            return Caller(f"token:{token}")
        auth = context.auth_context()
        cn = auth.get("x509_common_name")
        if cn:
            first: Any = cn[0]  # bytes, though the stubs say otherwise
            return Caller(f"cert:{first.decode(errors='replace')}")
        if self.loopback_insecure:
            return Caller("loopback")
        raise Unauthenticated(_refusal(context))


def _refusal(context: grpc.ServicerContext) -> str:
    """Why a TCP call without valid credentials is refused: a wrong token
    is told apart from none at all."""
    if bearer(context.invocation_metadata()):
        return (
            "the bearer token was not accepted: it is not in the server's token "
            "file (api.token_file or sensord --token-file)"
        )
    return (
        "a bearer token or a client certificate is needed over TCP "
        "(sensorctl --token-file FILE)"
    )


def _group_name(gid: int | None) -> str:
    if gid is None:
        return "(none)"
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class UnixFront:
    """The public Unix socket: accepts, reads SO_PEERCRED, relays to gRPC.

    ``path`` is created with ``mode`` and ``group`` (gid, or None to keep
    the creator's); ``inner`` is the path of the gRPC server's socket.
    """

    def __init__(
        self, path: str, inner: str, authority: Authority, mode: int, group: int | None
    ) -> None:
        self.path = path
        self.inner = inner
        self.authority = authority
        self._prefix = f"sensor-api-{os.getpid()}-{secrets.token_hex(4)}-"
        self._count = 0
        self._stop = False
        self._conns: set[socket.socket] = set()

        if os.path.exists(path) and _is_stale(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bind under a umask that keeps the socket closed until chmod/chown.
        old = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        if group is not None:
            os.chown(path, -1, group)
        os.chmod(path, mode)
        self.sock.listen(64)
        self.thread = threading.Thread(
            target=self._accept, name="api-unix", daemon=True
        )

    def start(self) -> None:
        """Accept connections in a thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop accepting, end every relayed connection, remove the socket."""
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._relay(conn)
            except OSError as e:
                log.warning("api: cannot relay a connection: %s", e)
                conn.close()

    def _relay(self, conn: socket.socket) -> None:
        raw = conn.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
        )
        pid, uid, gid = struct.unpack("3i", raw)
        self._count += 1
        name = f"{self._prefix}{self._count}"
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        up.bind("\0" + name)
        up.connect(self.inner)
        with self.authority.lock:
            self.authority.unix_peers[name] = (uid, gid, pid)
        self._conns |= {conn, up}
        log.debug("api: connection from uid %d pid %d as %s", uid, pid, name)

        def done() -> None:
            with self.authority.lock:
                self.authority.unix_peers.pop(name, None)
            self._conns.discard(conn)
            self._conns.discard(up)

        _pump(conn, up, done)


def _pump(a: socket.socket, b: socket.socket, done: Callable[[], None]) -> None:
    """Copy bytes both ways in two threads; close both when either ends."""
    finished = threading.Event()

    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        if finished.is_set():
            src.close()
            dst.close()
            done()
            return
        finished.set()
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=copy, args=(a, b), daemon=True).start()
    threading.Thread(target=copy, args=(b, a), daemon=True).start()


def _is_stale(path: str) -> bool:
    """True when nothing listens on the socket at ``path`` (a dead daemon's)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    raise OSError(f"{path}: another server is listening there")
