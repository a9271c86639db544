"""Detection bench: the expected detections on the shared captures.

    python bench/detect.py [--pcaps DIR] [--json] [--jobs N] [--only WORD]

Reads ``expected-detections.json`` next to the captures. For every case it
replays the capture with ``sensord --replay`` (with ``--learn`` and the
top-level ``learn`` captures first when the case says ``after_learning``)
and says whether an alert of one of the expected kinds, scored at least
``notable_score``, names one of the expected hosts as its device, source
or destination (any alert of the kind counts when ``hosts`` is empty).
For every capture of the ``benign`` list it counts the notable alerts.

``--json`` prints one JSON object instead of the table (tests read it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PCAPS = Path(os.environ.get("SENSOR_SHARED", ROOT.parent / "shared")) / "pcaps"


def replay(pcaps: Path, capture: str, learn: list[str]) -> list[dict[str, Any]]:
    """The alerts of one replay (learning first when ``learn`` is given),
    each with ``_unchecked``: what a person could not check in the logs."""
    with tempfile.TemporaryDirectory(prefix="detect-bench-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "sensor.cli.sensord",
            "--replay",
            str(pcaps / capture),
        ]
        if learn:
            cmd += ["--learn", *(str(pcaps / c) for c in learn)]
        cmd += ["--logdir", tmp, "--progress", "never"]
        done = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, timeout=900, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{capture}: sensord exited {done.returncode}: {done.stderr.strip()[-500:]}"
            )
        alerts = read_log(Path(tmp) / "alerts.log")
        uids = {c.get("uid") for c in read_log(Path(tmp) / "conn.log")}
        for a in alerts:
            a["_unchecked"] = unchecked(a, uids)
        return alerts


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def unchecked(alert: dict[str, Any], uids: set[Any]) -> list[str]:
    """What of an alert's evidence a person could not check in the logs:
    a missing summary or reason, a reason without value or baseline, a uid
    that conn.log does not hold."""
    gaps = []
    if not str(alert.get("summary", "")).strip():
        gaps.append("no summary")
    reasons = alert.get("reasons") or []
    if not reasons:
        gaps.append("no reasons")
    for r in reasons:
        if not r.get("feature") or "value" not in r or "baseline" not in r:
            gaps.append(f"incomplete reason {r}")
    missing = [u for u in alert.get("uids") or [] if u not in uids]
    if missing:
        gaps.append(f"uids not in conn.log: {missing[:3]}")
    return gaps


def names(alert: dict[str, Any]) -> set[str]:
    """The addresses an alert names: device, source and destination."""
    return {
        ip
        for ip in (
            alert.get("device", {}).get("ip"),
            alert.get("src", {}).get("ip"),
            alert.get("dst", {}).get("ip"),
        )
        if ip
    }


def judge(
    case: dict[str, Any], alerts: list[dict[str, Any]], notable: float
) -> dict[str, Any]:
    """Whether the case is found, with the alert that shows it."""
    hosts = set(case.get("hosts", []))
    hit = None
    for a in alerts:
        if (
            a["detection"] in case["kinds"]
            and a["score"] >= notable
            and (not hosts or names(a) & hosts)
            and (hit is None or a["score"] > hit["score"])
        ):
            hit = a
    top = sorted(alerts, key=lambda a: -a["score"])[:4]
    return {
        "capture": case["capture"],
        "kinds": case["kinds"],
        "hosts": sorted(hosts),
        "after_learning": bool(case.get("after_learning")),
        "found": hit is not None,
        "alert": None
        if hit is None
        else {k: hit[k] for k in ("id", "detection", "score", "summary")},
        "alerts": len(alerts),
        "top": [f"{a['detection']}:{a['score']:.0f}" for a in top],
        "unchecked": [f"{a['id']} {a['detection']}: {g}" for a in alerts for g in a["_unchecked"]],
    }


def run(pcaps: Path, jobs: int, only: str | None) -> dict[str, Any]:
    """Run every case and benign capture; the figures as one dict."""
    spec = json.loads((pcaps / "expected-detections.json").read_text())
    notable = float(spec["notable_score"])
    cases = [c for c in spec["cases"] if not only or only in c["capture"]]
    benign = [b for b in spec["benign"] if not only or only in b]

    def one_case(case: dict[str, Any]) -> dict[str, Any]:
        learn = spec.get("learn", []) if case.get("after_learning") else []
        return judge(case, replay(pcaps, case["capture"], learn), notable)

    def one_benign(capture: str) -> dict[str, Any]:
        every = replay(pcaps, capture, [])
        alerts = [a for a in every if a["score"] >= notable]
        by: dict[str, int] = {}
        for a in alerts:
            by[a["detection"]] = by.get(a["detection"], 0) + 1
        return {
            "capture": capture,
            "notable": len(alerts),
            "by_detection": by,
            "summaries": [a["summary"] for a in alerts[:5]],
            "unchecked": [f"{a['id']} {a['detection']}: {g}" for a in every for g in a["_unchecked"]],
        }

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        case_results = list(pool.map(one_case, cases))
        benign_results = list(pool.map(one_benign, benign))
    found = sum(1 for r in case_results if r["found"])
    return {
        "notable_score": notable,
        "cases": case_results,
        "benign": benign_results,
        "found": found,
        "total": len(case_results),
        "share": found / len(case_results) if case_results else 0.0,
        "benign_notable": sum(r["notable"] for r in benign_results),
        "unchecked": [u for r in case_results + benign_results for u in r["unchecked"]],
    }


def table(result: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    lines = [f"{'capture':<62} {'expected':<34} {'found':<6} alert"]
    for r in result["cases"]:
        kinds = ",".join(r["kinds"]) + (" (learned)" if r["after_learning"] else "")
        shown = (
            f"{r['alert']['detection']} {r['alert']['score']:.0f}"
            if r["alert"]
            else "top: " + (" ".join(r["top"]) or "none")
        )
        lines.append(
            f"{r['capture'][-62:]:<62} {kinds[:34]:<34} {'yes' if r['found'] else 'NO':<6} {shown}"
        )
    lines.append("")
    lines.append(f"{'benign capture':<62} notable alerts")
    for b in result["benign"]:
        detail = " ".join(f"{k}:{v}" for k, v in sorted(b["by_detection"].items()))
        lines.append(f"{b['capture'][-62:]:<62} {b['notable']} {detail}")
    lines.append("")
    lines.append(
        f"found {result['found']}/{result['total']} cases ({100 * result['share']:.0f}%), "
        f"{result['benign_notable']} notable alerts on {len(result['benign'])} benign captures "
        f"(notable: score >= {result['notable_score']:g}); "
        f"{len(result['unchecked'])} alerts whose evidence the logs do not show"
    )
    lines += [f"  {u}" for u in result["unchecked"][:20]]
    return "\n".join(lines)


def speed(capture: Path, repeat: int = 3) -> dict[str, Any]:
    """Records per second through the Detector alone (no models: NoModels),
    over the records the engine makes of ``capture``, best of ``repeat``."""
    import time

    sys.path.insert(0, str(ROOT))
    from sensor.capture.merge import merge
    from sensor.capture.pcapfile import CaptureFile
    from sensor.detect.runner import Detector
    from sensor.engine import Engine

    engine = Engine()
    records = []
    for batch in merge([CaptureFile(str(capture))]):
        records += engine.process(batch)
    records += engine.flush()
    best = float("inf")
    alerts = 0
    for _ in range(repeat):
        d = Detector()
        t0 = time.perf_counter()
        found = []
        for log, r in records:
            found += d.observe(log, r)
        found += d.finish(0.0)
        best = min(best, time.perf_counter() - t0)
        alerts = len(found)
    return {
        "capture": str(capture),
        "records": len(records),
        "seconds": best,
        "records_per_second": len(records) / best if best > 0 else 0.0,
        "alerts": alerts,
        "detections": len(Detector().detections),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--pcaps",
        type=Path,
        default=DEFAULT_PCAPS,
        help="the shared captures (default: ../shared/pcaps)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    p.add_argument(
        "--jobs", type=int, default=1, help="replays run at once (default 1)"
    )
    p.add_argument(
        "--only", metavar="WORD", help="only captures whose path contains WORD"
    )
    p.add_argument(
        "--speed",
        type=Path,
        metavar="CAPTURE",
        help="instead: records per second through the detections on the records of CAPTURE",
    )
    args = p.parse_args()
    if args.speed:
        r = speed(args.speed)
        print(
            json.dumps(r)
            if args.json
            else f"{r['records']} records through {r['detections']} detections in {r['seconds']:.3f} s: "
            f"{r['records_per_second']:,.0f} records/s, {r['alerts']} alerts"
        )
        return 0
    result = run(args.pcaps.resolve(), args.jobs, args.only)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
