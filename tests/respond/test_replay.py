"""A replay simulates the response: actions.log says what would have been
done (dry run, mode observe) and how many later connections each action
would have cut, which the test recounts from conn.log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from sensor.cli import sensord
from tests.conftest import ROOT

SCHEMA = json.loads((ROOT / "sensor/output/schemas/actions.schema.json").read_text())


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def cut(a: dict[str, Any], conns: list[dict[str, Any]]) -> int:
    """Connections between the target and the destination overlapping the
    action's life, either direction."""
    dsts = {a["dst_ip"]} if a.get("dst_ip") else set(a.get("addresses", []))
    t = a["target"]
    return sum(
        1
        for c in conns
        if (
            (c["id.orig_h"] == t and c["id.resp_h"] in dsts)
            or (c["id.resp_h"] == t and c["id.orig_h"] in dsts)
        )
        and c["ts"] + (c.get("duration") or 0.0) >= a["created"]
        and c["ts"] < a["expires"]
    )


def test_office_replay_proposes_and_counts(tmp_path: Path) -> None:
    status = sensord.main(["--replay", str(ROOT / "pcaps/office/office.pcap"),
                           "--logdir", str(tmp_path), "--progress", "never"])  # fmt: skip
    assert status == 0
    actions = read(tmp_path / "actions.log")
    for a in actions:
        jsonschema.validate(a, SCHEMA)
    assert {a["state"] for a in actions} == {"observed"}
    assert {a["backend"] for a in actions} == {"dry-run"}
    scans = [a for a in actions if a.get("detection") == "scan.port"]
    assert [(a["change"], a["target"], a["dst_ip"]) for a in scans] == [
        ("propose", "192.168.10.102", "192.168.10.10"),
        ("end", "192.168.10.102", "192.168.10.10"),
    ]
    conns = read(tmp_path / "conn.log")
    ends = [a for a in actions if a["change"] == "end"]
    assert ends
    for a in ends:
        assert a["blast_radius"] == cut(a, conns), a
