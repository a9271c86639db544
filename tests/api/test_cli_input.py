"""sensorctl given bad input: one clear line and exit status 2 (invalid
request) before anything is sent, and refusals that say what was wrong."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sensor.api.auth import read_tokens
from sensor.cli import sensorctl
from tests.api.test_security import free_port, pki, tls_server  # noqa: F401 (fixtures)
from tests.conftest import ROOT


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """sensorctl.main in this process: its exit status and stderr."""
    try:
        status = sensorctl.main(list(argv))
    except SystemExit as e:  # argparse refuses with SystemExit(2)
        status = int(e.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return status, err


def last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("address", "why"),
    [("127.0.0.1:99999", "the port '99999' is not a number from 1 to 65535"),
     ("127.0.0.1:0", "the port '0' is not"),
     ("[::1]:x", "the port 'x' is not"),
     ("127.0.0.1", "expected HOST:PORT"),
     ("localhost:", "the port is missing"),
     ("[::1]", "the port is missing"),
     ("::1:7650", "write an IPv6 address as [ADDRESS]:PORT"),
     ("[::1", "expected [IPv6]:PORT"),
     (":7650", "expected HOST:PORT")],
)  # fmt: skip
def test_bad_address_is_refused(
    capsys: pytest.CaptureFixture[str], address: str, why: str
) -> None:
    status, err = run(capsys, "--address", address, "--insecure", "status")
    assert status == sensorctl.EXIT_USAGE
    line = last_line(err)
    assert f"bad address {address!r}" in line and why in line, line


def test_empty_socket_path_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # It quietly meant the default socket.
    status, err = run(capsys, "--socket", "", "status")
    assert status == sensorctl.EXIT_USAGE
    assert last_line(err) == (
        "sensorctl: error: argument --socket: an empty path; leave --socket out "
        f"for the default ({sensorctl.DEFAULT_SOCKET})"
    )


@pytest.mark.parametrize("address", ["127.0.0.1:7650", "[::1]:1", "sensor.example:65535"])
def test_good_addresses_pass(address: str) -> None:
    assert sensorctl.address(address) == address


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "x", "1e10", "1e308"])
def test_timeout_must_be_positive(
    capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    status, err = run(capsys, f"--timeout={timeout}", "--socket", "/nonexistent", "status")
    assert status == sensorctl.EXIT_USAGE
    assert "argument --timeout:" in last_line(err)
    assert "Deadline" not in err


@pytest.mark.parametrize(
    "argv",
    [["alerts", "--limit", "-1"], ["devices", "--limit", "x"],
     ["block", "192.0.2.1", "198.51.100.1", "--port", "70000", "--for", "1h",
      "--reason", "r"],
     ["block", "192.0.2.1", "198.51.100.1", "--port", "0", "--for", "1h",
      "--reason", "r"],
     ["alerts", "--min-score", "nan"], ["alerts", "--min-score", "1e400"],
     ["alerts", "--min-score", "-1"]],
    ids=["negative-limit", "limit-not-a-number", "port-too-big", "port-zero",
         "score-nan", "score-inf", "score-negative"],
)  # fmt: skip
def test_bad_numbers_are_refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, err = run(capsys, "--socket", "/nonexistent", *argv)
    assert status == sensorctl.EXIT_USAGE
    assert "error: argument --" in last_line(err)


@pytest.mark.parametrize(
    ("argv", "what"),
    [(["device", "LONG"], "ID"), (["action", "LONG"], "ID"),
     (["alerts", "--since", "LONG"], "--since"),
     (["block", "LONG", "198.51.100.1", "--for", "1h", "--reason", "r"], "SRC")],
    ids=["device", "action", "since", "block-src"],
)  # fmt: skip
def test_overlong_id_is_refused_before_calling(
    capsys: pytest.CaptureFixture[str], argv: list[str], what: str
) -> None:
    # No socket there: a call would exit 6, not 2.
    argv = [a.replace("LONG", "x" * 100_000) for a in argv]
    status, err = run(capsys, "--socket", "/nonexistent", *argv)
    assert status == sensorctl.EXIT_USAGE
    assert last_line(err).endswith(
        f"error: argument {what}: 100000 characters, more than 256: not an id, "
        f"address or name (it starts {'x' * 40!r})"
    )
    assert len(err) < 1000


@pytest.mark.parametrize(
    ("argv", "why"),
    [(["extend", "R1", "--for", "-5m"], "must be more than 0, got '-5m'"),
     (["extend", "R1", "--for=-5m"], "must be more than 0, got '-5m'"),
     (["block", "192.0.2.1", "198.51.100.1", "--for", "-1"],
      "must be more than 0, got '-1'"),
     (["extend", "R1", "--for", "0"],
      "duration '0': must be more than 0 and at most 90 days"),
     (["block", "192.0.2.1", "198.51.100.1", "--for", "2x"],
      "duration '2x': expected a number with a unit s, m, h, d or w, such as "
      "90s, 30m, 2h or 1h30m")],
    ids=["negative", "negative-joined", "negative-seconds", "zero", "no-unit"],
)  # fmt: skip
def test_bad_duration_is_refused_before_calling(
    capsys: pytest.CaptureFixture[str], argv: list[str], why: str
) -> None:
    # "--for -5m" was taken for an option: "expected one argument".
    status, err = run(capsys, "--socket", "/nonexistent", *argv, "--reason", "r")
    assert status == sensorctl.EXIT_USAGE
    assert last_line(err).endswith(f"error: argument --for: {why}"), err


def plain_sensorctl(*args: str) -> subprocess.CompletedProcess[str]:
    """sensorctl as a user runs it: no GRPC_VERBOSITY of their own."""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    return subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensorctl", "--timeout", "60", *args],
        check=False, capture_output=True, text=True, timeout=90, cwd=ROOT, env=env,
    )  # fmt: skip


def test_failed_tls_handshake_is_one_line(tls_server: tuple[str, Path]) -> None:
    # The server's certificate is signed by the test's CA, not a system
    # one: the handshake fails. gRPC's own log line must not show.
    address, tokens = tls_server
    r = plain_sensorctl("--address", address, "--token-file", str(tokens), "status")
    assert r.returncode == sensorctl.EXIT_UNREACHABLE
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"sensorctl: {address}: cannot reach the sensor: ")
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]


def test_wrong_token_is_told_apart_from_none(
    tls_server: tuple[str, Path], pki: dict[str, str], tmp_path: Path  # noqa: F811
) -> None:
    address, _ = tls_server
    wrong = tmp_path / "wrong"
    wrong.write_text("ffffffffffffffffffffffffffffffff\n")
    tcp = ["--address", address, "--ca", pki["ca"]]

    r = plain_sensorctl(*tcp, "--token-file", str(wrong), "status")
    assert r.returncode == sensorctl.EXIT_REFUSED
    assert r.stderr.strip() == (
        "sensorctl: the bearer token was not accepted: it is not in the server's "
        "token file (api.token_file or sensord --token-file)"
    )

    r = plain_sensorctl(*tcp, "status")
    assert r.returncode == sensorctl.EXIT_REFUSED
    assert r.stderr.strip() == (
        "sensorctl: a bearer token or a client certificate is needed over TCP "
        "(sensorctl --token-file FILE)"
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [("short\n", ":1: the token is 5 characters, expected at least 16 "
                 "(a line is NAME TOKEN, or a TOKEN alone)"),
     ("# tokens\nops short\n", ":2: the token of 'ops' is 5 characters, expected "
                               "at least 16 (a line is NAME TOKEN, or a TOKEN alone)"),
     ("a b c\n", ":1: expected NAME TOKEN or TOKEN, got 3 words"),
     ("ops 0123456789abcdef\nbob 0123456789abcdef\n",
      ":2: 'bob' has the token of 'ops': each name needs a token of its own"),
     (b"ops \xff0123456789abcdef\n", ": token file is not UTF-8 text")],
    ids=["short", "short-named", "three-words", "shared-token", "not-utf8"],
)  # fmt: skip
def test_token_file_lines(tmp_path: Path, text: str | bytes, why: str) -> None:
    path = tmp_path / "tokens"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ValueError) as e:
        read_tokens(str(path))
    assert str(e.value) == f"{path}{why}"


def _stale_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays; nothing listens


@pytest.mark.parametrize(
    ("make", "why"),
    [(None, "no such socket; is sensord running? (systemctl status sensor)"),
     (lambda p: p.write_text(""), "not a socket (a regular file)"),
     (lambda p: p.mkdir(), "not a socket (a directory)"),
     (_stale_socket, "nothing listens on it (a stale socket?)")],
    ids=["missing", "regular-file", "directory", "stale"],
)  # fmt: skip
def test_unreachable_socket_is_said_in_plain_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Any, why: str
) -> None:
    path = tmp_path / "sensor.sock"
    if make is not None:
        make(path)
    status, err = run(capsys, "--socket", str(path), "status")
    assert status == sensorctl.EXIT_UNREACHABLE
    assert err == f"sensorctl: unix:{path}: cannot reach the sensor: {why}\n"


def test_unreachable_tcp_says_grpcs_last_error_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    status, err = run(capsys, "--address", f"127.0.0.1:{port}", "--insecure", "status")
    assert status == sensorctl.EXIT_UNREACHABLE
    assert err.startswith(f"sensorctl: 127.0.0.1:{port}: cannot reach the sensor: ")
    assert "failed to connect to all addresses" not in err
    assert "Connection refused" in err and err.count("\n") == 1
