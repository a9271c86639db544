"""[detect.<name>] sections of the daemon's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor import config
from sensor.detect.runner import Detector
from tests.detect.fakes import FakeModels


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sensor.toml"
    path.write_text('[capture]\ninterface = "lo"\n' + text)
    return str(path)


def test_overrides_reach_the_detections(tmp_path: Path) -> None:
    cfg = config.load(
        write(
            tmp_path,
            '[detect."scan.port"]\nports = 50\n[detect.bruteforce.login]\nwindow_seconds = 60\n',
        )
    )
    assert cfg.detect == {
        "scan.port": {"ports": 50},
        "bruteforce.login": {"window_seconds": 60.0},
    }
    d = Detector(FakeModels(), cfg.detect)
    by = {x.name: x for x in d.detections}
    assert by["scan.port"].t["ports"] == 50
    assert by["bruteforce.login"].t["window_seconds"] == 60.0
    assert by["scan.sweep"].t["icmp_hosts"] == 10  # untouched default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[detect."scan.port"]\nportz = 5\n',
            "detect.scan.port.portz: unknown threshold of scan.port (known: idle_seconds,",
        ),
        (
            '[detect."scan.port"]\nports = "many"\n',
            "detect.scan.port.ports: expected int, got str 'many'",
        ),
        (
            '[detect."scan.nope"]\nports = 5\n',
            "detect.scan.nope.ports: unknown detection 'scan.nope' (known: ",
        ),
    ],
)
def test_bad_overrides_name_the_option(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as e:
        config.load(write(tmp_path, text))
    assert str(e.value).startswith(message)
