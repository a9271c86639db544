"""sensord --replay writes alerts.log and incidents.log as their schemas say;
--learn replays captures first without writing their logs or alerts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.replay import read_log, sensord

SCHEMAS = Path(__file__).resolve().parents[2] / "sensor" / "output" / "schemas"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker()
    )


def test_alerts_and_incidents_validate_and_cite_each_other(
    pcaps: Path, tmp_path: Path
) -> None:
    done = sensord(
        "--replay",
        str(pcaps / "zeek/traces/ssh__sshguess.pcap"),
        str(pcaps / "attacks/scan/slips_test12-icmp-portscan.pcap"),
        "--logdir",
        str(tmp_path),
        "--progress",
        "never",
    )
    assert done.returncode == 0, done.stderr
    alerts = read_log(tmp_path / "alerts.log")
    incidents = read_log(tmp_path / "incidents.log")
    for name, records in (("alerts", alerts), ("incidents", incidents)):
        check = validator(name)
        for r in records:
            assert not [e.message for e in check.iter_errors(r)], r

    kinds = {a["detection"]: a for a in alerts}
    assert {"bruteforce.login", "scan.sweep"} <= set(kinds)
    brute = kinds["bruteforce.login"]
    assert brute["device"]["ip"] == "192.168.56.1" and brute["score"] >= 50
    assert brute["mitre"] == "T1110" and brute["reasons"] and brute["uids"]

    # Every uid an alert cites is a connection of conn.log.
    uids = {c["uid"] for c in read_log(tmp_path / "conn.log")}
    assert all(set(a["uids"]) <= uids for a in alerts)
    # Every alert names an incident that lists it.
    by_id = {i["id"]: i for i in incidents}
    for a in alerts:
        assert a["id"] in by_id[a["incident"]]["alerts"]
        assert a["id"] in by_id[a["incident"]]["narrative"]


def test_learn_phase_writes_nothing_of_its_own(pcaps: Path, tmp_path: Path) -> None:
    done = sensord(
        "--replay",
        str(pcaps / "zeek/traces/ssh__sshguess.pcap"),
        "--learn",
        str(pcaps / "attacks/scan/slips_test12-icmp-portscan.pcap"),
        "--logdir",
        str(tmp_path),
        "--progress",
        "never",
    )
    assert done.returncode == 0, done.stderr
    assert "learned from 37 packets" in done.stdout
    alerts = read_log(tmp_path / "alerts.log")
    assert "scan.sweep" not in {a["detection"] for a in alerts}
    assert "bruteforce.login" in {a["detection"] for a in alerts}
    # conn.log holds the scored capture only: no ICMP of the learned one.
    assert {c["proto"] for c in read_log(tmp_path / "conn.log")} == {"tcp"}


def test_learn_needs_replay() -> None:
    done = sensord("--learn", "x.pcap", "--interface", "lo")
    assert done.returncode == 2 and "--learn needs --replay" in done.stderr


def test_ids_continue_across_runs_with_a_state(pcaps: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    seen = []
    for run in ("one", "two"):
        done = sensord(
            "--replay",
            str(pcaps / "zeek/traces/ssh__sshguess.pcap"),
            "--state",
            str(state),
            "--logdir",
            str(tmp_path / run),
            "--progress",
            "never",
        )
        assert done.returncode == 0, done.stderr
        seen.append(read_log(tmp_path / run / "alerts.log"))
    first, second = seen
    assert first and second
    assert int(second[0]["id"][1:]) == int(first[-1]["id"][1:]) + 1
    assert int(second[0]["incident"][1:]) > int(first[-1]["incident"][1:])
