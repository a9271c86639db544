"""Rotating log writer: no record lost, split or duplicated; names; pruning."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sensor.lockfile import InUse
from sensor.output.rotate import RotatingLogWriter
from sensor.output.zeeklog import LogWriter


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def all_records(logdir: Path, name: str) -> list[dict[str, object]]:
    out = []
    for path in sorted(logdir.glob(f"{name}*.log")):
        text = path.read_text()
        assert text == "" or text.endswith("\n"), path
        out += [json.loads(line) for line in text.splitlines()]
    return sorted(out, key=lambda r: int(r["uid"][1:]))  # type: ignore[call-overload]


def record(i: int) -> dict[str, object]:
    return {
        "ts": 1.0 + i,
        "uid": f"C{i}",
        "id.orig_h": "192.0.2.1",
        "proto": "tcp",
        "history": "ShADadFf",
    }


def test_size_rotation_keeps_every_record_whole(tmp_path: Path) -> None:
    clock = Clock()
    with RotatingLogWriter(tmp_path, rotate_bytes=1000, clock=clock) as w:
        for i in range(200):
            clock.now += 0.01
            w.write("conn", record(i))
        rotations = w.rotations

    files = list(tmp_path.glob("conn*.log"))
    assert rotations == len(files) - 1 >= 10
    assert [r["uid"] for r in all_records(tmp_path, "conn")] == [
        f"C{i}" for i in range(200)
    ]
    for path in files:
        # A file is closed after the record that reached the limit.
        assert path.stat().st_size < 1000 + 200


def test_time_rotation_names_files_by_their_span(tmp_path: Path) -> None:
    clock = Clock()  # 2023-11-14T22:13:20Z
    w = RotatingLogWriter(tmp_path, rotate_seconds=3600, clock=clock)
    w.write("conn", record(0))
    clock.now += 1800
    w.write("conn", record(1))
    clock.now += 1800
    w.tick()  # an hour since the file opened: rotated even with nothing to write
    w.write("conn", record(2))
    w.close()

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["conn.20231114T221320-20231114T224320.log", "conn.log"]
    assert len(all_records(tmp_path, "conn")) == 3


def test_earlier_run_log_is_kept_not_truncated(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text(json.dumps(record(0)) + "\n")
    with RotatingLogWriter(tmp_path) as w:
        w.write("conn", record(1))
    assert len(list(tmp_path.glob("conn.*.log"))) == 1
    assert [r["uid"] for r in all_records(tmp_path, "conn")] == ["C0", "C1"]


def test_keep_prunes_oldest(tmp_path: Path) -> None:
    clock = Clock()
    with RotatingLogWriter(tmp_path, rotate_bytes=1, keep=3, clock=clock) as w:
        for i in range(10):
            clock.now += 1
            w.write("conn", record(i))
    rotated = sorted(tmp_path.glob("conn.*.log"))
    assert len(rotated) == 3
    assert [r["uid"] for r in all_records(tmp_path, "conn")] == ["C6", "C7", "C8", "C9"]


def test_log_deleted_by_hand_is_rotated_without_error(tmp_path: Path) -> None:
    # An operator (or a clean-up script) deleted conn.log: its rotation has
    # nothing to rename and must not fail, and the next record opens anew.
    clock = Clock()
    w = RotatingLogWriter(tmp_path, rotate_seconds=1, clock=clock)
    w.write("conn", record(0))
    (tmp_path / "conn.log").unlink()
    clock.now += 2
    w.tick()
    w.write("conn", record(1))
    w.close()

    assert [r["uid"] for r in all_records(tmp_path, "conn")] == ["C1"]
    assert w.rotations == 1


def test_log_deleted_by_hand_is_reopened(tmp_path: Path) -> None:
    # Without rotation by time, the records after the deletion would go to
    # the deleted file for as long as the daemon runs.
    clock = Clock()
    w = RotatingLogWriter(tmp_path, clock=clock)
    w.write("conn", record(0))
    w.flush()
    (tmp_path / "conn.log").unlink()
    w.tick()
    w.write("conn", record(1))
    w.close()

    assert [r["uid"] for r in all_records(tmp_path, "conn")] == ["C1"]


class FullFile:
    """A log file on a full file system."""

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        raise OSError(28, "No space left on device")


def test_write_failure_names_the_file(tmp_path: Path) -> None:
    w = RotatingLogWriter(tmp_path)
    w.write("conn", record(0))
    w._files["conn"].file = FullFile()  # type: ignore[assignment]

    for attempt in (lambda: w.write("conn", record(1)), w.flush):
        try:
            attempt()
        except OSError as e:
            assert (e.errno, e.strerror) == (28, "No space left on device")
            assert e.filename == str(tmp_path / "conn.log")
        else:
            raise AssertionError("no error")
    w.abandon()  # closes what it can, raises nothing


def test_a_second_writer_in_the_directory_is_refused(tmp_path: Path) -> None:
    # It would rotate the first one's conn.log away while the first appends.
    first = RotatingLogWriter(tmp_path)
    first.write("conn", record(1))
    first.flush()
    for second in (RotatingLogWriter, LogWriter):
        with pytest.raises(InUse) as refused:
            second(tmp_path)
        assert (refused.value.filename, refused.value.pid) == (
            str(tmp_path),
            os.getpid(),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sensord.lock", "conn.log"]

    first.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conn.log"]
    with RotatingLogWriter(tmp_path) as again:
        again.write("conn", record(2))
    assert len(all_records(tmp_path, "conn")) == 2
