"""WinRM (WS-Management over HTTP) named as its own conn.log service.

Windows Remote Management is SOAP over HTTP, posted to the ``/wsman`` path
([MS-WSMV] 2.1; ports 5985 for HTTP, 5986 for HTTPS). The HTTP analyzer
already writes its requests to http.log (and any NTLM to ntlm.log); this
analyzer only recognises the first request to ``/wsman`` so that the
connection's service says ``winrm`` -- remote PowerShell is a lateral
movement channel worth telling apart from web traffic.

WinRM over HTTPS (5986) is TLS and cannot be recognised from its payload;
it is named by the TLS analyzer as ``ssl``, as in Zeek.
"""

from __future__ import annotations

from typing import ClassVar

from sensor.proto.analyzer import ANY_BYTE, Analyzer, ConnInfo, Emit, SniffHint

#: The request-URI prefix of WS-Management ([MS-WSMV] 2.1).
WSMAN_PATH = b"/wsman"
#: Request lines longer than this are not read (a WinRM one is ~30 bytes).
MAX_LINE = 2048


class WinRMAnalyzer(Analyzer):
    """Names connections whose first request goes to ``/wsman``; logs nothing."""

    service: ClassVar[str] = "winrm"
    logs: ClassVar[tuple[str, ...]] = ()
    protos: ClassVar[tuple[str, ...]] = ("tcp",)
    sniff_hint: ClassVar[SniffHint | None] = SniffHint(orig_first=ANY_BYTE)

    def __init__(self, conn: ConnInfo, emit: Emit) -> None:
        super().__init__(conn, emit)
        self.done = True  # the sniff said all there is to say

    @classmethod
    def sniff(cls, conn: ConnInfo, is_orig: bool, data: bytes) -> bool:
        """An originator's HTTP request line whose URI starts with /wsman."""
        if not is_orig:
            return False
        line = data[:MAX_LINE].split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        return (
            len(parts) == 3
            and parts[2].startswith(b"HTTP/1.")
            and parts[1].lower().startswith(WSMAN_PATH)
        )
