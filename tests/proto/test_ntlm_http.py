"""NTLM over HTTP (RFC 4559): the HTTP analyzer hands its tokens to the tracker."""

from __future__ import annotations

import base64
from typing import Any

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.http import HTTPAnalyzer
from tests.proto.test_ntlm import authenticate, challenge, negotiate


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def exchange(final: bytes, scheme: str = "Negotiate") -> list[dict[str, Any]]:
    out: list[tuple[str, dict[str, Any]]] = []
    conn = ConnInfo("Chttp", "tcp", "10.0.0.5", 50000, "10.0.0.1", 5985)
    a = HTTPAnalyzer(conn, lambda n, r: out.append((n, r)))
    head = "POST /wsman HTTP/1.1\r\nHost: dc01\r\nContent-Length: 0\r\n"
    a.data(
        True, 1.0, f"{head}Authorization: {scheme} {b64(negotiate())}\r\n\r\n".encode()
    )
    a.data(
        False,
        1.1,
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
        f"WWW-Authenticate: {scheme} {b64(challenge())}\r\n\r\n".encode(),
    )
    a.data(
        True,
        1.2,
        f"{head}Authorization: {scheme} {b64(authenticate())}\r\n\r\n".encode(),
    )
    a.data(False, 1.3, final)
    a.end(2.0)
    return [r for n, r in out if n == "ntlm"]


def test_accepted_after_authenticate() -> None:
    (rec,) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert rec["ts"] == 1.0 and rec["success"] is True
    assert (rec["username"], rec["domainname"], rec["hostname"]) == (
        "alice",
        "CORP",
        "WS7",
    )
    assert rec["server_dns_computer_name"] == "dc01.corp.example"


def test_refused_with_401() -> None:
    (rec,) = exchange(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", "NTLM")
    assert rec["success"] is False and rec["username"] == "alice"


def test_bad_base64_and_basic_are_ignored() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    conn = ConnInfo("Chttp", "tcp", "10.0.0.5", 50000, "10.0.0.1", 80)
    a = HTTPAnalyzer(conn, lambda n, r: out.append((n, r)))
    a.data(True, 1.0, b"GET / HTTP/1.1\r\nAuthorization: NTLM !!!\r\n\r\n")
    a.data(True, 1.1, b"GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n")
    a.end(2.0)
    assert [n for n, _ in out if n == "ntlm"] == []
