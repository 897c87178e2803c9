"""What every command line shares: one-line errors with exit status 2, ``--profile`` and ``--threads``.

Each ``python -m helpers.<tool>`` builds its parser with :class:`Parser` and wraps its ``main`` in
:func:`entry`, so bad input ends the same way everywhere: one line on stderr naming the file, line,
field or flag, exit status 2, no traceback. Bad input is :class:`~helpers.io.DataError` and the rest
of the ``ValueError`` family (an unknown task, a bad profile) and ``OSError`` (a missing or
unwritable path); any other exception is a bug and keeps its traceback. ``HELPERS_TRACEBACK=1``
shows the traceback of bad input too. Ctrl-C ends with exit status 130 and one line
(:mod:`helpers.training.cli` names the checkpoint to resume from).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
from typing import Callable, Sequence

from helpers.io import DataError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130   # 128 + SIGINT, what a shell reports for a process ended by Ctrl-C


class UsageError(DataError):
    """A bad command line: an unknown flag, a missing or malformed value."""


class Parser(argparse.ArgumentParser):
    """``argparse`` with its usage errors as :class:`UsageError` (one line via :func:`entry`, exit 2)
    instead of a usage block; subcommands get the same class."""

    def error(self, message: str):
        raise UsageError(f"{message.removeprefix('argument ')} (see {self.prog} --help)")


def error_line(e: BaseException) -> str:
    """``e`` as one line: an ``OSError`` names its path and reason; newlines are folded."""
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    else:
        text = str(e) or type(e).__name__
    return re.sub(r"\s*\n\s*", " ", text).strip()


def entry(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a CLI's ``main(argv) -> exit status``: bad input (``ValueError`` family, ``OSError``)
    becomes ``error: <one line>`` on stderr and exit status 2; Ctrl-C exit status 130."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (ValueError, OSError) as e:
            if os.environ.get("HELPERS_TRACEBACK"):
                raise
            print(f"error: {error_line(e)}", file=sys.stderr)
            return EXIT_BAD_INPUT

    return run


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
    return value


def profile_name(text: str) -> str:
    """``argparse`` type: a profile of :data:`helpers.profiles.PROFILES`."""
    from helpers.profiles import PROFILES

    if text not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {text!r}; choose one of: {', '.join(PROFILES)}")
    return text


def add_profile(parser: argparse.ArgumentParser, default: str | None = None, help: str | None = None) -> None:
    """``--profile``, its choices taken from :data:`helpers.profiles.PROFILES`."""
    from helpers.profiles import DEFAULT_PROFILE, PROFILES

    parser.add_argument("--profile", type=profile_name, default=default, metavar="{" + ",".join(PROFILES) + "}",
                        help=help or (f"run profile (default {default})" if default else
                                      f"run profile (default $CASE_STUDY_PROFILE or {DEFAULT_PROFILE})"))


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads (1 each when two runs share a 2-core machine)."""
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 when two runs share 2 cores)")


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU threads if ``--threads`` was given."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def log_warnings(level: int = logging.WARNING) -> None:
    """Log lines as ``LEVEL logger: message`` from ``level`` up, unless the caller set up logging."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
