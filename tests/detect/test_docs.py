"""docs/detections.md describes every registered detection."""

from __future__ import annotations

from sensor.detect.runner import load_all
from tests.conftest import ROOT


def test_every_detection_and_threshold_is_documented() -> None:
    text = (ROOT / "docs" / "detections.md").read_text()
    for name, cls in load_all().items():
        assert f"## `{name}`" in text, f"docs/detections.md: no section for {name}"
        section = text.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        assert cls.mitre in section, f"{name}: ATT&CK {cls.mitre} not named"
        for t in cls.thresholds:
            assert f"| `{t.name}` |" in section, (
                f"{name}: threshold {t.name} not documented"
            )
            assert f"| `{t.name}` | `{t.default}` | {t.allowed} |" in section, (
                f"{name}: threshold {t.name}: default or allowed range differs"
            )
