"""file.rare_download: classification and pairing of files with requests."""

from __future__ import annotations

from typing import Any

from sensor.detect.download import RareDownload, classify, extension
from tests.detect.netfakes import FakeNet, run

DEV = "192.168.122.145"
SRV = "45.32.238.202"


def http(ts: float, uid: str, host: str, uri: str) -> tuple[str, dict[str, Any]]:
    return "http", {
        "ts": ts,
        "uid": uid,
        "id.orig_h": DEV,
        "id.orig_p": 49339,
        "id.resp_h": SRV,
        "id.resp_p": 80,
        "host": host,
        "uri": uri,
    }


def file(
    ts: float, uid: str, mime: str | None, size: int, name: str | None = None
) -> tuple[str, dict[str, Any]]:
    r: dict[str, Any] = {
        "ts": ts,
        "uid": uid,
        "fuid": "F" + uid,
        "id.orig_h": DEV,
        "id.orig_p": 49339,
        "id.resp_h": SRV,
        "id.resp_p": 80,
        "source": "HTTP",
        "is_orig": False,
        "seen_bytes": size,
    }
    if mime:
        r["mime_type"] = mime
    if name:
        r["filename"] = name
    return "files", r


def test_classify() -> None:
    assert classify("application/x-dosexec", "", 1000, 100_000) == "executable"
    assert classify("text/plain", ".ps1", 1000, 100_000) == "script"
    assert classify(None, ".hta", 1000, 100_000) == "script"
    assert (
        classify("application/vnd.ms-cab-compressed", ".cab", 1000, 100_000)
        == "archive"
    )
    assert classify("application/x-shockwave-flash", "", 1000, 100_000) == "applet"
    assert classify(None, "", 358_400, 100_000) == "opaque blob"
    # The content's type decides over the name: a JPEG called .img is an image.
    assert classify("image/jpeg", ".img", 1000, 100_000) is None
    assert classify(None, ".crl", 174_000, 100_000) is None
    assert classify("text/html", "", 500_000, 100_000) is None
    assert extension("/a/b/setup.EXE?x=1") == ".exe"
    assert extension("/observation/enVjZ2dtcnpz") == ""


def test_executable_disguised_as_image_from_a_fresh_domain() -> None:
    net = FakeNet(
        first_seen={("domain", "topcentc.top"): 95.0},
        users={("domain", "topcentc.top"): 1},
    )
    records = [
        http(100.0, "CX", "xktzjm.topcentc.top", "/img/logo.jpg"),
        file(101.0, "CX", "application/x-dosexec", 250_000),
    ]
    alerts = run(RareDownload(net), records)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.score == 90.0  # 60 + 15 fresh + 15 claims .jpg
    assert a.mitre == "T1105" and a.uids == ["CX"]
    assert (a.src.ip, a.dst.ip, a.dst.domain) == (DEV, SRV, "topcentc.top")
    assert (
        "downloaded an executable (application/x-dosexec, 250 kB, logo.jpg)"
        in a.summary
    )
    features = {r.feature: r.value for r in a.reasons}
    assert (
        features["extension_claims"] == ".jpg"
        and features["domain_first_seen_s_ago"] == 6
    )


def test_file_before_request_and_by_address() -> None:
    # files.log may come first; the pair is judged when the request comes.
    records = [
        file(100.5, "CB", None, 358_400),
        http(100.0, "CB", SRV, "/observation/enVjZ2dtcnpz"),
    ]
    alerts = run(RareDownload(FakeNet()), records)
    assert [a.score for a in alerts] == [70.0]  # 45 blob + 15 never seen + 10 address
    assert alerts[0].dst.domain == SRV


def test_popular_or_old_domains_and_ordinary_files_are_quiet() -> None:
    cab = [
        http(100.0, "CW", "download.windowsupdate.com", "/c/msdownload/x.cab"),
        file(101.0, "CW", "application/vnd.ms-cab-compressed", 7000),
    ]
    assert (
        run(RareDownload(FakeNet(users={("domain", "windowsupdate.com"): 9})), cab)
        == []
    )
    old = FakeNet(first_seen={("domain", "windowsupdate.com"): 100.0 - 30 * 86400})
    assert run(RareDownload(old), cab) == []
    # An archive from a rare, fresh domain scores 45: reported, not notable.
    assert [a.score for a in run(RareDownload(FakeNet()), cab)] == [45.0]
    images = [
        http(100.0, "CI", "img.example.com", "/a.img"),
        file(101.0, "CI", "image/jpeg", 7000),
    ]
    upload = file(101.0, "CU", None, 900_000)
    upload[1]["is_orig"] = True
    uploads = [http(100.0, "CU", "x.example.com", "/up"), upload]
    assert run(RareDownload(FakeNet()), images + uploads) == []
