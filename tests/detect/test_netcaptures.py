"""The network detections on the shared captures, with the real models.

Each capture is replayed through the engine, the device models and these
detections only (``--learn`` style for the case that needs a baseline),
and the notable alerts (score 50 or more) are compared with
``expected-detections.json``'s cases and benign captures. About 10 s.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jsonschema
import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.detect.alert import Alert
from sensor.detect.runner import Detector
from sensor.engine import Engine
from sensor.model import Models
from sensor.pipeline import Pipeline
from tests.conftest import PCAPS, ROOT

MINE = [
    "c2.beacon",
    "tunnel.dns",
    "tunnel.icmp",
    "dns.dga",
    "exfil.volume",
    "endpoint.rare",
    "email.rare_link",
    "file.rare_download",
    "tls.rare_fingerprint",
]
LEARN = (
    "benign/winlab_2016-08-15_2009_macgyver.pcapng",
    "benign/winlab_2016-08-16_2044_windows_miscellany.pcapng",
    "benign/winlab_2016-08-16_2104_aug16_part2.pcapng",
)


def feed(pipeline: Pipeline, capture: str) -> None:
    engine = Engine()
    for batch in merge([CaptureFile(str(PCAPS / capture))]):
        pipeline.feed(engine.process(batch))
    pipeline.feed(engine.flush())


@lru_cache(maxsize=32)
def alerts(capture: str, learn: tuple[str, ...] = ()) -> tuple[Alert, ...]:
    """The alerts of these detections over ``capture``, learning first."""
    models = Models(None)
    for other in learn:
        feed(Pipeline(models=models), other)
    pipeline = Pipeline(models=models, detector=Detector(models, only=MINE))
    feed(pipeline, capture)
    pipeline.finish()
    return tuple(pipeline.alerts)


CASES = [
    ("attacks/c2/slips_test-cc-capture-1_periodic2s.pcap", "c2.beacon", "147.32.80.37", False),
    ("attacks/c2/elcabezzonn_empire_c2.pcapng", "c2.beacon", "192.168.1.46", True),
    ("attacks/c2/pcapattack_cmds_over_dns_txt.pcap", "tunnel.dns", "192.168.100.121", False),
    ("attacks/dns-tunnel/ndpi__dns-tunnel-iodine.pcap", "tunnel.dns", "10.0.2.30", False),
    ("attacks/dns-tunnel/ndpi__bad-dns-traffic.pcap", "tunnel.dns", "192.168.43.91", False),
    ("suricata/smtp-url-base64/smtp-url-b64.pcap", "email.rare_link", "127.0.0.1", False),
    ("attacks/exploit/chrissanders_ek_to_cryptowall4.pcapng", "file.rare_download", "192.168.122.145", False),
]  # fmt: skip


@pytest.mark.parametrize(("capture", "kind", "host", "after_learning"), CASES)
def test_found(capture: str, kind: str, host: str, after_learning: bool) -> None:
    found = alerts(capture, LEARN if after_learning else ())
    notable = [a for a in found if a.detection == kind and a.score >= 50]
    assert notable, (
        f"{capture}: no notable {kind}: {[(a.detection, a.score) for a in found]}"
    )
    assert any(a.device.ip == host and a.src.ip == host for a in notable)
    for a in notable:
        assert a.reasons and a.uids and a.summary.startswith(("a mail", host))


def test_beacon_figures_on_the_periodic_capture() -> None:
    (a,) = [a for a in alerts(CASES[0][0]) if a.detection == "c2.beacon"]
    assert a.dst.domain == "testing.com" and a.dst.port == 443
    reasons = {r.feature: r.value for r in a.reasons}
    assert 2.0 < reasons["interval_s"] < 2.5 and reasons["checkins"] >= 100
    assert a.score > 90


@pytest.mark.parametrize(
    "capture",
    [
        "benign/packethunting_Win7-Chrome-browsing.pcap",
        "benign/packethunting_BadSSL.pcap",
        "benign/chrissanders_http_espn.pcapng",
        "benign/apps/ndpi__netflix.pcap",
        "benign/apps/ndpi__whatsappfiles.pcap",
        "zeek/traces/wikipedia.pcap",
        *LEARN,
    ],
)
def test_benign_is_not_notable(capture: str) -> None:
    noisy = [
        (a.detection, a.score, a.summary) for a in alerts(capture) if a.score >= 50
    ]
    assert noisy == []


def test_records_match_the_alerts_schema() -> None:
    schema = json.loads((ROOT / "sensor/output/schemas/alerts.schema.json").read_text())
    checker = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    seen = set()
    for capture, *_ in CASES:
        for a in alerts(capture, LEARN if "empire" in capture else ()):
            checker.validate(a.record())
            seen.add(a.detection)
    assert {"c2.beacon", "tunnel.dns", "email.rare_link", "file.rare_download"} <= seen
