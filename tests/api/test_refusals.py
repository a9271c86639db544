"""Operator requests the response policy refuses, or that name what does
not exist: each is a status code with a message naming the rule or the
value, and sensorctl's exit status follows from the code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from sensor.api.server import ApiServer
from sensor.api.state import ApiState
from sensor.api.v1 import actions_pb2, actions_pb2_grpc, devices_pb2, devices_pb2_grpc
from sensor.respond.policy import Policy, PolicyConfig
from sensor.respond.responder import Responder
from tests.api.conftest import sensorctl

GATEWAY = "192.0.2.1"
DEVICE = "192.0.2.10"


@pytest.fixture
def responder_served(sockdir: Path) -> Iterator[tuple[ApiState, Path]]:
    """A server whose actions go to a real responder (dry run) in which
    GATEWAY is tagged gateway, so never-act by the default tags."""
    policy = Policy(PolicyConfig(device_tags=[f"{GATEWAY}=gateway"]))
    pipeline = SimpleNamespace(responder=Responder(policy))
    state = ApiState("live", pipeline=pipeline)
    path = sockdir / "api.sock"
    server = ApiServer(state, f"unix:{path}", socket_group="")
    server.start()
    yield state, path
    server.stop()


def _block(
    stub: actions_pb2_grpc.ActionsStub, src: str, dst: str, reason: str = "t"
) -> actions_pb2.Action:
    return stub.CreateBlock(
        actions_pb2.CreateBlockRequest(src=src, dst=dst, duration="1h", reason=reason),
        timeout=10,
    )


def test_block_of_a_never_act_device_is_permission_denied_and_recorded_refused(
    responder_served: tuple[ApiState, Path],
) -> None:
    state, sock = responder_served
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = actions_pb2_grpc.ActionsStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            _block(stub, GATEWAY, "198.51.100.4")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"{GATEWAY} is tagged gateway (never-act)" in e.value.details()

        # The refusal is in the audit trail, and the API says refused too.
        listed = stub.ListActions(actions_pb2.ListActionsRequest(), timeout=10)
        assert [a.state for a in listed.actions] == [actions_pb2.ACTION_STATE_REFUSED]
        assert listed.actions[0].src.ip == GATEWAY
        only_refused = stub.ListActions(
            actions_pb2.ListActionsRequest(
                filter=actions_pb2.ActionFilter(
                    states=[actions_pb2.ACTION_STATE_REFUSED]
                )
            ),
            timeout=10,
        )
        assert len(only_refused.actions) == 1
    written = [r for name, r in state.outbox if name == "actions"]
    assert [(r["target"], r["state"], r["change"]) for r in written] == [
        (GATEWAY, "refused", "refuse")
    ]


def test_block_of_a_never_act_device_written_ipv4_mapped_is_refused_too(
    responder_served: tuple[ApiState, Path],
) -> None:
    """::ffff:GATEWAY is GATEWAY: the never-act tag holds, and the refusal
    names the address as the models know it."""
    state, sock = responder_served
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = actions_pb2_grpc.ActionsStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            _block(stub, f"::ffff:{GATEWAY}", "::ffff:198.51.100.4")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"{GATEWAY} is tagged gateway (never-act)" in e.value.details()
        made = _block(stub, f"::FFFF:{DEVICE}", "::ffff:198.51.100.4")
        assert (made.src.ip, made.dst.ip) == (DEVICE, "198.51.100.4")


def test_block_of_a_cleared_and_suppressed_action_is_failed_precondition(
    responder_served: tuple[ApiState, Path],
) -> None:
    _, sock = responder_served
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = actions_pb2_grpc.ActionsStub(ch)
        first = _block(stub, DEVICE, "198.51.100.4", reason="case 12")
        assert first.state == actions_pb2.ACTION_STATE_ACTIVE
        stub.ClearAction(
            actions_pb2.ClearActionRequest(id=first.id, reason="wrong"), timeout=10
        )
        with pytest.raises(grpc.RpcError) as e:
            _block(stub, DEVICE, "198.51.100.4", reason="case 12")
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "cleared the same action for the same reason" in e.value.details()


def test_sensorctl_block_of_a_never_act_device_exits_5_naming_the_rule(
    responder_served: tuple[ApiState, Path],
) -> None:
    _, sock = responder_served
    r = sensorctl(
        "block", GATEWAY, "198.51.100.4", "--for", "1h", "--reason", "t", socket=sock
    )
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert r.stderr.startswith("sensorctl: action ")
    assert f"{GATEWAY} is tagged gateway (never-act)" in r.stderr
    assert r.stderr.count("\n") == 1

    r = sensorctl("--json", "actions", "--state", "refused", socket=sock)
    assert r.returncode == 0, r.stderr
    assert '"ACTION_STATE_REFUSED"' in r.stdout


@pytest.mark.parametrize("book", ["responder", "fallback"])
def test_block_to_a_destination_that_is_no_address_network_or_name_is_invalid(
    book: str, request: pytest.FixtureRequest
) -> None:
    """Both books (the responder's, and the API's own dry run) refuse it,
    and sensorctl exits 2 with the message; nothing is recorded."""
    fixture = "responder_served" if book == "responder" else "served_state"
    state, sock = request.getfixturevalue(fixture)
    r = sensorctl(
        "block", DEVICE, "not a dest!!", "--for", "1h", "--reason", "t", socket=sock
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr == (
        "sensorctl: destination 'not a dest!!': neither an IP address, a network "
        "(CIDR) nor a domain name: label 'not a dest!!': expected 1 to 63 letters, "
        "digits, hyphens or underscores, not beginning or ending with a hyphen\n"
    )
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = actions_pb2_grpc.ActionsStub(ch)
        for dst in ("10.0.0.300", "evil..example", "198.51.100.0/33"):
            with pytest.raises(grpc.RpcError) as e:
                _block(stub, DEVICE, dst)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"destination {dst!r}" in e.value.details()
        listed = stub.ListActions(actions_pb2.ListActionsRequest(), timeout=10)
        assert list(listed.actions) == []
        ok = _block(stub, DEVICE, "evil.example")
        assert ok.state == actions_pb2.ACTION_STATE_ACTIVE
        assert ok.dst.domain == "evil.example"
    assert not any(r.get("dst_domain") == "not a dest!!" for _, r in state.outbox)


@pytest.mark.parametrize("book", ["responder", "fallback"])
def test_mode_for_an_unknown_detection_is_invalid(
    book: str, request: pytest.FixtureRequest
) -> None:
    fixture = "responder_served" if book == "responder" else "served_state"
    state, sock = request.getfixturevalue(fixture)
    before = sensorctl("--json", "mode", socket=sock)
    assert before.returncode == 0, before.stderr

    r = sensorctl(
        "mode", "autonomous", "--detection", "nosuch.det", "--reason", "t", socket=sock
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(
        "sensorctl: detection 'nosuch.det': unknown detection (known: "
    )
    assert "scan.port" in r.stderr and r.stderr.count("\n") == 1
    after = sensorctl("--json", "mode", socket=sock)
    assert after.stdout == before.stdout

    ok = sensorctl(
        "mode", "autonomous", "--detection", "scan.port", "--reason", "t", socket=sock
    )
    assert ok.returncode == 0, ok.stderr


LONG = "x" * 100_000


@pytest.mark.parametrize("book", ["responder", "fallback"])
def test_errors_quote_a_long_input_cut(book: str, request: pytest.FixtureRequest) -> None:
    """A message that quotes the caller's input quotes its start only: the
    whole of it overflowed the reply's trailers, and the client got a
    transport error instead of the message."""
    fixture = "responder_served" if book == "responder" else "served_state"
    _, sock = request.getfixturevalue(fixture)
    cut = f"{'x' * 80!r}... (100000 characters)"
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        devices = devices_pb2_grpc.DevicesStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            devices.GetDevice(devices_pb2.GetDeviceRequest(id=LONG), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert e.value.details().startswith(f"no device {cut}: not an id")

        actions = actions_pb2_grpc.ActionsStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            actions.GetAction(actions_pb2.GetActionRequest(id=LONG), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert e.value.details() == f"no action {cut} (sensorctl actions lists them)"

        # Through the response stage's own checks as well: cut at the end.
        for dst, duration in ((LONG, "1h"), ("198.51.100.4", LONG)):
            with pytest.raises(grpc.RpcError) as e:
                actions.CreateBlock(
                    actions_pb2.CreateBlockRequest(
                        src=DEVICE, dst=dst, duration=duration, reason="t"
                    ),
                    timeout=10,
                )
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert len(e.value.details()) <= 1024, e.value.details()[:200]
            assert "x" * 1100 not in e.value.details()


@pytest.mark.parametrize("book", ["responder", "fallback"])
def test_block_again_never_shortens_the_block_in_force(
    book: str, request: pytest.FixtureRequest
) -> None:
    """The same block with an earlier expiry is refused (exit 4, naming the
    action and extend); with a later one, the action in force is extended."""
    fixture = "responder_served" if book == "responder" else "served_state"
    _, sock = request.getfixturevalue(fixture)

    def block(duration: str, reason: str = "same") -> Any:
        return sensorctl("--json", "block", DEVICE, "198.51.100.25", "--for",
                         duration, "--reason", reason, socket=sock)  # fmt: skip

    first = block("30d")
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    shorter = block("5m")
    assert shorter.returncode == 4, (shorter.stdout, shorter.stderr)
    assert shorter.stderr.startswith(
        f"sensorctl: action {made['id']} is already in force until "
    )
    assert shorter.stderr.endswith(
        f"a create never shortens an action (to keep it longer: sensorctl extend "
        f"{made['id']} --for DURATION)\n"
    )
    longer = block("60d", "longer")
    assert longer.returncode == 0, longer.stderr
    again = json.loads(longer.stdout)
    assert again["id"] == made["id"]
    assert float(again["expires"]) > float(made["expires"])

    shown = json.loads(sensorctl("--json", "action", made["id"], socket=sock).stdout)
    assert [(h["change"], h["reason"]) for h in shown["history"]] == [
        ("create", "same"), ("extend", "longer")
    ]


@pytest.mark.parametrize("book", ["responder", "fallback"])
@pytest.mark.parametrize(
    ("src", "dst", "why"),
    [(DEVICE, DEVICE, f"destination '{DEVICE}' is the device itself"),
     ("224.0.0.1", "198.51.100.4", "source 224.0.0.1: a multicast address"),
     ("255.255.255.255", "198.51.100.4", "source 255.255.255.255: the broadcast address"),
     ("0.0.0.0", "198.51.100.4", "source 0.0.0.0: the unspecified address"),
     ("::", "2001:db8::1", "source ::: the unspecified address"),
     ("ff02::1", "2001:db8::1", "source ff02::1: a multicast address"),
     (DEVICE, "0.0.0.0/0", "destination '0.0.0.0/0': every address; blocking all "
      "of a device's traffic cuts it off, which is a quarantine"),
     (DEVICE, "::/0", "destination '::/0': every address"),
     (DEVICE, "192.0.2.0/24", f"destination '192.0.2.0/24' holds the device "
      f"{DEVICE} itself"),
     (DEVICE, f"::ffff:{DEVICE}", f"destination '::ffff:{DEVICE}' is the device itself"),
     (DEVICE, "::ffff:192.0.2.0/120", "destination '::ffff:192.0.2.0/120' holds the "
      f"device {DEVICE} itself"),
     ("127.0.0.1", "198.51.100.4", "source 127.0.0.1: a loopback address"),
     ("::1", "2001:db8::1", "source ::1: a loopback address"),
     (DEVICE, "127.0.0.1", "destination '127.0.0.1': a loopback address never "
      "crosses the network"),
     (DEVICE, "127.0.0.0/8", "destination '127.0.0.0/8': loopback addresses never "
      "cross the network"),
     (DEVICE, "2001:db8::1", "destination '2001:db8::1' is IPv6 and the device "
      f"{DEVICE} IPv4: that block would match nothing"),
     ("2001:db8::5", "10.0.0.0/8", "destination '10.0.0.0/8' is IPv4 and the device "
      "2001:db8::5 IPv6"),
     ("fe80::5", "fe80::1%eth0", "fe80::1%eth0: an address with a zone (%eth0)")],
    ids=["itself", "multicast", "broadcast", "unspecified", "unspecified6",
         "multicast6", "everything", "everything6", "net-holding-it", "itself-mapped",
         "net-holding-it-mapped", "loopback", "loopback6", "to-loopback",
         "to-loopback-net", "v4-to-v6", "v6-to-v4", "zone"],
)  # fmt: skip
def test_block_that_is_no_block_is_invalid(
    book: str, src: str, dst: str, why: str, request: pytest.FixtureRequest
) -> None:
    """A device blocked from itself, a group or no address as the device, or
    every destination (a quarantine): refused by the server for every
    client, and sensorctl exits 2 with the message; nothing is recorded."""
    fixture = "responder_served" if book == "responder" else "served_state"
    _, sock = request.getfixturevalue(fixture)
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = actions_pb2_grpc.ActionsStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            _block(stub, src, dst)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details().startswith(why), e.value.details()
        listed = stub.ListActions(actions_pb2.ListActionsRequest(), timeout=10)
        assert list(listed.actions) == []
    r = sensorctl("block", src, dst, "--for", "1h", "--reason", "t", socket=sock)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(f"sensorctl: {why}") and r.stderr.count("\n") == 1


@pytest.mark.parametrize("book", ["responder", "fallback"])
def test_extend_never_passes_90_days_from_now(
    book: str, request: pytest.FixtureRequest
) -> None:
    """The 90-day cap is on the expiry, not on each extend: 89d twice is
    INVALID_ARGUMENT (sensorctl exits 2) naming the latest expiry possible."""
    fixture = "responder_served" if book == "responder" else "served_state"
    _, sock = request.getfixturevalue(fixture)
    made = json.loads(sensorctl("--json", "block", DEVICE, "198.51.100.9", "--for",
                                "1h", "--reason", "t", socket=sock).stdout)  # fmt: skip

    def extend() -> Any:
        return sensorctl("--json", "extend", made["id"], "--for", "89d", "--reason",
                         "longer", socket=sock)  # fmt: skip

    first = extend()
    assert first.returncode == 0, first.stderr
    second = extend()
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert second.stderr.startswith(f"sensorctl: action {made['id']} would expire at ")
    assert "an action expires at most 90 days ahead, however often it is extended; " \
        "the latest possible expiry is " in second.stderr  # fmt: skip
    shown = json.loads(sensorctl("--json", "action", made["id"], socket=sock).stdout)
    assert float(shown["expires"]) == pytest.approx(float(json.loads(first.stdout)["expires"]))
