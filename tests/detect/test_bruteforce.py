"""bruteforce.login on crafted records: each kind of evidence, and people."""

from __future__ import annotations

from typing import Any

from sensor.detect.alert import Alert
from sensor.detect.runner import Detector
from tests.detect.fakes import FakeModels, conn


def run(records: list[tuple[str, dict[str, Any]]], end: float) -> list[Alert]:
    d = Detector(FakeModels(), only=["bruteforce.login"])
    out: list[Alert] = []
    for log, r in records:
        out += d.observe(log, r)
    return out + d.finish(end)


def ssh(ts: float, ok: bool | None, attempts: int, uid: str) -> dict[str, Any]:
    return {
        "ts": ts,
        "uid": uid,
        "id.orig_h": "192.168.56.1",
        "id.orig_p": 50000,
        "id.resp_h": "192.168.56.103",
        "id.resp_p": 22,
        "auth_success": ok,
        "auth_attempts": attempts,
    }


def test_ssh_failures_then_success_raise_the_score() -> None:
    recs = [("ssh", ssh(100.0 + i, False, 3, f"CF{i}")) for i in range(5)]
    (a,) = run(recs, 1000.0)
    assert a.detection == "bruteforce.login" and a.mitre == "T1110"
    assert "failed 15 SSH logins on 192.168.56.103 port 22" in a.summary
    assert a.reasons[0].feature == "failed_logins" and a.reasons[0].value == 15
    assert a.uids == [f"CF{i}" for i in range(5)]
    base = a.score

    (b,) = run(recs + [("ssh", ssh(110.0, True, 1, "COK"))], 1000.0)
    assert b.score == base + 15
    assert "A login then succeeded (connection COK)." in b.summary
    assert "COK" in b.uids


def test_a_person_mistyping_is_no_brute_force() -> None:
    recs = [("ssh", ssh(100.0 + i, False, 2, f"CF{i}")) for i in range(3)]
    recs.append(("ssh", ssh(105.0, True, 1, "COK")))
    assert run(recs, 1000.0) == []


def test_ftp_connections_of_one_shape() -> None:
    recs = [
        (
            "conn",
            conn(
                10.0 + 2 * i,
                "192.168.56.1",
                "192.168.56.101",
                21,
                state="SF",
                orig_bytes=24 + i % 3,
                resp_bytes=137,
                duration=2.0,
                # Named by the FTP analyzer, or by port only when it gave up.
                service="ftp" if i % 2 else None,
            ),
        )
        for i in range(30)
    ]
    (a,) = run(recs, 500.0)
    assert "opened 30 short FTP connections to 192.168.56.101 port 21" in a.summary
    assert {r.feature for r in a.reasons} >= {
        "login_connections",
        "similar_size_share",
        "median_client_bytes",
    }
    assert 50 <= a.score < 70


def test_login_connections_of_many_shapes_are_not_guessing() -> None:
    # A person's SSH sessions: different sizes and long.
    recs = [
        (
            "conn",
            conn(
                10.0 + 60 * i,
                "10.0.0.1",
                "10.0.0.2",
                22,
                state="SF",
                service="ssh",
                orig_bytes=2000 * (i + 1),
                resp_bytes=5000,
                duration=600.0,
            ),
        )
        for i in range(25)
    ]
    assert run(recs, 5000.0) == []


def test_kerberos_and_ntlm_failures_count() -> None:
    recs: list[tuple[str, dict[str, Any]]] = []
    for i in range(12):
        recs.append(
            (
                "kerberos",
                {
                    "ts": 1.0 + i,
                    "uid": f"CK{i}",
                    "id.orig_h": "10.0.0.7",
                    "id.orig_p": 5000 + i,
                    "id.resp_h": "10.0.0.1",
                    "id.resp_p": 88,
                    "request_type": "AS",
                    "client": f"user{i}/CORP",
                    "success": False,
                    "error_msg": "KDC_ERR_PREAUTH_FAILED",
                },
            )
        )
    # PREAUTH_REQUIRED is the normal first answer of a Windows login.
    for i in range(30):
        recs.append(
            (
                "kerberos",
                {
                    "ts": 1.0 + i,
                    "uid": f"CN{i}",
                    "id.orig_h": "10.0.0.8",
                    "id.orig_p": 6000 + i,
                    "id.resp_h": "10.0.0.1",
                    "id.resp_p": 88,
                    "success": False,
                    "error_msg": "KDC_ERR_PREAUTH_REQUIRED",
                },
            )
        )
    for i in range(10):
        recs.append(
            (
                "ntlm",
                {
                    "ts": 2.0 + i,
                    "uid": f"CN{i}",
                    "id.orig_h": "10.0.0.9",
                    "id.orig_p": 7000 + i,
                    "id.resp_h": "10.0.0.1",
                    "id.resp_p": 445,
                    "username": "admin",
                    "success": False,
                },
            )
        )
    found = {a.device.ip: a for a in run(recs, 100.0)}
    assert set(found) == {"10.0.0.7", "10.0.0.9"}
    assert "failed 12 Kerberos logins" in found["10.0.0.7"].summary
    assert found["10.0.0.7"].reasons[-1].feature == "user_names"
    assert "failed 10 SMB logins" in found["10.0.0.9"].summary


def test_smb_guessing_inside_one_connection() -> None:
    guess = conn(
        100.0,
        "192.168.1.205",
        "192.168.1.195",
        445,
        state="RSTO",
        service="smb",
        duration=23.4,
        orig_pkts=2818,
        resp_pkts=2811,
        resp_ip_bytes=255804,
        orig_bytes=393971,
    )
    # A file copy: as many packets, but answers with data.
    copy = conn(
        100.0,
        "192.168.1.46",
        "192.168.1.195",
        445,
        state="SF",
        service="smb",
        duration=20.0,
        orig_pkts=3000,
        resp_pkts=3000,
        resp_ip_bytes=3_000_000,
        orig_bytes=200000,
    )
    (a,) = run([("conn", guess), ("conn", copy)], 500.0)
    assert a.device.ip == "192.168.1.205"
    assert (
        "made 2811 quick SMB request/answer exchanges with 192.168.1.195 port 445 in 23 s"
        in a.summary
    )
    assert a.uids == [guess["uid"]]
    assert a.score > 70


def test_http_basic_refusals_count_but_ntlm_handshakes_do_not() -> None:
    def http(i: int, depth: int, user: str | None) -> tuple[str, dict[str, Any]]:
        r: dict[str, Any] = {
            "ts": 10.0 + i,
            "uid": f"CH{i}",
            "id.orig_h": "10.0.0.4" if user else "10.0.0.5",
            "id.orig_p": 40000 + i,
            "id.resp_h": "10.0.0.80",
            "id.resp_p": 80,
            "trans_depth": depth,
            "status_code": 401,
        }
        if user:
            r["username"] = user
        return ("http", r)

    guesses = [http(i, 1, "admin") for i in range(12)]
    # An intranet client's NTLM handshakes: two 401s each before the 200.
    handshakes = [http(100 + i, 1 + i % 2, None) for i in range(40)]
    (a,) = run(guesses + handshakes, 1000.0)
    assert a.device.ip == "10.0.0.4"
    assert "failed 12 HTTP authentication logins on 10.0.0.80 port 80" in a.summary


def test_a_monitoring_check_every_30_s_is_no_guessing() -> None:
    recs = [
        (
            "conn",
            conn(
                10.0 + 30 * i,
                "10.0.0.50",
                "10.0.0.21",
                21,
                state="SF",
                service="ftp",
                orig_bytes=14,
                resp_bytes=60,
                duration=0.1,
            ),
        )
        for i in range(30)
    ]
    assert run(recs, 5000.0) == []
