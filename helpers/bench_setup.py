"""Setup time with and without one requirement: what a pinned dependency costs a new user.

    python -m helpers.bench_setup                    # requirements.txt with vs without mteb, twice each
    python -m helpers.bench_setup --without mteb onnx --repeats 1

Each round creates a fresh virtual environment in a temporary folder of its own and times
``pip install --no-cache-dir -r REQUIREMENTS`` into it, once with the whole file and once with the
named packages' lines left out; rounds alternate (with, without, without, with, ...) so a slow
minute of the registry falls on both sides. It prints the seconds of each install, the medians and
their ratio. The folders it creates are removed; nothing else is written. Times hold for the
machine and registry they were measured on; the ratio is the number to compare.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from helpers.cli import Parser, entry, positive_int

def requirement_name(line: str) -> str | None:
    """The canonical project name a requirements line installs (``None`` for comments, blanks, options and
    lines that name no project, such as a bare URL)."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return None


def without(requirements: Path, names: Sequence[str]) -> str:
    """The text of ``requirements`` with the lines of ``names`` left out; each must have a line."""
    wanted = {canonicalize_name(n) for n in names}
    lines = requirements.read_text().splitlines(keepends=True)
    missing = wanted - {requirement_name(line) for line in lines}
    if missing:
        raise ValueError(f"{requirements}: no requirement line for {', '.join(sorted(missing))}")
    return "".join(line for line in lines if requirement_name(line) not in wanted)


def timed_install(requirements_text: str, python: str) -> float:
    """Seconds to create a venv and ``pip install --no-cache-dir`` the given requirements into it."""
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(requirements_text)
        venv = Path(tmp) / "venv"
        start = time.perf_counter()
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir", "-r", str(req)]
        done = subprocess.run(pip, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise OSError(f"pip install failed: {tail[0]}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m helpers.bench_setup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", type=Path, default=Path("requirements.txt"))
    parser.add_argument("--without", nargs="+", default=["mteb"], metavar="PACKAGE",
                        help="packages whose lines the second setup leaves out (default: mteb)")
    parser.add_argument("--repeats", type=positive_int, default=2, help="installs per side (default 2)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venvs (default: this one)")
    args = parser.parse_args(argv)

    full = args.requirements.read_text()
    reduced = without(args.requirements, args.without)
    label = "without " + " ".join(args.without)
    sides = {"full": full, label: reduced}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    # ABBA order: a drift of the registry or the disk over the run falls on both sides alike.
    order = [name for r in range(args.repeats) for name in (list(sides) if r % 2 == 0 else list(sides)[::-1])]
    for name in order:
        s = timed_install(sides[name], args.python)
        seconds[name].append(s)
        print(f"{name:<24} {s:7.1f} s", flush=True)
    med = {name: statistics.median(v) for name, v in seconds.items()}
    print(f"\nmedian full {med['full']:.1f} s, {label} {med[label]:.1f} s, "
          f"ratio full/{label.replace(' ', '-')} {med['full'] / med[label]:.3f}")
    return 0


main = entry(main)

if __name__ == "__main__":
    sys.exit(main())
