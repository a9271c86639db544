"""The pipeline takes a batch's records in the order they were complete."""

from __future__ import annotations

from typing import Any

from sensor.detect.runner import Detector
from sensor.pipeline import Pipeline
from sensor.respond import build
from tests.detect.fakes import FakeModels, conn


def test_a_scan_is_judged_when_it_goes_quiet_not_at_the_batch_end() -> None:
    # One replay batch as the engine hands it out: the protocol records of
    # the whole batch first, then the conn records, each when its
    # connection ended (a refused attempt 5 s after its reset).
    scanner, server = "10.0.0.5", "10.0.0.9"
    batch: list[tuple[str, dict[str, Any]]] = [
        ("dns", {"ts": 200.0, "uid": "Cdns", "query": "example.com"}),
        ("dns", {"ts": 400.0, "uid": "Cend", "query": "example.com"}),
    ]
    batch += [
        ("conn", conn(100.0 + i * 0.01, scanner, server, 1 + i, state="REJ"))
        for i in range(30)
    ]
    batch.append(
        ("conn", conn(300.0, scanner, server, 445, state="SF", resp_bytes=900,
                      history="ShADadFf"))
    )  # fmt: skip
    pipeline = Pipeline(
        detector=Detector(FakeModels(), only=["scan.port"]),
        responder=build({}, replay=True),
    )

    out = pipeline.feed(batch) + pipeline.finish()

    # Quiet for 60 s after 100.29: judged, and acted on, at the first
    # record past that (200), not at the batch's end (400).
    propose, end = [r for log, r in out if log == "actions"]
    assert propose["change"] == "propose" and propose["ts"] == 200.0
    assert end["change"] == "end" and end["created"] == 200.0
    # The connection at 300 is one the block would have cut.
    assert end["blast_radius"] == 1
