"""ConnTable on crafted packets: states, history, byte counts, timers, bounds."""

from __future__ import annotations

from typing import Any

from sensor.flow.table import ConnTable, FlowConfig
from tests.flow.craft import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Flow,
    batch,
    eth,
    icmp,
    ipv4,
    ipv6,
    udp,
)

ISN_C = 1000
ISN_S = 5000


def run(
    packets: list[tuple[float, bytes]], config: FlowConfig | None = None
) -> tuple[list[dict[str, Any]], ConnTable]:
    table = ConnTable(config)
    ev = table.process(batch(packets))
    conns = ev.conns + table.flush().conns
    return conns, table


def handshake(f: Flow, t: float = 0.0) -> list[tuple[float, bytes]]:
    return [
        (t, f.c(SYN, ISN_C)),
        (t + 0.1, f.s(SYN | ACK, ISN_S, ISN_C + 1)),
        (t + 0.2, f.c(ACK, ISN_C + 1, ISN_S + 1)),
    ]


def test_full_connection_is_sf_with_byte_counts() -> None:
    f = Flow()
    pkts = handshake(f) + [
        (0.3, f.c(PSH | ACK, ISN_C + 1, ISN_S + 1, b"x" * 100)),
        (0.4, f.s(PSH | ACK, ISN_S + 1, ISN_C + 101, b"y" * 300)),
        (0.5, f.c(FIN | ACK, ISN_C + 101, ISN_S + 301)),
        (0.6, f.s(FIN | ACK, ISN_S + 301, ISN_C + 102)),
        (0.7, f.c(ACK, ISN_C + 102, ISN_S + 302)),
    ]
    (rec,), _ = run(pkts)
    assert rec["conn_state"] == "SF"
    assert rec["history"] == "ShADdFf"  # the server never sent a pure ACK
    assert (rec["orig_bytes"], rec["resp_bytes"]) == (100, 300)
    assert (rec["orig_pkts"], rec["resp_pkts"]) == (5, 3)
    assert rec["orig_ip_bytes"] == 4 * 40 + 140
    assert rec["resp_ip_bytes"] == 2 * 40 + 340
    assert rec["id.orig_p"] == 40000 and rec["id.resp_p"] == 8000
    assert rec["missed_bytes"] == 0
    assert (
        abs(rec["duration"] - 0.6) < 1e-6
    )  # the last ACK after both FINs is not counted
    assert rec["orig_l2_addr"] == "02:00:00:00:00:01"


def test_unanswered_syn_is_s0_and_attempt_timer_splits() -> None:
    f = Flow()
    # A retransmitted SYN 6 s later comes after Zeek's 5 s attempt timer.
    conns, _ = run(
        [(0.0, f.c(SYN, ISN_C)), (1.0, f.c(SYN, ISN_C)), (7.0, f.c(SYN, ISN_C))]
    )
    assert [c["conn_state"] for c in conns] == ["S0", "S0"]
    assert conns[0]["orig_pkts"] == 2 and conns[0]["history"] == "S"
    assert "duration" in conns[0] and "duration" not in conns[1]


def test_rejected_syn_is_rej() -> None:
    f = Flow()
    (rec,), _ = run([(0.0, f.c(SYN, ISN_C)), (0.1, f.s(RST | ACK, 0, ISN_C + 1))])
    assert rec["conn_state"] == "REJ"
    assert rec["history"] == "Sr"


def test_syn_then_own_rst_is_rstos0() -> None:
    f = Flow()
    (rec,), _ = run([(0.0, f.c(SYN, ISN_C)), (0.1, f.c(RST, ISN_C + 1))])
    assert rec["conn_state"] == "RSTOS0"
    assert rec["history"] == "SR"


def test_syn_ack_first_flips_roles() -> None:
    f = Flow()
    pkts = [
        (0.0, f.s(SYN | ACK, ISN_S, ISN_C + 1)),
        (0.1, f.c(ACK, ISN_C + 1, ISN_S + 1)),
    ]
    (rec,), _ = run(pkts)
    assert rec["id.orig_h"] == "10.0.0.1" and rec["id.resp_p"] == 8000
    assert rec["history"] == "^hA"
    assert rec["resp_pkts"] == 1 and rec["orig_pkts"] == 1


def test_midstream_from_server_port_flips() -> None:
    f = Flow(sport=80)
    (rec,), _ = run([(0.0, f.s(PSH | ACK, ISN_S, ISN_C, b"data"))])
    assert rec["history"] == "^d"
    assert rec["id.resp_p"] == 80 and rec["conn_state"] == "OTH"


def test_retransmissions_scale_logarithmically() -> None:
    f = Flow()
    pkts = handshake(f)
    for i in range(11):
        pkts.append((0.3 + i * 0.01, f.c(PSH | ACK, ISN_C + 1, ISN_S + 1, b"z" * 10)))
    (rec,), _ = run(pkts)
    assert rec["history"] == "ShADTT"  # 1st and 10th retransmission


def test_zero_window_letter() -> None:
    f = Flow()
    pkts = handshake(f) + [(0.3, f.s(ACK, ISN_S + 1, ISN_C + 1, win=0))]
    (rec,), _ = run(pkts)
    assert rec["history"] == "ShAaw"  # the letter for the ACK, then the window


def test_content_gap_counts_missed_bytes() -> None:
    f = Flow()
    pkts = handshake(f) + [
        (0.3, f.c(PSH | ACK, ISN_C + 1, ISN_S + 1, b"a" * 100)),
        # bytes 101..600 never captured
        (0.4, f.c(PSH | ACK, ISN_C + 601, ISN_S + 1, b"b" * 100)),
        (0.5, f.s(ACK, ISN_S + 1, ISN_C + 701)),
    ]
    (rec,), _ = run(pkts)
    assert rec["missed_bytes"] == 500
    assert rec["orig_bytes"] == 700
    assert "G" in rec["history"]


def test_sequence_wraparound_byte_count() -> None:
    f = Flow()
    isn = 0xFFFFFFF0
    pkts = [
        (0.0, f.c(SYN, isn)),
        (0.1, f.s(SYN | ACK, ISN_S, isn + 1)),
        (0.2, f.c(ACK, isn + 1, ISN_S + 1)),
        (0.3, f.c(PSH | ACK, isn + 1, ISN_S + 1, b"w" * 1000)),
        (0.4, f.s(ACK, ISN_S + 1, isn + 1001)),
    ]
    (rec,), _ = run(pkts)
    assert rec["orig_bytes"] == 1000


def test_reused_tuple_after_close_is_new_connection() -> None:
    f = Flow()
    first = handshake(f) + [
        (0.3, f.c(FIN | ACK, ISN_C + 1, ISN_S + 1)),
        (0.4, f.s(FIN | ACK, ISN_S + 1, ISN_C + 2)),
    ]
    second = [(1.0, f.c(SYN, 77777))]
    conns, _ = run(first + second)
    assert [c["conn_state"] for c in conns] == ["SF", "S0"]


def test_udp_states_and_inactivity_timeout() -> None:
    a = eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 9999, b"q" * 20)))
    b = eth(ipv4("10.0.0.2", "10.0.0.1", 17, udp(9999, 40000, b"r" * 30)))
    conns, _ = run([(0.0, a), (0.5, b), (70.0, a)])
    assert [c["conn_state"] for c in conns] == ["SF", "S0"]
    assert conns[0]["history"] == "Dd"
    assert (conns[0]["orig_bytes"], conns[0]["resp_bytes"]) == (20, 30)


def test_dns_response_first_flips_without_moving_counts() -> None:
    resp = b"\x12\x34\x81\x80" + b"\x00" * 8
    pkt = eth(ipv4("10.0.0.53", "10.0.0.1", 17, udp(53, 53, resp)))
    (rec,), _ = run([(0.0, pkt)])
    assert rec["history"] == "D^"
    assert rec["id.orig_h"] == "10.0.0.1"
    assert rec["orig_pkts"] == 1 and rec["conn_state"] == "S0"


def test_icmp_echo_pair() -> None:
    req = eth(ipv4("10.0.0.1", "10.0.0.2", 1, icmp(8, 0, b"p" * 56)))
    rep = eth(ipv4("10.0.0.2", "10.0.0.1", 1, icmp(0, 0, b"p" * 56)))
    (rec,), _ = run([(0.0, req), (0.01, rep)])
    assert (rec["proto"], rec["id.orig_p"], rec["id.resp_p"]) == ("icmp", 8, 0)
    assert (rec["orig_bytes"], rec["resp_bytes"]) == (56, 56)
    assert rec["conn_state"] == "OTH" and "history" not in rec


def test_icmpv6_uses_icmp_proto_and_ip_proto_58() -> None:
    pkt = eth(
        ipv6("fe80::1", "ff02::1", 58, icmp(135, 0, b"\x00" * 20)), ethertype=0x86DD
    )
    (rec,), _ = run([(0.0, pkt)])
    assert rec["proto"] == "icmp" and rec["ip_proto"] == 58
    assert (rec["id.orig_p"], rec["id.resp_p"]) == (135, 136)


def test_table_bound_finishes_a_connection_and_counts() -> None:
    pkts = [
        (i * 0.1, eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000 + i, 9999, b"x"))))
        for i in range(3)
    ]
    conns, table = run(pkts, FlowConfig(max_conns=2))
    assert len(conns) == 3
    assert table.stats()["conn_table_full"] == 1


def test_payload_events_are_bounded() -> None:
    f = Flow()
    pkts = handshake(f)
    seq = ISN_C + 1
    for i in range(12):
        pkts.append(
            (0.3 + i * 0.01, f.c(PSH | ACK, seq, ISN_S + 1, bytes([65 + i]) * 1000))
        )
        seq += 1000
    table = ConnTable(FlowConfig(payload_packets=8, payload_bytes=4096))
    ev = table.process(batch(pkts))
    done = table.flush()
    payloads = ev.payloads + done.payloads
    assert len(payloads) == 5  # 4 full packets, then 96 bytes of the fifth
    assert sum(len(p[3]) for p in payloads) == 4096
    assert all(p[1] for p in payloads)
    assert payloads[0][0] == done.conns[0]["uid"]


def test_ipv4_fragments_reassemble_into_one_datagram() -> None:
    body = udp(40000, 9999, b"F" * 100)
    frag1 = eth(ipv4("10.0.0.1", "10.0.0.2", 17, body[:48], ident=7, frag=0x2000))
    frag2 = eth(ipv4("10.0.0.1", "10.0.0.2", 17, body[48:], ident=7, frag=48 // 8))
    (rec,), table = run([(0.0, frag2), (0.1, frag1)])
    assert rec["orig_pkts"] == 1 and rec["orig_ip_bytes"] == 20 + 108
    assert table.stats()["frag_reassembled"] == 1


def test_fragment_memory_bound_drops_oldest() -> None:
    pkts = []
    for ident in range(5):
        pkts.append(
            (
                ident * 0.1,
                eth(
                    ipv4(
                        "10.0.0.1", "10.0.0.2", 17, b"x" * 400, ident=ident, frag=0x2000
                    )
                ),
            )
        )
    _, table = run(pkts, FlowConfig(frag_memory=1000))
    assert table.stats()["frag_dropped"] == 3


def test_vlan_tags_recorded() -> None:
    inner = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"v"))
    qinq = b"\x00\x64\x81\x00" + b"\x00\xc8\x08\x00" + inner
    (rec,), _ = run([(0.0, eth(qinq, ethertype=0x88A8))])
    assert (rec["vlan"], rec["inner_vlan"]) == (100, 200)


def test_malformed_packets_are_counted_not_raised() -> None:
    f = Flow()
    bad = f.c(SYN, ISN_C)[:30]  # cut inside the IP header
    conns, table = run([(0.0, bad), (0.1, b"\x00")])
    assert conns == []
    stats = table.stats()
    assert stats["packets"] == 2
    assert stats["truncated_IP"] == 1 and stats["truncated_link_header"] == 1


def test_many_holes_beyond_the_block_bound_still_count() -> None:
    # Ten separate holes of 100 bytes, more than MAX_BLOCKS ranges can hold.
    f = Flow()
    pkts = handshake(f)
    for i in range(10):
        seq = ISN_C + 1 + 100 + i * 200  # bytes [100+200i, 200+200i) arrive
        pkts.append((0.3 + i * 0.01, f.c(PSH | ACK, seq, ISN_S + 1, b"k" * 100)))
    pkts.append((0.5, f.s(ACK, ISN_S + 1, ISN_C + 1 + 2000)))
    (rec,), _ = run(pkts)
    assert rec["missed_bytes"] == 1000


def test_teredo_inner_connection_is_tracked() -> None:
    inner = ipv6("2001:0:4137:9e50::1", "2001:db8::68", 58, icmp(128, 0, b"ping"))
    outer = eth(ipv4("192.168.2.16", "65.55.158.80", 17, udp(3797, 3544, inner)))
    conns, _ = run([(0.0, outer)])
    by_proto = {c["proto"]: c for c in conns}
    assert set(by_proto) == {"udp", "icmp"}
    assert by_proto["icmp"]["orig_ip_bytes"] == len(inner)
    assert "orig_l2_addr" not in by_proto["icmp"]
    assert by_proto["udp"]["id.resp_p"] == 3544


def test_ipv6_fragments_reassemble() -> None:
    import struct

    body = udp(5000, 9999, b"S" * 60)
    first = struct.pack("!BBHI", 17, 0, (0 << 3) | 1, 42) + body[:32]
    second = struct.pack("!BBHI", 17, 0, (32 // 8) << 3, 42) + body[32:]
    f1 = eth(ipv6("2001:db8::1", "2001:db8::2", 44, first), ethertype=0x86DD)
    f2 = eth(ipv6("2001:db8::1", "2001:db8::2", 44, second), ethertype=0x86DD)
    (rec,), table = run([(0.0, f1), (0.2, f2)])
    assert (rec["proto"], rec["id.orig_p"], rec["id.resp_p"]) == ("udp", 5000, 9999)
    assert rec["orig_ip_bytes"] == 40 + len(body)
    assert table.stats()["frag_reassembled"] == 1


def test_timers_use_network_time_that_never_goes_back() -> None:
    # A late packet with an old timestamp must not hold back expiry.
    a = eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 9999, b"a")))
    b = eth(ipv4("10.0.0.3", "10.0.0.4", 17, udp(40001, 9999, b"b")))
    conns, _ = run([(0.0, a), (100.0, b), (50.0, a)])
    first = [c for c in conns if c["id.orig_h"] == "10.0.0.1"]
    assert len(first) == 2  # the 50 s packet came after network time 100 s


def test_tunnels_are_decapsulated() -> None:
    import struct

    inner = ipv4("172.16.0.1", "172.16.0.2", 17, udp(1111, 2222, b"in"))
    ipip = eth(ipv4("10.0.0.1", "10.0.0.2", 4, inner))
    gre = eth(ipv4("10.0.0.1", "10.0.0.2", 47, b"\x00\x00\x08\x00" + inner))
    vxlan_frame = eth(inner, src=bytes(6), dst=bytes.fromhex("ffffffffffff"))
    vxlan = eth(
        ipv4(
            "10.0.0.1",
            "10.0.0.2",
            17,
            udp(5555, 4789, struct.pack("!II", 0x08000000, 42 << 8) + vxlan_frame),
        )
    )
    for pkt, outer in ((ipip, 0), (gre, 0), (vxlan, 1)):
        conns, _ = run([(0.0, pkt)])
        inner_conns = [c for c in conns if c["id.orig_h"] == "172.16.0.1"]
        assert len(inner_conns) == 1 and inner_conns[0]["id.resp_p"] == 2222
        assert len(conns) == 1 + outer


def test_weird_records_for_flows_and_connections() -> None:
    f = Flow()
    frag = eth(ipv4("10.0.0.1", "10.0.0.2", 17, b"x" * 16, ident=9, frag=0x2000))
    overlap = eth(ipv4("10.0.0.1", "10.0.0.2", 17, b"y" * 16, ident=9, frag=0x2000 | 1))
    table = ConnTable()
    ev = table.process(
        batch([(0.0, frag), (0.1, overlap), (0.2, f.c(SYN | 0x20, ISN_C))])
    )
    names = {w["name"]: w for w in ev.weirds}
    assert names["fragment_overlap"]["id.orig_h"] == "10.0.0.1"
    assert (
        names["fragment_overlap"]["id.resp_p"] == 0
        and "uid" not in names["fragment_overlap"]
    )
    assert names["baroque_SYN"]["source"] == "TCP" and names["baroque_SYN"][
        "uid"
    ].startswith("C")


def test_config_validation_names_the_option() -> None:
    import pytest

    with pytest.raises(ValueError, match="flow.udp_inactivity: -1"):
        FlowConfig(udp_inactivity=-1)
    with pytest.raises(ValueError, match="flow.max_conns: 0"):
        FlowConfig(max_conns=0)


def _state(pkts: list[tuple[float, bytes]]) -> tuple[str, str]:
    (rec,), _ = run(pkts)
    return rec["conn_state"], rec.get("history", "")


def test_remaining_conn_states() -> None:
    f = Flow()
    hs = handshake(f)
    fin_c = (0.3, f.c(FIN | ACK, ISN_C + 1, ISN_S + 1))
    fin_s = (0.3, f.s(FIN | ACK, ISN_S + 1, ISN_C + 1))
    assert _state(hs) == ("S1", "ShA")
    assert _state([*hs, fin_c]) == ("S2", "ShAF")
    assert _state([*hs, fin_s]) == ("S3", "ShAf")
    assert _state([*hs, (0.3, f.c(RST | ACK, ISN_C + 1, ISN_S + 1))]) == (
        "RSTO",
        "ShAR",
    )
    assert _state([*hs, (0.3, f.s(RST | ACK, ISN_S + 1, ISN_C + 1))]) == (
        "RSTR",
        "ShAr",
    )
    # SYN then FIN, never answered: SH.
    assert _state([(0.0, f.c(SYN, ISN_C)), (0.1, f.c(FIN, ISN_C + 1))]) == ("SH", "SF")
    # SYN-ACK (flipped) then FIN from the server: SHR.
    syn_ack = (0.0, f.s(SYN | ACK, ISN_S, ISN_C + 1))
    assert _state([syn_ack, (0.1, f.s(FIN | ACK, ISN_S + 1, ISN_C + 1))]) == (
        "SHR",
        "^hf",
    )
    # SYN-ACK then RST from the server: RSTRH.
    assert _state([syn_ack, (0.1, f.s(RST, ISN_S + 1))]) == ("RSTRH", "^hr")


def test_dns_violation_marks_history_and_ends_the_analyzer() -> None:
    import struct

    bad = struct.pack("!HHHHHH", 1, 3 << 11, 1, 0, 0, 0)  # opcode 3: not DNS
    good = struct.pack("!HHHHHH", 2, 0x8180, 1, 0, 0, 0)
    q = eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 53, bad)))
    r = eth(ipv4("10.0.0.2", "10.0.0.1", 17, udp(53, 40000, good)))
    (rec,), _ = run([(0.0, q), (0.1, r)])
    assert rec["history"] == "DXd"
    # Without the DNS analyzer the 10 s session timer is gone too: a packet
    # 30 s later still joins the connection (UDP's 60 s applies).
    conns, _ = run([(0.0, q), (0.1, r), (30.0, q)])
    assert len(conns) == 1 and conns[0]["orig_pkts"] == 2


def test_dns_over_tcp_violation_is_judged_when_the_message_is_complete() -> None:
    import struct

    f = Flow(sport=53)
    msg = struct.pack("!HHHHHH", 7, 0, 30, 0, 0, 0)  # 30 questions > 25
    framed = struct.pack("!H", len(msg) + 10) + msg  # 10 bytes never come
    pkts = [
        *handshake(f),
        (0.3, f.c(PSH | ACK, ISN_C + 1, ISN_S + 1, framed)),
        (0.4, f.s(ACK, ISN_S + 1, ISN_C + 1 + len(framed))),
        (0.5, f.c(FIN | ACK, ISN_C + 1 + len(framed), ISN_S + 1)),
        (0.6, f.s(FIN | ACK, ISN_S + 1, ISN_C + 2 + len(framed))),
    ]
    (rec,), _ = run(pkts)
    assert rec["history"] == "ShADaFXf"


def test_gtp_u_is_decapsulated() -> None:
    import struct

    inner = ipv4("172.16.0.1", "172.16.0.2", 17, udp(1111, 2222, b"in"))
    gtp = struct.pack("!BBHI", 0x30, 0xFF, len(inner), 7) + inner
    outer = eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(2152, 2152, gtp)))
    conns, _ = run([(0.0, outer)])
    assert sorted(c["id.resp_p"] for c in conns) == [2152, 2222]


def test_ssh_on_another_port_gets_an_hour_of_idle_time() -> None:
    f = Flow(sport=2222)
    pkts = [
        *handshake(f),
        (0.3, f.s(PSH | ACK, ISN_S + 1, ISN_C + 1, b"SSH-2.0-OpenSSH_9.6\r\n")),
        (0.4, f.c(PSH | ACK, ISN_C + 1, ISN_S + 22, b"SSH-2.0-PuTTY\r\n")),
        (1000.0, f.c(PSH | ACK, ISN_C + 16, ISN_S + 22, b"x")),  # 16 min idle
    ]
    conns, _ = run(pkts)
    assert len(conns) == 1
    plain = [
        *handshake(f),
        (0.4, f.c(PSH | ACK, ISN_C + 1, ISN_S + 1, b"hello")),
        (1000.0, f.c(PSH | ACK, ISN_C + 6, ISN_S + 1, b"x")),
    ]
    conns, _ = run(plain)
    assert len(conns) == 2  # 5 min TCP idle timeout


def test_fragment_flood_is_bounded() -> None:
    pkts = [
        (
            i * 0.001,
            eth(ipv4("10.0.0.1", "10.0.0.2", 17, b"z" * 8, ident=5, frag=0x2000 | i)),
        )
        for i in range(100)
    ]
    _, table = run(pkts)
    stats = table.stats()
    assert stats["too_many_fragments"] >= 1
    assert table.frags.memory <= 64 * 8


def test_payload_hooks_deliver_synchronously_and_past_the_budget() -> None:
    f = Flow(sport=21)
    pkts = handshake(f)
    seq = ISN_S + 1
    for i in range(12):
        line = b"230 line %d\r\n" % i
        pkts.append((0.3 + i * 0.01, f.s(PSH | ACK, seq, ISN_C + 1, line)))
        seq += len(line)
    seen: list[tuple[str, bool, float, bytes, str, str, int, str, int]] = []
    table = ConnTable(on_payload=seen.append, wants_more=lambda uid: len(seen) >= 8)
    ev = table.process(batch(pkts))
    assert ev.payloads == []  # delivered through the hook instead
    assert len(seen) == 12 and seen[-1][3] == b"230 line 11\r\n"
    refuse = ConnTable(wants_more=lambda uid: False)
    assert len(refuse.process(batch(pkts)).payloads) == 8


def test_repeated_net_weirds_are_reported_once_but_all_counted() -> None:
    cut = Flow().c(SYN, ISN_C)[:30]
    table = ConnTable()
    ev = table.process(batch([(0.0, cut), (1.0, cut), (2.0, cut)]))
    assert [w["name"] for w in ev.weirds] == ["truncated_IP"]
    assert table.stats()["truncated_IP"] == 3
