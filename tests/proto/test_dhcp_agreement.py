"""dhcp.log against Zeek on every shared capture that has one (see agreement.py)."""

from __future__ import annotations

from tests.proto.agreement import check


def test_dhcp_agreement(impl: str) -> None:
    check("dhcp", impl, {}, overall=1.0, identical=1.0)
