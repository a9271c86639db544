"""The ``deb`` marker: tests that build and install the Debian package."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, so that ``-m "not deb"`` can leave these out."""
    config.addinivalue_line(
        "markers",
        "deb: builds, installs, upgrades and purges the Debian package as root "
        "(a few minutes); part of make test",
    )
