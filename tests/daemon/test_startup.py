"""Every start-up failure is one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import env_for


def run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    cmd = [*prefix, sys.executable, "-m", "sensor.cli.sensord", *args]
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=env_for("compiled"),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_missing_interface(tmp_path: Path) -> None:
    result = run("--interface", "nosuch0", "--logdir", str(tmp_path))
    assert result.returncode == 1
    assert one_line(result) == "sensord: nosuch0: no such network interface"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '[capture]\ninterface = "lo"\nworkers = "two"\n',
            "capture.workers = 'two': must be int, not str",
        ),
        (
            '[capture]\ninterface = "lo"\nworkers = -1\n',
            "capture.workers = -1: must be between 0 and 256",
        ),
        (
            '[capture]\ninterface = "lo"\nblock_size = 1000\n',
            "capture.block_size = 1000: must be a power-of-two multiple of the page size",
        ),
        (
            '[capture]\ninterface = "lo"\nblocks = 100000\n',
            "capture.blocks = 100000: must be between 2 and 65536",
        ),
        (
            '[capture]\ninterface = "lo"\nworkers = 256\nblocks = 65536\n',
            "capture.blocks = 65536: the capture rings would take",
        ),
        (
            '[capture]\ninterface = "lo"\nfanciness = 3\n',
            "capture.fanciness: unknown option",
        ),
        (
            "[health]\nmax_drop_ratio = 0.5\n",
            "capture.interface = '': an interface to capture from is needed",
        ),
        ("[capture\n", "not valid TOML"),
    ],
    ids=["type", "range", "block-size", "blocks", "ring-memory", "unknown",
         "no-interface", "syntax"],  # fmt: skip
)
def test_bad_configuration(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "sensor.toml"
    path.write_text(text)
    result = run("--config", str(path))
    assert result.returncode == 78
    assert expected in one_line(result)


def test_unreadable_configuration(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 78
    assert (
        one_line(result)
        == f"sensord: {tmp_path / 'absent.toml'}: cannot read: No such file or directory"
    )


def test_bad_filter_names_the_option(netns_ok: None, tmp_path: Path) -> None:
    path = tmp_path / "sensor.toml"
    path.write_text('[capture]\ninterface = "lo"\nbpf_filter = "tcp port eighty"\n')
    result = run(
        "--config", str(path), "--logdir", str(tmp_path), prefix=("unshare", "--net")
    )
    assert result.returncode == 78
    assert (
        one_line(result)
        == "sensord: capture.bpf_filter = 'tcp port eighty': unknown port 'eighty'"
    )


@pytest.mark.parametrize(
    "dropped, needed, status",
    [("-net_raw,-net_admin", "CAP_NET_RAW", 77), ("-net_admin", "CAP_NET_ADMIN", 77)],
    ids=["no-net-raw", "no-net-admin"],
)
def test_without_privileges(
    netns_ok: None, tmp_path: Path, dropped: str, needed: str, status: int
) -> None:
    # Root without the capability, in a namespace of its own: what an
    # unprivileged user or a unit without AmbientCapabilities= meets.
    prefix = (
        "unshare",
        "--net",
        "setpriv",
        "--bounding-set",
        dropped,
        "--inh-caps",
        dropped,
    )
    result = run("--interface", "lo", "--logdir", str(tmp_path), prefix=prefix)
    assert result.returncode == status
    line = one_line(result)
    assert (
        line.startswith("sensord: lo: cannot ")
        and f"Operation not permitted (needs {needed})" in line
    )


def test_usage_errors() -> None:
    result = run("--replay", "x.pcap", "--interface", "lo")
    assert result.returncode == 2
    assert "--replay cannot be combined" in result.stderr
