"""The configuration: declarations, loading, validation, the shipped sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor import config
from sensor.flow.table import FlowConfig
from tests.conftest import ROOT

SAMPLE = ROOT / "packaging" / "sensor.toml"


def test_shipped_sample_is_generated_from_the_declarations() -> None:
    assert SAMPLE.read_text() == config.sample()


def test_sample_loads_and_gives_the_defaults() -> None:
    cfg = config.load(str(SAMPLE))
    assert cfg["capture.interface"] == "eth1"
    for name, opt in config.ALL.items():
        if name != "capture.interface":
            assert cfg[name] == opt.default, name
    assert cfg.flow() == FlowConfig()


def test_every_option_is_documented_once() -> None:
    names = [o.name for o in config.OPTIONS]
    assert len(names) == len(set(names))
    for opt in config.ALL.values():
        assert opt.help.strip() and "." in opt.name
        assert isinstance(opt.default, opt.type), opt.name
        assert f"\n{opt.name.split('.', 1)[1]} = " in config.sample()


def test_overrides_and_int_to_float(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[capture]\ninterface = "eth9"\nworkers = 3\n[flow]\ntcp_inactivity = 10\n[health]\ninterval = 5\n'
    )
    cfg = config.load(str(path), {"capture.workers": 2})
    assert cfg["capture.interface"] == "eth9"
    assert cfg.workers() == 2
    assert cfg["health.interval"] == 5.0 and isinstance(cfg["health.interval"], float)
    assert cfg.flow().tcp_inactivity == 10.0


def test_workers_zero_means_one_per_core() -> None:
    cfg = config.load(None, {"capture.interface": "x", "capture.workers": 0})
    assert cfg.workers() >= 1


def test_workers_up_to_one_fanout_group() -> None:
    cfg = config.load(None, {"capture.interface": "x", "capture.workers": 256})
    assert cfg.workers() == config.MAX_WORKERS == 256


@pytest.mark.parametrize(
    "override, message",
    [
        ({"capture.workers": True}, "capture.workers = True: must be int, not bool"),
        (
            {"capture.promiscuous": "yes"},
            "capture.promiscuous = 'yes': must be bool, not str",
        ),
        (
            {"health.max_drop_ratio": 1.5},
            "health.max_drop_ratio = 1.5: must be between 0 and 1",
        ),
        (
            {"daemon.log_level": "loud"},
            "daemon.log_level = 'loud': must be one of debug, info, warning, error",
        ),
        ({"capture.blocks": 1}, "capture.blocks = 1: must be >= 2"),
        (
            {"capture.workers": 100000},
            "capture.workers = 100000: must be between 0 and 256",
        ),
        ({"capture.workers": -1}, "capture.workers = -1: must be between 0 and 256"),
        ({"flow.max_conns": -5}, "flow.max_conns = -5: must be >= 0"),
        ({"output.nope": 1}, "output.nope: unknown option"),
    ],
)
def test_validation_names_option_value_and_reason(
    override: dict[str, object], message: str
) -> None:
    with pytest.raises(config.ConfigError) as e:
        config.load(None, {"capture.interface": "eth1", **override})
    assert str(e.value).startswith(message)


def test_changed_lists_differences() -> None:
    a = config.load(None, {"capture.interface": "eth1"})
    b = config.load(
        None, {"capture.interface": "eth1", "output.keep": 3, "capture.workers": 4}
    )
    assert sorted(a.changed(b)) == ["capture.workers", "output.keep"]
