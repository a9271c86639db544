"""How Zeek's log writers show bytes that are not printable text.

Zeek writes printable ASCII as it is and every other byte (control
characters, DEL, and every byte above 0x7F, even where they form valid
UTF-8) as the four characters ``\\xNN``; no Zeek log in the shared
captures holds a non-ASCII character. Names and strings that come off the
wire go through :func:`zeek_text` so that our logs read like Zeek's.
"""

from __future__ import annotations

_ESCAPED = {b: f"\\x{b:02x}" for b in range(256) if not 0x20 <= b < 0x7F}


def zeek_text(raw: bytes) -> str:
    """``raw`` as Zeek's log writers show it (see the module docstring)."""
    text = raw.decode("latin-1")
    if raw.isascii() and text.isprintable():
        return text
    return "".join(_ESCAPED.get(b) or chr(b) for b in raw)
