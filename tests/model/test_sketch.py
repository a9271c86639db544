"""The bounded structures keep the errors their docstrings state."""

from __future__ import annotations

from array import array

import numpy as np

from sensor.model import sketch


def test_hash64_is_stable_and_fits_sqlite() -> None:
    # The same value must hash the same in every run: the state is saved.
    assert sketch.hash64("domain", "example.com") == sketch.hash64(
        "domain", "example.com"
    )
    assert sketch.hash64("domain", "example.com") != sketch.hash64("sni", "example.com")
    hashes = [sketch.hash64("ip", f"10.0.{i // 256}.{i % 256}") for i in range(5000)]
    assert len(set(hashes)) == 5000
    assert all(0 < h < 2**63 for h in hashes)


def test_bloom_has_no_false_negatives_and_the_stated_false_positives() -> None:
    # Two filters side by side in one buffer, as the profile keeps them.
    buf = bytearray(2 * 384)
    added = [
        sketch.hash64("ip", f"192.0.2.{i}/{j}") for i in range(100) for j in range(3)
    ]
    news = [sketch.bloom_add(buf, 384, 384, h) for h in added]
    assert all(sketch.bloom_has(buf, 384, 384, h) for h in added)
    assert sum(news) >= 295  # a few may collide with earlier ones
    assert not sketch.bloom_add(buf, 384, 384, added[0])
    assert buf[:384] == bytes(384)  # the neighbour is untouched

    probes = [sketch.hash64("ip", f"198.51.100.{i}/x") for i in range(20000)]
    fp = sum(sketch.bloom_has(buf, 384, 384, h) for h in probes) / len(probes)
    stated = sketch.bloom_fp_rate(384 * 8, 4, 300)
    assert 0.010 < stated < 0.012
    assert fp < 2 * stated


def test_topk_keeps_every_heavy_hitter() -> None:
    keys = array("Q", bytes(8 * 12))
    counts = array("f", bytes(4 * 12))
    heavy = {sketch.hash64("domain", f"heavy{i}.example"): 50 for i in range(3)}
    stream: list[int] = []
    for h, n in heavy.items():
        stream += [h] * n
    stream += [sketch.hash64("domain", f"rare{i}.example") for i in range(100)]
    rng = np.random.default_rng(7)
    rng.shuffle(stream)
    for h in stream:
        sketch.topk_add(keys, counts, 6, 6, h)

    total = len(stream)  # 250: every value above 250/6 must be kept
    items = dict(sketch.topk_items(keys, counts, 6, 6))
    assert not any(keys[:6]) and not any(counts[:6])
    for h, n in heavy.items():
        assert h in items
        assert n <= items[h] <= n + total / 6
    assert abs(sum(items.values()) - total) < 1e-3  # Space-Saving keeps the total


def test_hll_within_stated_error() -> None:
    for n in (0, 1, 10, 60, 500, 5000):
        buf = bytearray(64)
        for i in range(n):
            sketch.hll_add(buf, 32, 32, sketch.hash64("ip", f"203.0.113.{i}:{n}"))
        est = sketch.hll_count(buf, 32, 32)
        assert buf[:32] == bytes(32)
        if n == 0:
            assert est == 0.0
        elif n <= 10:  # linear counting, few registers taken: near exact
            assert abs(est - n) <= max(1.0, 0.1 * n)
        else:  # 3 standard errors of 18%
            assert abs(est - n) <= 0.55 * n
