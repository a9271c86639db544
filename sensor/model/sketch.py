"""Bounded summaries of unbounded sets: hashes, Bloom filters, top-k, HLL.

Each structure lives in a slice of a flat buffer that the caller owns
(:mod:`sensor.model.profile` keeps every device's structures back to back
in a few ``bytearray`` and ``array.array`` buffers), so a device costs its
bytes and no Python object per structure. The functions take the buffer
and the offset of the structure and change it in place; flat Python
buffers are indexed several times faster than numpy arrays element by
element, which is what an update does.

Errors, for the sizes the profile uses:

- :func:`hash64`: 64-bit BLAKE2b; two different values collide with
  probability 2**-64 per pair, so about 3e-8 for a million values.
- Bloom filter (:func:`bloom_add`, :func:`bloom_has`) of ``m`` bits and
  ``k`` probes: no false negatives; after ``n`` distinct values the chance
  that a value never added looks present is ``(1 - exp(-k*n/m))**k``
  (:func:`bloom_fp_rate`). With the profile's 3072 bits and k = 4: 0.01% at
  50 values, 1.1% at 300, 5% at 500, 25% at 1000.
- Space-Saving top-k (:func:`topk_add`): with ``k`` slots and a total
  (decayed) weight ``N``, every value whose true weight exceeds ``N/k`` is
  in the table, and a slot's count overestimates its value's weight by at
  most the smallest count in the table (Metwally, Agrawal, El Abbadi, "Efficient
  computation of frequent and top-k elements in data streams", ICDT 2005).
- HyperLogLog (:func:`hll_add`, :func:`hll_count`) with ``m`` registers:
  relative standard error about ``1.04/sqrt(m)``, 18% for the profile's
  m = 32; below ``2.5*m`` values linear counting is used, exact for a
  handful of values and of about the same error near ``2*m`` (Flajolet et
  al., "HyperLogLog", AofA 2007, section 4; Whang et al., "A linear-time
  probabilistic counting algorithm", TODS 1990).
"""

from __future__ import annotations

import hashlib
import math
from array import array
from functools import lru_cache

_MASK32 = 0xFFFFFFFF


@lru_cache(maxsize=1 << 14)
def hash64(kind: str, value: str) -> int:
    """A stable 63-bit hash of ``kind`` and ``value`` (same in every run).

    63 bits so that it fits SQLite's signed INTEGER; 0 is never returned
    (0 marks an empty top-k slot). The latest 16,384 are cached (about
    4 MB), as most records repeat a value seen shortly before.
    """
    data = f"{kind}\x00{value}".encode("utf-8", "surrogateescape")
    h = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    return (h >> 1) or 1


# --- Bloom filter -----------------------------------------------------------


@lru_cache(maxsize=1 << 13)
def _probes(h: int, bits: int, k: int) -> tuple[tuple[int, int], ...]:
    # Double hashing (Kirsch and Mitzenmacher, "Less hashing, same
    # performance", ESA 2006): k probes from two 32-bit halves, as
    # (byte, bit mask) pairs; the latest 8,192 are cached (about 5 MB).
    h1 = h & _MASK32
    h2 = (h >> 32) | 1
    out = []
    for i in range(k):
        b = (h1 + i * h2) % bits
        out.append((b >> 3, 1 << (b & 7)))
    return tuple(out)


def bloom_add(buf: bytearray, at: int, size: int, h: int, k: int = 4) -> bool:
    """Add hash ``h`` to the filter of ``size`` bytes at ``buf[at:]``.

    True when it was not there before.
    """
    new = False
    for byte, mask in _probes(h, size * 8, k):
        v = buf[at + byte]
        if not v & mask:
            buf[at + byte] = v | mask
            new = True
    return new


def bloom_has(buf: bytearray, at: int, size: int, h: int, k: int = 4) -> bool:
    """True when ``h`` may have been added (see the false-positive rate)."""
    for byte, mask in _probes(h, size * 8, k):
        if not buf[at + byte] & mask:
            return False
    return True


def bloom_fp_rate(bits: int, k: int, n: int) -> float:
    """Expected false-positive rate after ``n`` distinct values."""
    return (1.0 - math.exp(-k * n / bits)) ** k


# --- Space-Saving top-k -----------------------------------------------------


def topk_add(
    keys: array[int], counts: array[float], at: int, k: int, h: int, w: float = 1.0
) -> None:
    """Count weight ``w`` for hash ``h`` in the table of ``k`` slots at ``at``.

    A value already in the table gains ``w``; a new one takes an empty slot,
    or else replaces the smallest count and inherits it plus ``w`` (the
    algorithm's overestimate). Ties go to the first slot, so the result is
    deterministic for a given order of updates.
    """
    low, low_at = math.inf, at
    for i in range(at, at + k):
        key = keys[i]
        if key == h:
            counts[i] += w
            return
        c = counts[i]
        if c < low:
            low, low_at = c, i
    keys[low_at] = h
    counts[low_at] += w


def topk_items(
    keys: array[int], counts: array[float], at: int, k: int
) -> list[tuple[int, float]]:
    """(hash, count) of the occupied slots, largest count first."""
    out = [(keys[i], float(counts[i])) for i in range(at, at + k) if keys[i]]
    out.sort(key=lambda kc: (-kc[1], kc[0]))
    return out


# --- HyperLogLog ------------------------------------------------------------


def hll_add(buf: bytearray, at: int, m: int, h: int) -> None:
    """Add hash ``h`` to the ``m`` HyperLogLog registers at ``buf[at:]``."""
    p = m.bit_length() - 1  # m is a power of two
    j = at + (h & (m - 1))
    rest = h >> p
    # Rank: position of the lowest set bit of the remaining bits, from 1.
    rank = (rest & -rest).bit_length() if rest else 63 - p
    buf[j] = max(buf[j], rank)


def hll_count(buf: bytearray, at: int, m: int) -> float:
    """Estimated number of distinct hashes added."""
    regs = buf[at : at + m]
    zeros = regs.count(0)
    if zeros == m:
        return 0.0
    alpha = (
        0.7213 / (1 + 1.079 / m) if m >= 128 else {16: 0.673, 32: 0.697, 64: 0.709}[m]
    )
    estimate = alpha * m * m / sum(2.0**-r for r in regs)
    if estimate <= 2.5 * m and zeros:
        return m * math.log(m / zeros)
    return estimate
