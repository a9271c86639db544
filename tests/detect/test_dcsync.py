"""credential.dcsync: DRSGetNCChanges from a machine that is not a DC."""

from __future__ import annotations

import pytest

from sensor.detect.dcsync import DCSync
from tests.detect.winreplay import FakeModels, run

SECRETSDUMP = "suricata/bug-5162/input.pcap"


def test_replication_from_a_workstation() -> None:
    alerts = run(DCSync(FakeModels()), SECRETSDUMP)
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.src.ip, a.dst.ip, a.dst.port, a.score, a.mitre) == (
        "192.168.56.104",
        "192.168.56.102",
        49667,
        85,
        "T1003.006",
    )
    assert "DRSGetNCChanges" in a.summary and a.uids[0].startswith("C")


def test_replication_between_domain_controllers_is_normal() -> None:
    models = FakeModels({"192.168.56.104": ["domain_controller"]})
    assert run(DCSync(models), SECRETSDUMP) == []


def test_client_that_serves_kerberos_is_a_dc() -> None:
    det = DCSync(FakeModels())
    krb = {"ts": 1.0, "uid": "CA", "id.orig_h": "192.0.2.9", "id.orig_p": 5000,
           "id.resp_h": "192.0.2.5", "id.resp_p": 88, "request_type": "AS"}  # fmt: skip
    drs = {"ts": 2.0, "uid": "CB", "id.orig_h": "192.0.2.5", "id.orig_p": 5001,
           "id.resp_h": "192.0.2.6", "id.resp_p": 49667, "endpoint": "drsuapi",
           "operation": "DRSGetNCChanges", "rtt": 0.001}  # fmt: skip
    assert det.observe("kerberos", krb) == []
    assert det.observe("dce_rpc", drs) == []
    other = dict(drs, uid="CC", **{"id.orig_h": "192.0.2.77"})
    assert [a.src.ip for a in det.observe("dce_rpc", other)] == ["192.0.2.77"]


@pytest.mark.parametrize(
    "capture",
    [
        "benign/winlab_2016-08-15_2009_macgyver.pcapng",
        "benign/winlab_2016-08-16_2044_windows_miscellany.pcapng",
    ],
)
def test_no_alert_on_normal_domain_traffic(capture: str) -> None:
    assert run(DCSync(FakeModels()), capture) == []


def test_kerberos_inside_smb_does_not_make_a_dc() -> None:
    """An AP record's server is a file or RPC server, not a KDC."""
    det = DCSync(FakeModels())
    ap = {"ts": 1.0, "uid": "CA", "id.orig_h": "192.0.2.9", "id.orig_p": 5000,
          "id.resp_h": "192.0.2.5", "id.resp_p": 445, "request_type": "AP"}  # fmt: skip
    drs = {"ts": 2.0, "uid": "CB", "id.orig_h": "192.0.2.5", "id.orig_p": 5001,
           "id.resp_h": "192.0.2.6", "id.resp_p": 49667, "endpoint": "drsuapi",
           "operation": "DRSGetNCChanges", "rtt": 0.001}  # fmt: skip
    assert det.observe("kerberos", ap) == []
    assert [a.src.ip for a in det.observe("dce_rpc", drs)] == ["192.0.2.5"]
