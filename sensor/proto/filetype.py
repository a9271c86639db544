"""MIME type of file content, by libmagic, named as Zeek names it.

The type comes from the content (libmagic through python-magic), never from
what the sender declared: a Content-Type header can lie, and the point of
files.log is to show what was actually carried. libmagic and Zeek's own file
signatures (``base/frameworks/files/magic``) agree on most types but spell a
few differently; :data:`ZEEK_NAMES` renames those, so that tools written for
Zeek's files.log see the names they expect.

When libmagic finds nothing more specific than "some bytes" or "some text"
the declared type is used only if it names a structure libmagic has no rule
for but Zeek has (OCSP messages, which are bare DER).
"""

from __future__ import annotations

import hashlib
import logging

log = logging.getLogger(__name__)

try:
    import magic as _magic

    _DETECTOR: object | None = _magic.Magic(mime=True)
except Exception as e:  # noqa: BLE001 - no libmagic: files get no MIME type
    log.warning("files: libmagic unavailable, no MIME types: %s", e)
    _DETECTOR = None

#: libmagic's name -> Zeek's name, where the two differ.
ZEEK_NAMES = {
    "application/json": "text/json",
    "text/xml": "application/xml",
    "image/vnd.microsoft.icon": "image/x-icon",
    "application/vnd.microsoft.portable-executable": "application/x-dosexec",
    "application/x-ms-ne-executable": "application/x-dosexec",
    "text/x-c": "text/plain",
    "text/x-c++": "text/plain",
    "text/x-java": "text/plain",
    "text/x-asm": "text/plain",
    "text/x-makefile": "text/plain",
    "text/x-tex": "text/plain",
    "application/x-font-sfnt": "application/x-font-ttf",
    "font/sfnt": "application/x-font-ttf",
    "application/x-wine-extension-ini": "text/ini",
    "application/x-ndjson": "text/json",
}

#: libmagic's answers that say only "unknown bytes" (Zeek logs no type).
_UNKNOWN = frozenset(
    {"application/octet-stream", "application/x-empty", "inode/x-empty"}
)

#: Zeek's plain-text signature wants ten characters; libmagic calls even
#: two letters text. Shorter content gets no type, as in Zeek's files.log.
_MIN_TEXT = 10

#: Declared types trusted when libmagic finds nothing (see module docstring).
_TRUSTED_HINTS = frozenset({"application/ocsp-response", "application/ocsp-request"})


#: Bytes libmagic looks at first (Zeek's beginning-of-file buffer size).
_FIRST_LOOK = 4096


#: libmagic answers kept, by a digest of the bytes asked about. The same
#: files come back all the time (a site's scripts, styles and images on
#: every visit), and libmagic costs 0.1 to 3 ms a call; the oldest answer
#: is forgotten first.
CACHE_SIZE = 16384
_cache: dict[bytes, str | None] = {}


def _libmagic(head: bytes) -> str | None:
    if not head or _DETECTOR is None:
        return None
    key = hashlib.blake2b(head, digest_size=16).digest()
    if key in _cache:
        return _cache[key]
    try:
        found: str | None = str(_DETECTOR.from_buffer(head))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - libmagic errors on odd input
        found = None
    if len(_cache) >= CACHE_SIZE:
        del _cache[next(iter(_cache))]
    _cache[key] = found
    return found


def sniff_mime(head: bytes, hint: str | None = None) -> str | None:
    """The MIME type of content that starts with ``head``, or None.

    ``hint`` is the type the protocol declared (without parameters or with;
    they are dropped).
    """
    # libmagic's cost grows with the bytes it is given (text: 1 to 2 ms
    # per KiB, every text rule being tried), so it sees the first 4 KiB, and
    # the rest only when those were not enough to name anything.
    found = _libmagic(head[:_FIRST_LOOK])
    if len(head) > _FIRST_LOOK and (found is None or found in _UNKNOWN):
        found = _libmagic(head)
    if found in _UNKNOWN or found is None or found == "text/plain":
        declared = (hint or "").split(";")[0].strip().lower()
        if head and declared in _TRUSTED_HINTS:
            return declared
    if found is None or found in _UNKNOWN:
        return None
    if found == "text/plain" and len(head) < _MIN_TEXT:
        return None
    return ZEEK_NAMES.get(found, found)
