"""Names Zeek gives DNS numbers in dns.log (base/protocols/dns/consts.zeek).

Numbers without a name get Zeek's fallbacks: ``query-N``, ``rcode-N``,
``qclass-N``, ``opcode-N`` and ``netbios-opcode-N``.
"""

from __future__ import annotations

#: RR and query types (IANA DNS parameters; Zeek's ``query_types``).
QTYPES: dict[int, str] = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB",
    8: "MG", 9: "MR", 10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO",
    14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25",
    20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY",
    26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID",
    32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT",
    38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL", 43: "DS",
    44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
    49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA",
    55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS",
    60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID",
    103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64", 107: "LP",
    108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR",
    252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "*", 256: "URI",
    257: "CAA", 32768: "TA", 32769: "DLV", 65281: "WINS", 65282: "WINS-R",
    65422: "XPF", 65521: "INTEGRITY",
}  # fmt: skip

#: Response codes (RFC 1035 4.1.1, RFC 2136, RFC 6891, RFC 7873).
RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
    5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSet", 9: "NOTAUTH",
    10: "NOTZONE", 11: "unassigned-11", 12: "unassigned-12",
    13: "unassigned-13", 14: "unassigned-14", 15: "unassigned-15",
    16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME",
    21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE", 3842: "BADSIG",
}  # fmt: skip

#: Classes (RFC 1035 3.2.4, RFC 2136 for NONE).
CLASSES: dict[int, str] = {
    1: "C_INTERNET", 2: "C_CSNET", 3: "C_CHAOS", 4: "C_HESIOD",
    254: "C_NONE", 255: "C_ANY",
}  # fmt: skip

#: Opcodes (RFC 1035, RFC 1996 NOTIFY, RFC 2136 UPDATE, RFC 8490 DSO).
OPCODES: dict[int, str] = {
    0: "query", 1: "iquery", 2: "server-status", 4: "notify",
    5: "dynamic-update", 6: "dso",
}  # fmt: skip

#: NetBIOS name service opcodes (RFC 1002 4.2.1.1).
NETBIOS_OPCODES: dict[int, str] = {
    0: "netbios-query", 5: "netbios-registration", 6: "netbios-release",
    7: "netbios-wack", 8: "netbios-refresh",
}  # fmt: skip


def qtype_name(n: int) -> str:
    """Zeek's name of a query type."""
    return QTYPES.get(n) or f"query-{n}"


def rcode_name(n: int) -> str:
    """Zeek's name of a response code."""
    return RCODES.get(n) or f"rcode-{n}"


def qclass_name(n: int) -> str:
    """Zeek's name of a query class."""
    return CLASSES.get(n) or f"qclass-{n}"


def opcode_name(n: int, netbios: bool) -> str:
    """Zeek's name of an opcode; NetBIOS has its own names."""
    if netbios:
        return NETBIOS_OPCODES.get(n) or f"netbios-opcode-{n}"
    return OPCODES.get(n) or f"opcode-{n}"
