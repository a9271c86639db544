"""Stopping a served replay by signal, at each stage: during --serve-wait,
during the replay, and while serving its result. The socket is always
removed, and the logs written are whole lines."""

from __future__ import annotations

import json
import re
import signal
import struct
from pathlib import Path

import pytest

from tests.api.conftest import OFFICE, Sensord, sensorctl_json, wait_for


def many_flows(path: Path, count: int) -> Path:
    """A capture of ``count`` UDP packets, each its own connection: slow
    enough to replay (seconds) for a signal to land in the middle."""
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    ether = bytes.fromhex("020000000001" "020000000002" "0800")
    for i in range(count):
        udp = struct.pack("!HHHH", 1024 + i % 60000, 53, 12, 0) + b"ping"
        dst = struct.pack("!I", 10 << 24 | i // 60000)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([192, 0, 2, 1]), dst)  # fmt: skip
        frame = ether + ip + udp
        parts.append(
            struct.pack("<IIII", 1_000_000 + i // 1000, i % 1000 * 1000,
                        len(frame), len(frame)) + frame  # fmt: skip
        )
    path.write_bytes(b"".join(parts))
    return path


def stop_with(server: Sensord, signum: int) -> tuple[int, str, str]:
    server.proc.send_signal(signum)
    out, err = server.proc.communicate(timeout=60)
    return server.proc.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_during_serve_wait(tmp_path: Path, signum: int) -> None:
    server = Sensord(OFFICE, tmp_path / "logs", tmp_path / "s.sock", "--serve-wait", "60")

    code, out, err = stop_with(server, signum)

    assert code == 128 + signum, err
    assert "Traceback" not in err, err
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == (
        f"sensord: stopped by {name} before the replay (--serve-wait); nothing replayed"
    )
    assert out == ""
    assert not server.socket.exists()
    assert list((tmp_path / "logs").iterdir()) == []


def test_sigterm_during_the_replay_keeps_whole_logs(tmp_path: Path) -> None:
    capture = many_flows(tmp_path / "flows.pcap", 150_000)
    server = Sensord(capture, tmp_path / "logs", tmp_path / "s.sock")
    wait_for(
        lambda: int(sensorctl_json("status", socket=server.socket)["packets"]) > 0,
        "the replay to start",
    )

    code, out, err = stop_with(server, signal.SIGTERM)

    assert code == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == (
        "sensord: stopped by SIGTERM during the replay; the logs hold the packets "
        "read until then"
    )
    assert not server.socket.exists()
    packets = int(re.match(r"sensord: (\d+) packets", out).group(1))  # type: ignore[union-attr]
    assert 0 < packets < 150_000
    # Every connection seen is written, each a whole line.
    lines = (tmp_path / "logs" / "conn.log").read_text().splitlines()
    assert len(lines) == packets
    assert all(json.loads(line)["proto"] == "udp" for line in lines)


def test_serve_wait_is_not_counted_in_the_summary(tmp_path: Path) -> None:
    server = Sensord(OFFICE, tmp_path / "logs", tmp_path / "s.sock", "--serve-wait", "4")
    server.wait_replayed()

    code, out, err = server.stop()

    assert code == 0, err
    assert not server.socket.exists()
    seconds = float(re.search(r" in ([\d.]+) s ", out).group(1))  # type: ignore[union-attr]
    assert seconds < 4, out
