"""[detect.<name>] sections of the daemon's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor import config
from sensor.detect.base import ThresholdError
from sensor.detect.runner import Detector, load_all
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[detect."scan.port"]\nports = -3\n',
            "detect.scan.port.ports = -3: must be >= 1",
        ),
        (
            '[detect."scan.port"]\nunanswered_share = 7\n',
            "detect.scan.port.unanswered_share = 7.0: must be between 0 and 1",
        ),
        (
            '[detect."scan.port"]\nwindow_seconds = -600\n',
            "detect.scan.port.window_seconds = -600.0: must be > 0",
        ),
        (
            "[detect.scan.sweep]\nidle_seconds = 0\n",
            "detect.scan.sweep.idle_seconds = 0.0: must be > 0",
        ),
        (
            '[detect."endpoint.rare"]\nreport_score = 101\n',
            "detect.endpoint.rare.report_score = 101.0: must be between 0 and 100",
        ),
        (
            '[detect."c2.beacon"]\njitter_tolerance = nan\n',
            "detect.c2.beacon.jitter_tolerance = nan: must be > 0",
        ),
        (
            # The tester's file: the first bad threshold is named.
            '[detect."scan.port"]\nports = -3\nwindow_seconds = -600\n'
            "unanswered_share = 7\n",
            "detect.scan.port.ports = -3: must be >= 1",
        ),
    ],
    ids=[
        "negative-count",
        "share-above-1",
        "negative-seconds",
        "zero-seconds",
        "score-above-100",
        "nan-tolerance",
        "several",
    ],
)
def test_out_of_range_overrides_name_the_option_and_range(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(config.ConfigError) as e:
        config.load(write(tmp_path, text))
    assert str(e.value) == message


def test_range_applies_to_overrides_given_beside_the_file() -> None:
    # What the command line and SIGHUP hand to config.load.
    with pytest.raises(config.ConfigError) as e:
        config.load(None, {"capture.interface": "lo", "detect.scan.port.ports": -3})
    assert str(e.value) == "detect.scan.port.ports = -3: must be >= 1"


def test_range_applies_to_overrides_given_to_the_detector() -> None:
    with pytest.raises(ThresholdError) as e:
        Detector(FakeModels(), {"dns.dga": {"min_share": 1.5}})
    assert str(e.value) == "detect.dns.dga.min_share = 1.5: must be between 0 and 1"


def test_range_ends_are_allowed(tmp_path: Path) -> None:
    cfg = config.load(
        write(
            tmp_path,
            '[detect."scan.port"]\nports = 1\nunanswered_share = 1\n'
            '[detect."endpoint.rare"]\nrare_devices = 0\nreport_score = 100\n',
        )
    )
    assert cfg.detect["scan.port"] == {"ports": 1, "unanswered_share": 1.0}
    assert cfg.detect["endpoint.rare"] == {"rare_devices": 0, "report_score": 100.0}


def test_every_default_is_inside_its_range() -> None:
    overrides: dict[str, object] = {"capture.interface": "lo"}
    for name, cls in load_all().items():
        for t in cls.thresholds:
            assert t.default in t.allowed, f"{name}.{t.name} = {t.default!r}"
            overrides[f"detect.{name}.{t.name}"] = t.default

    # Every default given explicitly goes through the load unchanged.
    cfg = config.load(None, overrides)
    for name, cls in load_all().items():
        assert cfg.detect[name] == {t.name: t.default for t in cls.thresholds}
