"""The ``servegate`` command: render a session's results JSON again, after the run, on any machine.

CI keeps the results JSON as an artifact; people open it days later without pytest or a GPU at hand, so the
reports must be reproducible from that file alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servegate import __version__, merge
from servegate.history import HistoryError
from servegate.history import command as history_command
from servegate.results import SCHEMA_VERSION


class ResultsFileError(Exception):
    """A results file the reports cannot read; the message says what to do about it."""


def load_document(path: Path) -> dict[str, Any]:
    """Read and validate a results JSON with messages a user can act on (path, line, versions found/expected)."""
    if not path.exists():
        raise ResultsFileError(f"{path}: no such file (results are written to results/results-<stamp>.json)")
    if path.is_dir():
        raise ResultsFileError(f"{path}: is a directory; pass one results-<stamp>.json file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"{path}: cannot read: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        line = text.splitlines()[exc.lineno - 1].strip() if 0 < exc.lineno <= len(text.splitlines()) else ""
        hint = (
            "; the secret mask '***' replaced a JSON value (a redaction bug in the writer, not in this file's reader)"
            if "***" in line
            else ""
        )
        raise ResultsFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): {line[:120]!r}{hint}"
        ) from exc
    if not isinstance(doc, dict) or "cases" not in doc:
        raise ResultsFileError(f"{path}: not a servegate results document (no 'cases' key)")
    found = doc.get("schema_version")
    if found != SCHEMA_VERSION:
        raise ResultsFileError(
            f"{path}: schema_version {found!r} found, this servegate ({__version__}) reads schema_version "
            f"{SCHEMA_VERSION}; render it with the servegate version that wrote it ({doc.get('servegate_version')!r})"
        )
    if not isinstance(doc["cases"], list):
        raise ResultsFileError(f"{path}: 'cases' must be a list")
    return doc


def _report(args: argparse.Namespace) -> int:
    from servegate.report.html import write_html_report  # matplotlib is only imported when a report is drawn

    doc = load_document(Path(args.results))
    out = Path(args.output) if args.output else Path(args.results).with_suffix(".html")
    path = write_html_report(doc, out)
    print(path.resolve())
    return 0


def _show(args: argparse.Namespace) -> int:
    from servegate.report.terminal import render_session

    doc = load_document(Path(args.results))
    print(render_session(doc))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servegate",
        description="Render servegate session results (the results-<stamp>.json a pytest run writes).",
    )
    parser.add_argument("--version", action="version", version=f"servegate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    report = sub.add_parser("report", help="write the self-contained HTML report (plots inline, no network)")
    report.add_argument("results", help="path of a results JSON written by a servegate run")
    report.add_argument(
        "-o", "--output", help="where to write the HTML (default: next to the JSON, with the suffix .html)"
    )
    report.set_defaults(func=_report)
    show = sub.add_parser("show", help="print the terminal table (mean ± 95%% CI per metric and case)")
    show.add_argument("results", help="path of a results JSON written by a servegate run")
    show.set_defaults(func=_show)
    history_command.add_parser(sub)
    merge.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ResultsFileError, HistoryError) as exc:
        print(f"servegate: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
