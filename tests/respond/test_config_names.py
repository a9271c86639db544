"""The [response] options that name detections name existing ones: a
misspelt name would silently fall back to response.mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sensor import config
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("autonomous", '["nosuch.det"]'),
        ("confirm", '["scan.port", "nosuch.det"]'),
        ("actions", '["nosuch.det=block"]'),
    ],
)
def test_unknown_detection_in_response_options_is_refused_at_load(
    tmp_path: Path, option: str, value: str
) -> None:
    path = tmp_path / "sensor.toml"
    path.write_text(f'[capture]\ninterface = "lo"\n[response]\n{option} = {value}\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(str(path))
    msg = str(e.value)
    assert msg.startswith(f"response.{option}: 'nosuch.det': unknown detection (known: ")
    assert "scan.port" in msg and "\n" not in msg


def test_sensord_exits_78_on_an_unknown_detection_in_response_actions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sensor.toml"
    path.write_text(
        '[capture]\ninterface = "lo"\n[response]\nactions = ["nosuch.det=block"]\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensord", "--config", str(path),
         "--logdir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert r.returncode == 78, (r.stdout, r.stderr)
    assert "response.actions: 'nosuch.det': unknown detection" in r.stderr
    assert r.stderr.count("\n") == 1


def test_known_detections_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "sensor.toml"
    path.write_text(
        '[capture]\ninterface = "lo"\n[response]\nautonomous = ["scan.port"]\n'
        'confirm = ["scan.sweep"]\nactions = ["scan.port=block+reset"]\n'
    )
    c = config.load(str(path))
    assert c["response.actions"] == ["scan.port=block+reset"]
