"""Command-line values checked before anything runs: each function returns the parsed value or raises
``OptionError`` with one line naming the option, the value given and what is allowed.

A bad option must never turn the gate off quietly: ``--tolerance nan`` made every comparison INCONCLUSIVE and the
session green, ``--restarts -1`` ran nothing and passed, a ``--baselines-dir`` that is a file compared against
nothing. The plugin calls these as argparse types (so pytest exits with a usage error, code 4) or at configure.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
from pathlib import Path

# Sockets besides the requests' own: the log files, /metrics scrapes, the tokenizer, pytest's own files.
FD_MARGIN = 256


class OptionError(argparse.ArgumentTypeError):
    """An option value that is refused; argparse shows the message as it is."""


def parse_tolerance(text: str) -> float:
    """``--tolerance``: a relative change, finite, > 0 and < 1 (0.03 = 3%)."""
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"--tolerance {text!r}: not a number; give a fraction such as 0.03 for 3%") from None
    if not math.isfinite(value) or not 0 < value < 1:
        raise OptionError(
            f"--tolerance {text!r}: must be a finite fraction with 0 < tolerance < 1 (0.03 = 3%); "
            "0 or less would flag noise, 1 or more (or inf/nan) would never flag anything"
        )
    return value


def check_restarts_gateable(restarts: int | None, gate: str, update_baselines: bool) -> None:
    """One start per case (``restarts`` = the budget's maximum) cannot be compared (a t interval needs two): a gated
    run would be all NOT COMPARED."""
    if restarts == 1 and gate != "off":
        what = "recorded as a baseline" if update_baselines else "gated"
        raise OptionError(
            f"--restarts 1: one server start per case cannot be {what} (needs >= 2); "
            "use --restarts 2 or more, or --gate off for a smoke run"
        )


def resolve_dir(text: str, rootdir: Path, option: str) -> Path:
    """A directory option: relative paths are taken from pytest's rootdir (not the current directory, so running
    from elsewhere finds the same baselines); refused when it names an existing file."""
    path = Path(text).expanduser()
    path = (path if path.is_absolute() else rootdir / path).resolve()
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {text!r}: {path} is a file; expected a directory")
    return path


def check_writable_dir(path: Path, option: str) -> None:
    """The results directory must be creatable and writable before an hour of measurement, not after."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {str(path)!r}: cannot write there ({probe} is not a writable directory)")


def ensure_fd_limit(connections: int) -> int:
    """Make room for ``connections`` open sockets: raise the soft RLIMIT_NOFILE up to the hard limit if needed;
    refuse when even that is too low (EMFILE in the client would otherwise look like a FAILING server).
    Returns the soft limit in force."""
    need = connections + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return soft
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return need
    raise OptionError(
        f"concurrency {connections} needs about {need} open files, but this process may open at most {hard} "
        f"(ulimit -n hard limit); lower the concurrency or raise the limit (ulimit -Hn, /etc/security/limits.conf)"
    )
