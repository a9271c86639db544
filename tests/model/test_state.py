"""The state file: A then B equals A and B in one run; SIGKILL corrupts nothing.

Both run sensord as an operator would, as a subprocess with ``--state``.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.model import Models
from sensor.pipeline import Pipeline
from tests.conftest import PCAPS, ROOT
from tests.replay import sensord

LAB = sorted((PCAPS / "benign").glob("winlab_*.pcapng"))
#: Several shared captures, about 40,000 packets over years of packet time.
MANY = [
    *LAB,
    PCAPS / "attacks/bruteforce/elcabezzonn_aug19_smb_bruteforce.pcapng",
    PCAPS / "attacks/c2/elcabezzonn_empire_c2.pcapng",
    PCAPS / "attacks/c2/slips_test-cc-capture-1_periodic2s.pcap",
    *sorted((PCAPS / "benign/apps").glob("*.pcap")),
    *sorted((PCAPS / "benign").glob("*.pcap")),
]
CHECKPOINT = re.compile(r"checkpoint at packet time ([0-9.]+)")


def test_a_then_b_equals_a_and_b_in_one_run(tmp_path: Path) -> None:
    a, b = [str(LAB[0])], [str(p) for p in LAB[1:]]
    assert LAB[0].name.startswith("winlab_2016-08-15") and len(b) == 2
    one = sensord(
        "--replay", *a, *b, "--logdir", str(tmp_path / "ab"), "--progress", "never"
    )
    assert one.returncode == 0, one.stderr
    state = str(tmp_path / "state.db")
    for part, logdir in ((a, "a"), (b, "b")):
        run = sensord(
            "--replay", *part, "--logdir", str(tmp_path / logdir), "--state", state,
            "--progress", "never",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr

    together = (tmp_path / "ab" / "devices.log").read_text()
    assert together.count("\n") == 7
    assert (tmp_path / "b" / "devices.log").read_text() == together
    # The first run alone knew fewer: the state carried A into B.
    assert (tmp_path / "a" / "devices.log").read_text() != together


def test_sigkill_at_any_moment_loses_at_most_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    args = [sys.executable, "-m", "sensor.cli.sensord", "--replay", *map(str, MANY)]
    args += ["--state", str(state), "--progress", "never", "-v"]
    # Kill at three moments, each run restarting on the state the last left.
    for round_, kill_after in enumerate((15, 45, 90)):
        logdir = tmp_path / f"run{round_}"
        proc = subprocess.Popen(
            [*args, "--logdir", str(logdir)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        saved: list[float] = []
        for line in proc.stderr:
            if m := CHECKPOINT.search(line):
                saved.append(float(m.group(1)))
                if len(saved) == kill_after:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.stderr.close()
        assert proc.wait(timeout=60) == -signal.SIGKILL, (
            "the replay ended before the kill"
        )
        assert not (logdir / "devices.log").exists()  # killed mid-replay

        # The file is sound and holds at least the last checkpoint reported.
        db = sqlite3.connect(state)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (packet_time,) = db.execute(
            "SELECT value FROM meta WHERE key = 'packet_time'"
        ).fetchone()
        (rows,) = db.execute("SELECT count(*) FROM devices").fetchone()
        db.close()
        assert json.loads(packet_time) >= saved[-1]
        models = Models(str(state))
        assert models.now >= saved[-1] and len(models.ids.devices) == rows
        models.close()
    assert rows > 0

    # A last run on the same state finishes normally.
    done = sensord(*args[3:], "--logdir", str(tmp_path / "last"))
    assert done.returncode == 0, done.stderr
    devices = (tmp_path / "last" / "devices.log").read_text().splitlines()
    assert any(json.loads(d).get("name") == "WIN-CNNEQ7OCUQS" for d in devices)


def test_a_crash_at_any_moment_loses_less_than_a_checkpoint_interval(
    tmp_path: Path,
) -> None:
    # What the file holds after every record of a replay is what a kill at
    # that moment would leave: a second connection reads it (WAL readers see
    # committed transactions only). It must be within one checkpoint
    # interval (10 s) of the packet time the models had reached.
    state = tmp_path / "state.db"
    models = Models(str(state))
    pipeline = Pipeline(models=models)
    engine = Engine()
    reader = sqlite3.connect(state)
    lags = []
    for batch in merge([CaptureFile(str(p)) for p in LAB]):
        for record in engine.process(batch):
            pipeline.feed([record])
            row = reader.execute("SELECT value FROM meta WHERE key = 'packet_time'")
            saved = json.loads(row.fetchone()[0])
            assert saved <= models.now
            lags.append(models.now - saved)
    reader.close()
    assert len(lags) > 1000 and max(lags) < models.checkpoint_seconds
    pipeline.feed(engine.flush())
    pipeline.finish()
    models.close()


def test_a_file_that_is_no_state_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_text("not a database\n" * 100)
    run = sensord(
        "--replay", str(LAB[0]), "--state", str(bad), "--logdir", str(tmp_path / "logs"),
        "--progress", "never",
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"sensord: {bad}: not a usable state database: file is not a database"
    ]


def test_another_programs_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE foo (x INTEGER)")
    db.execute("INSERT INTO foo VALUES (1)")
    db.commit()
    db.close()
    before = other.read_bytes()
    run = sensord(
        "--replay", str(LAB[0]), "--state", str(other), "--logdir", str(tmp_path / "logs"),
        "--progress", "never",
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"sensord: {other}: an SQLite database of something else, "
        "not a sensor state (tables: foo)"
    ]
    assert other.read_bytes() == before


def test_a_state_in_use_by_another_process_is_refused(tmp_path: Path) -> None:
    # Two sensors saving one state would each overwrite the other's models.
    state = tmp_path / "state.db"
    holder = Models(str(state))
    run = sensord(
        "--replay", str(LAB[0]), "--state", str(state), "--logdir", str(tmp_path / "logs"),
        "--progress", "never",
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"sensord: {state}: in use by another sensor process (a replay or the daemon)"
    ]
    holder.close()
    again = sensord(
        "--replay", str(LAB[0]), "--state", str(state), "--logdir", str(tmp_path / "logs"),
        "--progress", "never",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr


def test_a_failed_commit_reports_its_own_error(tmp_path: Path) -> None:
    """SQLite rolls back by itself when COMMIT fails on a full disk; the
    error that reaches the log is the disk's, not 'cannot rollback'."""
    import pytest

    from sensor.model.store import Store

    class FullDisk:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __getattr__(self, name: str) -> object:
            return getattr(self.db, name)

        def execute(self, sql: str, *args: object) -> object:
            if sql == "COMMIT":
                self.db.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

    store = Store(str(tmp_path / "state.db"))
    store.db = FullDisk(store.db)  # type: ignore[assignment]
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        store.save({"now": 1.0}, [], [], [])
    store.db = store.db.db  # type: ignore[attr-defined]
    assert store.meta().get("now") is None  # nothing half-written
    store.close()
