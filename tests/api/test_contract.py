"""The API's contract beyond single calls: status codes over the wire, the
proto files documented element by element, the stubs generated from them
at build time, and sensorctl's shell completion."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from sensor.api.state import ApiState
from sensor.api.v1 import actions_pb2, actions_pb2_grpc, devices_pb2, devices_pb2_grpc
from sensor.api.v1 import common_pb2, mode_pb2, mode_pb2_grpc
from tests.conftest import ROOT

PROTOS = sorted((ROOT / "proto" / "sensor" / "v1").glob("*.proto"))


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        call()  # type: ignore[operator]
    return e.value.code(), e.value.details()


def test_status_codes_say_what_was_wrong(served_state: tuple[ApiState, Path]) -> None:
    """Unknown device NOT_FOUND, an action cleared twice FAILED_PRECONDITION,
    a bad duration INVALID_ARGUMENT, each with a message naming the value."""
    _, sock = served_state
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        devices = devices_pb2_grpc.DevicesStub(ch)
        code, text = _code(
            lambda: devices.GetDevice(
                devices_pb2.GetDeviceRequest(id="203.0.113.99"), timeout=10
            )
        )
        assert code == grpc.StatusCode.NOT_FOUND
        assert "no device '203.0.113.99'" in text

        actions = actions_pb2_grpc.ActionsStub(ch)
        block = actions.CreateBlock(
            actions_pb2.CreateBlockRequest(
                src="192.0.2.10", dst="198.51.100.9", duration="1h", reason="test"
            ),
            timeout=10,
        )
        assert block.state == actions_pb2.ACTION_STATE_ACTIVE
        code, text = _code(
            lambda: actions.ExtendAction(
                actions_pb2.ExtendActionRequest(id=block.id, duration="2x", reason="r"),
                timeout=10,
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "duration '2x'" in text
        code, text = _code(
            lambda: actions.CreateBlock(
                actions_pb2.CreateBlockRequest(
                    src="192.0.2.10", dst="198.51.100.9", duration="-5m", reason="r"
                ),
                timeout=10,
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "'-5m'" in text
        code, text = _code(
            lambda: actions.ClearAction(
                actions_pb2.ClearActionRequest(id=block.id), timeout=10
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "reason" in text

        actions.ClearAction(
            actions_pb2.ClearActionRequest(id=block.id, reason="done"), timeout=10
        )
        code, text = _code(
            lambda: actions.ClearAction(
                actions_pb2.ClearActionRequest(id=block.id, reason="again"), timeout=10
            )
        )
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert f"action {block.id} is already cleared" in text
        code, _ = _code(
            lambda: actions.ApproveAction(
                actions_pb2.ApproveActionRequest(id=block.id, reason="r"), timeout=10
            )
        )
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        code, text = _code(
            lambda: actions.GetAction(
                actions_pb2.GetActionRequest(id="X404"), timeout=10
            )
        )
        assert code == grpc.StatusCode.NOT_FOUND and "'X404'" in text


def test_mode_per_detection_and_tag(served_state: tuple[ApiState, Path]) -> None:
    _, sock = served_state
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        mode = mode_pb2_grpc.ModeStub(ch)
        set_ = mode_pb2.SetModeRequest
        mode.SetMode(set_(mode=common_pb2.RESPONSE_MODE_OBSERVE, tag="server", reason="r"))
        got = mode.SetMode(
            set_(mode=common_pb2.RESPONSE_MODE_AUTONOMOUS, detection="scan.port", reason="r")
        )
        assert dict(got.tags) == {"server": common_pb2.RESPONSE_MODE_OBSERVE}
        assert dict(got.detections) == {"scan.port": common_pb2.RESPONSE_MODE_AUTONOMOUS}
        code, text = _code(
            lambda: mode.SetMode(
                set_(mode=common_pb2.RESPONSE_MODE_CONFIRM, detection="a", tag="b", reason="r")
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "not both" in text
        mode.SetMode(set_(tag="server", reason="r"))  # unspecified: removed
        assert dict(mode.GetMode(mode_pb2.GetModeRequest()).tags) == {}


# A proto element: a service, rpc, message, enum, field or enum value.
_ELEMENT = re.compile(
    r"^\s*(?:(?:service|message|enum)\s+\w+|rpc\s+\w+"
    r"|(?:repeated\s+|optional\s+)?(?:map<[^>]+>|[\w.]+)\s+\w+\s*=\s*-?\d+)"
)


@pytest.mark.parametrize("proto", PROTOS, ids=lambda p: p.name)
def test_every_proto_element_is_documented(proto: Path) -> None:
    """Each service, rpc, message, enum, field and enum value has its own
    comment: on the lines just above it, or at the end of its line."""
    lines = proto.read_text().splitlines()
    bare = [
        f"{proto.name}:{n + 1}: {line.strip()}"
        for n, line in enumerate(lines)
        if _ELEMENT.match(line)
        and "//" not in line
        and not (n and lines[n - 1].strip().startswith("//"))
    ]
    assert not bare, "undocumented:\n" + "\n".join(bare)


def test_stubs_are_generated_from_the_protos(tmp_path: Path) -> None:
    """The modules in sensor/api/v1 are what grpcio-tools makes of the proto
    files now (a changed proto without a rebuild fails here), and git keeps
    only the protos, not the generated code."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}"]
    args += [f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}"]
    assert protoc.main(args + [str(p) for p in PROTOS]) == 0
    for proto in PROTOS:
        for suffix in ("_pb2.py", "_pb2_grpc.py"):
            name = proto.stem + suffix
            fresh = (tmp_path / "sensor" / "v1" / name).read_text()
            built = (ROOT / "sensor" / "api" / "v1" / name).read_text()
            # Generated imports name the package by its proto path; setup.py
            # rewrites them to sensor.api.v1.
            fresh = fresh.replace("from sensor.v1 import", "from sensor.api.v1 import")
            assert built == fresh, f"sensor/api/v1/{name} is stale: make install"

    ignored = (ROOT / ".gitignore").read_text().split()
    assert "sensor/api/v1/*_pb2*.py" in ignored
    if (ROOT / ".git").exists():
        tracked = subprocess.run(
            ["git", "ls-files", "sensor/api/v1"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert tracked == ["sensor/api/v1/__init__.py"]


def _complete(line: str, tmp_path: Path) -> list[str]:
    """What bash completion offers for ``line`` (argcomplete's protocol)."""
    out = tmp_path / "completions"
    env = dict(os.environ)
    env.update(
        _ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)),
        _ARGCOMPLETE_STDOUT_FILENAME=str(out),
    )  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensorctl"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return [w.strip() for w in out.read_text().split("\v") if w.strip()]


def test_shell_completion(tmp_path: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        r = subprocess.run(
            [sys.executable, "-m", "sensor.cli.sensorctl", "completion", shell],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 0 and "sensorctl" in r.stdout, (shell, r.stderr)
    assert _complete("sensorctl ap", tmp_path) == ["approve"]
    assert {"approve", "actions", "alerts", "block", "mode", "status"} <= set(
        _complete("sensorctl ", tmp_path)
    )
    assert {"autonomous", "confirm", "observe", "unset", "--tag"} <= set(
        _complete("sensorctl mode ", tmp_path)
    )


def test_default_listener_is_the_group_socket(tmp_path: Path) -> None:
    """By default: /run/sensor/sensor.sock, mode 0660, group sensor; and
    sensorctl looks there unless told otherwise."""
    from sensor.config import OPTIONS

    default = {o.name: o.default for o in OPTIONS}
    assert (default["api.listen"], default["api.socket_mode"], default["api.socket_group"]) == (
        "unix:/run/sensor/sensor.sock", "0660", "sensor",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SENSOR_SOCKET"}
    r = subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensorctl", "--timeout", "5", "status"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if not Path("/run/sensor/sensor.sock").exists():
        assert r.returncode == 6 and "/run/sensor/sensor.sock" in r.stderr, r.stderr
    env["SENSOR_SOCKET"] = str(tmp_path / "elsewhere.sock")
    r = subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensorctl", "--timeout", "5", "status"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 6 and "elsewhere.sock" in r.stderr, r.stderr


def test_health_and_reflection_on_the_unix_socket(
    served_state: tuple[ApiState, Path],
) -> None:
    """Through the socket's front (peer credentials) as over TCP: health
    per service, and reflection that lists the services and serves their
    descriptors (what grpcurl needs without the proto files)."""
    from google.protobuf import descriptor_pb2
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    _, sock = served_state
    services = ["sensor.v1.Status", "sensor.v1.Devices", "sensor.v1.Alerts",
                "sensor.v1.Incidents", "sensor.v1.Actions", "sensor.v1.Mode"]  # fmt: skip
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for name in ["", *services]:
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        code, _ = _code(
            lambda: health.Check(
                health_pb2.HealthCheckRequest(service="sensor.v1.Nothing"), timeout=10
            )
        )
        assert code == grpc.StatusCode.NOT_FOUND

        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        asks = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="sensor.v1.Actions"
            ),
        ]
        listed, described = list(stub.ServerReflectionInfo(iter(asks), timeout=10))
    assert set(services) <= {s.name for s in listed.list_services_response.service}
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in described.file_descriptor_response.file_descriptor_proto
    ]
    actions = next(f for f in files if f.name == "sensor/v1/actions.proto")
    methods = {m.name for s in actions.service for m in s.method}
    assert {"ApproveAction", "ClearAction", "ExtendAction", "CreateBlock"} <= methods


def test_replay_served_over_tcp_on_loopback(tmp_path: Path) -> None:
    """``sensord --replay ... --serve HOST:PORT --insecure-loopback`` serves
    the replayed state until stopped; sensorctl reaches it by --address."""
    import json
    import signal
    import socket
    import time

    from tests.api.conftest import OFFICE

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensor.cli.sensord", "--replay", str(OFFICE),
         "--logdir", str(tmp_path), "--serve", address, "--insecure-loopback"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        status: dict[str, object] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            r = subprocess.run(
                [sys.executable, "-m", "sensor.cli.sensorctl", "--address", address,
                 "--insecure", "--timeout", "30", "--json", "status"],
                cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if r.returncode == 0:
                status = json.loads(r.stdout)
                if status["running"] is False:
                    break
            time.sleep(0.2)
        assert status.get("running") is False, (status, proc.poll())
        assert status["packets"] == "2555" and status["source"] == "replay"
        assert proc.poll() is None  # still serving after the replay
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("sensord: 2555 packets"), out


def test_incidents_and_actions_page(served_state: tuple[ApiState, Path]) -> None:
    """Every list pages the same way: page_size, next_page_token, total."""
    from sensor.api.v1 import alerts_pb2, alerts_pb2_grpc, common_pb2
    from tests.api.test_units import incident

    state, sock = served_state
    state.publish([incident(n, "low", []) for n in range(1, 6)])
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        incidents = alerts_pb2_grpc.IncidentsStub(ch)
        seen, token, totals = [], "", set()
        while True:
            got = incidents.ListIncidents(
                alerts_pb2.ListIncidentsRequest(
                    page=common_pb2.PageRequest(page_size=2, page_token=token)
                ),
                timeout=10,
            )
            seen.append([i.id for i in got.incidents])
            totals.add(got.page.total)
            token = got.page.next_page_token
            if not token:
                break
        assert seen == [["I00000001", "I00000002"], ["I00000003", "I00000004"], ["I00000005"]]
        assert totals == {5}

        actions = actions_pb2_grpc.ActionsStub(ch)
        for n in range(3):
            actions.CreateBlock(
                actions_pb2.CreateBlockRequest(
                    src="192.0.2.10", dst=f"198.51.100.{n + 1}", duration="1h", reason="r"
                ),
                timeout=10,
            )
        first = actions.ListActions(
            actions_pb2.ListActionsRequest(page=common_pb2.PageRequest(page_size=2)),
            timeout=10,
        )
        assert (len(first.actions), first.page.total) == (2, 3)
        rest = actions.ListActions(
            actions_pb2.ListActionsRequest(
                page=common_pb2.PageRequest(page_token=first.page.next_page_token)
            ),
            timeout=10,
        )
        assert [a.dst.ip for a in [*first.actions, *rest.actions]] == [
            "198.51.100.1", "198.51.100.2", "198.51.100.3",
        ]  # fmt: skip
        assert rest.page.next_page_token == ""
        code, text = _code(
            lambda: actions.ListActions(
                actions_pb2.ListActionsRequest(page=common_pb2.PageRequest(page_size=5000)),
                timeout=10,
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_size 5000" in text
