"""sensord --cleanup without CAP_NET_ADMIN: refused, and said so (exit 77).

A table that is still there must never be reported as absent.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT
from tests.daemon.conftest import env_for

DROP = ("setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin")


def test_cleanup_without_net_admin(netns_ok: None) -> None:
    # In a namespace of its own: make the table, try to remove it without
    # the capability, then list what is left (as root).
    script = (
        "nft add table inet sensor && "
        f'{" ".join(DROP)} {sys.executable} -m sensor.cli.sensord --cleanup; '
        'echo "status=$?"; nft list tables'
    )
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.stderr.strip() == (
        "sensord: --cleanup: cannot remove table inet sensor: "
        "permission denied (needs CAP_NET_ADMIN)"
    )
    assert "status=77" in done.stdout
    assert "table inet sensor" in done.stdout  # still there, and not denied
    assert "no table" not in done.stdout
