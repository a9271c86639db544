"""Following alerts: live while a replay runs, and resuming without loss
or repeat after a reconnect."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from sensor.api.server import ApiServer
from sensor.api.state import ApiState
from tests.api.conftest import (
    OFFICE,
    Sensord,
    alert,
    follower,
    sensorctl_json,
    wait_for,
)


class Lines:
    """Collects a process's stdout lines in a thread as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[dict[str, object]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def ids(self) -> list[str]:
        return [str(a["id"]) for a in self.lines]

    def finish(self) -> int:
        code = self.proc.wait(timeout=30)
        self.thread.join(timeout=10)
        return code


def test_follow_receives_alerts_live_during_replay(tmp_path: Path) -> None:
    # --serve-wait holds the replay until a client follows, so everything
    # the follower gets was raised after it connected: live, not replayed.
    server = Sensord(
        OFFICE, tmp_path / "logs", tmp_path / "s.sock", "--serve-wait", "60"
    )
    try:
        live = Lines(follower(socket=server.socket))
        server.wait_replayed()
        final = sensorctl_json("alerts", socket=server.socket)
        assert any(a["detection"] == "scan.port" for a in final)
        wait_for(lambda: len(live.lines) >= len(final), f"{len(final)} followed alerts")
        live.proc.terminate()
        live.finish()
        assert live.ids() == [a["id"] for a in final]

        # A client that saw only the first alert asks for what came after.
        first = final[0]["id"]
        rest = sensorctl_json("alerts", "--since", first, socket=server.socket)
        assert [a["id"] for a in rest] == [a["id"] for a in final[1:]]
    finally:
        code, _, err = server.stop()
    assert code == 0, err


def test_reconnect_with_last_id_gets_exactly_the_missed(
    served_state: tuple[ApiState, Path],
) -> None:
    state, sock = served_state
    state.publish([alert(n) for n in range(1, 51)])

    # A follower reads the first 20 and goes away.
    first = Lines(follower("--all", "--limit", "20", socket=sock))
    assert first.finish() == 0
    assert first.ids() == [f"A{n:08d}" for n in range(1, 21)]

    # Alerts keep coming while it is away, and while it reconnects.
    state.publish([alert(n) for n in range(51, 101)])
    again = Lines(follower("--since", first.ids()[-1], "--limit", "280", socket=sock))
    publisher = threading.Thread(
        target=lambda: [state.publish([alert(n)]) for n in range(101, 301)], daemon=True
    )
    publisher.start()
    assert again.finish() == 0, again.proc.stderr.read() if again.proc.stderr else ""
    publisher.join()
    assert again.ids() == [f"A{n:08d}" for n in range(21, 301)]


def test_follow_filters_and_unknown_id(served_state: tuple[ApiState, Path]) -> None:
    state, sock = served_state
    state.publish(
        [alert(n, "scan.port" if n % 2 else "c2.beacon") for n in range(1, 11)]
    )
    beacons = Lines(
        follower("--all", "--detection", "c2.beacon", "--limit", "5", socket=sock)
    )
    assert beacons.finish() == 0
    assert beacons.ids() == [f"A{n:08d}" for n in (2, 4, 6, 8, 10)]

    unknown = follower("--since", "A99999999", socket=sock)
    _, err = unknown.communicate(timeout=30)
    assert unknown.returncode == 3
    assert "no alert 'A99999999'" in err


def test_list_pages_through_everything(served_state: tuple[ApiState, Path]) -> None:
    state, sock = served_state
    state.publish([alert(n) for n in range(1, 1201)])  # more than one page of 500
    listed = sensorctl_json("alerts", socket=sock)
    assert [a["id"] for a in listed] == [f"A{n:08d}" for n in range(1, 1201)]
    after = sensorctl_json("alerts", "--since", "A00001190", socket=sock)
    assert [a["id"] for a in after] == [f"A{n:08d}" for n in range(1191, 1201)]


@pytest.mark.parametrize("alerts", [0, 1])
def test_follow_says_the_sensor_stopped_while_following(
    sockdir: Path, alerts: int
) -> None:
    """The daemon stops under a follower (that got an alert or none yet):
    not "cannot reach the sensor" (it was reached), but that it stopped;
    exit 6 as for unreachable."""
    state = ApiState("live")
    path = sockdir / "api.sock"
    server = ApiServer(state, f"unix:{path}", socket_group="")
    server.start()
    try:
        state.feed([alert(n + 1) for n in range(alerts)])
        live = follower("--all", socket=path)
        wait_for(lambda: state.followers == 1, "the follower")
    finally:
        server.stop()
    out, err = live.communicate(timeout=30)
    assert len(out.splitlines()) == alerts
    assert live.returncode == 6, err
    assert err == (
        f"sensorctl: unix:{path}: the sensor stopped (or the connection was lost) "
        "while following\n"
    )


def test_follow_streams_past_the_limit_are_refused_and_calls_still_answer(
    served_state: tuple[ApiState, Path],
) -> None:
    """Each follow holds a server thread: past the limit one more is
    RESOURCE_EXHAUSTED (exit 5) at once, and ordinary calls still answer;
    a follow that ends gives its slot back."""
    state, sock = served_state
    state.max_following = 2
    held = [follower(socket=sock) for _ in range(2)]
    try:
        wait_for(lambda: state.following == 2, what="two follow streams")
        extra = follower(socket=sock)
        _, err = extra.communicate(timeout=30)
        assert extra.returncode == 5, err
        assert "2 follow streams are open, the most this server takes" in err
        assert sensorctl_json("status", socket=sock)["alerts"] == "0"  # int64 in JSON
    finally:
        for p in held:
            p.terminate()
            p.wait(timeout=30)
    wait_for(lambda: state.following == 0, what="the streams to end")
