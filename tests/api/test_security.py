"""Who may call: Unix socket permissions and peer credentials, TCP with TLS
and a bearer token or a client certificate, loopback without TLS only when
told."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sensor.api.server import ApiServer, ServeError
from sensor.api.state import ApiState
from tests.api.conftest import alert, sensorctl
from tests.conftest import ROOT

NOBODY = 65534

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="running a client as another user needs root (CI is root)"
)


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """sensorctl as uid/gid 65534. Python and the modules are loaded as
    root first (the interpreter may live where nobody cannot read), then
    the process drops to nobody before it connects: SO_PEERCRED then
    reports uid 65534."""
    code = (
        "import os, sys, argcomplete, sensor.cli.sensorctl as m;"
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY});"
        "sys.exit(m.main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False, capture_output=True, text=True, timeout=30, cwd=ROOT,
    )  # fmt: skip


@needs_root
def test_unix_socket_without_permission_is_refused(sockdir: Path) -> None:
    state = ApiState("live")
    path = sockdir / "s.sock"
    server = ApiServer(
        state, f"unix:{path}", socket_group=""
    )  # mode 0660, root's group
    server.start()
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        r = as_nobody("--socket", str(path), "status")
        assert r.returncode == 5, r.stderr
        assert "permission denied" in r.stderr
        # root may.
        assert sensorctl("status", socket=path).returncode == 0
    finally:
        server.stop()
    assert not path.exists()


@needs_root
def test_peer_credentials_refuse_a_user_outside_the_group(sockdir: Path) -> None:
    # Even on a socket anyone may open, the server checks the caller's uid.
    state = ApiState("live")
    state.publish([alert(1)])
    path = sockdir / "open.sock"
    server = ApiServer(state, f"unix:{path}", socket_mode=0o666, socket_group="")
    server.start()
    try:
        r = as_nobody("--socket", str(path), "alerts")
        assert r.returncode == 5, r.stderr
        assert "user nobody (uid 65534) may not use the sensor's API" in r.stderr
        # A member of the socket's group may: nogroup's members are let in.
        server.authority.group = NOBODY
        r = as_nobody("--socket", str(path), "--json", "alerts")
        assert r.returncode == 0, r.stderr
        assert [a["id"] for a in json.loads(r.stdout)] == ["A00000001"]
        # And what nobody does is recorded as nobody.
        r = as_nobody(
            "--socket", str(path), "--json", "block", "192.0.2.10", "198.51.100.9",
            "--for", "10m", "--reason", "test",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["history"][-1]["who"] == "nobody"
    finally:
        server.stop()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    return b.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(path: Path, *items: object) -> str:
    data = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            data += item.public_bytes(serialization.Encoding.PEM)
        else:
            data += item.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca_key = _key()
    ca = _cert("sensor test CA", ca_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _cert("localhost", server_key, (ca, ca_key))
    client = _cert("ops-console", client_key, (ca, ca_key))
    return {
        "ca": _write(tmp_path / "ca.pem", ca),
        "cert": _write(tmp_path / "server.pem", server),
        "key": _write(tmp_path / "server.key", server_key),
        "client_cert": _write(tmp_path / "client.pem", client),
        "client_key": _write(tmp_path / "client.key", client_key),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_server(pki: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    tokens = tmp_path / "tokens"
    tokens.write_text("# name token\nalice 0123456789abcdef0123456789abcdef\n")
    tokens.chmod(0o600)
    address = f"127.0.0.1:{free_port()}"
    state = ApiState("live")
    state.publish([alert(1)])
    server = ApiServer(
        state, address, tls_cert=pki["cert"], tls_key=pki["key"], token_file=str(tokens)
    )
    server.start()
    yield address, tokens
    server.stop()


def test_tcp_call_without_credentials_is_refused(
    tls_server: tuple[str, Path], pki: dict[str, str], tmp_path: Path
) -> None:
    address, tokens = tls_server
    tcp = ["--address", address, "--ca", pki["ca"]]

    r = sensorctl(*tcp, "alerts")
    assert r.returncode == 5, r.stderr
    assert "bearer token" in r.stderr

    wrong = tmp_path / "wrong"
    wrong.write_text("ffffffffffffffffffffffffffffffff\n")
    r = sensorctl(*tcp, "--token-file", str(wrong), "alerts")
    assert r.returncode == 5, r.stderr

    # Health checking is behind the token too.
    with grpc.secure_channel(
        address, grpc.ssl_channel_credentials(open(pki["ca"], "rb").read())
    ) as ch:
        with pytest.raises(grpc.RpcError) as e:
            health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

    r = sensorctl(*tcp, "--token-file", str(tokens), "--json", "alerts")
    assert r.returncode == 0, r.stderr
    assert [a["id"] for a in json.loads(r.stdout)] == ["A00000001"]
    r = sensorctl(
        *tcp, "--token-file", str(tokens), "--json", "block", "192.0.2.10",
        "198.51.100.9", "--for", "1h", "--reason", "by token",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["history"][-1]["who"] == "token:alice"


def test_plain_tcp_to_a_tls_server_is_refused(tls_server: tuple[str, Path]) -> None:
    address, tokens = tls_server
    r = sensorctl(
        "--address", address, "--insecure", "--token-file", str(tokens), "status"
    )
    assert r.returncode == 6, r.stderr


def test_client_certificates(pki: dict[str, str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    server = ApiServer(
        ApiState("live"),
        address,
        tls_cert=pki["cert"],
        tls_key=pki["key"],
        client_ca=pki["ca"],
    )
    server.start()
    try:
        tcp = ["--address", address, "--ca", pki["ca"]]
        r = sensorctl(*tcp, "status")
        assert r.returncode != 0  # the TLS handshake needs a client certificate
        r = sensorctl(
            *tcp, "--cert", pki["client_cert"], "--key", pki["client_key"], "--json",
            "block", "192.0.2.10", "198.51.100.9", "--for", "1h", "--reason", "by cert",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["history"][-1]["who"] == "cert:ops-console"
    finally:
        server.stop()


def test_tcp_refuses_to_start_unprotected(pki: dict[str, str], tmp_path: Path) -> None:
    state = ApiState("live")
    with pytest.raises(ServeError, match="TCP needs TLS"):
        ApiServer(state, "127.0.0.1:7650")
    with pytest.raises(ServeError, match="only on 127.0.0.1"):
        ApiServer(state, "192.0.2.1:7650", insecure_loopback=True)
    with pytest.raises(ServeError, match="a token file or a CA"):
        ApiServer(state, "127.0.0.1:7650", tls_cert=pki["cert"], tls_key=pki["key"])
    readable = tmp_path / "tokens"
    readable.write_text("alice 0123456789abcdef0123456789abcdef\n")
    readable.chmod(0o644)
    with pytest.raises(ServeError, match="readable by every user"):
        ApiServer(
            state,
            "127.0.0.1:7650",
            tls_cert=pki["cert"],
            tls_key=pki["key"],
            token_file=str(readable),
        )


def test_insecure_loopback_health_and_reflection() -> None:
    address = f"127.0.0.1:{free_port()}"
    server = ApiServer(ApiState("live"), address, insecure_loopback=True)
    server.start()
    try:
        r = sensorctl("--address", address, "--insecure", "--json", "block", "192.0.2.10",
                      "198.51.100.9", "--for", "1h", "--reason", "loopback")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["history"][-1]["who"] == "loopback"
        with grpc.insecure_channel(address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="sensor.v1.Alerts"), timeout=10
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            answers = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                timeout=10,
            )
            names = {s.name for a in answers for s in a.list_services_response.service}
        assert {"sensor.v1.Status", "sensor.v1.Devices", "sensor.v1.Alerts", "sensor.v1.Incidents",
                "sensor.v1.Actions", "sensor.v1.Mode", "grpc.health.v1.Health"} <= names  # fmt: skip
    finally:
        server.stop()


def _serve_replay(path: Path, group: str | None) -> ApiServer:
    """sensord --replay --serve unix:PATH's server, with --socket-group
    ``group`` (None: not given)."""
    from argparse import Namespace

    from sensor.api.serve import start

    args = Namespace(
        serve=f"unix:{path}", tls_cert=None, tls_key=None, client_ca=None,
        token_file=None, insecure_loopback=False, socket_group=group, serve_wait=0.0,
    )  # fmt: skip
    return start(args, None, lambda name, record: None)


def test_replay_without_group_sensor_is_quiet_and_owner_only(
    sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A served replay on a machine without group sensor (most developers'):
    said at INFO, not as a warning, and the socket is the owner's only."""
    if _group_exists("sensor"):
        pytest.skip("this machine has a group sensor")
    path = sockdir / "api.sock"
    caplog.set_level("INFO", logger="sensor")
    server = _serve_replay(path, None)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        said = [(r.levelname, r.getMessage()) for r in caplog.records if "group" in r.getMessage()]
        assert said == [("INFO", "api: group sensor does not exist; the socket is the owner's only")]
        assert sensorctl("status", socket=path).returncode == 0
    finally:
        server.stop()


def test_missing_group_named_or_live_is_a_warning(
    sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A group named with --socket-group, or the live daemon's, matters: a
    warning when it does not exist (the socket keeps its mode 0660)."""
    path = sockdir / "api.sock"
    for start in (lambda: _serve_replay(path, "nosuch-sensor-group"),
                  lambda: ApiServer(ApiState("live"), f"unix:{path}",
                                    socket_group="nosuch-sensor-group")):  # fmt: skip
        caplog.clear()
        server = start()
        try:
            assert [r.levelname for r in caplog.records if "group" in r.getMessage()] == [
                "WARNING"
            ]
            assert os.stat(path).st_mode & 0o777 == 0o660
        finally:
            server.stop()


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
