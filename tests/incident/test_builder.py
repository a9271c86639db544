"""IncidentBuilder: grouping, attack chains, closing, deterministic story."""

from __future__ import annotations

from typing import Any

from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
from sensor.incident import IncidentBuilder

_n = [0]


def alert(
    ts: float,
    detection: str,
    device: str,
    dst: str | None = None,
    score: float = 70.0,
    domain: str | None = None,
    mitre: str = "T1046",
) -> Alert:
    _n[0] += 1
    return Alert(
        ts=ts,
        detection=detection,
        score=score,
        device=DeviceRef(ip=device),
        src=Endpoint(ip=device),
        dst=Endpoint(ip=dst, domain=domain),
        summary=f"{device} did {detection}.",
        reasons=[Reason("x", 1, None)],
        mitre=mitre,
        uids=[f"CU{_n[0]}a", f"CU{_n[0]}b", f"CU{_n[0]}c", f"CU{_n[0]}d"],
        id=f"A{_n[0]:08d}",
    )


def build(alerts: list[Alert], gap: float = 3600.0) -> list[dict[str, Any]]:
    b = IncidentBuilder(gap_seconds=gap)
    out = []
    for a in alerts:
        out += b.add(a)
    out += b.finish(max(a.ts for a in alerts))
    assert all(log == "incidents" for log, _ in out)
    return [r for _, r in out]


def test_attack_chain_scan_brute_force_remote_exec_exfil() -> None:
    scan = alert(1000.0, "scan.port", "10.0.0.5", "10.0.0.9", score=95)
    brute = alert(1300.0, "bruteforce.login", "10.0.0.5", "10.0.0.9", mitre="T1110")
    exe = alert(1500.0, "lateral.remote_exec", "10.0.0.5", "10.0.0.9", mitre="T1021")
    # The target now sends data out: it is the attacker's foothold.
    exfil = alert(2000.0, "exfil.volume", "10.0.0.9", "198.51.100.4", mitre="T1048")
    other = alert(
        1100.0, "c2.beacon", "10.0.0.33", "203.0.113.7", score=60, mitre="T1071"
    )
    (chain, lone) = build([scan, other, brute, exe, exfil])
    assert chain["alerts"] == [scan.id, brute.id, exe.id, exfil.id]
    assert {scan.incident, brute.incident, exe.incident, exfil.incident} == {
        chain["id"]
    }
    assert other.incident == lone["id"] != chain["id"]
    assert (
        chain["title"]
        == "Attack chain from 2 devices: scan, then brute force, then remote execution, then exfiltration"
    )
    assert chain["severity"] == "critical"
    assert chain["devices"] == ["10.0.0.5", "10.0.0.9"]
    assert chain["mitre"] == ["T1021", "T1046", "T1048", "T1110"]
    assert (chain["first"], chain["last"]) == (1000.0, 2000.0)
    assert (
        f"At 1970-01-01 00:16:40 UTC, {scan.id} (scan.port, score 95): 10.0.0.5 did scan.port."
        in chain["narrative"]
    )
    assert (
        f"Connections: {scan.uids[0]}, {scan.uids[1]}, {scan.uids[2]} and others."
        in chain["narrative"]
    )
    assert chain["narrative"].endswith(
        "The alerts follow the order of an attack: scan, then brute force, then remote execution, then exfiltration."
    )
    assert (
        lone["title"]
        == "Command-and-control beaconing by 10.0.0.33 against 203.0.113.7"
    )
    assert lone["severity"] == "medium"


def test_same_external_endpoint_joins_devices() -> None:
    a = alert(10.0, "c2.beacon", "10.0.0.1", "203.0.113.7", domain="evil.example")
    b = alert(20.0, "endpoint.rare", "10.0.0.2", "203.0.113.8", domain="evil.example")
    c = alert(30.0, "endpoint.rare", "10.0.0.3", "10.0.0.4")  # internal peer: no link
    recs = build([a, b, c])
    assert [r["alerts"] for r in recs] == [[a.id, b.id], [c.id]]


def test_incidents_close_after_the_gap() -> None:
    a = alert(0.0, "scan.port", "10.0.0.1", "10.0.0.2")
    b = alert(5000.0, "scan.port", "10.0.0.1", "10.0.0.3")
    builder = IncidentBuilder(gap_seconds=3600.0)
    assert builder.add(a) == []
    closed = builder.add(b)
    assert [r["alerts"] for _, r in closed] == [[a.id]]
    assert a.incident != b.incident
    assert [r["alerts"] for _, r in builder.finish(6000.0)] == [[b.id]]


def test_the_story_is_deterministic() -> None:
    def story() -> list[dict[str, Any]]:
        _n[0] = 100
        return build(
            [
                alert(1.0, "scan.sweep", "10.0.0.1"),
                alert(2.0, "dos.flood", "10.0.0.1", "10.0.0.2", score=40),
                alert(3.0, "device.new", "10.0.0.1", score=20),
            ]
        )

    first, second = story(), story()
    assert first == second
    (one,) = first
    assert one["title"] == "10.0.0.1: Host sweep, Flood, New device"
    assert one["severity"] == "medium"
    assert one["alert_count"] == 3 and len(one["uids"]) == 12
