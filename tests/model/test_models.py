"""The models stage: what detections can ask, learned from crafted records."""

from __future__ import annotations

import json
import math
import sqlite3
from array import array
from pathlib import Path

import pytest

from sensor.model import Models, profile
from sensor.model.store import StateError
from sensor.pipeline import Pipeline
from tests.model.records import T0, conn

PC, PC_MAC = "192.168.1.46", "08:00:27:2a:ba:35"
DC, DC_MAC = "192.168.1.195", "08:00:27:f0:68:53"
GW_MAC = "10:c3:7b:53:27:38"
WEB = "203.0.113.10"


def office(m: Models, start: float = T0, hours: int = 3) -> None:
    """A client that uses the DC and one web site for a few hours."""
    for h in range(hours):
        t = start + h * 3600
        m.observe(
            "conn",
            conn(t, PC, DC, 88, service="krb_tcp", orig_mac=PC_MAC, resp_mac=DC_MAC),
        )
        m.observe(
            "conn",
            conn(t + 1, PC, DC, 389, service="ldap", orig_mac=PC_MAC, resp_mac=DC_MAC),
        )
        m.observe(
            "conn",
            conn(
                t + 2,
                PC,
                DC,
                53,
                proto="udp",
                service="dns",
                orig_mac=PC_MAC,
                resp_mac=DC_MAC,
            ),
        )
        m.observe(
            "dns",
            {
                "ts": t + 2,
                "id.orig_h": PC,
                "id.resp_h": DC,
                "query": "www.example.co.uk",
                "qtype_name": "A",
                "answers": [WEB],
            },
        )
        m.observe(
            "ssl",
            {
                "ts": t + 3,
                "id.orig_h": PC,
                "id.resp_h": WEB,
                "server_name": "www.example.co.uk",
                "ja3": "a" * 32,
                "ja4": "t13d1516h2_8daaf6152771_e5627efa2ab1",
            },
        )
        m.observe(
            "conn",
            conn(
                t + 3,
                PC,
                WEB,
                443,
                service="ssl",
                orig_mac=PC_MAC,
                resp_mac=GW_MAC,
                orig_bytes=5000,
            ),
        )


def test_device_identity_and_roles() -> None:
    m = Models()
    office(m)
    m.observe(
        "kerberos",
        {
            "ts": T0 + 5,
            "id.orig_h": PC,
            "id.resp_h": DC,
            "client": "CHIP-DOUGLAS-PC$/PICKLESWORTH.LOCAL",
            "success": True,
        },
    )
    m.observe(
        "ntlm",
        {
            "ts": T0 + 6,
            "id.orig_h": PC,
            "id.resp_h": DC,
            "hostname": "CHIP-DOUGLAS-PC",
            "username": "alice",
            "domainname": "PICKLESWORTH",
            "server_nb_computer_name": "WIN-CNNEQ7OCUQS",
            "success": True,
        },
    )
    records = {r["id"]: r for _, r in m.finish(T0 + 4 * 3600)}

    pc = m.device(PC)
    assert pc is not None and pc.id == PC_MAC and pc.mac == PC_MAC and pc.internal
    assert pc.name == "CHIP-DOUGLAS-PC" and pc.first_seen == T0
    assert pc.roles == ["client"]
    dc = m.device(DC)
    assert dc is not None and dc.name == "WIN-CNNEQ7OCUQS"
    assert dc.roles == ["domain_controller", "dns_server"]
    assert m.peer_group(dc.id) == "role:domain_controller"
    assert m.device(WEB) is None and not m.is_internal(WEB) and m.is_internal(PC)
    assert set(records) == {PC_MAC, DC_MAC}

    rec = records[PC_MAC]
    assert rec["users"] == ["alice/PICKLESWORTH"]
    assert [p["value"] for p in rec["peers_internal"]] == [DC]
    assert rec["peers_external"][0]["value"] == WEB
    assert rec["domains"][0]["value"] == "example.co.uk"
    assert {s["value"] for s in rec["services_used"]} == {
        "tcp/88",
        "tcp/389",
        "udp/53",
        "tcp/443",
    }
    assert rec["ja3"][0]["value"] == "a" * 32
    assert {s["value"] for s in records[DC_MAC]["services_offered"]} == {
        "tcp/88",
        "tcp/389",
        "udp/53",
    }


def test_new_for_device_and_network_rarity() -> None:
    m = Models()
    office(m, hours=1)
    pc = m.device(PC)
    assert pc is not None
    assert not m.is_new_for_device(pc.id, "domain", "example.co.uk")
    assert not m.is_new_for_device(pc.id, "ip", WEB)
    assert not m.is_new_for_device(pc.id, "ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1")
    assert m.is_new_for_device(pc.id, "domain", "example.org")
    assert m.network_devices("domain", "example.co.uk") == 1
    assert m.network_first_seen("domain", "example.co.uk") == T0 + 2
    assert m.network_devices("domain", "example.org") == 0
    assert m.network_first_seen("domain", "example.org") is None

    # A second device meets the same site: two devices, first seen unchanged.
    other = "192.168.1.60"
    m.observe(
        "conn",
        conn(T0 + 100, other, WEB, 443, orig_mac="08:00:27:00:00:60", resp_mac=GW_MAC),
    )
    assert m.network_devices("ip", WEB) == 2
    m.observe(
        "conn",
        conn(T0 + 200, other, WEB, 443, orig_mac="08:00:27:00:00:60", resp_mac=GW_MAC),
    )
    assert m.network_devices("ip", WEB) == 2
    assert m.network_first_seen("ip", WEB) == T0 + 3


def test_detections_see_the_model_before_the_record() -> None:
    # The pipeline's order: a detection asks "new?" before the models learn.
    m = Models()
    seen: list[bool] = []

    class Probe:
        def observe(self, log: str, record: dict[str, object]) -> list[object]:
            dev = m.device(str(record["id.orig_h"]))
            seen.append(
                dev is None
                or m.is_new_for_device(dev.id, "ip", str(record["id.resp_h"]))
            )
            return []

        def finish(self, now: float) -> list[object]:
            return []

    p = Pipeline(models=m, detector=Probe())  # type: ignore[arg-type]
    r = conn(T0, PC, WEB, 443, orig_mac=PC_MAC, resp_mac=GW_MAC)
    p.feed([("conn", r), ("conn", dict(r, ts=T0 + 10))])
    assert seen == [True, False]


def test_learning_period_and_baselines() -> None:
    m = Models(learning_days=1.0)
    office(m, hours=5)
    pc = m.device(PC)
    assert pc is not None
    assert m.learning(pc.id, T0 + 3600)
    assert not m.learning(pc.id, T0 + 86400 + 1)
    # Four hours are folded (the fifth is in progress): 4 connections and
    # 5000 + 3 * 100 bytes out per hour, less the decay of a few hours.
    conns = m.baseline(pc.id, "conns_per_hour")
    assert conns is not None and conns == pytest.approx(4.0, rel=0.02)
    out = m.baseline(pc.id, "bytes_out_per_hour")
    assert out is not None and out == pytest.approx(5300.0, rel=0.02)
    assert m.baseline(pc.id, "max_upload_bytes") == pytest.approx(5000.0, rel=0.01)
    peers = m.baseline(pc.id, "distinct_peers_per_hour")
    assert peers is not None and peers == pytest.approx(2.0, abs=0.5)
    assert m.baseline(pc.id, "no_such_feature") is None
    assert m.baseline("nobody", "conns_per_hour") is None


def test_counts_decay_with_packet_time() -> None:
    m = Models(decay_days=7.0)
    m.observe("conn", conn(T0, PC, WEB, 443, orig_mac=PC_MAC, resp_mac=GW_MAC))
    m.observe(
        "conn",
        conn(T0 + 7 * 86400, PC, "203.0.113.99", 443, orig_mac=PC_MAC, resp_mac=GW_MAC),
    )
    pc = m.device(PC)
    assert pc is not None
    top = {
        m.rarity.named(fp)[1]: c for fp, c in m.profiles.top(pc.slot, "peers_external")
    }  # type: ignore[index]
    assert top["203.0.113.99"] == pytest.approx(1.0)
    assert top[WEB] == pytest.approx(math.exp(-1.0), rel=1e-3)


def test_snapshot_and_rollback(tmp_path: Path) -> None:
    m = Models(str(tmp_path / "state.db"))
    office(m, hours=1)
    v1 = m.snapshot("after one hour")
    pc = m.device(PC)
    assert pc is not None
    m.observe(
        "conn",
        conn(
            T0 + 7200,
            PC,
            "198.51.100.5",
            22,
            service="ssh",
            orig_mac=PC_MAC,
            resp_mac=GW_MAC,
        ),
    )
    assert not m.is_new_for_device(pc.id, "ip", "198.51.100.5")
    v2 = m.snapshot("after the ssh session")
    assert [v["label"] for v in m.versions()] == [
        "after one hour",
        "after the ssh session",
    ]

    m.rollback(v1)
    pc = m.device(PC)
    assert pc is not None
    assert m.is_new_for_device(pc.id, "ip", "198.51.100.5")
    assert m.network_devices("ip", "198.51.100.5") == 0
    assert not m.is_new_for_device(pc.id, "ip", WEB)
    m.rollback(v2)
    assert not m.is_new_for_device(pc.id, "ip", "198.51.100.5")
    with pytest.raises(StateError):
        m.rollback(99)
    m.close()


def test_snapshot_without_a_state_file() -> None:
    m = Models()
    office(m, hours=1)
    v = m.snapshot("in memory")
    m.observe(
        "conn",
        conn(T0 + 7200, PC, "198.51.100.5", 22, orig_mac=PC_MAC, resp_mac=GW_MAC),
    )
    m.rollback(v)
    pc = m.device(PC)
    assert pc is not None and m.is_new_for_device(pc.id, "ip", "198.51.100.5")


def test_state_reloads_the_same_models(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    one = Models(path)
    office(one, hours=2)
    first = one.finish(T0 + 7200)
    one.close()
    again = Models(path)
    assert again.finish(T0 + 7200) == first
    assert again.store.integrity() == "ok"


def test_dhcp_and_arp_tie_addresses_to_macs() -> None:
    m = Models()
    m.observe(
        "dhcp",
        {
            "ts": T0,
            "uids": ["C1"],
            "mac": PC_MAC,
            "assigned_addr": PC,
            "host_name": "laptop-7",
            "server_addr": "192.168.1.1",
            "msg_types": ["REQUEST", "ACK"],
            "duration": 0.1,
        },
    )
    pc = m.device(PC)
    assert pc is not None and pc.id == PC_MAC and pc.name == "laptop-7"
    m.observe(
        "arp",
        {
            "ts": T0 + 5,
            "op": "reply",
            "src_mac": PC_MAC,
            "src_ip": "192.168.1.99",
            "dst_mac": GW_MAC,
            "dst_ip": "192.168.1.1",
            "gratuitous": False,
            "count": 1,
        },
    )
    assert m.device("192.168.1.99") is pc
    # A protocol record before its conn record waits for the device's MAC.
    m.observe(
        "http",
        {
            "ts": T0 + 10,
            "id.orig_h": "192.168.1.70",
            "id.resp_h": WEB,
            "user_agent": "curl/8.0",
            "host": "www.example.com",
        },
    )
    assert m.device("192.168.1.70") is None
    m.observe(
        "conn",
        conn(
            T0 + 10,
            "192.168.1.70",
            WEB,
            80,
            service="http",
            orig_mac="08:00:27:00:00:70",
            resp_mac=GW_MAC,
        ),
    )
    dev = m.device("192.168.1.70")
    assert dev is not None and dev.id == "08:00:27:00:00:70"
    assert not m.is_new_for_device(dev.id, "ua", "curl/8.0")
    assert not m.is_new_for_device(dev.id, "domain", "example.com")


def test_a_state_of_schema_1_is_read_and_upgraded(tmp_path: Path) -> None:
    # Schema 1 kept 64-bit hashes in the top-k slots and the derived
    # identity fields: rewrite a fresh state that way, then reload it.
    path = str(tmp_path / "state.db")
    one = Models(path)
    office(one, hours=2)
    first = one.finish(T0 + 7200)
    by_fp = dict(one.rarity.by_fp)
    one.close()

    db = sqlite3.connect(path)
    at, n = profile.HOURS * 2, len(profile.TABLES) * profile.K
    for did, identity, row in db.execute("SELECT id, identity, profile FROM devices"):
        keys = array("I", row[at : at + 4 * n])
        wide = array("Q", [by_fp.get(k, k) if k else 0 for k in keys])
        old = row[:at] + wide.tobytes() + row[at + 4 * n :]
        d = json.loads(identity)
        d.update(ip=d["ips"][0], name=None, group=None, internal=True)
        db.execute(
            "UPDATE devices SET identity = ?, profile = ? WHERE id = ?",
            (json.dumps(d), old, did),
        )
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    db.commit()
    db.close()

    again = Models(path)
    assert again.store.meta()["schema"] == 2
    assert again.finish(T0 + 7200) == first


def test_a_state_of_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    Models(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '9' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="state schema 9, this sensor reads 2"):
        Models(path)
