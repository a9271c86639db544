"""sensord --replay as an operator runs it: output, summary, bad input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.replay import read_log, sensord

DEMO = ROOT / "pcaps" / "office" / "office.pcap"
WIKIPEDIA = "zeek/traces/wikipedia.pcap"

SUMMARY = re.compile(
    r"^sensord: (\d+) packets, (\d+) bytes, (\d+) connections, (\d+) anomalies "
    r"in [\d.]+ s \([\d,]+ packets/s\)$"
)


def env_for(impl: str) -> dict[str, str]:
    env = dict(os.environ)
    if impl == "python":
        env["SENSOR_NO_EXTENSIONS"] = "1"
    return env


def test_replay_writes_conn_log_and_summary(pcaps: Path, tmp_path: Path, impl: str) -> None:
    result = sensord("--replay", str(pcaps / WIKIPEDIA), "--logdir", str(tmp_path), env=env_for(impl))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    match = SUMMARY.match(lines[0])
    assert match, lines[0]
    packets, _, conns, _ = (int(g) for g in match.groups())
    assert packets == 136  # capinfos -c
    records = read_log(tmp_path / "conn.log")
    assert conns == len(records) > 0
    assert all(r["uid"].startswith("C") for r in records)


def test_summary_counts_every_weird_record(pcaps: Path, tmp_path: Path) -> None:
    # The HTTP analyzer's weirds (bad_HTTP_request ...) were left out of
    # the summary's anomalies, which counted the decoder's alone.
    result = sensord("--replay", str(pcaps / "zeek/traces/http__methods.pcap"),
                     "--logdir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    match = SUMMARY.match(result.stdout.strip())
    assert match, result.stdout
    weirds = read_log(tmp_path / "weird.log")
    assert int(match.group(4)) == len(weirds) == 24
    assert {w["name"] for w in weirds} == {"bad_HTTP_request", "missing_HTTP_uri"}


def test_two_files_merge_in_time_order(pcaps: Path, tmp_path: Path) -> None:
    a = pcaps / "zeek/traces/tcp__syn-then-rst.pcap"
    b = pcaps / WIKIPEDIA
    result = sensord("--replay", str(b), str(a), "--logdir", str(tmp_path))

    assert result.returncode == 0, result.stderr
    ts = [r["ts"] for r in read_log(tmp_path / "conn.log")]
    alone_a = sensord("--replay", str(a), "--logdir", str(tmp_path / "a"))
    alone_b = sensord("--replay", str(b), "--logdir", str(tmp_path / "b"))
    assert alone_a.returncode == alone_b.returncode == 0
    expected = len(read_log(tmp_path / "a" / "conn.log")) + len(read_log(tmp_path / "b" / "conn.log"))
    assert len(ts) == expected


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "empty"),
        (b"<html>not a capture</html>\n" * 10, "not a capture"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
    ],
    ids=["empty", "garbage", "short-header"],
)
def test_unreadable_file_gives_one_line_and_fails(tmp_path: Path, content: bytes, problem: str) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)

    result = sensord("--replay", str(bad), "--logdir", str(tmp_path / "logs"))

    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    assert "bad.pcap" in errors[0] and problem in errors[0].lower()
    assert "Traceback" not in result.stderr


def test_directory_and_missing_file(tmp_path: Path) -> None:
    result = sensord("--replay", str(tmp_path), str(tmp_path / "nope.pcap"), "--logdir", str(tmp_path / "logs"))

    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2, result.stderr
    assert str(tmp_path) in errors[0] and "directory" in errors[0]
    assert "nope.pcap" in errors[1]


def test_truncated_capture_keeps_what_was_read(pcaps: Path, tmp_path: Path) -> None:
    whole = (pcaps / WIKIPEDIA).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) // 2 + 7])

    result = sensord("--replay", str(cut), "--logdir", str(tmp_path / "logs"))

    assert result.returncode == 0, result.stderr
    assert "cut.pcap" in result.stderr and "truncated" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(read_log(tmp_path / "logs" / "conn.log")) > 0


def test_one_bad_file_among_good_ones_still_replays(pcaps: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"garbage" * 100)

    result = sensord("--replay", str(bad), str(pcaps / WIKIPEDIA), "--logdir", str(tmp_path / "logs"))

    assert result.returncode == 0
    assert "bad.pcap" in result.stderr
    assert SUMMARY.match(result.stdout.strip())


def test_wrong_options_give_usage_error(tmp_path: Path) -> None:
    result = sensord("--logdir", str(tmp_path))
    assert result.returncode == 2
    assert "--replay" in result.stderr


def test_empty_state_path_is_a_wrong_option(pcaps: Path, tmp_path: Path) -> None:
    # It replayed and kept nothing, without a word, where a path was meant.
    result = sensord("--replay", str(pcaps / WIKIPEDIA), "--logdir", str(tmp_path / "logs"),
                     "--state", "")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sensord: error: argument --state: an empty path; give the file's path"
    )
    assert not (tmp_path / "logs").exists()


@pytest.mark.skipif(not DEMO.exists(), reason="the bundled example pcaps/office/office.pcap is not generated yet")
def test_demo_capture_shows_a_port_scan(tmp_path: Path) -> None:
    result = sensord("--replay", str(DEMO), "--logdir", str(tmp_path))

    assert result.returncode == 0, result.stderr
    records = read_log(tmp_path / "conn.log")
    rejected = [r for r in records if r["conn_state"] == "REJ"]
    scanners = {r["id.orig_h"] for r in rejected}
    assert len(rejected) >= 100
    assert len(scanners) == 1
