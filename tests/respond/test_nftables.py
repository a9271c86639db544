"""The nftables back-end: the elements each intent makes, and (as root, in
a network namespace of the test's own) that the kernel takes every kind and
times them out by itself."""

from __future__ import annotations

import json
import subprocess
import sys

from sensor.respond.backends.nftables import elements
from sensor.respond.intent import Intent
from tests.conftest import ROOT
from tests.daemon.conftest import env_for, require_netns


def intent(action: str, target: str = "192.0.2.10", **kw: object) -> Intent:
    return Intent(action=action, target=target, reason="t", requested_by="t",
                  created=0.0, expires=30.0, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_elements_per_action() -> None:
    assert elements(intent("block", dst_ip="198.51.100.10")) == [
        ("pair4", {"concat": ["192.0.2.10", "198.51.100.10"]})
    ]
    assert elements(
        intent("block", dst_net="203.0.113.0/24", port=443, proto="tcp")
    ) == [
        (
            "svc4",
            {
                "concat": [
                    "192.0.2.10",
                    {"prefix": {"addr": "203.0.113.0", "len": 24}},
                    "tcp",
                    443,
                ]
            },
        )
    ]
    # A domain: the addresses it resolved to; the other family is skipped.
    d = intent("block", dst_domain="evil.example")
    d.follow("evil.example", ["203.0.113.7", "2001:db8::7"])
    assert elements(d) == [("pair4", {"concat": ["192.0.2.10", "203.0.113.7"]})]
    assert elements(intent("quarantine", target="2001:db8::10")) == [
        ("quar6", "2001:db8::10")
    ]
    assert elements(intent("enforce", allow=["198.51.100.1", "2001:db8::1"])) == [
        ("enf4", "192.0.2.10"),
        ("peers4", {"concat": ["192.0.2.10", "198.51.100.1"]}),
    ]


KERNEL = """
import json, time
from sensor.respond.backends.nftables import NFTables
from sensor.respond.intent import Intent

def mk(action, target, seconds, **kw):
    return Intent(action=action, target=target, reason="t", requested_by="t",
                  created=now, expires=now + seconds, **kw)

now = time.time()
n = NFTables(quarantine_allow=["192.0.2.1", "2001:db8::/64"])
for i in [mk("block", "192.0.2.10", 2, dst_ip="198.51.100.10"),
          mk("block", "192.0.2.10", 30, dst_net="203.0.113.0/24", port=443, proto="tcp"),
          mk("block", "2001:db8::10", 30, dst_ip="2001:db8:1::10", port=53, proto="udp"),
          mk("quarantine", "192.0.2.11", 30),
          mk("enforce", "192.0.2.12", 30, allow=["198.51.100.1"])]:
    n.apply(i, now)
first = n.listed()
time.sleep(3.2)
later = n.listed()
print(json.dumps({"first": first, "later": later}))
"""


def test_kernel_takes_every_kind_and_times_out() -> None:
    require_netns()
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", KERNEL],
        cwd=ROOT, env=env_for("compiled"), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    first, later = out["first"], out["later"]
    assert first["pair4"] == [{"concat": ["192.0.2.10", "198.51.100.10"]}]
    assert first["svc4"] == [
        {
            "concat": [
                "192.0.2.10",
                {"prefix": {"addr": "203.0.113.0", "len": 24}},
                "tcp",
                443,
            ]
        }
    ]
    assert first["svc6"] == [{"concat": ["2001:db8::10", "2001:db8:1::10", "udp", 53]}]
    assert first["quar4"] == ["192.0.2.11"] and first["enf4"] == ["192.0.2.12"]
    assert first["peers4"] == [{"concat": ["192.0.2.12", "198.51.100.1"]}]
    assert first["infra4"] == ["192.0.2.1"]
    assert first["infra6"] == [{"prefix": {"addr": "2001:db8::", "len": 64}}]
    # The 2-second block is gone, by the kernel's timeout alone; the rest stay.
    assert later.get("pair4", []) == []
    assert later["svc4"] == first["svc4"] and later["quar4"] == ["192.0.2.11"]
