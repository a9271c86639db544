"""JA3, JA3S, JA4 and JA4S against the reference values of other tools.

References, read in place from ../shared/pcaps:

- fingerprints/ja4_*.json: the FoxIO reference implementation's JA4 and
  JA4S per TCP stream (every TLS stream it lists; its QUIC and HTTP
  entries have no JA4/JA4S keys);
- fingerprints/ja3_*.ssl.log: Zeek's ja3 package (the connection of
  ja3_ssl-chrome.pcap);
- suricata/tls__tls-certs-alert/tls-ja3s.test.yaml: Suricata's JA3S;
- fingerprints/ndpi/*.ndpi.out: nDPI's JA3C, JA3S and JA4.

The captures go through the Engine with its default payload limits (the
hellos are in the first packets) for both implementations.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sensor.proto.parsers import ja
from sensor.proto.parsers import tls as wire
from tests.conftest import PCAPS
from tests.proto import tls_bytes as b
from tests.proto.test_tls_agreement import dump

FP = PCAPS / "fingerprints"
Key = tuple[str, int, str, int]
CAPTURES = [
    "fingerprints/ja4_latest.pcapng",
    "fingerprints/ja4_tls-handshake.pcapng",
    "fingerprints/ja4_tls-sni.pcapng",
    "fingerprints/ja3_ssl-chrome.pcap",
    "fingerprints/ndpi/ndpi__ja3_lots_of_cipher_suites.pcap",
    "fingerprints/ndpi/ndpi__tls_malicious_sha1.pcapng",
    "suricata/tls__tls-certs-alert/input.pcap",
]


@pytest.fixture(scope="module", params=["compiled", "python"])
def dumped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return dump(str(request.param), tmp_path_factory.mktemp("ja"), False, CAPTURES)


@pytest.fixture(scope="module")
def ssl_records(
    dumped: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, dict[Key, dict[str, Any]]]:
    out: dict[str, dict[Key, dict[str, Any]]] = {}
    for rel, logs in dumped.items():
        out[rel] = {
            (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]): r
            for r in logs.get("ssl", [])
        }
    return out


@pytest.mark.parametrize(
    "name, count",
    [
        ("ja4_latest.pcapng", 8),
        ("ja4_tls-handshake.pcapng", 117),
        ("ja4_tls-sni.pcapng", 59),
    ],
)
def test_foxio_ja4_and_ja4s(ssl_records: dict[str, Any], name: str, count: int) -> None:
    mine = ssl_records[f"fingerprints/{name}"]
    checked = 0
    for entry in json.loads((FP / f"{name}.json").read_text()):
        key = (entry["src"], int(entry["srcport"]), entry["dst"], int(entry["dstport"]))
        for ref, field in (("JA4.1", "ja4"), ("JA4S", "ja4s")):
            if ref in entry:
                assert mine.get(key, {}).get(field) == entry[ref], (key, ref)
                checked += 1
    assert checked == count


def test_foxio_ja4x(dumped: dict[str, Any], ssl_records: dict[str, Any]) -> None:
    # JA4X.n is the n-th certificate the server sent; x509.log has each
    # certificate once, so the chain comes from ssl.log's cert_chain_fps.
    checked = 0
    for name in ("ja4_latest.pcapng", "ja4_tls-handshake.pcapng"):
        rel = f"fingerprints/{name}"
        ja4x = {r["fingerprint"]: r["ja4x"] for r in dumped[rel].get("x509", [])}
        for entry in json.loads((FP / f"{name}.json").read_text()):
            key = (
                entry["src"],
                int(entry["srcport"]),
                entry["dst"],
                int(entry["dstport"]),
            )
            chain = ssl_records[rel].get(key, {}).get("cert_chain_fps", [])
            for n in range(1, 6):
                if f"JA4X.{n}" in entry:
                    assert ja4x[chain[n - 1]] == entry[f"JA4X.{n}"], (key, n)
                    checked += 1
    assert checked == 22


def test_zeek_ja3_package(ssl_records: dict[str, Any]) -> None:
    log = (FP / "ja3_ja3-tests.chrome_test1.ssl.log").read_text().splitlines()
    fields = next(line.split("\t")[1:] for line in log if line.startswith("#fields"))
    row = dict(
        zip(fields, next(line.split("\t") for line in log if not line.startswith("#")))
    )
    key = (
        row["id.orig_h"],
        int(row["id.orig_p"]),
        row["id.resp_h"],
        int(row["id.resp_p"]),
    )
    assert ssl_records["fingerprints/ja3_ssl-chrome.pcap"][key]["ja3"] == row["ja3"]
    assert row["ja3"] == "14eff09463c9d6dc6e14e954eba239c2"


def test_suricata_ja3s(ssl_records: dict[str, Any]) -> None:
    text = (PCAPS / "suricata/tls__tls-certs-alert/tls-ja3s.test.yaml").read_text()
    want = re.search(r'tls\.ja3s\.hash: "([0-9a-f]{32})"', text)
    assert want is not None
    (rec,) = ssl_records["suricata/tls__tls-certs-alert/input.pcap"].values()
    assert rec["ja3s"] == want.group(1) == "5d79edf64e03689ff559a54e9d9487bc"


@pytest.mark.parametrize(
    "capture, fields",
    [
        ("ndpi__ja3_lots_of_cipher_suites.pcap", {"JA3S": "ja3s"}),
        (
            "ndpi__tls_malicious_sha1.pcapng",
            {"JA3C": "ja3", "JA3S": "ja3s", "JA4": "ja4"},
        ),
    ],
)
def test_ndpi(
    ssl_records: dict[str, Any], capture: str, fields: dict[str, str]
) -> None:
    out = (FP / "ndpi" / f"{capture}.ndpi.out").read_text()
    (rec,) = ssl_records[f"fingerprints/ndpi/{capture}"].values()
    for ref, field in fields.items():
        want = re.search(rf"{ref}: ([0-9a-z_]+)", out)
        assert want is not None and rec[field] == want.group(1), ref


# -- by hand, from the specifications ------------------------------------------


def test_grease() -> None:
    assert all(ja.is_grease(v) for v in (0x0A0A, 0x1A1A, 0xFAFA))
    assert not any(ja.is_grease(v) for v in (0x0A1A, 0x1301, 0xAAAB))


def sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_ja4_sorted_and_version_from_supported_versions() -> None:
    hello = wire.parse_client_hello(
        b.client_hello(
            [0x2A2A, 0x1302, 0x1301, 0xC02B],
            [
                b.ext(0x3A3A, b""),
                b.sni("x.test"),
                b.alpn(b"h2"),
                b.versions_client(0x4A4A, 0x0304, 0x0303),
                b.sig_algs(0x0804, 0x0403),
                b.groups(29),
            ],
        )
    )
    assert (
        ja.ja4(hello)
        == f"t13d0305h2_{sha12('1301,1302,c02b')}_{sha12('000a,000d,002b_0804,0403')}"
    )
    assert ja.ja3_string(hello) == "771,4866-4865-49195,0-16-43-13-10,29,"


@pytest.mark.parametrize(
    "protos, want",
    [
        ((), "00"),
        ((b"http/1.1",), "h1"),
        ((b"\xff\x01",), "f1"),
        ((b"h",), "hh"),
        ((b"",), "00"),
    ],
)
def test_ja4_alpn_characters(protos: tuple[bytes, ...], want: str) -> None:
    exts = [b.alpn(*protos)] if protos else []
    hello = wire.parse_client_hello(b.client_hello([0x1301], exts))
    assert ja.ja4(hello)[8:10] == want


def test_ja4_without_ciphers_or_extensions() -> None:
    hello = wire.parse_client_hello(b.client_hello([]))
    assert ja.ja4(hello) == "t12i000000_000000000000_000000000000"


def test_ja3s_and_ja4s() -> None:
    hello = wire.parse_server_hello(
        b.server_hello(0x1301, [b.version_server(0x0304), b.key_share_server(29)])
    )
    assert ja.ja3s_string(hello) == "771,4865,43-51"
    assert ja.ja3s(hello) == hashlib.md5(b"771,4865,43-51").hexdigest()
    assert ja.ja4s(hello) == f"t130200_1301_{sha12('002b,0033')}"


def test_reference_files_exist() -> None:
    for name in ("ja4_latest.pcapng", "ja4_tls-handshake.pcapng", "ja4_tls-sni.pcapng"):
        assert Path(FP / f"{name}.json").is_file()
