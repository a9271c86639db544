"""Check the compiled code of the package's virtual environment.

    VENV/bin/python debian/check_extensions.py SOURCE/ext [--load-all VENVDIR]

Every Cython module in SOURCE/ext must have been built into the package and
import: sensor._impl falls back to the pure-Python twins when a compiled
module is missing, so a package without them would work, only slower, and
this makes that a build failure instead. With ``--load-all``, every shared
object under VENVDIR is also loaded (dlopen, without running it), which
catches a library that stripping damaged.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
from pathlib import Path


def check_project(ext: Path) -> None:
    """Import sensor._ext.NAME for every ext/NAME.pyx; exit if one is missing."""
    names = sorted(p.stem for p in ext.glob("*.pyx"))
    if not names:
        raise SystemExit(f"check_extensions.py: no .pyx files in {ext}")
    for name in names:
        module = importlib.import_module(f"sensor._ext.{name}")
        if not str(module.__file__).endswith(".so"):
            raise SystemExit(f"check_extensions.py: sensor._ext.{name} is {module.__file__}, not a compiled module")
    print("check_extensions.py: compiled modules import:", " ".join(names))


def load_all(venv: Path) -> None:
    """dlopen every shared object under ``venv``; exit on the first failure."""
    count = 0
    for path in sorted(venv.rglob("*.so*")):
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF":
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
            except OSError as e:
                raise SystemExit(f"check_extensions.py: {path}: cannot be loaded: {e}") from None
            count += 1
    print(f"check_extensions.py: {count} shared objects load")


def main() -> None:
    """Run the checks that the command line asks for."""
    p = argparse.ArgumentParser(description="Check the compiled code of the package.")
    p.add_argument("ext", type=Path, help="the source tree's ext/ directory")
    p.add_argument("--load-all", type=Path, metavar="VENVDIR", help="also load every shared object here")
    args = p.parse_args()
    check_project(args.ext)
    if args.load_all:
        load_all(args.load_all)


if __name__ == "__main__":
    main()
