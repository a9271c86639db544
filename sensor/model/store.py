"""The models' state in SQLite: saved in transactions, reloaded at start.

Design note. The database (``--state PATH``) runs in WAL mode with
``synchronous=NORMAL``: a transaction that has committed survives the
process being killed at any moment (SIGKILL included; a power cut may
lose the last transactions, never corrupt the file). A checkpoint writes
every device and rarity entry changed since the last one, and the packet
time it reached, in one transaction; so after a crash the state is the
one of the last checkpoint, whole.

Tables: ``meta`` (key, JSON value), ``devices`` (id, identity as JSON,
profile row as a blob, see :mod:`sensor.model.profile`), ``rarity`` (one
row per value, see :mod:`sensor.model.rarity`), and for model versions
``versions`` (version, label, packet time, wall time) with copies of the
three tables in ``v_meta``, ``v_devices`` and ``v_rarity``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

#: 2: top-k slots keep 32-bit fingerprints; derived identity fields are
#: no longer saved. A state of schema 1 is read (its rows are converted as
#: they load, see sensor.model.profile) and marked 2.
SCHEMA_VERSION = 2
_READABLE = (1, 2)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, identity TEXT NOT NULL, profile BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rarity (
    h INTEGER PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL,
    devices INTEGER NOT NULL, first_seen REAL NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    version INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL,
    packet_time REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS v_meta (
    version INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (version, key));
CREATE TABLE IF NOT EXISTS v_devices (
    version INTEGER NOT NULL, id TEXT NOT NULL, identity TEXT NOT NULL,
    profile BLOB NOT NULL, PRIMARY KEY (version, id));
CREATE TABLE IF NOT EXISTS v_rarity (
    version INTEGER NOT NULL, h INTEGER NOT NULL, kind TEXT NOT NULL,
    value TEXT NOT NULL, devices INTEGER NOT NULL, first_seen REAL NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (version, h));
"""


#: The tables of a state database (SQLite adds sqlite_sequence itself).
_OURS = frozenset(
    {"meta", "devices", "rarity", "versions", "v_meta", "v_devices", "v_rarity"}
    | {"sqlite_sequence"}
)


def _rollback(db: sqlite3.Connection) -> None:
    # SQLite rolls back by itself on some failures (a full disk at COMMIT):
    # a second ROLLBACK would fail and hide the first error.
    if db.in_transaction:
        db.execute("ROLLBACK")


def _tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows}


def _hold(path: str) -> int:
    """An exclusive lock on the state file for as long as this process uses
    it: two sensors saving one state would each overwrite the other's
    models. The kernel drops it when the process ends, however it ends."""
    try:
        # SQLite takes an empty file for a new database.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StateError(path, f"cannot open the state database: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StateError(
            path, "in use by another sensor process (a replay or the daemon)"
        ) from None
    return fd


class StateError(OSError):
    """The state database cannot be used: ``filename`` and ``strerror`` say
    which and why (an OSError, so that sensord reports it as it reports an
    unreadable file)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(errno.EINVAL, why, path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


class Store:
    """One SQLite database; ``":memory:"`` for a state that is not kept."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = -1
        if path != ":memory:":
            # SQLite opens a file it cannot write read-only and fails only at
            # the first save; the state must be writable from the start.
            folder = os.path.dirname(os.path.abspath(path))
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise StateError(path, "the state database is not writable")
            if not os.access(folder, os.W_OK):
                raise StateError(path, f"cannot write in {folder}")
            self._lock = _hold(path)
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    def _open(self) -> None:
        path = self.path
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            # Another program's database is left as it is: no journal mode
            # changed, no table of ours added beside its own.
            foreign = sorted(_tables(self.db) - _OURS)
            if foreign:
                self.db.close()
                raise StateError(
                    path,
                    "an SQLite database of something else, not a sensor state "
                    f"(tables: {', '.join(foreign[:5])}"
                    f"{', ...' if len(foreign) > 5 else ''})",
                )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            found = self.meta().get("schema")
        except (sqlite3.Error, ValueError) as e:
            raise StateError(path, f"not a usable state database: {e}") from e
        if found not in _READABLE and found is not None:
            raise StateError(
                path, f"state schema {found}, this sensor reads {SCHEMA_VERSION}"
            )
        if found != SCHEMA_VERSION:
            self._set_meta({"schema": SCHEMA_VERSION})

    def _release(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)  # closing the descriptor drops the lock
            self._lock = -1

    @property
    def persistent(self) -> bool:
        """True when the state is kept in a file."""
        return self.path != ":memory:"

    def close(self) -> None:
        """Close the database (the WAL is folded into the file) and let
        another process have it."""
        self.db.close()
        self._release()

    # --- reading ------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """Every ``meta`` value, decoded."""
        rows = self.db.execute("SELECT key, value FROM meta")
        return {k: json.loads(v) for k, v in rows}

    def devices(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        """(identity, profile row) of every saved device, in slot order."""
        rows = self.db.execute("SELECT identity, profile FROM devices")
        loaded = [(json.loads(i), bytes(p)) for i, p in rows]
        loaded.sort(key=lambda d: d[0]["slot"])
        yield from loaded

    def rarity(self) -> Iterator[tuple[int, str, str, int, float, int]]:
        """Every rarity entry, in insertion order."""
        yield from self.db.execute(
            "SELECT h, kind, value, devices, first_seen, seq FROM rarity ORDER BY seq"
        )

    # --- writing ------------------------------------------------------------

    def save(
        self,
        meta: dict[str, Any],
        devices: list[tuple[str, dict[str, Any], bytes]],
        rarity: list[tuple[int, str, str, int, float, int]],
        dropped: list[int],
    ) -> None:
        """Write changes in one transaction: all of them, or none."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._set_meta(meta)
            db.executemany(
                "INSERT OR REPLACE INTO devices (id, identity, profile) VALUES (?, ?, ?)",
                [(i, json.dumps(d, sort_keys=True), p) for i, d, p in devices],
            )
            db.executemany(
                "INSERT OR REPLACE INTO rarity (h, kind, value, devices, first_seen, seq)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rarity,
            )
            db.executemany("DELETE FROM rarity WHERE h = ?", [(h,) for h in dropped])
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def _set_meta(self, meta: dict[str, Any]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(k, json.dumps(v, sort_keys=True)) for k, v in meta.items()],
        )

    # --- versions -----------------------------------------------------------

    def snapshot(self, label: str, packet_time: float) -> int:
        """Copy the saved state as a new version; return its number."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "INSERT INTO versions (label, packet_time, created) VALUES (?, ?, ?)",
                (label, packet_time, time.time()),
            )
            v = int(cur.lastrowid or 0)
            db.execute("INSERT INTO v_meta SELECT ?, key, value FROM meta", (v,))
            db.execute(
                "INSERT INTO v_devices SELECT ?, id, identity, profile FROM devices",
                (v,),
            )
            db.execute(
                "INSERT INTO v_rarity SELECT ?, h, kind, value, devices, first_seen, seq"
                " FROM rarity",
                (v,),
            )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return v

    def versions(self) -> list[dict[str, Any]]:
        """Every saved version: number, label, packet time, wall time."""
        rows = self.db.execute(
            "SELECT version, label, packet_time, created FROM versions ORDER BY version"
        )
        return [
            {"version": v, "label": lbl, "packet_time": pt, "created": c}
            for v, lbl, pt, c in rows
        ]

    def rollback(self, version: int) -> None:
        """Make version ``version`` the saved state (later versions stay)."""
        db = self.db
        if not db.execute(
            "SELECT 1 FROM versions WHERE version = ?", (version,)
        ).fetchone():
            raise StateError(self.path, f"no model version {version}")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM meta")
            db.execute("DELETE FROM devices")
            db.execute("DELETE FROM rarity")
            db.execute(
                "INSERT INTO meta SELECT key, value FROM v_meta WHERE version = ?",
                (version,),
            )
            db.execute(
                "INSERT INTO devices SELECT id, identity, profile FROM v_devices"
                " WHERE version = ?",
                (version,),
            )
            db.execute(
                "INSERT INTO rarity SELECT h, kind, value, devices, first_seen, seq"
                " FROM v_rarity WHERE version = ?",
                (version,),
            )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def fold(self) -> None:
        """Fold the write-ahead log into the database file (at the end)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity(self) -> str:
        """``PRAGMA integrity_check``: "ok" for a sound database."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])
