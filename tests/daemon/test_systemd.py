"""systemd/sensord.service: verified by systemd-analyze, run by a real systemd.

The second test boots the machine's own OS tree in a container
(``systemd-nspawn --volatile=yes``: a fresh /etc and /var, /usr read-only
from the host, a private network namespace), installs the unit with a
drop-in that points it at this checkout and shortens the watchdog, and
runs ``container/driver.sh`` inside: start (ready only once capture runs),
traffic, a hang of the main loop (``SENSOR_DEBUG_HANG=1`` + SIGUSR2) that
the watchdog must answer with a restart, and ``systemctl stop``. It takes
about 20 seconds; it is marked ``systemd`` and runs in the default suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.replay import read_log

UNIT = ROOT / "systemd" / "sensord.service"
HERE = Path(__file__).resolve().parent / "container"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists; /usr/bin/sensord comes
    # with the package, so point it at an executable that exists here.
    unit = tmp_path / "sensord.service"
    unit.write_text(
        UNIT.read_text().replace("/usr/bin/sensord", os.path.realpath(sys.executable))
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        check=False,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # Unknown or misspelt keys are only warnings: none may appear.
    assert done.stderr.strip() == "", done.stderr


def _container_ok() -> str | None:
    if os.geteuid() != 0:
        return "booting a container needs root (CI runs as root)"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is not installed (package systemd-container)"
    return None


def _python_binds() -> tuple[list[str], str, str, str]:
    """Bind mounts that make this interpreter and its packages visible to
    the service, which runs with ProtectHome=yes; (binds, python, pythonpath, ld_path)."""
    base = Path(sys.base_prefix).resolve()
    binds, paths = [], ["/opt/sensor"]
    if str(base).startswith("/usr/"):
        python, lib = os.path.realpath(sys._base_executable), ""
    else:
        binds.append(f"--bind-ro={base}:/opt/python")
        python = "/opt/python/" + str(
            Path(os.path.realpath(sys._base_executable)).relative_to(base)
        )
        lib = "/opt/python/lib"
    for i, site in enumerate(
        dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    ):
        if Path(site).is_dir():
            binds.append(f"--bind-ro={site}:/opt/site{i}")
            paths.append(f"/opt/site{i}")
    return binds, python, ":".join(paths), lib


@pytest.mark.systemd
def test_unit_under_systemd(tmp_path: Path) -> None:
    why = _container_ok()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    binds, python, pythonpath, ld_path = _python_binds()
    env = f"PYTHONPATH={pythonpath} PYTHONDONTWRITEBYTECODE=1" + (
        f" LD_LIBRARY_PATH={ld_path}" if ld_path else ""
    )

    t = tmp_path
    (t / "results").mkdir()
    shutil.copy(HERE / "driver.sh", t / "driver.sh")
    shutil.copy(HERE / "frames.py", t / "frames.py")
    (t / "dropin").mkdir()
    (t / "dropin" / "test.conf").write_text(
        "[Service]\nExecStart=\n"
        f"ExecStart={python} -m sensor.cli.sensord --config /etc/sensor/sensor.toml\n"
        f"Environment={env} SENSOR_DEBUG_HANG=1\nWatchdogSec=3\nRestartSec=1\n"
    )
    (t / "sensor.toml").write_text(
        '[capture]\ninterface = "cap0"\nworkers = 1\nblocks = 4\n[health]\ninterval = 1.0\n'
    )
    (t / "sensortest.service").write_text(
        "[Unit]\nDescription=sensord container test driver\nAfter=basic.target\n"
        f"[Service]\nType=oneshot\nEnvironment={env} SENSOR_PYTHON={python}\n"
        "ExecStart=/test/driver.sh\nStandardOutput=journal+console\n"
    )
    cmd = [
        "systemd-nspawn", "-D", "/", "--volatile=yes", "--private-network", "--register=no",
        "--keep-unit", "-b", "--console=pipe", "--quiet",
        f"--bind-ro={ROOT}:/opt/sensor", f"--bind={t}:/test", *binds,
        f"--bind-ro={UNIT}:/etc/systemd/system/sensord.service",
        f"--bind-ro={t / 'dropin'}:/etc/systemd/system/sensord.service.d",
        f"--bind-ro={t / 'sensortest.service'}:/etc/systemd/system/sensortest.service",
        f"--bind-ro={t / 'sensor.toml'}:/etc/sensor/sensor.toml",
        "systemd.wants=sensortest.service",
    ]  # fmt: skip
    script = 'mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && exec "$@"'
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", *cmd],
                          capture_output=True, check=False, text=True, timeout=150)  # fmt: skip
    r = t / "results"
    assert (r / "done").exists(), done.stdout[-3000:] + done.stderr[-3000:]

    def props(name: str) -> dict[str, str]:
        return dict(line.split("=", 1) for line in (r / name).read_text().split())

    journal = (r / "journal").read_text()
    # Missing interface: the start failed with the one-line reason.
    assert (r / "start_missing_rc").read_text().strip() != "0"
    assert (
        "sensord: cap0: no such network interface"
        in (r / "journal_missing").read_text()
    )

    # Started: READY=1 came, and only after the worker was reading its ring.
    assert (r / "start_rc").read_text().strip() == "0", journal
    started = props("after_start")
    assert (started["ActiveState"], started["SubState"]) == ("active", "running"), (
        journal
    )
    capturing = journal.index("capturing with 1 worker")
    assert capturing < journal.index(
        "Started sensord.service"
    ) or capturing < journal.index("Started Network detection")
    assert "PROMISC" in (r / "cap0_link").read_text()

    # The hung main loop was killed by the watchdog and restarted.
    after = props("after_watchdog")
    assert "Watchdog timeout" in journal, journal
    assert int(after["NRestarts"]) >= 1 and after["SubState"] == "running", after
    assert after["MainPID"] != started["MainPID"]

    # systemctl stop: a clean exit, and the connection seen after the restart flushed.
    stopped = props("after_stop")
    assert (r / "stop_rc").read_text().strip() == "0"
    assert stopped["ActiveState"] == "inactive" and stopped["Result"] == "success", (
        stopped
    )
    assert stopped["ExecMainStatus"] == "0"
    conns = read_log(r / "logs" / "conn.log")
    udp = [
        c for c in conns if c["id.orig_h"] == "192.0.2.10" and c["id.resp_p"] == 5353
    ]
    assert udp and udp[-1]["orig_pkts"] == 1 and udp[-1]["resp_pkts"] == 1, conns
    assert read_log(r / "logs" / "health.log"), "no health records"
