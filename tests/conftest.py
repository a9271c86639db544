"""Shared fixtures: where the shared captures are, and which implementation."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SENSOR_SHARED", ROOT.parent / "shared")).resolve()
PCAPS = SHARED / "pcaps"


@pytest.fixture(scope="session")
def pcaps() -> Path:
    """The shared captures, read in place (never copied into the repo)."""
    if not PCAPS.is_dir():
        pytest.fail(f"shared captures not found at {PCAPS}; set SENSOR_SHARED")
    return PCAPS


@pytest.fixture(params=["compiled", "python"])
def impl(request: pytest.FixtureRequest) -> str:
    """Run a test once with the compiled fast paths and once with the twins.

    Tests take the modules through :func:`twin_or_compiled`; in CI the
    compiled modules must exist, so a missing build fails instead of skipping.
    """
    if request.param == "compiled":
        try:
            importlib.import_module("sensor._ext.flow")
        except ImportError as e:
            if os.environ.get("CI"):
                pytest.fail(f"compiled extensions not built: {e}")
            pytest.skip(f"compiled extensions not built: {e}")
    return str(request.param)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI every test must run: a skip there is turned into a failure.

    Tests skip elsewhere with the reason (not root, no tshark, extensions not
    built); CI is root and installs everything, so a skip there means a test
    silently did not run.
    """
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where every test must run: {reason}"
