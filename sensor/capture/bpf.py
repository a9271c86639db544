"""Kernel packet filters: tcpdump syntax compiled to classic BPF by libpcap.

libpcap is called through ctypes (``pcap_open_dead`` + ``pcap_compile``) so
that the filter language is exactly tcpdump's. The program is attached with
``SO_ATTACH_FILTER`` (Documentation/networking/filter.rst), which replaces
any earlier program atomically, so SIGHUP can change it while capturing.

Known limit: the kernel strips 802.1Q tags before the filter runs, and a
program compiled without a live handle tests tags in the packet bytes, so a
``vlan`` expression matches nothing; filter on addresses and ports instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
DLT_EN10MB = 1
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


class FilterError(Exception):
    """The filter expression does not compile; the message says why."""


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise FilterError(f"libpcap is needed to compile filters: {e}") from None
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_Program),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def compile_filter(
    expression: str, snaplen: int = 262144
) -> list[tuple[int, int, int, int]]:
    """Compile ``expression`` for Ethernet frames; instructions (code, jt, jf, k)."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_EN10MB, snaplen)
    if not handle:
        raise FilterError("libpcap: pcap_open_dead failed")
    prog = _Program()
    try:
        if lib.pcap_compile(
            handle, ctypes.byref(prog), expression.encode(), 1, PCAP_NETMASK_UNKNOWN
        ):
            why = lib.pcap_geterr(handle).decode(errors="replace")
            raise FilterError(why)
        insns = [
            (
                prog.bf_insns[i].code,
                prog.bf_insns[i].jt,
                prog.bf_insns[i].jf,
                prog.bf_insns[i].k,
            )
            for i in range(prog.bf_len)
        ]
        lib.pcap_freecode(ctypes.byref(prog))
        return insns
    finally:
        lib.pcap_close(handle)


def attach(sock: socket.socket, insns: list[tuple[int, int, int, int]]) -> None:
    """Attach the program to ``sock`` (replacing any), or detach when empty."""
    if not insns:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, struct.pack("I", 0))
        except OSError:
            pass  # ENOENT: no filter was attached
        return
    code = b"".join(struct.pack("=HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
