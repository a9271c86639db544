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
    # Small rings: 256 of the default 64 MiB would pass half of most machines.
    cfg = config.load(
        None, {"capture.interface": "x", "capture.workers": 256, "capture.blocks": 2}
    )
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
        ({"capture.blocks": 1}, "capture.blocks = 1: must be between 2 and 65536"),
        (
            {"capture.blocks": 100000},
            "capture.blocks = 100000: must be between 2 and 65536",
        ),
        (
            {"capture.block_size": 1 << 30},
            "capture.block_size = 1073741824: must be at most 268435456",
        ),
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


def test_rings_larger_than_half_the_memory_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4 workers x 64 blocks x 8 MiB = 2 GiB of rings on a 2 GiB machine.
    monkeypatch.setattr(config, "memory_total", lambda: 2 << 30)
    ring = {"capture.interface": "eth1", "capture.workers": 4,
            "capture.block_size": 8 << 20}  # fmt: skip
    with pytest.raises(config.ConfigError) as e:
        config.load(None, ring)
    assert str(e.value) == (
        "capture.blocks = 64: the capture rings would take 2048 MiB "
        "(4 workers x 64 blocks x 8388608 bytes), more than half of this "
        "machine's memory (2048 MiB)"
    )

    config.load(None, {**ring, "capture.blocks": 32})  # 1 GiB: half, accepted


def test_memory_total_reads_meminfo() -> None:
    total = config.memory_total()
    assert total is not None and total >= 64 << 20
