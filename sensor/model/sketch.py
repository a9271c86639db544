"""Bounded summaries of unbounded sets: hashes, Bloom filters, top-k, HLL.

Each structure works on one row of a numpy array that the caller owns
(:mod:`sensor.model.profile` keeps one row per device in a few large
arrays), so a device costs its bytes and no Python object per structure.
The functions take the row and change it in place.

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

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
F32 = npt.NDArray[np.float32]

_MASK32 = 0xFFFFFFFF


def hash64(kind: str, value: str) -> int:
    """A stable 63-bit hash of ``kind`` and ``value`` (same in every run).

    63 bits so that it fits SQLite's signed INTEGER; 0 is never returned
    (0 marks an empty top-k slot).
    """
    data = f"{kind}\x00{value}".encode("utf-8", "surrogateescape")
    h = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
    return (h >> 1) or 1


# --- Bloom filter -----------------------------------------------------------


def _probes(h: int, bits: int, k: int) -> list[int]:
    # Double hashing (Kirsch and Mitzenmacher, "Less hashing, same
    # performance", ESA 2006): k probes from two 32-bit halves.
    h1 = h & _MASK32
    h2 = (h >> 32) | 1
    return [(h1 + i * h2) % bits for i in range(k)]


def bloom_add(row: U8, h: int, k: int = 4) -> bool:
    """Add hash ``h`` to the filter in ``row``; True when it was not there."""
    bits = len(row) * 8
    new = False
    for b in _probes(h, bits, k):
        byte, mask = b >> 3, 1 << (b & 7)
        v = int(row[byte])
        if not v & mask:
            row[byte] = v | mask
            new = True
    return new


def bloom_has(row: U8, h: int, k: int = 4) -> bool:
    """True when ``h`` may have been added (see the false-positive rate)."""
    bits = len(row) * 8
    for b in _probes(h, bits, k):
        if not int(row[b >> 3]) & (1 << (b & 7)):
            return False
    return True


def bloom_fp_rate(bits: int, k: int, n: int) -> float:
    """Expected false-positive rate after ``n`` distinct values."""
    return (1.0 - math.exp(-k * n / bits)) ** k


# --- Space-Saving top-k -----------------------------------------------------


def topk_add(keys: U64, counts: F32, h: int, w: float = 1.0) -> None:
    """Count weight ``w`` for hash ``h`` in a Space-Saving table.

    A value already in the table gains ``w``; a new one takes an empty slot,
    or else replaces the smallest count and inherits it plus ``w`` (the
    algorithm's overestimate). Ties go to the first slot, so the result is
    deterministic for a given order of updates.
    """
    klist = keys.tolist()
    try:
        i = klist.index(h)
    except ValueError:
        i = int(np.argmin(counts))
        keys[i] = h
    counts[i] += w


def topk_items(keys: U64, counts: F32) -> list[tuple[int, float]]:
    """(hash, count) of the occupied slots, largest count first."""
    out = [(int(k), float(c)) for k, c in zip(keys.tolist(), counts.tolist()) if k]
    out.sort(key=lambda kc: (-kc[1], kc[0]))
    return out


# --- HyperLogLog ------------------------------------------------------------


def hll_add(row: U8, h: int) -> None:
    """Add hash ``h`` to the HyperLogLog registers in ``row``."""
    m = len(row)
    p = m.bit_length() - 1  # m is a power of two
    j = h & (m - 1)
    rest = h >> p
    # Rank: position of the lowest set bit of the remaining bits, from 1.
    rank = (rest & -rest).bit_length() if rest else 63 - p
    if rank > int(row[j]):
        row[j] = rank


def hll_count(row: U8) -> float:
    """Estimated number of distinct hashes added."""
    m = len(row)
    regs = row.astype(np.float64)
    zeros = int(np.count_nonzero(row == 0))
    if zeros == m:
        return 0.0
    alpha = (
        0.7213 / (1 + 1.079 / m) if m >= 128 else {16: 0.673, 32: 0.697, 64: 0.709}[m]
    )
    estimate = alpha * m * m / float(np.sum(np.exp2(-regs)))
    if estimate <= 2.5 * m and zeros:
        return m * math.log(m / zeros)
    return estimate
