# BLAKE2b (RFC 7693) for one short message, no key: enough for the uids,
# whose input is at most 53 bytes (one 128-byte block). Written from the
# RFC's description; flow.pyx checks it against hashlib at import and falls
# back to sensor.flow.uid.conn_uid if they ever disagree.

from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    static const unsigned long long sensor_b2b_iv[8] = {
        0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL,
        0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
        0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL,
        0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL};
    static const unsigned char sensor_b2b_sigma[12][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
        {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
        {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
        {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
        {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
        {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
        {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
        {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
        {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};
    static inline unsigned long long sensor_rotr64(unsigned long long x, int n) {
        return (x >> n) | (x << (64 - n));
    }
    """
    const uint64_t IV "sensor_b2b_iv"[8]
    const uint8_t SIGMA "sensor_b2b_sigma"[12][16]
    uint64_t rotr "sensor_rotr64"(uint64_t x, int n) nogil


cdef inline void mix(uint64_t *v, int a, int b, int c, int d, uint64_t x,
                     uint64_t y) noexcept nogil:
    """The G function (RFC 7693 section 3.1)."""
    v[a] = v[a] + v[b] + x
    v[d] = rotr(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = rotr(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = rotr(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = rotr(v[b] ^ v[c], 63)


cdef inline void blake2b_short(const uint8_t *msg, int n, int outlen,
                               uint8_t *out) noexcept nogil:
    """out[:outlen] = BLAKE2b-(8*outlen) of msg[:n], for 0 < n <= 128."""
    cdef uint64_t h[8]
    cdef uint64_t v[16]
    cdef uint64_t m[16]
    cdef uint8_t block[128]
    cdef int i, j, r
    cdef const uint8_t *s

    # Parameter block: digest length, no key, fanout 1, depth 1.
    for i in range(8):
        h[i] = IV[i]
    h[0] ^= 0x01010000 ^ <uint64_t>outlen

    # The single, final block, zero-padded, words little-endian.
    memset(block, 0, 128)
    memcpy(block, msg, n)
    for i in range(16):
        m[i] = 0
        for j in range(8):
            m[i] |= <uint64_t>block[8 * i + j] << (8 * j)
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = IV[i]
    v[12] ^= <uint64_t>n        # bytes compressed so far (low word)
    v[14] = ~v[14]              # last block
    for r in range(12):
        s = SIGMA[r]
        mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]
    for i in range(outlen):
        out[i] = (h[i >> 3] >> (8 * (i & 7))) & 0xFF
