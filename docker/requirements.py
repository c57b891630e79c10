"""Print the project's dependencies, plus those of the chosen extras, one per line for `pip install -r`.

The image installs dependencies in a layer built from pyproject.toml alone, so a code change
does not reinstall gigabytes of wheels; the code is installed afterwards with --no-deps. Reading
the list from pyproject.toml keeps it declared in one place.

    python requirements.py pyproject.toml --extras ray
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The dependency lines; an unknown extra is an error so a typo in a build argument cannot pass silently."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"unknown extra(s) {', '.join(unknown)}; pyproject.toml offers: {', '.join(sorted(optional))}")
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += [line for line in optional[extra] if line not in lines]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path, nargs="?", default=Path("pyproject.toml"))
    parser.add_argument("--extras", default="", help="comma-separated extras, e.g. 'ray'; empty for none")
    args = parser.parse_args(argv)
    extras = [extra.strip() for extra in args.extras.split(",") if extra.strip()]
    print("\n".join(requirements(args.pyproject, extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
