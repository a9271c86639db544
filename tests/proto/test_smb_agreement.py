"""smb_mapping and smb_files against Zeek on every shared capture with them.

Records are paired by the connection's 4-tuple (uids differ) and, within
it, by time order; a pair agrees when every field Zeek wrote, uid aside,
is equal (times to the microsecond: Zeek's FILETIME arithmetic rounds
differently in the last digits).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PCAPS
from tests.proto.smb_harness import replay

ZEEK_LOGS = PCAPS / "zeek-logs"
_TUPLE = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")


def _key(rec: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(rec[k] for k in _TUPLE)


def _same(field: str, a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and abs(a - b) < 1e-5
        )
    return bool(a == b)


def score(
    zeek: list[dict[str, Any]], ours: list[dict[str, Any]]
) -> tuple[int, int, int]:
    """(Zeek's records, ours, pairs equal in every field Zeek wrote)."""
    mine: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for rec in ours:
        mine[_key(rec)].append(rec)
    equal = 0
    theirs: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for rec in zeek:
        theirs[_key(rec)].append(rec)
    for key, recs in theirs.items():
        pool = list(mine.get(key, []))
        for z in sorted(recs, key=lambda r: r["ts"]):
            for i, o in enumerate(pool):
                fields = [f for f in z if f != "uid"]
                if all(f in o and _same(f, z[f], o[f]) for f in fields) and set(o) - {
                    "uid"
                } <= set(z):
                    equal += 1
                    del pool[i]
                    break
    return len(zeek), len(ours), equal


def captures() -> list[Path]:
    """Captures for which Zeek wrote smb_mapping.log or smb_files.log."""
    found = {
        p.parent
        for log in ("smb_mapping", "smb_files")
        for p in ZEEK_LOGS.rglob(f"{log}.log")
    }
    return sorted(found)


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def figures() -> dict[str, dict[str, tuple[int, int, int]]]:
    """Per capture and log: (Zeek's records, ours, equal)."""
    out: dict[str, dict[str, tuple[int, int, int]]] = {}
    for zdir in captures():
        rel = zdir.relative_to(ZEEK_LOGS)
        got = replay(PCAPS / rel)
        out[str(rel)] = {
            log: score(_load(zdir / f"{log}.log"), got[log]) for log in got
        }
    return out


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, tuple[int, int, int]]]:
    return figures()


#: Share of Zeek's records we reproduce exactly today, per log; must not drop.
MIN_SHARE = {"smb_mapping": 1.0, "smb_files": 1.0}


@pytest.mark.parametrize("log", sorted(MIN_SHARE))
def test_agreement(
    results: dict[str, dict[str, tuple[int, int, int]]], log: str
) -> None:
    zeek = sum(r[log][0] for r in results.values())
    equal = sum(r[log][2] for r in results.values())
    assert zeek > 0
    assert equal / zeek >= MIN_SHARE[log], f"{log}: {equal}/{zeek} equal"


def test_lateral_movement_shares_and_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """psexec over SMB2: ADMIN$ and IPC$ from the attacker, its pipes opened.

    In the pcapattack capture svcctl runs over TCP (port 49688), so the
    pipes are PsExec's own; in 401trg's it runs over the svcctl pipe.
    """
    from sensor.proto.analyzers import smb

    pipes: list[tuple[str, str, str]] = []

    class Sink:
        def data(self, is_orig: bool, ts: float, data: bytes) -> None:
            pass

    def factory(conn: Any, emit: Any, name: str, auth: Any = None) -> Sink:
        pipes.append((conn.orig_h, conn.resp_h, name))
        return Sink()

    monkeypatch.setattr(smb, "pipe_factory", lambda: factory)
    got = replay(
        PCAPS / "attacks/lateral/pcapattack_LM_psexec_smb_dcerpc_epm_svcctl.pcapng"
    )
    shares = [
        (r["id.orig_h"], r["id.resp_h"], r["path"], r["share_type"])
        for r in got["smb_mapping"]
    ]
    assert shares == [
        ("172.16.66.1", "172.16.66.36", "\\\\172.16.66.36\\ADMIN$", "DISK"),
        ("172.16.66.1", "172.16.66.36", "\\\\172.16.66.36\\IPC$", "PIPE"),
    ]
    assert ("172.16.66.1", "172.16.66.36", "PSEXESVC") in pipes
    assert len(pipes) == 4

    pipes.clear()
    got = replay(PCAPS / "attacks/lateral/401trg_20171220_smb_psexec_add_user.pcap")
    assert [r["path"] for r in got["smb_mapping"]] == [
        "\\\\dc1\\ADMIN$",
        "\\\\dc1\\IPC$",
        "\\\\dc1\\ADMIN$",
    ]
    assert ("192.168.10.31", "192.168.10.10", "svcctl") in pipes


if __name__ == "__main__":
    tot: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for name, logs in figures().items():
        for log, (z, o, e) in logs.items():
            print(f"{log:12} zeek={z:4} ours={o:4} equal={e:4}  {name}")
            for i, v in enumerate((z, o, e)):
                tot[log][i] += v
    print(dict(tot))


def test_no_records_beyond_zeeks(
    results: dict[str, dict[str, tuple[int, int, int]]],
) -> None:
    """We write no record Zeek lacks (the xscan capture's second open of a
    share root, identical in name, size and times, is left out as Zeek's
    SMB::write_file_log leaves it out)."""
    for log in MIN_SHARE:
        zeek = sum(r[log][0] for r in results.values() if log in r)
        ours = sum(r[log][1] for r in results.values() if log in r)
        assert ours == zeek, f"{log}: {ours} of ours, {zeek} of Zeek's"
