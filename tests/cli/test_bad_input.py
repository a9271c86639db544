"""sensord given bad input: one clear line and the documented exit status.

Never a traceback, a hang, or a file of the user's lost. These run without
root: a replay, or a configuration refused before capture is opened.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.replay import read_log, sensord

WIKIPEDIA = "zeek/traces/wikipedia.pcap"
EXIT_CONFIG = 78


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [
        line for line in result.stderr.strip().splitlines() if ": WARNING: " not in line
    ]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback TCP port something else already listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def serve(pcaps: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sensord(
        "--replay", str(pcaps / WIKIPEDIA), "--logdir", str(tmp_path / "logs"), *args
    )


def test_serve_on_a_port_in_use(pcaps: Path, tmp_path: Path, busy_port: int) -> None:
    result = serve(
        pcaps, tmp_path, "--serve", f"127.0.0.1:{busy_port}", "--insecure-loopback"
    )

    assert result.returncode == EXIT_CONFIG
    assert one_line(result) == (
        f"sensord: --serve 127.0.0.1:{busy_port}: cannot listen: Address already in use"
    )
    assert not (tmp_path / "logs").exists()  # refused before the replay


def test_serve_with_a_garbage_certificate(pcaps: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    tokens = tmp_path / "tokens"
    tokens.write_text("ops 0123456789abcdef0123456789\n")
    tokens.chmod(0o600)

    result = serve(pcaps, tmp_path, "--serve", "127.0.0.1:1", "--tls-cert",
                   str(garbage), "--tls-key", str(garbage), "--token-file", str(tokens))  # fmt: skip

    assert result.returncode == EXIT_CONFIG
    line = one_line(result)
    assert f"cannot load certificate {garbage}" in line, line


def test_serve_never_deletes_a_regular_file(pcaps: Path, tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me\n")

    result = serve(pcaps, tmp_path, "--serve", f"unix:{precious}")

    assert result.returncode == EXIT_CONFIG
    assert "not a socket" in one_line(result)
    assert precious.read_text() == "keep me\n"


def test_serve_replaces_a_stale_socket(pcaps: Path, tmp_path: Path) -> None:
    # A socket nobody listens on (a killed daemon's) may be replaced; a
    # served replay runs until a signal, so the check is called directly.
    from sensor.api.server import ServeError, check_unix_path

    stale = tmp_path / "api.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    check_unix_path(str(stale))  # no error: a socket may be replaced
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ServeError, match="not a socket"):
        check_unix_path(str(fifo))


def test_logdir_that_is_a_file(pcaps: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "logs"
    a_file.write_text("x\n")

    result = sensord("--replay", str(pcaps / WIKIPEDIA), "--logdir", str(a_file))

    assert result.returncode == 1
    assert one_line(result) == f"sensord: --logdir {a_file}: the log directory is a file"
    assert a_file.read_text() == "x\n"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            b"\x00\xff[capture]\n",
            "not valid TOML: not UTF-8 text (byte 0xff at offset 1)",
        ),
        (
            b'[capture]\ninterface = "lo"\n[response]\nbackends = ["laser"]\n',
            "response.backends = ['laser']: unknown back-end 'laser': must be one of "
            "dry-run, nftables, tcp-reset",
        ),
        (
            b'[capture]\ninterface = "lo"\n[response]\nactions = ["scan.port=zap"]\n',
            "response.actions: 'scan.port=zap': must be detection=action[+action]",
        ),
        (
            b'[capture]\ninterface = "lo"\n[response]\ndevice_tags = ["gw=gateway"]\n',
            "response.device_tags: 'gw=gateway': must be address=tag[,tag]",
        ),
        (
            b'[capture]\ninterface = "lo"\n[response]\nautonomous = ["scan.prot"]\n',
            "response.autonomous: 'scan.prot': unknown detection (known: ",
        ),
        (
            b'[capture]\ninterface = "lo"\n[response]\nautonomous = ["scan.port"]\n'
            b'confirm = ["scan.port"]\n',
            "response.autonomous and response.confirm both list 'scan.port'",
        ),
        (
            b'[capture]\ninterface = "lo"\nunknownkey = 1\n',
            "capture.unknownkey: unknown option (see the sample packaging/sensor.toml)",
        ),
        (
            # Refused before the missing interface is looked for.
            b'[capture]\ninterface = "nosuchif0"\n[detect."scan.port"]\nports = -3\n'
            b"window_seconds = -600\nunanswered_share = 7\n",
            "sensord: detect.scan.port.ports = -3: must be >= 1",
        ),
        (
            b'[capture]\ninterface = "lo"\n[detect."scan.port"]\nunanswered_share = 7\n',
            "sensord: detect.scan.port.unanswered_share = 7.0: must be between 0 and 1",
        ),
        (
            b'[capture]\ninterface = "lo"\nworkers = 100000\n',
            "sensord: capture.workers = 100000: must be between 0 and 256",
        ),
    ],
    ids=["not-utf8", "unknown-backend", "bad-action", "bad-device-tag",
         "unknown-detection", "autonomous-and-confirm", "unknown-key",
         "threshold-count", "threshold-share", "too-many-workers"],  # fmt: skip
)
def test_bad_configuration_is_refused_at_load(
    tmp_path: Path, text: bytes, expected: str
) -> None:
    # Refused before any capture is opened: no root needed, nothing started.
    path = tmp_path / "unknownkey.toml"
    path.write_bytes(text)

    result = sensord("--config", str(path), "--logdir", str(tmp_path / "logs"))

    assert result.returncode == EXIT_CONFIG
    line = one_line(result)
    assert expected in line, line
    assert "unknownkey.toml sample" not in line


def test_too_many_workers_on_the_command_line(tmp_path: Path) -> None:
    # --workers is an override of capture.workers: the same check applies.
    result = sensord(
        "--interface", "nosuchif0", "--workers", "100000",
        "--logdir", str(tmp_path / "logs"),
    )  # fmt: skip

    assert result.returncode == EXIT_CONFIG
    assert one_line(result) == (
        "sensord: capture.workers = 100000: must be between 0 and 256"
    )


def live_config(tmp_path: Path, **sections: str) -> Path:
    """A live configuration on lo with logs in tmp_path and the API off,
    each keyword a TOML section's body."""
    body = {
        "capture": 'interface = "lo"',
        "output": f'logdir = "{tmp_path / "logs"}"',
        "model": f'state = "{tmp_path / "state.db"}"',
        "api": 'listen = ""',
    }
    body.update(sections)
    path = tmp_path / "sensor.toml"
    path.write_text("".join(f"[{k}]\n{v}\n" for k, v in body.items()))
    return path


def test_live_logdir_that_is_a_file(tmp_path: Path) -> None:
    # Refused before capture opens (so no root is needed), not after the
    # workers started, where it hung until SIGTERM.
    a_file = tmp_path / "logs"
    a_file.write_text("x\n")

    result = sensord("--config", str(live_config(tmp_path)))

    assert result.returncode == EXIT_CONFIG
    assert one_line(result) == (
        f"sensord: output.logdir = '{a_file}': the log directory is a file"
    )


def test_live_state_that_is_not_sqlite(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(b"\x00\xffnot a database" * 100)

    result = sensord("--config", str(live_config(tmp_path)))

    assert result.returncode == EXIT_CONFIG
    assert one_line(result) == (
        f"sensord: model.state = '{state}': not a usable state database: "
        "file is not a database"
    )
    assert state.read_bytes() == b"\x00\xffnot a database" * 100


def test_live_api_port_in_use(tmp_path: Path, busy_port: int) -> None:
    api = f'listen = "127.0.0.1:{busy_port}"\ninsecure_loopback = true'

    result = sensord("--config", str(live_config(tmp_path, api=api)))

    assert result.returncode == EXIT_CONFIG
    assert one_line(result) == (
        f"sensord: api.listen = '127.0.0.1:{busy_port}': "
        f"127.0.0.1:{busy_port}: cannot listen: Address already in use"
    )


def test_live_api_tcp_without_tls_is_refused_before_capture(tmp_path: Path) -> None:
    # Refused with the other preflight checks, not once capture ran (it
    # had written health.log by then).
    result = sensord(
        "--config", str(live_config(tmp_path, api='listen = "0.0.0.0:7650"'))
    )

    assert result.returncode == EXIT_CONFIG
    assert one_line(result) == (
        "sensord: api.listen = '0.0.0.0:7650': 0.0.0.0:7650: TCP needs TLS "
        "(api.tls_cert, api.tls_key) and a token file or client certificates "
        "(api.client_ca); or --insecure-loopback on 127.0.0.1/::1"
    )
    assert list((tmp_path / "logs").iterdir()) == []
    assert not (tmp_path / "state.db").exists()


def test_serve_tcp_without_tls_is_refused_before_the_replay(
    pcaps: Path, tmp_path: Path
) -> None:
    result = serve(pcaps, tmp_path, "--serve", "0.0.0.0:7650")

    assert result.returncode == EXIT_CONFIG
    assert one_line(result).startswith("sensord: --serve 0.0.0.0:7650: TCP needs TLS")
    assert not (tmp_path / "logs").exists()


def test_live_api_socket_path_holds_a_file(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me\n")

    result = sensord(
        "--config", str(live_config(tmp_path, api=f'listen = "unix:{precious}"'))
    )

    assert result.returncode == EXIT_CONFIG
    assert "a file that is not a socket is in the way" in one_line(result)
    assert precious.read_text() == "keep me\n"


@pytest.mark.parametrize(
    "content, problem",
    [(None, "no such file"), (b"garbage " * 20, "not a capture file")],
    ids=["missing", "garbage"],
)
def test_learn_file_that_cannot_be_read_stops_before_the_replay(
    pcaps: Path, tmp_path: Path, content: bytes | None, problem: str
) -> None:
    bad = tmp_path / "baseline.pcap"
    if content is not None:
        bad.write_bytes(content)

    result = sensord("--replay", str(pcaps / WIKIPEDIA), "--learn", str(bad),
                     "--logdir", str(tmp_path / "logs"))  # fmt: skip

    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(f"sensord: --learn: {bad}: ") and problem in line, line
    assert result.stdout == ""  # neither learned nor replayed
    assert not (tmp_path / "logs" / "conn.log").exists()


def test_truncated_learn_file_reports_its_damage(pcaps: Path, tmp_path: Path) -> None:
    whole = (pcaps / WIKIPEDIA).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) // 2 + 7])

    result = sensord("--replay", str(pcaps / WIKIPEDIA), "--learn", str(cut),
                     "--logdir", str(tmp_path / "logs"))  # fmt: skip

    assert result.returncode == 0, result.stderr
    line = one_line(result)
    assert line.startswith(f"sensord: --learn: {cut}: truncated"), line
    assert result.stdout.startswith("sensord: learned from ")
    assert (tmp_path / "logs" / "conn.log").exists()


def replay_with_fd_limit(
    files: list[Path], logdir: Path, soft: int, hard: int
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensord", "--replay", *map(str, files),
         "--logdir", str(logdir)],
        capture_output=True, text=True, cwd=ROOT, preexec_fn=limit, timeout=600,
        check=False,
    )  # fmt: skip


@pytest.fixture
def many_captures(pcaps: Path, tmp_path: Path) -> list[Path]:
    """1,100 captures (links to one small capture of 2 packets)."""
    one = pcaps / "zeek/traces/tcp__syn-then-rst.pcap"
    links = []
    for i in range(1100):
        link = tmp_path / "many" / f"part{i:04d}.pcap"
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(one)
        links.append(link)
    return links


def test_more_captures_than_open_files_allowed(
    many_captures: list[Path], tmp_path: Path
) -> None:
    # One line up front and nothing written, not a crash 1,000 files in.
    result = replay_with_fd_limit(many_captures, tmp_path / "logs", 1024, 1024)

    assert result.returncode == 1
    assert one_line(result) == (
        "sensord: --replay: 1100 capture files are more than can be open at once: "
        "the limit is 1024 open files (ulimit -n) and about 64 are needed besides; "
        "merge them first (mergecap) or raise the hard limit"
    )
    assert not (tmp_path / "logs").exists()


def test_soft_open_file_limit_is_raised(
    many_captures: list[Path], tmp_path: Path
) -> None:
    result = replay_with_fd_limit(many_captures, tmp_path / "logs", 1024, 4096)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    assert result.stdout.startswith("sensord: 2200 packets, ")
    assert len(read_log(tmp_path / "logs" / "conn.log")) == 1


PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
PCAPNG_HEADER = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28) + (
    struct.pack("<IIHHII", 1, 20, 1, 0, 65535, 20)
)


@pytest.mark.parametrize("header", [PCAP_HEADER, PCAPNG_HEADER], ids=["pcap", "pcapng"])
def test_capture_with_no_packets_is_not_an_error(tmp_path: Path, header: bytes) -> None:
    # Well formed and empty (a capture of a quiet link): nothing to report,
    # exit 0, as the README says; only damage or no capture at all is 1.
    empty = tmp_path / "quiet.pcap"
    empty.write_bytes(header)

    result = sensord("--replay", str(empty), "--logdir", str(tmp_path / "logs"))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("sensord: 0 packets, 0 bytes, 0 connections, ")


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a refusal of the options (exit 2), after argparse's usage."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("sensord: error: "), result.stderr
    return line.removeprefix("sensord: error: ")


def test_negative_serve_wait_is_refused(pcaps: Path, tmp_path: Path) -> None:
    sock = f"unix:{tmp_path / 's.sock'}"
    result = serve(pcaps, tmp_path, "--serve", sock, "--serve-wait", "-5")

    assert usage_error(result) == "argument --serve-wait: must be 0 or more seconds, got '-5'"
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("listen", "why"),
    [("nonsense", "'nonsense': expected unix:PATH or HOST:PORT (such as 127.0.0.1:7650)"),
     ("127.0.0.1:99999", "'127.0.0.1:99999': expected unix:PATH or HOST:PORT "
                         "(such as 127.0.0.1:7650)"),
     ("127.0.0.1:abc", "'127.0.0.1:abc': expected unix:PATH or HOST:PORT "
                       "(such as 127.0.0.1:7650)"),
     ("unix:", "'unix:': unix: needs a socket path")],
    ids=["nonsense", "port-too-big", "port-not-a-number", "unix-no-path"],
)  # fmt: skip
def test_malformed_serve_is_a_wrong_option(
    pcaps: Path, tmp_path: Path, listen: str, why: str
) -> None:
    # Exit 2 at argument parsing, as for any wrong option; 78 is for an
    # address that is well formed but cannot be served.
    result = serve(pcaps, tmp_path, "--serve", listen)

    assert usage_error(result) == f"argument --serve: {why}"
    assert not (tmp_path / "logs").exists()


def test_empty_logdir_is_a_wrong_option(pcaps: Path, tmp_path: Path) -> None:
    # It wrote the logs into the current directory without a word.
    result = subprocess.run(
        [sys.executable, "-m", "sensor.cli.sensord", "--replay",
         str(pcaps / WIKIPEDIA), "--logdir", ""],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip

    assert usage_error(result) == (
        "argument --logdir: an empty path; give . for the current directory"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "why"),
    [(["--workers", "2"], "--workers is for live capture (--config or --interface); "
                          "a replay runs in one process"),
     (["--serve-wait", "5"], "--serve-wait needs --serve"),
     (["--tls-cert", "c.pem", "--tls-key", "k.pem"], "--tls-cert needs --serve"),
     (["--insecure-loopback"], "--insecure-loopback needs --serve"),
     (["--serve", "unix:SOCK", "--token-file", "tokens"],
      "--token-file is for --serve HOST:PORT; a Unix socket is guarded by its group "
      "(--socket-group)"),
     (["--cleanup"], "--cleanup removes the nftables table and exits; it cannot be "
                     "combined with --replay")],
    ids=["workers", "serve-wait", "tls-cert", "insecure-loopback", "token-file-on-unix",
         "cleanup"],
)  # fmt: skip
def test_replay_options_that_would_be_ignored(
    pcaps: Path, tmp_path: Path, options: list[str], why: str
) -> None:
    options = [o.replace("SOCK", str(tmp_path / "s.sock")) for o in options]
    assert usage_error(serve(pcaps, tmp_path, *options)) == why
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("options", "why"),
    [(["--interface", "lo", "--serve", "127.0.0.1:7650"],
      "--serve is for --replay; live capture takes [api] from the configuration"),
     (["--interface", "lo", "--tls-cert", "c.pem"],
      "--tls-cert is for --replay; live capture takes [api] from the configuration"),
     (["--interface", "lo", "--state", "models.db"],
      "--state is for --replay; live capture takes model.state from the configuration"),
     (["--cleanup", "--interface", "lo"],
      "--cleanup removes the nftables table and exits; it cannot be combined with "
      "--interface")],
    ids=["serve", "tls-cert", "state", "cleanup"],
)  # fmt: skip
def test_live_options_that_would_be_ignored(
    tmp_path: Path, options: list[str], why: str
) -> None:
    # Refused before any capture is opened: no root needed.
    result = sensord(*options, "--logdir", str(tmp_path / "logs"))
    assert usage_error(result) == why
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("text", "why"),
    [("tooshort\n", ":1: the token is 8 characters, expected at least 16 "
                    "(a line is NAME TOKEN, or a TOKEN alone)"),
     (None, ": cannot read the token file: No such file or directory")],
    ids=["short-token", "missing"],
)  # fmt: skip
def test_token_file_errors_name_the_token_file(
    pcaps: Path, tmp_path: Path, text: str | None, why: str
) -> None:
    tokens = tmp_path / "tokens"
    if text is not None:
        tokens.write_text(text)
        tokens.chmod(0o600)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # free, for check_listen

    result = serve(pcaps, tmp_path, "--serve", f"127.0.0.1:{port}",
                   "--insecure-loopback", "--token-file", str(tokens))  # fmt: skip

    assert result.returncode == EXIT_CONFIG
    assert one_line(result) == f"sensord: --token-file {tokens}{why}"
    assert not (tmp_path / "logs").exists()  # refused before the replay


def test_a_link_type_the_decoder_does_not_read_is_said(tmp_path: Path) -> None:
    # A pcap of LINKTYPE 147 (user-defined): counted, not decoded, and
    # said on stderr rather than left to one line of weird.log.
    frame = bytes(14) + bytes.fromhex("4500001c0000400040110000c0a80001c0a80002")
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147)
    record = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    capture = tmp_path / "dlt147.pcap"
    capture.write_bytes(header + record * 3)
    run = sensord("--replay", str(capture), "--logdir", str(tmp_path / "logs"))
    assert run.returncode == 0
    assert one_line(run) == (
        "sensord: 3 packets of link type 147, which the decoder does not read, "
        "were counted but not decoded (weird.log: unknown_link_type)"
    )
    assert run.stdout.startswith("sensord: 3 packets, ")
    weird = read_log(tmp_path / "logs" / "weird.log")
    assert [w["name"] for w in weird] == ["unknown_link_type"]
