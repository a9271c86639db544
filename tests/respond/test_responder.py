"""The responder without the kernel: policy, intents, operator controls,
blast radius, domains followed, state kept across a restart."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sensor.detect.alert import Alert, DeviceRef, Endpoint, Reason
from sensor.lockfile import InUse
from sensor.respond import Responder, ResponseError
from sensor.respond.backends.dryrun import DryRun
from sensor.respond.intent import Intent, IntentError
from sensor.respond.policy import BREAKER_RESET, BREAKER_TRIPPED, Policy, PolicyConfig

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "sensor/output/schemas/actions.schema.json"
    ).read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

CLIENT, SERVER, SERVER2 = "192.0.2.10", "198.51.100.10", "198.51.100.11"


def scan(
    ts: float,
    src: str = CLIENT,
    dst: str = SERVER,
    id: str = "A00000001",
    score: float = 90.0,
) -> Alert:
    return Alert(
        ts=ts, detection="scan.port", score=score, device=DeviceRef(ip=src),
        src=Endpoint(ip=src), dst=Endpoint(ip=dst), summary=f"{src} tried 40 ports of {dst}",
        reasons=[Reason("ports", 40, 25)], mitre="T1046", id=id,
    )  # fmt: skip


def conn(
    ts: float, orig: str, resp: str, port: int, duration: float = 0.1
) -> dict[str, Any]:
    return {"ts": ts, "uid": "C1", "id.orig_h": orig, "id.orig_p": 40000, "id.resp_h": resp,
            "id.resp_p": port, "proto": "tcp", "duration": duration}  # fmt: skip


def actions(records: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out = [r for n, r in records if n == "actions"]
    for r in out:
        VALIDATOR.validate(r)
    return out


def responder(**kw: Any) -> tuple[Responder, DryRun]:
    dry = DryRun()
    cfg = PolicyConfig(**{"mode": "autonomous", "jitter": 0.0, **kw})
    return Responder(Policy(cfg), [dry]), dry


def test_autonomous_block_of_exactly_the_pair() -> None:
    r, dry = responder()
    out = actions(r.consider(scan(1000.0)))
    assert len(out) == 1
    a = out[0]
    assert (
        a["action"],
        a["target"],
        a["dst_ip"],
        a["state"],
        a["change"],
        a["who"],
    ) == ("block", CLIENT, SERVER, "active", "apply", "sensor")
    assert a["expires"] == 1000.0 + 3600.0 and a["reason"] == "A00000001"
    assert "port" not in a
    assert list(dry.active) == [a["id"]]
    intent = dry.active[a["id"]]
    assert intent.matches(CLIENT, SERVER, 22, "tcp")
    assert not intent.matches(CLIENT, SERVER2, 22, "tcp")  # other traffic flows
    # The same scan seen again makes no second action.
    assert actions(r.consider(scan(1010.0, id="A00000002"))) == []


def test_modes_observe_confirm_and_tags() -> None:
    r, dry = responder(mode="observe")
    assert actions(r.consider(scan(1.0)))[0]["state"] == "observed" and not dry.active
    r, dry = responder(
        mode="observe", autonomous=["scan.port"], autonomous_min_score=95.0
    )
    assert actions(r.consider(scan(1.0)))[0]["state"] == "pending"  # score 90 < 95
    r, dry = responder(confirm_tags=["server"], device_tags=[f"{CLIENT}=server"])
    assert actions(r.consider(scan(1.0)))[0]["state"] == "pending"
    r, dry = responder(min_score=95.0)
    assert actions(r.consider(scan(1.0)))[0]["state"] == "observed"


def test_never_act_networks_and_tags() -> None:
    r, dry = responder(never_act_networks=["192.0.2.0/28"])
    a = actions(r.consider(scan(1.0)))[0]
    assert a["state"] == "refused" and a["change"] == "refuse"
    assert "never-act network 192.0.2.0/28" in a["change_reason"]
    r, dry = responder(device_tags=[f"{CLIENT}=dns_server"])
    assert actions(r.consider(scan(1.0)))[0]["state"] == "refused"
    # Roles the models know count as tags too.
    r = Responder(
        Policy(PolicyConfig(mode="autonomous")), [DryRun()], tags=lambda ip: ["gateway"]
    )
    assert actions(r.consider(scan(1.0)))[0]["state"] == "refused"
    # Nor can an operator act on one.
    r, dry = responder(never_act_networks=["192.0.2.0/28"])
    rec = r.block(CLIENT, SERVER, None, None, 60.0, "alice", "test", now=5.0)
    assert rec["state"] == "refused" and not dry.active


def test_circuit_breaker_trips_and_resets() -> None:
    r, dry = responder(breaker_limit=3, breaker_window=60.0)
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(5):
        out += r.consider(scan(100.0 + i, dst=f"203.0.113.{i + 1}", id=f"A{i:08d}"))
    states = [a["state"] for a in actions(out)]
    assert states == ["active"] * 3 + ["pending"] * 2
    health = [rec for n, rec in out if n == "alerts"]
    assert [h["name"] for h in health] == [BREAKER_TRIPPED]
    assert health[0]["actions_in_window"] == 3 and health[0]["limit"] == 3
    assert len(dry.active) == 3
    # The window passes: the breaker resets and autonomy resumes.
    later = r.tick(170.0)
    assert [rec["name"] for n, rec in later if n == "alerts"] == [BREAKER_RESET]
    assert (
        actions(r.consider(scan(171.0, dst="203.0.113.99", id="A00000099")))[0]["state"]
        == "active"
    )


def test_operator_approve_clear_extend_and_suppression() -> None:
    r, dry = responder(mode="confirm")
    pending = actions(r.consider(scan(1000.0)))[0]
    assert pending["state"] == "pending" and not dry.active
    rec = r.approve(pending["id"], "alice", "checked the scan", now=1001.0)
    VALIDATOR.validate(rec)
    assert (rec["state"], rec["change"], rec["who"], rec["change_reason"]) == (
        "active",
        "approve",
        "alice",
        "checked the scan",
    )
    assert pending["id"] in dry.active
    rec = r.extend(pending["id"], 600.0, "bob", "still scanning", now=1002.0)
    assert rec["expires"] == pending["expires"] + 600.0 and rec["who"] == "bob"
    rec = r.clear(pending["id"], "carol", "false positive", now=1003.0)
    assert rec["state"] == "cleared" and not dry.active
    # The detection fires again for the same incident: suppressed, until the
    # cleared action's expiry (as extended).
    again = scan(1100.0, id="A00000001")
    assert actions(r.consider(again))[0]["state"] == "refused"
    after = scan(rec["expires"] + 1.0, id="A00000001")
    assert actions(r.consider(after))[0]["state"] == "pending"
    with pytest.raises(ResponseError) as e:
        r.approve(pending["id"], "alice", "again")
    assert e.value.kind == "precondition"
    with pytest.raises(ResponseError) as e:
        r.clear("Rnothing", "alice", "x")
    assert e.value.kind == "not_found"


def test_expiry_lifts_the_block_on_packet_time() -> None:
    r, dry = responder(
        durations={"block": 60.0, "reset": 10.0, "enforce": 60.0, "quarantine": 60.0}
    )
    a = actions(r.consider(scan(1000.0)))[0]
    assert actions(r.observe("conn", conn(1059.0, CLIENT, SERVER, 80)))[0:] == []
    out = actions(r.observe("conn", conn(1061.0, CLIENT, SERVER, 80)))
    assert [(x["id"], x["state"], x["change"]) for x in out] == [
        (a["id"], "expired", "expire")
    ]
    assert not dry.active


def test_blast_radius_counts_later_connections_cut() -> None:
    r, _ = responder(mode="observe")
    r.consider(scan(1000.0))
    r.observe("conn", conn(999.0, CLIENT, SERVER, 22, duration=0.5))  # before: not cut
    r.observe("conn", conn(999.0, CLIENT, SERVER, 443, duration=10.0))  # spans: cut
    r.observe("conn", conn(1001.0, CLIENT, SERVER, 23))  # cut
    r.observe("conn", conn(1002.0, SERVER, CLIENT, 5353))  # the other way: cut
    r.observe("conn", conn(1003.0, CLIENT, SERVER2, 443))  # other server: flows
    r.observe("conn", conn(1004.0, "192.0.2.99", SERVER, 22))  # other client: flows
    end = actions(r.finish(1005.0))
    assert [(x["change"], x["blast_radius"]) for x in end] == [("end", 3)]


def test_domain_block_follows_dns_answers() -> None:
    r, dry = responder()
    rec = r.block(CLIENT, "evil.example", 443, "tcp", 600.0, "alice", "c2", now=10.0)
    assert rec["dst_domain"] == "evil.example" and rec["state"] == "active"
    out = actions(
        r.observe(
            "dns",
            {
                "ts": 11.0,
                "query": "cdn.evil.example",
                "answers": ["cdn2.evil.example", "203.0.113.7"],
            },
        )
    )
    assert out[0]["change"] == "follow" and out[0]["addresses"] == ["203.0.113.7"]
    assert (
        actions(
            r.observe(
                "dns", {"ts": 12.0, "query": "good.example", "answers": ["203.0.113.8"]}
            )
        )
        == []
    )
    out = actions(
        r.observe(
            "dns", {"ts": 13.0, "query": "evil.example", "answers": ["203.0.113.9"]}
        )
    )
    intent = dry.active[rec["id"]]
    assert intent.networks() == ["203.0.113.7/32", "203.0.113.9/32"]
    assert intent.matches(CLIENT, "203.0.113.9", 443, "tcp")
    assert not intent.matches(CLIENT, "203.0.113.9", 80, "tcp")


def test_intent_needs_expiry_and_destination() -> None:
    with pytest.raises(IntentError, match="expiry"):
        Intent(
            action="block",
            target=CLIENT,
            reason="x",
            requested_by="t",
            created=5.0,
            expires=5.0,
            dst_ip=SERVER,
        )
    with pytest.raises(IntentError, match="destination"):
        Intent(
            action="block",
            target=CLIENT,
            reason="x",
            requested_by="t",
            created=5.0,
            expires=6.0,
        )
    with pytest.raises(IntentError, match="conn"):
        Intent(
            action="reset",
            target=CLIENT,
            reason="x",
            requested_by="t",
            created=5.0,
            expires=6.0,
        )
    with pytest.raises(IntentError, match="not an IP"):
        Intent(
            action="quarantine",
            target="nobody",
            reason="x",
            requested_by="t",
            created=5.0,
            expires=6.0,
        )


def test_expiries_are_spread() -> None:
    p = Policy(PolicyConfig(jitter=0.1))
    ends = [p.expiry(0.0, "block", f"A{i}") for i in range(1000)]
    assert min(ends) >= 3600.0 and max(ends) <= 3960.0
    assert len({int(e) for e in ends}) > 300  # not all in the same second


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = str(tmp_path / "response-state.json")
    cfg = PolicyConfig(mode="autonomous", jitter=0.0)
    r = Responder(Policy(cfg), [DryRun()], state_path=state)
    a = actions(r.consider(scan(1000.0)))[0]
    r.close()  # the daemon stops
    dry = DryRun()
    again = Responder(Policy(cfg), [dry], state_path=state)
    assert [i.id for i in again.listed({"active"})] == [a["id"]]
    again.reconcile(1001.0)
    assert list(dry.active) == [a["id"]]


def test_state_is_used_by_one_responder_at_a_time(tmp_path: Path) -> None:
    # The state belongs to its directory: a second daemon there would take
    # over the first one's intents and mode (sensor.daemon refuses it).
    state = str(tmp_path / "response-state.json")
    first = Responder(Policy(PolicyConfig()), [DryRun()], state_path=state)
    with pytest.raises(InUse) as refused:
        Responder(Policy(PolicyConfig()), [DryRun()], state_path=state)
    assert (refused.value.filename, refused.value.pid) == (state, os.getpid())

    first.close()
    Responder(Policy(PolicyConfig()), [DryRun()], state_path=state).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["response-state.json"]


def test_actions_kept_across_a_restart_are_listed_by_the_api(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from sensor.api.state import ApiState

    state = str(tmp_path / "response-state.json")
    cfg = PolicyConfig(mode="autonomous", jitter=0.0, confirm=["dns.dga"])
    r = Responder(Policy(cfg), [DryRun()], state_path=state)
    now = time.time()  # approving takes wall time, as live
    active = actions(r.consider(scan(now)))[0]
    dga = scan(now + 1.0, dst=SERVER2, id="A00000002")
    dga.detection = "dns.dga"
    pending = actions(r.consider(dga))[0]
    assert (active["state"], pending["state"]) == ("active", "pending")
    r.close()

    again = Responder(Policy(cfg), [DryRun()], state_path=state)
    api = ApiState("live", pipeline=SimpleNamespace(responder=again))
    assert {k: v["state"] for k, v in api.actions.items()} == {
        active["id"]: "active", pending["id"]: "pending",
    }  # fmt: skip
    assert api.get_action(active["id"])["change_reason"].startswith("kept across a restart")
    # ... and they can be changed through it.
    api.book.approve(pending["id"], "alice", "checked")
    assert again.get(pending["id"]).state == "active"


def test_mode_set_by_an_operator_survives_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    from sensor.api.state import ApiState

    path = tmp_path / "response-state.json"
    r = Responder(Policy(PolicyConfig(mode="observe")), [DryRun()], state_path=str(path))
    api = ApiState("live", pipeline=SimpleNamespace(responder=r))
    api.set_mode("autonomous", who="alice", reason="night shift")
    api.set_mode("confirm", detection="scan.port", who="alice", reason="check scans")
    api.set_mode("observe", tag="printer", who="bob", reason="printers are fragile")
    saved = json.loads(path.read_text())["mode"]
    assert (saved["mode"], saved["confirm"], saved["observe_tags"]) == (
        "autonomous", ["scan.port"], ["printer"],
    )  # fmt: skip
    assert (saved["who"], saved["reason"]) == ("bob", "printers are fragile")

    # The configuration says observe; the operator's later choice wins, loudly.
    r.close()
    again = Responder(Policy(PolicyConfig(mode="observe")), [DryRun()], state_path=str(path))
    c = again.policy.config
    assert (c.mode, c.confirm, c.autonomous, c.observe_tags, c.confirm_tags) == (
        "autonomous", ["scan.port"], [], ["printer"], [],
    )  # fmt: skip
    assert "as set by bob through the API" in caplog.text
    # Its alerts are decided by the restored mode: scans wait for approval.
    assert actions(again.consider(scan(10.0)))[0]["state"] == "pending"

    # A SIGHUP applies the file's mode and forgets the operator's.
    again.policy.reconfigure(PolicyConfig(mode="observe"))
    assert again.mode_from_configuration() is True
    assert "mode" not in json.loads(path.read_text())
    again.close()
    third = Responder(Policy(PolicyConfig(mode="observe")), [DryRun()], state_path=str(path))
    assert (third.policy.config.mode, third.policy.config.confirm) == ("observe", [])
    assert third.mode_from_configuration() is False  # nothing to forget


@pytest.mark.parametrize(
    "mode",
    [{"mode": "sideways"}, [], {"mode": "confirm", "confirm": "scan.port"}],
    ids=["unknown-mode", "not-an-object", "list-not-given"],
)
def test_a_saved_mode_that_does_not_read_leaves_the_configuration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: Any
) -> None:
    path = tmp_path / "response-state.json"
    path.write_text(json.dumps({"intents": [], "mode": mode}))
    r = Responder(Policy(PolicyConfig(mode="observe")), [DryRun()], state_path=str(path))
    assert r.policy.config.mode == "observe" and r.policy.config.confirm == []
    assert "the configuration's mode holds" in caplog.text


def test_an_unreadable_saved_action_costs_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "response-state.json"
    r = Responder(Policy(PolicyConfig(mode="autonomous", jitter=0.0)), [DryRun()],
                  state_path=str(state))  # fmt: skip
    kept = actions(r.consider(scan(1000.0)))[0]
    r.mode_changed("alice", "night")
    r.close()
    data = json.loads(state.read_text())
    data["intents"] += [{"action": "block"}, [1, 2], {"action": "fly", "target": "x"}]
    state.write_text(json.dumps(data))

    again = Responder(Policy(PolicyConfig()), [DryRun()], state_path=str(state))
    assert list(again.intents) == [kept["id"]]
    assert again.policy.config.mode == "autonomous"  # the mode is kept too
    assert "3 of 4 saved actions are unreadable and left out" in caplog.text


def test_a_state_file_that_is_not_an_object_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "response-state.json"
    path.write_text("[1, 2]")
    r = Responder(Policy(PolicyConfig()), [DryRun()], state_path=str(path))
    assert r.intents == {} and "cannot read state, starting empty" in caplog.text


@pytest.mark.parametrize(
    ("src", "dst"),
    [("fe80::5", "ff02::2"), (CLIENT, "255.255.255.255"), (CLIENT, "2001:db8::1"),
     (CLIENT, "127.0.0.1"), (CLIENT, CLIENT)],
    ids=["multicast", "broadcast", "other-family", "loopback", "itself"],
)  # fmt: skip
def test_no_block_to_a_destination_that_is_no_host(src: str, dst: str) -> None:
    r, dry = responder()
    assert actions(r.consider(scan(1.0, src=src, dst=dst))) == []
    assert not dry.active


def test_device_new_asks_for_nothing_unless_configured() -> None:
    alert = scan(1.0)
    alert.detection, alert.score = "device.new", 20.0
    r, dry = responder()
    assert actions(r.consider(alert)) == [] and not dry.active
    r, dry = responder(actions=["device.new=block"])
    assert [a["action"] for a in actions(r.consider(alert))] == ["block"]


def test_a_device_that_becomes_never_act_has_its_actions_lifted() -> None:
    r, dry = responder()
    made = actions(r.consider(scan(1.0)))[0]
    assert made["state"] == "active" and list(dry.active) == [made["id"]]
    # SIGHUP: the configuration now names the client's network never-act.
    r.policy.reconfigure(
        PolicyConfig(mode="autonomous", jitter=0.0, never_act_networks=["192.0.2.0/24"])
    )
    (lifted,) = actions(r.tick(2.0))
    assert (lifted["id"], lifted["state"], lifted["change"], lifted["who"]) == (
        made["id"], "cleared", "clear", "sensor",
    )  # fmt: skip
    assert "never-act network 192.0.2.0/24" in lifted["change_reason"]
    assert not dry.active
    assert actions(r.tick(3.0)) == []  # once


def test_a_state_file_that_cannot_be_written_is_said_once_until_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "response-state.json"
    r = Responder(Policy(PolicyConfig(mode="autonomous", jitter=0.0)), [DryRun()],
                  state_path=str(state))  # fmt: skip
    blocker = tmp_path / "response-state.json.tmp"
    blocker.mkdir()  # every save fails, as on a full disk, even for root
    for i in range(5):
        r.consider(scan(1.0 + i, dst=f"198.51.100.{20 + i}", id=f"A{i:08d}"))
    assert caplog.text.count("cannot save state") == 1
    blocker.rmdir()
    r.consider(scan(9.0, dst="198.51.100.99", id="A00000099"))
    assert "state saved again" in caplog.text
    assert len(json.loads(state.read_text())["intents"]) == 6
    r.close()


def test_reset_needs_both_ports() -> None:
    r, _ = responder(actions=["c2.beacon=reset+block"])
    alert = scan(1.0)
    alert.detection = "c2.beacon"
    alert.src.port, alert.dst.port = 40000, 443
    out = actions(r.consider(alert))
    assert [(x["action"], x["state"]) for x in out] == [
        ("reset", "active"),
        ("block", "active"),
    ]
    assert out[0]["conn"] == [CLIENT, 40000, SERVER, 443]


@pytest.mark.parametrize(
    ("dst", "expected"),
    [
        ("not a dest!!", "label 'not a dest!!': expected 1 to 63 letters"),
        ("10.0.0.300", "dst_ip '10.0.0.300': not an IP address"),
        ("evil..example", "an empty label"),
        ("-evil.example", "label '-evil'"),
        ("x" * 64 + ".example", "64 characters, more than 63"),
    ],
)
def test_operator_block_to_what_is_no_destination_is_invalid(
    dst: str, expected: str
) -> None:
    r, dry = responder()
    with pytest.raises(ResponseError) as e:
        r.block(CLIENT, dst, None, None, 3600.0, "alice", "t", now=100.0)
    assert e.value.kind == "invalid"
    assert expected in str(e.value)
    assert "\n" not in str(e.value)
    assert r.intents == {} and dry.active == {}


def test_operator_block_to_a_domain_name_is_made() -> None:
    for dst in ("evil.example", "Evil.Example.", "_ldap._tcp.corp", "xn--bcher-kva.example"):
        r, _ = responder()  # the first two are the same block
        rec = r.block(CLIENT, dst, None, None, 3600.0, "alice", dst, now=100.0)
        assert rec["state"] == "active"
        assert rec["dst_domain"] == dst.lower().rstrip(".")


def test_operator_create_of_a_block_in_force_never_shortens_it() -> None:
    # Same packet time (a served replay's clock stands still after the
    # replay): the second create made the same id and replaced the first,
    # shortening its expiry from 90 days to 5 minutes.
    r, dry = responder()
    first = r.block(CLIENT, SERVER, None, None, 90 * 86400.0, "alice", "same", now=100.0)

    with pytest.raises(ResponseError) as e:
        r.block(CLIENT, SERVER, None, None, 300.0, "alice", "same", now=100.0)
    assert e.value.kind == "exists"
    assert str(e.value) == (
        f"action {first['id']} is already in force until 1970-04-01 00:01:40 UTC, "
        "and this create would end at 1970-01-01 00:06:40 UTC, no later; a create never shortens "
        f"an action (to keep it longer: sensorctl extend {first['id']} --for DURATION)"
    )
    assert r.get(first["id"]).expires == first["expires"]
    assert list(r.intents) == [first["id"]] and list(dry.active) == [first["id"]]

    # Later, for another reason: the same action, its expiry moved later.
    rec = r.block(CLIENT, SERVER, None, None, 100 * 86400.0, "bob", "longer", now=200.0)
    VALIDATOR.validate(rec)
    assert (rec["id"], rec["change"], rec["who"], rec["change_reason"]) == (
        first["id"], "extend", "bob", "longer"
    )
    assert rec["expires"] == 200.0 + 100 * 86400.0
    assert list(r.intents) == [first["id"]]

    # Another port is another action.
    other = r.block(CLIENT, SERVER, 22, None, 300.0, "alice", "ssh", now=300.0)
    assert other["change"] == "create" and other["id"] != first["id"]


def test_extend_cap_holds_for_the_resulting_expiry() -> None:
    """With max_seconds, repeated extends cannot move the expiry past
    now + max_seconds: 89 days twice is refused, naming the latest expiry."""
    r, _ = responder()
    day = 86400.0
    made = r.block(CLIENT, SERVER, None, None, 3600.0, "alice", "case 7", now=1000.0)
    once = r.extend(made["id"], 89 * day, "alice", "longer", now=1000.0, max_seconds=90 * day)
    assert once["expires"] == 1000.0 + 3600.0 + 89 * day
    with pytest.raises(ResponseError) as e:
        r.extend(made["id"], 89 * day, "alice", "again", now=1000.0, max_seconds=90 * day)
    assert e.value.kind == "invalid"
    assert str(e.value).endswith(
        "an action expires at most 90 days ahead, however often it is extended; "
        "the latest possible expiry is 1970-04-01 00:16:40 UTC"
    )
    assert r.get(made["id"]).expires == once["expires"]
    # Up to the cap exactly is allowed.
    left = 1000.0 + 90 * day - once["expires"]
    assert r.extend(made["id"], left, "alice", "to the cap", now=1000.0,
                    max_seconds=90 * day)["expires"] == 1000.0 + 90 * day  # fmt: skip
