"""Device identity: MAC first, addresses over time, names, vendors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.model.devices import (
    IP_CHANGE_GAP,
    Identities,
    LocalNetworks,
    eui64_mac,
    vendor,
)
from tests.model.records import T0

MAC_A = "08:00:27:2a:ba:35"  # VirtualBox (PCS Systemtechnik)
MAC_B = "b0:c0:90:57:d6:4e"
GW = "10:c3:7b:53:27:38"


def ids() -> Identities:
    return Identities(LocalNetworks())


def test_local_networks_default_and_configured() -> None:
    local = LocalNetworks()
    for inside in (
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.46",
        "100.64.0.1",
        "fd00::1",
        "fe80::1",
    ):
        assert inside in local
    for outside in (
        "8.8.8.8",
        "172.32.0.1",
        "2001:db8::1",
        "198.51.100.7",
        "not an ip",
    ):
        assert outside not in local
    custom = LocalNetworks(["198.51.100.0/24"])
    assert "198.51.100.7" in custom and "10.0.0.1" not in custom


@pytest.mark.skipif(
    not Path("/usr/share/ieee-data/oui.csv").exists(),
    reason="Debian's ieee-data is not installed (scripts/install-system installs it)",
)
def test_vendor_from_the_ieee_registry() -> None:
    assert vendor(MAC_A) == "PCS Systemtechnik GmbH"
    assert vendor("10:C3:7B:53:27:38") == "ASUSTek COMPUTER INC."
    assert vendor("02:00:00:00:00:01") is None  # locally administered


def test_eui64() -> None:
    assert eui64_mac("fe80::b2c0:90ff:fe57:d64e") == MAC_B
    assert eui64_mac("fe80::15d3:5ac:3887:99e4") is None
    assert eui64_mac("192.168.1.1") is None


def test_a_device_that_changes_address_stays_one_device() -> None:
    d = ids()
    dev = d.seen("192.168.1.46", MAC_A, T0)
    assert dev is not None and dev.id == MAC_A and dev.ip == "192.168.1.46"
    # After a quiet gap the MAC comes back with another address: same device.
    later = d.seen("192.168.1.77", MAC_A, T0 + IP_CHANGE_GAP + 1)
    assert later is dev
    assert dev.ips == ("192.168.1.77", "192.168.1.46")
    assert d.get("192.168.1.77") is dev
    # A DHCP lease (strong) moves an address, even one another device had.
    other = d.seen("192.168.1.50", MAC_B, T0)
    assert other is not None and other is not dev
    moved = d.bind("192.168.1.50", MAC_A, T0 + 2000)
    assert moved is dev
    assert d.get("192.168.1.50") is dev
    assert "192.168.1.50" not in other.ips
    assert len(d.devices) == 2


def test_outside_addresses_are_not_devices_and_the_gateway_is_not_merged() -> None:
    d = ids()
    gw = d.seen("192.168.1.1", GW, T0)
    assert gw is not None
    for i in range(20):
        # Routed traffic: every outside address comes with the gateway's MAC.
        assert d.seen(f"203.0.113.{i}", GW, T0 + i) is None
    assert list(d.devices) == [GW]
    assert gw.ips == ("192.168.1.1",)
    assert GW in d.gateway_macs
    # An internal address behind the gateway (another subnet) is its own device.
    far = d.seen("10.20.0.5", GW, T0 + 30)
    assert far is not None and far is not gw
    assert far.id == "ip:10.20.0.5" and far.mac is None


def test_a_bridge_mac_does_not_take_other_devices_addresses() -> None:
    # A host bridging virtual machines over Wi-Fi rewrites their MACs to its
    # own (seen in the Windows lab captures): the first MAC an address comes
    # with names its device, later ones do not move it.
    d = ids()
    vm = d.seen("192.168.1.46", MAC_A, T0)
    host = d.seen("192.168.1.175", MAC_B, T0 + 1)
    assert d.seen("192.168.1.46", MAC_B, T0 + 2) is vm
    assert vm is not None and host is not None
    assert vm.ips == ("192.168.1.46",) and host.ips == ("192.168.1.175",)
    # A new address behind the bridge's MAC while its own is in use: shared.
    guest = d.seen("192.168.1.195", MAC_B, T0 + 3)
    assert guest is not None and guest is not host and guest.id == "ip:192.168.1.195"
    assert MAC_B in d.shared_macs
    # Its link-local EUI-64 address still names the bridge itself.
    assert d.seen("fe80::b2c0:90ff:fe57:d64e", MAC_B, T0 + 4) is host


def test_names_keep_the_strongest_source_first() -> None:
    d = ids()
    dev = d.seen("192.168.1.46", MAC_A, T0)
    assert dev is not None
    d.name(dev, "chip-douglas-pc.picklesworth.local", "dns")
    assert dev.name == "chip-douglas-pc.picklesworth.local"
    d.name(dev, "CHIP-DOUGLAS-PC", "kerberos")
    assert dev.name == "CHIP-DOUGLAS-PC"
    d.name(dev, "other", "dns")
    assert dev.name == "CHIP-DOUGLAS-PC"
    d.name(dev, "laptop-7", "dhcp")
    assert dev.names == (
        "laptop-7",
        "CHIP-DOUGLAS-PC",
        "chip-douglas-pc.picklesworth.local",
        "other",
    )


def test_state_round_trip() -> None:
    d = ids()
    a = d.seen("192.168.1.46", MAC_A, T0)
    d.seen("203.0.113.9", GW, T0)
    assert a is not None
    d.name(a, "pc", "ntlm")
    again = ids()
    again.load(d.state(), [type(a).from_state(x.state()) for x in d.devices.values()])
    b = again.get("192.168.1.46")
    assert b is not None and b.state() == a.state() and b.name == "pc"
    assert again.gateway_macs == {GW}
