"""file.rare_download: an executable, script or archive from a rare domain.

Droppers and exploit kits deliver their payload over plain downloads from
domains few devices ever use; ordinary software comes from vendors' and
stores' domains that many devices use. The detection pairs each file a
device downloaded over HTTP or FTP (files.log, ``is_orig`` false) with
the request that fetched it (http.log, by connection uid), classifies it
by the type libmagic found and by the extension of its name or URL path,
and scores it when its domain (the registered domain of the Host, or the
address when the Host is one) is rare: used by at most ``rare_devices``
devices (the downloading device included) and first seen on the network
less than ``new_seconds`` ago.

Points: an executable 60, a script 55, an archive 30, a Flash or Java
applet 30, an opaque blob (no type libmagic knows, ``opaque_bytes`` or
more, no extension in the URL: how exploit kits ship encrypted payloads)
45; +15 when the domain was first seen on the network less than
``fresh_seconds`` before the download (the download's own lookup), +10
when the Host is an address, +15 when the extension claims a harmless
type (image, text, document) and the content is an executable.
The score is not halved while a device is learning: the content type, not
the device's history, carries it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from sensor.detect.alert import Alert, Endpoint, Reason
from sensor.detect.base import (
    COUNT,
    NON_NEGATIVE,
    SCORE,
    SECONDS,
    Detection,
    Threshold,
    register,
)
from sensor.detect.names import host_only, is_ip_literal, registered_domain
from sensor.detect.support import BoundedTable, device_ref, duration, human_bytes
from sensor.model.view import ModelView

EXECUTABLE_TYPES = frozenset(
    {
        "application/x-dosexec",
        "application/x-executable",
        "application/x-elf",
        "application/x-sharedlib",
        "application/x-mach-o-executable",
        "application/x-msdownload",
        "application/vnd.microsoft.portable-executable",
        "application/x-msi",
        "application/x-ole-storage",
        "application/vnd.android.package-archive",
    }
)
SCRIPT_TYPES = frozenset(
    {
        "text/x-shellscript",
        "application/x-sh",
        "text/x-python",
        "application/hta",
        "text/x-msdos-batch",
    }
)
ARCHIVE_TYPES = frozenset(
    {
        "application/zip",
        "application/x-rar",
        "application/x-7z-compressed",
        "application/vnd.ms-cab-compressed",
        "application/x-tar",
        "application/gzip",
        "application/x-gzip",
        "application/x-iso9660-image",
        "application/x-xz",
        "application/x-bzip2",
    }
)
APPLET_TYPES = frozenset({"application/x-shockwave-flash", "application/java-archive"})

EXECUTABLE_EXT = frozenset(
    {
        ".exe",
        ".dll",
        ".scr",
        ".msi",
        ".com",
        ".pif",
        ".cpl",
        ".sys",
        ".elf",
        ".apk",
        ".bin",
    }
)
SCRIPT_EXT = frozenset(
    {
        ".ps1",
        ".psm1",
        ".vbs",
        ".vbe",
        ".jse",
        ".wsf",
        ".wsh",
        ".hta",
        ".bat",
        ".cmd",
        ".sh",
        ".lnk",
    }
)
ARCHIVE_EXT = frozenset(
    {
        ".zip",
        ".rar",
        ".7z",
        ".cab",
        ".iso",
        ".img",
        ".tar",
        ".gz",
        ".tgz",
        ".xz",
        ".bz2",
    }
)
APPLET_EXT = frozenset({".swf", ".jar"})
HARMLESS_EXT = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".bmp",
        ".ico",
        ".txt",
        ".pdf",
        ".doc",
        ".docx",
        ".css",
        ".html",
        ".htm",
    }
)

#: Types that say nothing specific about the content.
GENERIC_TYPES = frozenset({None, "text/plain", "application/octet-stream"})

POINTS = {
    "executable": 60,
    "script": 55,
    "archive": 30,
    "applet": 30,
    "opaque blob": 45,
}


def classify(mime: str | None, ext: str, size: int, opaque_bytes: int) -> str | None:
    """The kind of a downloaded file, or None for ordinary content.

    The type libmagic found decides; the extension only speaks when the
    content has no specific type (none, plain text, generic binary), as for
    scripts, which are plain text to libmagic.
    """
    if mime in EXECUTABLE_TYPES:
        return "executable"
    if mime in SCRIPT_TYPES:
        return "script"
    if mime in APPLET_TYPES:
        return "applet"
    if mime in ARCHIVE_TYPES:
        return "archive"
    if mime not in GENERIC_TYPES:
        return None
    if ext in EXECUTABLE_EXT:
        return "executable"
    if ext in SCRIPT_EXT:
        return "script"
    if ext in APPLET_EXT:
        return "applet"
    if ext in ARCHIVE_EXT:
        return "archive"
    if mime is None and not ext and size >= opaque_bytes:
        return "opaque blob"
    return None


def extension(path: str) -> str:
    """The lowercased extension of a URL path or file name (``""`` if none)."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    ext = posixpath.splitext(posixpath.basename(path))[1].lower()
    return ext if 1 < len(ext) <= 6 else ""


@dataclass
class Request:
    """What the http.log record of a connection said, with the rarity of
    its domain as the models answered when the record came."""

    host: str
    uri: str
    domain: str
    users: int
    first_seen: float | None


@register
class RareDownload(Detection):
    """Executables, scripts and archives from rare domains (see module)."""

    name = "file.rare_download"
    mitre = "T1105"
    logs = ("http", "files")
    thresholds = (
        Threshold("rare_devices", 1, "A domain used by more devices than this (the downloader included) is not rare.", NON_NEGATIVE),
        Threshold("new_seconds", 86400.0, "A domain first seen on the network longer ago than this is not rare.", SECONDS),
        Threshold("fresh_seconds", 600.0, "A domain first seen on the network this recently (the download's own lookup) adds 15 points.", SECONDS),
        Threshold("opaque_bytes", 100_000, "Size from which an untyped download without extension counts as an opaque blob.", NON_NEGATIVE),
        Threshold("report_score", 40.0, "Score from which a download is reported.", SCORE),
        Threshold("max_pending", 20000, "Requests and files waiting for their partner record.", COUNT),
    )  # fmt: skip

    def __init__(
        self, models: ModelView, overrides: dict[str, Any] | None = None
    ) -> None:
        super().__init__(models, overrides)
        self.requests: BoundedTable[str, list[Request]] = BoundedTable(
            self.t["max_pending"]
        )
        self.files: BoundedTable[str, list[dict[str, Any]]] = BoundedTable(
            self.t["max_pending"]
        )

    def observe(self, log: str, record: dict[str, Any]) -> list[Alert]:
        """Pair files with requests by uid; judge each pair once."""
        uid = record.get("uid")
        if not uid:
            return []
        if log == "http":
            host = host_only(str(record.get("host") or record.get("id.resp_h") or ""))
            domain = host if is_ip_literal(host) else registered_domain(host)
            kind = "ip" if is_ip_literal(host) else "domain"
            req = Request(
                host,
                str(record.get("uri") or ""),
                domain,
                self.models.network_devices(kind, domain),
                self.models.network_first_seen(kind, domain),
            )
            reqs = self.requests.get(uid) or []
            reqs.append(req)
            self.requests.put(uid, reqs[-16:])
            waiting = self.files.pop(uid) or []
            return [a for f in waiting if (a := self._judge(f, req)) is not None]
        if record.get("is_orig") or record.get("source") not in (
            "HTTP",
            "FTP_DATA",
            "FTP",
        ):
            return []
        found = self.requests.get(uid)
        if not found:
            files = self.files.get(uid) or []
            files.append(record)
            self.files.put(uid, files[-16:])
            return []
        alert = self._judge(record, self._request_for(record, found))
        return [alert] if alert is not None else []

    def _request_for(self, f: dict[str, Any], reqs: list[Request]) -> Request:
        # The request whose name matches the file, else the latest one.
        name = f.get("filename")
        for r in reversed(reqs):
            if name and r.uri.split("?", 1)[0].endswith(str(name)):
                return r
        return reqs[-1]

    def _judge(self, f: dict[str, Any], req: Request) -> Alert | None:
        mime = f.get("mime_type")
        name_ext = extension(str(f.get("filename") or ""))
        url_ext = extension(req.uri)
        size = int(f.get("seen_bytes") or 0)
        kind = classify(mime, name_ext or url_ext, size, self.t["opaque_bytes"])
        if kind is None:
            return None
        ts = float(f.get("ts") or 0.0)
        recent = req.first_seen is None or ts - req.first_seen < self.t["new_seconds"]
        if req.users > self.t["rare_devices"] or not recent:
            return None

        score = float(POINTS[kind])
        reasons = [
            Reason(
                "file_kind",
                kind,
                "executables, scripts, archives, applets, opaque blobs",
            )
        ]
        if mime:
            reasons.append(Reason("mime_type", mime, None))
        if req.first_seen is None or ts - req.first_seen < self.t["fresh_seconds"]:
            score += 15
            reasons.append(
                Reason(
                    "domain_first_seen_s_ago",
                    "never" if req.first_seen is None else round(ts - req.first_seen),
                    f"fresh under {self.t['fresh_seconds']:.0f}",
                )
            )
        reasons.append(
            Reason(
                "devices_using_domain",
                req.users,
                f"rare up to {self.t['rare_devices']}",
            )
        )
        if is_ip_literal(req.host):
            score += 10
            reasons.append(Reason("host_is_address", req.host, "a name"))
        claimed = name_ext or url_ext
        if kind == "executable" and claimed in HARMLESS_EXT:
            score += 15
            reasons.append(Reason("extension_claims", claimed, "matches the content"))
        if score < self.t["report_score"]:
            return None

        src = f.get("id.resp_h", "")  # files.log orients ends as the connection
        device = f.get("id.orig_h", "")
        fname = (
            f.get("filename") or posixpath.basename(req.uri.split("?", 1)[0]) or req.uri
        )
        if req.first_seen is None:
            seen = "never seen on the network before"
        else:
            seen = f"first seen on the network {duration(max(0.0, ts - req.first_seen))} before"
        summary = (
            f"{device} downloaded {'an' if kind[0] in 'aeo' else 'a'} {kind} "
            f"({mime or 'type unknown'}, {human_bytes(size)}, {fname}) from {req.host}; "
            + (
                f"no device had used {req.domain} before"
                if req.users == 0
                else f"{req.domain} is used by {req.users} device(s) (rare up to "
                f"{self.t['rare_devices']}) and was {seen}"
            )
        )
        return Alert(
            ts=ts,
            detection=self.name,
            score=min(score, 100.0),
            device=device_ref(self.models, device, None),
            src=Endpoint(ip=device),
            dst=Endpoint(
                ip=src, port=int(f.get("id.resp_p") or 0) or None, domain=req.domain
            ),
            summary=summary,
            reasons=reasons,
            mitre=self.mitre,
            uids=[str(f.get("uid"))],
        )
