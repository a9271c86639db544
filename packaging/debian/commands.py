"""List the sensor distribution's commands; write their links and man pages.

Run at package build time by debian/rules with the package's own virtual
environment, so that each command's module imports exactly as installed:

    VENV/bin/python debian/commands.py --venv /usr/lib/sensor --out debian

For every console script of the ``sensor`` distribution (``[project.scripts]``
in pyproject.toml: sensord today, sensorctl once it is added) it writes

- ``OUT/sensor.links``: ``/usr/lib/sensor/bin/NAME usr/bin/NAME`` (dh_link);
- ``OUT/man/NAME.SECTION``: a man page made by argparse-manpage from the
  command's own argparse parser, plus ``OUT/man-extra/NAME.include`` if
  that file exists (FILES, EXIT STATUS, SEE ALSO, in argparse-manpage's
  include format).

The parser is found without knowing the function that builds it: the
command's ``main`` is called with ``parse_args`` replaced by a function that
hands the parser back, so a new command needs no change here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from pathlib import Path

from argparse_manpage.manpage import Manpage

#: Daemons go to section 8 (system administration); other commands to 1.
SECTIONS = {"sensord": "8"}
PROJECT = "sensor"
URL = "file:///usr/share/doc/sensor/README.md"


class _Parsed(Exception):
    """Carries the parser out of a command's ``main``."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def commands() -> dict[str, str]:
    """Console scripts of the sensor distribution: name -> ``module:function``."""
    eps = importlib.metadata.distribution(PROJECT).entry_points
    return {ep.name: ep.value for ep in eps if ep.group == "console_scripts"}


def parser_of(name: str, target: str) -> argparse.ArgumentParser:
    """The top-level argparse parser that the command ``name`` builds."""
    module_name, _, function = target.partition(":")
    main = getattr(importlib.import_module(module_name), function)

    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parsed(self)

    saved = (argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args)
    saved_argv = sys.argv
    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign,assignment]
    argparse.ArgumentParser.parse_known_args = capture  # type: ignore[method-assign,assignment]
    sys.argv = [name]
    try:
        main()
    except _Parsed as found:
        return found.parser
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = saved  # type: ignore[method-assign]
        sys.argv = saved_argv
    raise SystemExit(f"commands.py: {name} ({target}) returned without parsing its command line")


def write_manpage(name: str, parser: argparse.ArgumentParser, out: Path, extra: Path) -> Path:
    """Write the man page of ``name``; return its path."""
    section = SECTIONS.get(name, "1")
    data: dict[str, object] = {
        "project_name": PROJECT,
        "version": importlib.metadata.version(PROJECT),
        "manual_title": "sensor manual",
        "manual_section": section,
        "url": URL,
    }
    # NAME line (whatis): the first sentence of the parser's description.
    summary = (parser.description or "").strip().split(". ")[0].rstrip(".")
    if summary:
        data["description"] = summary[0].lower() + summary[1:]
    include = extra / f"{name}.include"
    if include.is_file():
        data["include"] = str(include)
    parser.prog = name
    page = Manpage(parser, _data=data)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.{section}"
    path.write_text(str(page))
    return path


def main() -> None:
    """Write links and man pages for every command of the distribution."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", required=True, help="where the virtual environment is installed")
    p.add_argument("--out", required=True, type=Path, help="the debian/ directory")
    args = p.parse_args()

    found = commands()
    if not found:
        raise SystemExit(f"commands.py: the {PROJECT} distribution declares no console scripts")
    links = []
    for name, target in sorted(found.items()):
        links.append(f"{args.venv}/bin/{name} usr/bin/{name}\n")
        page = write_manpage(name, parser_of(name, target), args.out / "man", args.out / "man-extra")
        print(f"commands.py: {name} -> /usr/bin/{name}, {page.name}")
    (args.out / "sensor.links").write_text("".join(links))


if __name__ == "__main__":
    main()
