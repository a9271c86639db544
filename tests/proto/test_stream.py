"""TCP stream reassembly (sensor/proto/stream.py): order, retransmissions,
overlaps (first copy wins), gaps, both bounds, and fuzzing that whatever the
segments, the delivered bytes and gaps add up to the stream."""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.proto.stream import SEGMENT_OVERHEAD, Reassembler, StreamConfig

DEEP = os.environ.get("SENSOR_FUZZ") == "deep"
EXAMPLES = 2000 if DEEP else 150


class Sink:
    """Collects what the reassembler hands out, per (key, direction)."""

    def __init__(self, config: StreamConfig | None = None) -> None:
        self.items: list[tuple[Any, bool, float, bytes | int]] = []
        self.r = Reassembler(self.data, self.gap, config)

    def data(self, key: Any, is_orig: bool, ts: float, data: bytes) -> None:
        self.items.append((key, is_orig, ts, data))

    def gap(self, key: Any, is_orig: bool, ts: float, length: int) -> None:
        self.items.append((key, is_orig, ts, length))

    def stream(self, key: Any = "C", is_orig: bool = True) -> list[bytes | int]:
        """Delivered chunks joined, gaps as their lengths."""
        out: list[bytes | int] = []
        for k, o, _, item in self.items:
            if (k, o) != (key, is_orig):
                continue
            if isinstance(item, bytes) and out and isinstance(out[-1], bytes):
                out[-1] += item
            else:
                out.append(item)
        return out


def test_in_order_segments_pass_straight_through() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 1000, b"GET / ")
    s.r.segment("C", True, 1.1, 1006, b"HTTP/1.1\r\n")
    assert s.items == [("C", True, 1.0, b"GET / "), ("C", True, 1.1, b"HTTP/1.1\r\n")]
    assert s.r.stats()["held_bytes"] == 0


def test_reordered_segments_wait_for_the_hole_and_go_at_its_filling_time() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 100, b"aaa")
    s.r.segment("C", True, 1.1, 106, b"ccc")
    s.r.segment("C", True, 1.2, 109, b"ddd")
    assert s.stream() == [b"aaa"]
    assert s.r.stats()["held_bytes"] == 6 + 2 * SEGMENT_OVERHEAD
    s.r.segment("C", True, 1.3, 103, b"bbb")
    assert s.stream() == [b"aaabbbcccddd"]
    assert [ts for *_, ts, _ in s.items] == [1.0, 1.3, 1.3, 1.3]
    assert s.r.stats()["out_of_order"] == 2
    assert s.r.stats()["held_bytes"] == 0


def test_directions_are_separate_streams() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 5, b"req")
    s.r.segment("C", False, 1.1, 900, b"resp")
    s.r.segment("C", True, 1.2, 8, b"uest")
    assert s.stream("C", True) == [b"request"]
    assert s.stream("C", False) == [b"resp"]


def test_retransmissions_are_dropped_and_counted() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 0, b"hello")
    s.r.segment("C", True, 1.1, 0, b"hello")
    s.r.segment("C", True, 1.2, 2, b"llo")
    assert s.stream() == [b"hello"]
    assert s.r.stats()["retransmitted_bytes"] == 8


def test_overlap_with_delivered_data_keeps_the_first_copy() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 0, b"abcd")
    s.r.segment("C", True, 1.1, 2, b"XXef")  # XX overlaps "cd": first wins
    assert s.stream() == [b"abcdef"]
    assert s.r.stats()["overlap_bytes"] == 2


def test_overlap_with_held_data_keeps_the_first_copy() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 0, b"ab")
    s.r.segment("C", True, 1.1, 4, b"ef")  # held
    s.r.segment("C", True, 1.2, 3, b"XYYg")  # covers held "ef": "YY" loses
    s.r.segment("C", True, 1.3, 2, b"cZ")  # fills the hole; Z loses to X
    assert s.stream() == [b"abcXefg"]
    assert s.r.stats()["overlap_bytes"] == 3


def test_in_order_segment_over_held_data_does_not_overwrite_it() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 0, b"a")
    s.r.segment("C", True, 1.1, 3, b"dd")
    s.r.segment("C", True, 1.2, 1, b"bcXXe")
    assert s.stream() == [b"abcdde"]


def test_sequence_numbers_wrap() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 0xFFFFFFFE, b"ab")
    s.r.segment("C", True, 1.1, 2, b"ef")  # after a hole at 0..1
    s.r.segment("C", True, 1.2, 0, b"cd")
    assert s.stream() == [b"abcdef"]


def test_holes_become_gaps_at_the_end() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 0, b"ab")
    s.r.segment("C", True, 1.1, 10, b"kl")
    s.r.segment("C", True, 1.2, 20, b"uv")
    s.r.finish("C", 9.0)
    assert s.stream() == [b"ab", 8, b"kl", 8, b"uv"]
    assert s.items[-1][2] == 9.0
    assert s.r.stats()["gaps"] == 2 and s.r.stats()["gap_bytes"] == 16
    assert s.r.stats()["streams"] == 0 and s.r.stats()["held_bytes"] == 0


def test_connection_bound_gives_up_the_oldest_hole_first() -> None:
    bound = 2 * (100 + SEGMENT_OVERHEAD)
    s = Sink(StreamConfig(conn_bytes=bound))
    s.r.segment("C", True, 1.0, 0, b"a")
    s.r.segment("C", True, 1.1, 10, b"b" * 100)
    s.r.segment("C", True, 1.2, 200, b"c" * 100)
    assert s.stream() == [b"a"]  # exactly at the bound: still waiting
    s.r.segment("C", True, 1.3, 400, b"d")
    assert s.stream() == [b"a", 9, b"b" * 100]  # "c" and "d" fit again
    assert s.r.stats()["conn_limit"] == 1
    assert s.r.stats()["held_bytes"] <= bound


def test_connection_bound_counts_both_directions() -> None:
    s = Sink(StreamConfig(conn_bytes=100 + SEGMENT_OVERHEAD))
    s.r.segment("C", False, 1.0, 0, b"r")
    s.r.segment("C", False, 1.1, 5, b"x" * 100)  # held by the responder
    s.r.segment("C", True, 1.2, 0, b"o")
    s.r.segment("C", True, 1.3, 5, b"y")  # the originator holds nothing yet
    assert s.stream("C", True) == [b"o", 4, b"y"]
    assert s.stream("C", False) == [b"r"]


def test_zero_bounds_turn_every_hole_into_a_gap_at_once() -> None:
    s = Sink(StreamConfig(conn_bytes=0))
    s.r.segment("C", True, 1.0, 0, b"a")
    s.r.segment("C", True, 1.1, 3, b"d")
    s.r.segment("C", True, 1.2, 1, b"bc")  # too late: counted as old
    assert s.stream() == [b"a", 2, b"d"]
    assert s.r.stats()["retransmitted_bytes"] == 2


def test_total_bound_flushes_the_longest_waiting_direction() -> None:
    one = 50 + SEGMENT_OVERHEAD
    s = Sink(StreamConfig(total_bytes=2 * one))
    for key in ("A", "B", "C"):
        s.r.segment(key, True, 1.0, 0, b"0")
        s.r.segment(key, True, 1.1, 10, key.encode() * 50)
    assert s.stream("A") == [b"0", 9, b"A" * 50]
    assert s.stream("B") == [b"0"] and s.stream("C") == [b"0"]
    assert s.r.stats()["total_limit"] == 1
    assert s.r.stats()["held_bytes"] == 2 * one


def test_tiny_segments_are_bounded_by_their_overhead() -> None:
    s = Sink(StreamConfig(conn_bytes=10 * (1 + SEGMENT_OVERHEAD)))
    s.r.segment("C", True, 1.0, 0, b"x")
    for i in range(1000):
        s.r.segment("C", True, 1.0, 2 + 2 * i, b"y")
        assert s.r.stats()["held_bytes"] <= 10 * (1 + SEGMENT_OVERHEAD)
    assert s.r.stats()["conn_limit"] > 90


def test_drop_forgets_without_delivering() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 0, b"a")
    s.r.segment("C", True, 1.0, 5, b"b")
    assert s.r.holding("C")
    s.r.drop("C")
    s.r.finish("C", 2.0)
    assert s.stream() == [b"a"]
    assert s.r.stats()["held_bytes"] == 0 and not s.r.holding("C")


def test_empty_segments_and_unknown_keys_are_ignored() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 7, b"")
    s.r.finish("nobody", 1.0)
    s.r.drop("nobody")
    assert s.items == [] and s.r.stats()["segments"] == 0


def test_bad_limits_are_refused_with_their_name() -> None:
    with pytest.raises(ValueError, match="stream.conn_bytes: -1"):
        StreamConfig(conn_bytes=-1)


@st.composite
def shuffled_stream(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """A stream, cut into segments that may overlap, repeat and be reordered."""
    isn = draw(st.integers(0, 2**32 - 1))
    data = draw(st.binary(min_size=1, max_size=400))
    cuts = sorted(draw(st.lists(st.integers(1, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    segs = [(lo, data[lo:hi]) for lo, hi in itertools.pairwise(bounds) if hi > lo]
    for _ in range(draw(st.integers(0, 6))):  # retransmissions, overlaps
        lo = draw(st.integers(0, len(data) - 1))
        hi = draw(st.integers(lo + 1, len(data)))
        segs.append((lo, data[lo:hi]))
    first, rest = segs[0], segs[1:]
    rest = draw(st.permutations(rest))
    return isn, data, [first, *rest]


@settings(max_examples=EXAMPLES, deadline=None)
@given(shuffled_stream())
def test_fuzz_complete_segments_give_back_the_stream(
    case: tuple[int, bytes, list[tuple[int, bytes]]],
) -> None:
    isn, data, segs = case
    s = Sink()
    for i, (off, piece) in enumerate(segs):
        s.r.segment("C", True, float(i), (isn + off) & 0xFFFFFFFF, piece)
    s.r.finish("C", 99.0)
    assert s.stream() == [data]
    assert s.r.stats()["held_bytes"] == 0


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.booleans(),
            st.integers(0, 2**32 - 1) | st.integers(0, 300),
            st.binary(max_size=120),
        ),
        max_size=40,
    ),
    st.integers(0, 600),
    st.integers(0, 900),
)
def test_fuzz_never_raises_and_keeps_its_bounds(
    segs: list[tuple[str, bool, int, bytes]], conn_bytes: int, total_bytes: int
) -> None:
    s = Sink(StreamConfig(conn_bytes=conn_bytes, total_bytes=total_bytes))
    for key, is_orig, seq, piece in segs:
        s.r.segment(key, is_orig, 1.0, seq, piece)
        assert s.r.held <= total_bytes + 120 + SEGMENT_OVERHEAD
    for key in ("A", "B"):
        s.r.finish(key, 2.0)
    stats = s.r.stats()
    assert stats["held_bytes"] == 0 and stats["streams"] == 0
    delivered = sum(len(i[3]) for i in s.items if isinstance(i[3], bytes))
    assert delivered == stats["delivered_bytes"]


def test_a_large_shuffled_transfer_comes_back_whole() -> None:
    rng = random.Random(7)
    data = rng.randbytes(2_000_000)
    segs = [(o, data[o : o + 1460]) for o in range(0, len(data), 1460)]
    for i in range(1, len(segs) - 8, 8):  # reorder within windows of 8
        window = segs[i : i + 8]
        rng.shuffle(window)
        segs[i : i + 8] = window
    s = Sink()
    for off, piece in segs:
        s.r.segment("C", True, 1.0, (4_000_000_000 + off) & 0xFFFFFFFF, piece)
    s.r.finish("C", 2.0)
    assert s.stream() == [data]


def test_at_the_end_only_acknowledged_holes_are_crossed() -> None:
    # missed_bytes 8 pays for the first hole (2..10) but not the second.
    s = Sink()
    s.r.segment("C", True, 1.0, 0, b"ab")
    s.r.segment("C", True, 1.1, 10, b"kl")
    s.r.segment("C", True, 1.2, 20, b"uv")
    s.r.finish("C", 9.0, missed=8)
    assert s.stream() == [b"ab", 8, b"kl"]
    stats = s.r.stats()
    assert stats["unacked_bytes"] == 2 and stats["held_bytes"] == 0
    assert s.r.stats()["streams"] == 0


def test_bytes_missing_after_the_last_seen_are_a_final_gap() -> None:
    s = Sink()
    s.r.segment("C", True, 1.0, 1000, b"head")
    s.r.segment("C", False, 1.0, 5000, b"body")
    s.r.finish("C", 9.0, orig_size=4, resp_size=104, missed=100)
    assert s.stream("C", False) == [b"body", 100]
    assert s.stream("C", True) == [b"head"]
    assert s.r.stats()["tail_gaps"] == 1


def test_a_final_gap_needs_the_acknowledged_budget() -> None:
    s = Sink()
    s.r.segment("C", False, 1.0, 5000, b"body")
    s.r.finish("C", 9.0, resp_size=104, missed=0)  # never acknowledged
    assert s.stream("C", False) == [b"body"]
    s.r.segment("D", False, 1.0, 5000, b"body")
    s.r.finish("D", 9.0, resp_size=4 + (2 << 30))  # odd sequence numbers
    assert s.stream("D", False) == [b"body"]
