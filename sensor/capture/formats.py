"""What pcap and pcapng files look like: magic numbers, block types, limits.

Both readers (the pure-Python ``pcapfile`` and the compiled ``ext/pcap.pyx``)
take their constants from this module, so that they agree on every limit.

References:

- pcap: draft-ietf-opsawg-pcap, "PCAP Capture File Format", sections 4-5.
- pcapng: draft-ietf-opsawg-pcapng, "PCAP Now Generic (pcapng) Capture File
  Format", section 4 (block structure) and section 4.1-4.7 (block types).
"""

from __future__ import annotations

# -- pcap (draft-ietf-opsawg-pcap section 4) --------------------------------

#: Magic of a pcap file with microsecond timestamps, as written natively.
PCAP_MAGIC_USEC = 0xA1B2C3D4
#: Magic of a pcap file with nanosecond timestamps.
PCAP_MAGIC_NSEC = 0xA1B23C4D
#: Alexey Kuznetzov's "modified pcap" (longer record headers); not supported.
PCAP_MAGIC_MODIFIED = 0xA1B2CD34
#: Length of the pcap file header and of each record header.
PCAP_FILE_HEADER_LEN = 24
PCAP_RECORD_HEADER_LEN = 16

# -- pcapng (draft-ietf-opsawg-pcapng section 4) ----------------------------

#: Block type of a Section Header Block; the same bytes in either byte order.
PCAPNG_SHB = 0x0A0D0D0A
#: Interface Description Block.
PCAPNG_IDB = 0x00000001
#: Obsolete Packet Block (appendix A of the draft).
PCAPNG_PB = 0x00000002
#: Simple Packet Block.
PCAPNG_SPB = 0x00000003
#: Enhanced Packet Block.
PCAPNG_EPB = 0x00000006
#: Byte-order magic in a Section Header Block.
PCAPNG_BOM = 0x1A2B3C4D
#: Smallest legal Section Header Block: 7 words with no options.
PCAPNG_SHB_MIN_LEN = 28
#: Interface options (section 4.2): timestamp resolution and offset.
PCAPNG_OPT_ENDOFOPT = 0
PCAPNG_OPT_IF_TSRESOL = 9
PCAPNG_OPT_IF_TSOFFSET = 14
#: Default timestamp resolution when an interface has no if_tsresol: 10^-6.
PCAPNG_DEFAULT_TSRESOL = 6

# -- limits both readers apply -----------------------------------------------

#: libpcap's largest snapshot length (pcap-int.h MAXIMUM_SNAPLEN); a record
#: may claim more only when the file's own snaplen says so.
MAXIMUM_SNAPLEN = 262144
#: No record or block may claim more than this; beyond it the length field
#: is damaged and the rest of the file cannot be trusted.
MAX_RECORD_LEN = 16 * 1024 * 1024
#: A pcapng block holds one packet plus options; cap it in the same spirit.
MAX_BLOCK_LEN = 2 * MAX_RECORD_LEN
#: A batch is handed on once its captured bytes reach this, even if it holds
#: fewer than ``batch_size`` packets, so one batch never grows past ~32 MiB.
BATCH_BYTES = 16 * 1024 * 1024
#: Largest ``batch_size`` a reader accepts (the compiled reader allocates
#: its arrays for a whole batch up front).
MAX_BATCH_SIZE = 1 << 20
#: Interfaces per pcapng section; IDBs past it are reported and ignored.
MAX_INTERFACES = 4096
#: Problems kept in ``CaptureFile.problems``; later ones are only counted.
MAX_PROBLEMS = 100


def pcap_record_limit(snaplen: int) -> int:
    """Largest captured length a pcap record may claim before it is damage.

    libpcap accepts up to its maximum snapshot length whatever the header
    says (sf-pcap.c); a file whose header declares a larger snaplen may use
    it, up to :data:`MAX_RECORD_LEN`.
    """
    return min(max(snaplen, MAXIMUM_SNAPLEN), MAX_RECORD_LEN)


def wrap_int64(value: int) -> int:
    """``value`` reduced to a signed 64-bit integer, as C arithmetic would."""
    return ((value + (1 << 63)) % (1 << 64)) - (1 << 63)


def pcapng_ts_ns(units: int, pow2: bool, exponent: int, offset_s: int) -> int:
    """A pcapng timestamp in nanoseconds since the epoch.

    ``units`` counts steps of 10^-exponent seconds, or 2^-exponent seconds
    when ``pow2`` (if_tsresol, pcapng section 4.2); ``offset_s`` is the
    interface's if_tsoffset in seconds. Binary fractions are rounded down to
    whole nanoseconds, and the result wraps like a C int64 so that both
    readers agree on absurd values too.
    """
    if pow2:
        ns = (units * 1_000_000_000) >> exponent
    elif exponent <= 9:
        ns = units * 10 ** (9 - exponent)
    else:
        ns = units // 10 ** (exponent - 9)
    return wrap_int64(ns + offset_s * 1_000_000_000)
