"""The Windows lab captures give the lab's devices, names, roles and habits.

Expected values come from Zeek's logs of the same captures
(``shared/pcaps/zeek-logs/benign/winlab_*``): the KDC that answers
Kerberos, the host account of the client, the server name NTLM gives, the
MAC that carries outside traffic, and the services each end used.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import jsonschema
import pytest

from sensor.capture.merge import merge
from sensor.capture.pcapfile import CaptureFile
from sensor.engine import Engine
from sensor.model import Models
from sensor.model.devices import LocalNetworks
from sensor.pipeline import Pipeline
from tests.conftest import PCAPS, ROOT

CAPTURES = sorted((PCAPS / "benign").glob("winlab_*.pcapng"))
ZEEK = PCAPS / "zeek-logs" / "benign"


def zeek(log: str) -> list[dict[str, Any]]:
    out = []
    for capture in CAPTURES:
        path = ZEEK / capture.name / f"{log}.log"
        if path.exists():
            out += [json.loads(line) for line in path.read_text().splitlines()]
    return out


@pytest.fixture(scope="module")
def lab() -> tuple[Models, dict[str, dict[str, Any]]]:
    """The models after the three lab captures, and devices.log by address."""
    assert len(CAPTURES) == 3, f"Windows lab captures not found in {PCAPS / 'benign'}"
    models = Models()
    pipeline = Pipeline(models=models)
    engine = Engine()
    for batch in merge([CaptureFile(str(p)) for p in CAPTURES]):
        pipeline.feed(engine.process(batch))
    pipeline.feed(engine.flush())
    by_ip = {}
    for log, rec in pipeline.finish():
        assert log == "devices"
        for ip in rec.get("ips", []):
            by_ip[ip] = rec
    return models, by_ip


def values(rec: dict[str, Any], table: str) -> list[str]:
    return [v["value"] for v in rec.get(table, [])]


def test_domain_controller(lab: tuple[Models, dict[str, dict[str, Any]]]) -> None:
    models, by_ip = lab
    kdc = collections.Counter(
        r["id.resp_h"] for r in zeek("kerberos") if "." in r["id.resp_h"]
    )
    dc_ip = kdc.most_common(1)[0][0]
    names = {
        r["server_nb_computer_name"] for r in zeek("ntlm") if r["id.resp_h"] == dc_ip
    }
    assert (dc_ip, names) == ("192.168.1.195", {"WIN-CNNEQ7OCUQS"})

    dc = by_ip[dc_ip]
    assert dc["name"] == "WIN-CNNEQ7OCUQS"
    assert dc["roles"][0] == "domain_controller" and "dns_server" in dc["roles"]
    assert dc["group"] == "role:domain_controller"
    assert dc["vendor"] == "PCS Systemtechnik GmbH"  # a VirtualBox guest
    # Its busiest services in Zeek's conn.log: DNS, Kerberos, LDAP.
    served = collections.Counter(
        f"{r['proto']}/{r['id.resp_p']}"
        for r in zeek("conn")
        if r["id.resp_h"] == dc_ip and r.get("resp_pkts", 0) > 0
    )
    top3 = [s for s, _ in served.most_common(3)]
    assert top3 == ["udp/53", "tcp/88", "tcp/389"]
    assert set(top3) <= set(values(dc, "services_offered"))
    # Its link-local address is the same device (EUI-64 is not used there:
    # the address came with the DC's MAC in a conn record).
    assert by_ip["fe80::dd72:4a5:3ad4:c569"]["id"] == dc["id"]
    info = models.device(dc_ip)
    assert info is not None and info.roles == dc["roles"]


def test_client(lab: tuple[Models, dict[str, dict[str, Any]]]) -> None:
    _, by_ip = lab
    hosts = {
        r["client"].split("/")[0].rstrip("$").upper()
        for r in zeek("kerberos")
        if r["id.orig_h"] == "192.168.1.46"
        and r.get("client", "").split("/")[0].endswith("$")
    }
    assert hosts == {"CHIP-DOUGLAS-PC"}

    pc = by_ip["192.168.1.46"]
    assert pc["name"] == "CHIP-DOUGLAS-PC"
    assert pc["roles"] == ["client"] and pc["group"] == "role:client"
    assert pc["mac"] == "08:00:27:2a:ba:35"
    assert "fe80::15d3:5ac:3887:99e4" in pc["ips"]
    assert "administrator/picklesworth" in pc["users"]
    # Its usual peers and services: the DC first, then the router's DNS;
    # DNS, HTTP and Kerberos as in Zeek's conn.log.
    assert values(pc, "peers_internal")[:2] == ["192.168.1.195", "192.168.1.1"]
    used = collections.Counter(
        f"{r['proto']}/{r['id.resp_p']}"
        for r in zeek("conn")
        if r["id.orig_h"] == "192.168.1.46" and r.get("resp_pkts", 0) > 0
    )
    assert [s for s, _ in used.most_common(3)] == ["udp/53", "tcp/80", "tcp/88"]
    assert values(pc, "services_used")[:3] == ["udp/53", "tcp/80", "tcp/88"]
    assert "msn.com" in values(pc, "domains")
    assert pc["user_agents"] and pc["bytes_in"] > pc["bytes_out"] > 100_000


def test_gateway_and_the_other_devices(
    lab: tuple[Models, dict[str, dict[str, Any]]],
) -> None:
    models, by_ip = lab
    local = LocalNetworks()
    outside_macs = collections.Counter(
        r["resp_l2_addr"]
        for r in zeek("conn")
        if r["id.resp_h"] not in local
        and "resp_l2_addr" in r
        and r.get("resp_pkts", 0) > 0
    )
    gw_mac = outside_macs.most_common(1)[0][0]
    gw = by_ip["192.168.1.1"]
    assert gw["mac"] == gw_mac == "10:c3:7b:53:27:38"
    assert gw["roles"] == ["gateway", "dns_server"]
    assert gw["vendor"] == "ASUSTek COMPUTER INC."
    # Outside addresses are peers, never devices.
    assert all(ip in local for ip in by_ip)
    # The bridging host's MAC was seen beside the DC's and the client's
    # addresses too: they stay with their own devices.
    host = by_ip["192.168.1.175"]
    assert host["mac"] == "b0:c0:90:57:d6:4e"
    assert set(host["ips"]) == {"192.168.1.175", "fe80::b2c0:90ff:fe57:d64e"}
    ids = {rec["id"] for rec in by_ip.values()}
    assert len(ids) == 7
    assert models.network_devices("domain", "msn.com") >= 1


def test_devices_log_validates(lab: tuple[Models, dict[str, dict[str, Any]]]) -> None:
    _, by_ip = lab
    schema = json.loads(
        (ROOT / "sensor/output/schemas/devices.schema.json").read_text()
    )
    check = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker()
    )
    for rec in by_ip.values():
        errors = [e.message for e in check.iter_errors(rec)]
        assert not errors, errors
