"""The Debian package: built, installed, upgraded and purged on this machine.

``test_package_lifecycle`` does, as root, what an operator does with the
package that ``make deb`` (packaging/build-deb) makes from this checkout:

1. build ``sensor_<version>_<arch>.deb``, lintian included (build-deb fails
   on a lintian error);
2. install it (``apt-get install ./FILE``, which runs ``dpkg -i`` after
   checking the dependencies) and check what the package promises:
   ``sensord`` and ``sensorctl`` on the PATH with their man pages, the unit
   enabled and not started, ``/etc/sensor/sensor.toml`` a conffile, the
   ``sensor`` user and its directories;
3. replay the bundled ``pcaps/office/office.pcap`` as the ``sensor`` user,
   with its state in ``/var/lib/sensor/state.db``;
4. edit the conffile, rebuild the same tree as a higher version
   (``DEB_VERSION``) and upgrade: the state and the edited configuration
   stay, and the state still loads;
5. purge: configuration, state, logs, user and group are gone.

Both builds run on one snapshot of the checkout as a clean clone holds it
(the files git tracks and new ones it does not ignore: no .venv/, build/ or
compiled modules), so they build the same code even while the checkout is
being edited, and the test shows that ``make deb`` needs nothing that a
clone lacks. They share ``SENSOR_DEB_CACHE`` (``build/deb-cache``, as
``make deb``), so the second reuses the Cython extensions the first
compiled; packaging/README.md gives the time it takes.

The package is purged at the end whatever happened, so the machine is left
as it was. The test needs root, and refuses to run where a ``sensor``
package or user, /etc/sensor, /var/lib/sensor or /var/log/sensor already
exists, since it would replace and then delete them.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEMO = ROOT / "pcaps" / "office" / "office.pcap"
CONFFILE = Path("/etc/sensor/sensor.toml")
STATE_DIR = Path("/var/lib/sensor")
LOG_DIR = Path("/var/log/sensor")
VENV = Path("/usr/lib/sensor")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/sensord.service")
#: What a root shell on Debian has: no .venv/bin, no VIRTUAL_ENV, so that
#: ``sensord`` can only be the package's.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
#: The builds and the installation need these (scripts/install-system).
TOOLS = ("git", "dpkg-buildpackage", "dh", "lintian", "fakeroot", "apt-get", "runuser")
#: Another run of this test (another engineer, the full suite) waits here.
LOCK = Path("/run/lock/sensor-deb-test.lock")
#: apt waits this long for another dpkg to finish, instead of failing.
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "installing the Debian package needs root (CI runs as root)"
    for tool in TOOLS:
        if shutil.which(tool, path=SYSTEM_ENV["PATH"]) is None:
            return f"{tool} is not installed (scripts/install-system installs it)"
    if not Path("/usr/bin/python3.11").exists():
        return "/usr/bin/python3.11 is missing (scripts/install-system installs python3.11-venv)"
    return None


def _why_not_here() -> str | None:
    """Refuse to touch a sensor package, user or directory that this test did not make."""
    if _dpkg_status() is not None:
        return "a sensor package is already installed here; the test would replace and purge it"
    with contextlib.suppress(KeyError):
        pwd.getpwnam("sensor")
        return "a user named sensor exists; the package's purge would delete it"
    for path in (CONFFILE.parent, STATE_DIR, LOG_DIR):
        if path.exists():
            return f"{path} exists; the package's purge would delete it"
    return None


@pytest.fixture
def packaging_ok() -> None:
    """Skip, or fail in CI, where the package cannot be built and installed."""
    why = _why_not()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def run(
    cmd: list[str], timeout: float = 600, env: dict[str, str] = SYSTEM_ENV
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in the system's environment; fail with its output if it fails."""
    done = subprocess.run(
        cmd,
        capture_output=True,
        check=False,
        # Not in the checkout, whose sensor/ python3 -c would import first.
        cwd="/",
        env=env,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{' '.join(cmd)}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done


def _dpkg_status() -> str | None:
    """dpkg's status of the sensor package (``ii``, ``rc``, ...), or None."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "sensor"],
        capture_output=True, text=True, env=SYSTEM_ENV, check=False,
    )  # fmt: skip
    status = done.stdout.strip()
    return status if done.returncode == 0 and status and status != "un" else None


def snapshot(dest: Path) -> Path:
    """Copy the checkout's files as a clean clone has them into ``dest``."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():  # a tracked file deleted in the checkout is not
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))
    return dest


def build(
    src: Path, out: Path, version: str | None, lint: bool, quick: bool = False
) -> Path:
    """packaging/build-deb into ``out``; the .deb it made.

    ``quick``: gzip -1 instead of xz -1, for a package that is installed at
    once and thrown away (half a minute less on a loaded machine).
    """
    env = dict(
        SYSTEM_ENV,
        DEB_OUT=str(out),
        SENSOR_DEB_CACHE=str(ROOT / "build" / "deb-cache"),
        LINTIAN="1" if lint else "0",
    )
    # pip's configuration (where the wheels come from) still applies.
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    if version:
        env["DEB_VERSION"] = version
    if quick:
        env["SENSOR_DEB_COMPRESS"] = "-Zgzip -z1"
    started = time.monotonic()
    done = run([str(src / "packaging" / "build-deb")], timeout=1800, env=env)
    reused = re.search(r"(?m)^rules: reusing the project's wheel from /", done.stdout)
    print(
        f"\ntest_deb: build {version or 'as the changelog'}: {time.monotonic() - started:.0f} s"
        f" ({'compiled wheel reused' if reused else 'compiled'})"
    )
    debs = sorted(out.glob("sensor_*.deb"))
    assert len(debs) == 1, done.stdout[-3000:]
    return debs[0]


def install(deb: Path) -> None:
    """Install or upgrade to ``deb``, keeping changed conffiles without asking."""
    run(
        [*APT, "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
         "install", "--no-install-recommends", str(deb)],
        env=dict(SYSTEM_ENV, DEBIAN_FRONTEND="noninteractive"),
    )  # fmt: skip


def as_sensor(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command as the sensor user, as the service would."""
    return run(["runuser", "-u", "sensor", "--", *args])


def saved_devices(state: Path) -> dict[str, str]:
    """The devices in the state database: id -> identity (JSON), read-only."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT id, identity FROM devices"))
    finally:
        db.close()


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One run of this test at a time on the machine: dpkg is shared."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def upstream_version() -> str:
    """``version`` from pyproject.toml."""
    m = re.search(
        r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE
    )
    assert m, "pyproject.toml has no version"
    return m.group(1)


def test_changelog_is_at_the_project_version() -> None:
    """build-deb refuses a changelog behind pyproject.toml; say so before a build."""
    first = (ROOT / "packaging" / "debian" / "changelog").read_text().splitlines()[0]
    m = re.match(r"^sensor \(([^)]+)\) \w+; urgency=\w+$", first)
    assert m, f"packaging/debian/changelog: unexpected first line {first!r}"
    assert re.fullmatch(re.escape(upstream_version()) + r"([+~].*)?", m.group(1)), (
        f"packaging/debian/changelog is at {m.group(1)}, pyproject.toml at {upstream_version()}"
    )


@pytest.mark.deb
def test_package_lifecycle(packaging_ok: None, tmp_path: Path) -> None:
    with exclusive():
        why = _why_not_here()
        if why:
            if os.environ.get("CI"):
                pytest.fail(why)
            pytest.skip(why)
        # The capture, where the sensor user can read it (a clone under
        # /root or pytest's tmp_path is closed to other users).
        shared = Path(tempfile.mkdtemp(prefix="sensor-deb-test-"))
        try:
            shared.chmod(0o755)
            pcap = shared / DEMO.name
            shutil.copyfile(DEMO, pcap)
            pcap.chmod(0o644)
            _lifecycle(tmp_path, pcap)
        finally:
            if _dpkg_status() is not None:
                subprocess.run([*APT, "purge", "sensor"], env=SYSTEM_ENV, check=False,
                               capture_output=True, stdin=subprocess.DEVNULL, timeout=600)  # fmt: skip
            shutil.rmtree(shared, ignore_errors=True)


def _lifecycle(tmp_path: Path, pcap: Path) -> None:
    upstream = upstream_version()
    src = snapshot(tmp_path / "src")
    first = build(src, tmp_path / "first", None, lint=True)

    # Installed as a fresh package.
    install(first)
    assert _dpkg_status() == "ii"
    first_version = run(["dpkg-query", "-W", "-f=${Version}", "sensor"]).stdout
    _check_installed(upstream)

    # The bundled example, replayed by the service's user with the
    # service's state file, which nothing has written yet.
    assert not list(STATE_DIR.iterdir()), (
        f"{STATE_DIR} is not empty after a fresh install: {sorted(os.listdir(STATE_DIR))}"
        " (a root test that runs the daemon with the default model.state, at the same time?)"
    )
    logs = LOG_DIR / "replay"
    state = STATE_DIR / "state.db"
    done = as_sensor(
        "sensord", "--replay", str(pcap), "--logdir", str(logs), "--state", str(state)
    )
    assert re.match(r"sensord: \d+ packets, .* \d+ connections", done.stdout), (
        done.stdout
    )
    conns = [json.loads(line) for line in (logs / "conn.log").read_text().splitlines()]
    assert len(conns) > 100
    # The office capture's port scan: rejected connections from .102.
    assert any(
        c["id.orig_h"] == "192.168.10.102" and c.get("conn_state") == "REJ"
        for c in conns
    )
    assert state.is_file() and state.stat().st_uid == pwd.getpwnam("sensor").pw_uid
    devices = saved_devices(state)
    assert len(devices) >= 5, devices.keys()
    inode = state.stat().st_ino

    # The administrator's edit of the configuration.
    edited = CONFFILE.read_text() + "\n# edited by tests/packaging: kept on upgrade\n"
    CONFFILE.write_text(edited)

    # Upgrade to the same tree rebuilt with a higher version.
    second_version = f"{first_version}+test1"
    run(["dpkg", "--compare-versions", second_version, "gt", first_version])
    second = build(src, tmp_path / "second", second_version, lint=False, quick=True)
    install(second)
    assert _dpkg_status() == "ii"
    assert run(["dpkg-query", "-W", "-f=${Version}", "sensor"]).stdout == second_version
    # The same file with the same devices, first seen when they were. (Not
    # the same bytes: a root test elsewhere that runs the daemon with the
    # default model.state writes to this file if it runs meanwhile.)
    assert state.stat().st_ino == inode, "the upgrade replaced the state database"
    after = saved_devices(state)
    assert devices.keys() <= after.keys(), "the upgrade lost devices"
    assert all(
        json.loads(after[d])["first_seen"] == json.loads(devices[d])["first_seen"]
        for d in devices
    ), "the upgrade changed the devices"
    assert CONFFILE.read_text() == edited, "the upgrade replaced the edited conffile"
    assert not list(CONFFILE.parent.glob("sensor.toml.dpkg-*"))
    assert (logs / "conn.log").is_file(), "the upgrade removed the logs"
    _check_installed(upstream)
    # The kept state loads in the new version and is saved again.
    again = LOG_DIR / "again"
    as_sensor(
        "sensord", "--replay", str(pcap), "--logdir", str(again), "--state", str(state)
    )
    assert (again / "conn.log").stat().st_size > 0

    # Purge removes everything the package made.
    run([*APT, "purge", "sensor"])
    assert _dpkg_status() is None
    for gone in (CONFFILE.parent, STATE_DIR, LOG_DIR, VENV, Path("/usr/bin/sensord"),
                 Path("/usr/bin/sensorctl"), Path("/lib/systemd/system/sensord.service")):  # fmt: skip
        assert not gone.exists(), f"{gone} is still there after purge"
    assert not WANTS.is_symlink(), f"{WANTS} is still there after purge"
    with pytest.raises(KeyError):
        pwd.getpwnam("sensor")
    with pytest.raises(KeyError):
        grp.getgrnam("sensor")


def _check_installed(upstream: str) -> None:
    """What every installed version must provide."""
    # Both commands on a root shell's PATH, running the package's code.
    assert shutil.which("sensord", path=SYSTEM_ENV["PATH"]) == "/usr/bin/sensord"
    assert run(["sensord", "--version"]).stdout.strip() == f"sensord {upstream}"
    assert "usage: sensorctl" in run(["sensorctl", "--help"]).stdout
    # Compiled fast paths, not the pure-Python twins (as the sensor user,
    # whose environment cannot write byte code).
    probe = "import sensor._ext.flow as m; print(m.__file__)"
    where = as_sensor(str(VENV / "bin" / "python3"), "-c", probe).stdout.strip()
    assert where.startswith(str(VENV)) and where.endswith(".so"), where

    # Man pages for both.
    for page in (
        "/usr/share/man/man8/sensord.8.gz",
        "/usr/share/man/man1/sensorctl.1.gz",
    ):
        text = subprocess.run(
            ["zcat", page], capture_output=True, text=True, check=True
        ).stdout
        assert text.startswith(".TH"), page

    # The unit: installed, enabled (deb-systemd-helper's symlink, which
    # systemd follows at boot), not started: the maintainer scripts only
    # stop it (on removal) or restart it if it runs (on upgrade), and no
    # sensord of the package runs.
    unit = Path("/lib/systemd/system/sensord.service")
    assert (
        unit.is_file()
        and (unit.parent / "sensord.service.d" / "package.conf").is_file()
    )
    assert WANTS.is_symlink() and Path(os.readlink(WANTS)) == unit
    info = Path("/var/lib/dpkg/info")
    assert "deb-systemd-helper enable" in (info / "sensor.postinst").read_text()
    scripts = "".join(
        (info / f"sensor.{s}").read_text()
        for s in ("preinst", "postinst", "prerm", "postrm")
        if (info / f"sensor.{s}").exists()
    )
    assert set(re.findall(r"deb-systemd-invoke (\S+)", scripts)) == {
        "try-restart",
        "stop",
    }
    assert not re.search(r"systemctl (--\S+ )*(start|restart)", scripts)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            assert b"/usr/bin/sensord\0--config" not in cmdline.read_bytes()

    # The configuration is a conffile (dpkg keeps an edited one).
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "sensor"]).stdout
    assert str(CONFFILE) in conffiles.split()

    # The system user and group, and their directories.
    user = pwd.getpwnam("sensor")
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin"
    assert user.pw_dir == str(STATE_DIR)
    assert grp.getgrgid(user.pw_gid).gr_name == "sensor"
    for d in (STATE_DIR, LOG_DIR):
        st = d.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (
            user.pw_uid,
            user.pw_gid,
            0o750,
        ), d
