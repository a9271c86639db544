"""endpoint.rare and tls.rare_fingerprint: first contact with the unusual.

Both ask the device models two questions: is this new for the device, and
how many devices on the network use it. Something new to one device and
used by almost no one is where implants call home and where new software
comes from; alone it is weak (every new web site is new), so each adds
what makes the contact odd, and both halve their score while the device
is learning (its history is not yet a baseline) or unknown to the models.

**endpoint.rare**, per connection of an internal device to an external
address that answered (DNS, NTP, DHCP and NetBIOS ports aside): the
address is new for the device, and the destination (its registered domain
when a name is known from DNS, SNI or Host, else the address) is used by
at most ``rare_devices`` devices. Points: 25; +10 when no device had used
it before (never seen on the network); +10 when the device reached it by
address with no name at all; +20 when the port is not a common service
port (:data:`COMMON_PORTS`). Each device and destination is judged once;
reported from ``report_score``.

**tls.rare_fingerprint**, per TLS client hello (ssl.log): the JA4 (JA3
when there is no JA4: JA4 sorts the extensions, so a browser that shuffles
them, as Chrome does since version 110, keeps one JA4 but shows a new JA3
on every connection) is new for the device and used by at most
``rare_devices`` devices. Points: 40; +15 when no device had used it;
+10 when the server name is also rare (or missing). Each device and
fingerprint is judged once; reported from ``report_score``.
"""

from __future__ import annotations

from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    NON_NEGATIVE,
    SCORE,
    Detection,
    NamedConnDetection,
    Threshold,
    register,
)
from sensor.detect.beacon import QUIET_PORTS
from sensor.detect.names import registered_domain
from sensor.detect.support import BoundedTable, device_id, device_ref, is_unicast
from sensor.model.view import ModelView

#: Ports of services that devices commonly use on the Internet.
COMMON_PORTS = frozenset(
    {
        20,
        21,
        22,
        25,
        53,
        80,
        110,
        123,
        143,
        443,
        465,
        587,
        853,
        993,
        995,
        3478,
        5222,
        5228,
        8080,
        8443,
    }
)

_ANSWERED = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR", "OTH"})


def halve_while_learning(
    models: ModelView, did: str | None, now: float, score: float, reasons: list[Reason]
) -> tuple[float, bool]:
    """``score`` halved while the device learns or when the models do not
    know it, the halving added to ``reasons``; and whether it was halved."""
    if did is None or models.learning(did, now):
        reasons.append(Reason("device_learning", True, "score halved"))
        return score * 0.5, True
    return score, False


@register
class RareEndpoint(NamedConnDetection):
    """An external endpoint new to the device and rare on the network."""

    name = "endpoint.rare"
    mitre = "T1071"
    thresholds = (
        Threshold("rare_devices", 1, "A destination used by more devices than this is not rare.", NON_NEGATIVE),
        Threshold("report_score", 45.0, "Score from which a contact is reported (a new site alone, 35, is not).", SCORE),
        Threshold("max_seen", 100_000, "Device and destination pairs remembered as judged.", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.seen: BoundedTable[tuple[str, str], bool] = BoundedTable(
            self.t["max_seen"]
        )

    def observe_conn(self, record: dict[str, Any]) -> list[Alert]:
        """Judge each answered external contact once."""
        src = record.get("id.orig_h", "")
        dst = record.get("id.resp_h", "")
        port = int(record.get("id.resp_p") or 0)
        if (
            record.get("conn_state") not in _ANSWERED
            or not int(record.get("resp_bytes") or 0)
            or port in QUIET_PORTS
            or not is_unicast(dst)
            or self.models.is_internal(dst)
            or not self.models.is_internal(src)
        ):
            return []
        host = self.names.name_of(record.get("uid"), dst)
        domain = registered_domain(host) if host else None
        target = domain or dst
        if (src, target) in self.seen:
            return []
        self.seen.put((src, target), True)

        mac = record.get("orig_l2_addr")
        did = device_id(self.models, src, mac)
        if not self.models.is_new_for_device(did or src, "ip", dst):
            return []
        kind = "domain" if domain else "ip"
        users = self.models.network_devices(kind, target)
        if users > self.t["rare_devices"]:
            return []

        ts = float(record.get("ts") or 0.0)
        score = 25.0
        reasons = [
            Reason("new_for_device", dst, "addresses the device used before"),
            Reason(
                "devices_using_destination",
                users,
                f"rare up to {self.t['rare_devices']}",
            ),
        ]
        never = self.models.network_first_seen(kind, target) is None
        if never:
            score += 10
            reasons.append(Reason("never_seen_on_network", target, None))
        if domain is None:
            score += 10
            reasons.append(
                Reason("reached_by_address", dst, "a name from DNS, SNI or Host")
            )
        if port not in COMMON_PORTS:
            score += 20
            reasons.append(Reason("uncommon_port", port, "common service ports"))
        score, halved = halve_while_learning(self.models, did, ts, score, reasons)
        if score < self.t["report_score"]:
            return []

        where = f"{host} ({dst}:{port})" if host else f"{dst}:{port}"
        service = record.get("service") or record.get("proto")
        summary = (
            f"{src} reached {where} over {service}, new for the device and "
            + ("never seen on the network" if never else f"used by {users} device(s)")
            + (", by address with no name" if domain is None else "")
            + (f", on uncommon port {port}" if port not in COMMON_PORTS else "")
            + (
                f"; {int(record.get('orig_bytes') or 0)} bytes out, {int(record.get('resp_bytes') or 0)} back"
            )
            + ("; the device is still learning, score halved" if halved else "")
        )
        return [
            Alert(
                ts=ts,
                detection=self.name,
                score=score,
                device=device_ref(self.models, src, mac),
                src=Endpoint(ip=src),
                dst=Endpoint(ip=dst, port=port, domain=domain),
                summary=summary,
                reasons=reasons,
                mitre=self.mitre,
                uids=[str(record.get("uid"))],
            )
        ]


@register
class RareFingerprint(Detection):
    """A TLS client fingerprint rare on the network and new for the device."""

    name = "tls.rare_fingerprint"
    mitre = "T1573"
    logs = ("ssl",)
    thresholds = (
        Threshold("rare_devices", 1, "A fingerprint used by more devices than this is not rare.", NON_NEGATIVE),
        Threshold("report_score", 40.0, "Score from which a fingerprint is reported (not while learning).", SCORE),
        Threshold("max_seen", 100_000, "Device and fingerprint pairs remembered as judged.", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.seen: BoundedTable[tuple[str, str], bool] = BoundedTable(
            self.t["max_seen"]
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Judge the first use of each fingerprint by each internal device."""
        kind, value = (
            ("ja4", record.get("ja4"))
            if record.get("ja4")
            else ("ja3", record.get("ja3"))
        )
        src = record.get("id.orig_h", "")
        if not value or not self.models.is_internal(src) or (src, value) in self.seen:
            return []
        self.seen.put((src, str(value)), True)
        did = device_id(self.models, src)
        if not self.models.is_new_for_device(did or src, kind, str(value)):
            return []
        users = self.models.network_devices(kind, str(value))
        if users > self.t["rare_devices"]:
            return []

        ts = float(record.get("ts") or 0.0)
        score = 40.0
        reasons = [
            Reason(
                f"{kind}_new_for_device", value, "fingerprints the device used before"
            ),
            Reason(
                f"devices_using_{kind}", users, f"rare up to {self.t['rare_devices']}"
            ),
        ]
        never = users == 0 and self.models.network_first_seen(kind, str(value)) is None
        if never:
            score += 15
        sni = record.get("server_name")
        domain = registered_domain(str(sni)) if sni else None
        if (
            domain is None
            or self.models.network_devices("domain", domain) <= self.t["rare_devices"]
        ):
            score += 10
            reasons.append(
                Reason(
                    "server_name_rare",
                    sni,
                    f"used by more than {self.t['rare_devices']} device(s)",
                )
            )
        score, halved = halve_while_learning(self.models, did, ts, score, reasons)
        if score < self.t["report_score"]:
            return []

        dst = record.get("id.resp_h")
        port = int(record.get("id.resp_p") or 0)
        summary = (
            f"{src} made a TLS client hello with {kind.upper()} {value} to "
            f"{sni or 'no server name'} ({dst}:{port}), a fingerprint new for the device and "
            + ("never seen on the network" if never else f"used by {users} device(s)")
            + ("; the device is still learning, score halved" if halved else "")
        )
        return [
            Alert(
                ts=ts,
                detection=self.name,
                score=score,
                device=device_ref(self.models, src, None),
                src=Endpoint(ip=src),
                dst=Endpoint(ip=dst, port=port, domain=domain),
                summary=summary,
                reasons=reasons,
                mitre=self.mitre,
                uids=[str(record.get("uid"))],
            )
        ]
