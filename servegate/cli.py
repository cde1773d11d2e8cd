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

from servegate import __version__, merge
from servegate.history import HistoryError
from servegate.history import command as history_command
from servegate.record import Session
from servegate.results import checked_document


class ResultsFileError(Exception):
    """A results file the reports cannot read; the message says what to do about it."""


def load_session(path: Path) -> Session:
    """Read a results JSON into its ``Session``, with messages a user can act on (path, line, versions found and
    expected, places of the wrong shape)."""
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
    try:
        return checked_document(doc, path)
    except ValueError as exc:
        raise ResultsFileError(str(exc)) from None


def _report(args: argparse.Namespace) -> int:
    from servegate.report.html import write_html_report  # matplotlib is only imported when a report is drawn

    session = load_session(Path(args.results))
    out = Path(args.output) if args.output else Path(args.results).with_suffix(".html")
    path = write_html_report(session, out)
    print(path.resolve())
    return 0


def _show(args: argparse.Namespace) -> int:
    session = load_session(Path(args.results))
    from servegate.report.terminal import render_cases

    print(render_cases(session.cases))
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from servegate.preflight import PreflightError, Resolver, run_preflight
    from servegate.suite import SuiteError, load_suite_file

    configs = []
    try:
        for path in args.suites:
            for case in load_suite_file(Path(path)):
                configs += [case.server, *(server for _, server in case.arms)]
        report = run_preflight(configs, Resolver(args.launcher, args.vllm_python, gpu=args.gpu))
    except (SuiteError, PreflightError) as exc:
        print(f"servegate: error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1


def _plan(args: argparse.Namespace) -> int:
    from servegate.config import INTENSITY_MULTIPLIERS
    from servegate.preflight import plan, render_plan
    from servegate.sequential import Budget, BudgetError
    from servegate.suite import SuiteError, load_suite_file

    try:
        cases = [c for path in args.suites for c in load_suite_file(Path(path))]
    except SuiteError as exc:
        print(f"servegate: error: {exc}", file=sys.stderr)
        return 2
    if args.suite:
        cases = [c for c in cases if c.suite in args.suite]
    try:
        budget = Budget.parse(args.restarts) if args.restarts else None
    except BudgetError as exc:
        print(f"servegate: error: {exc}", file=sys.stderr)
        return 2
    planned = plan(cases, budget, INTENSITY_MULTIPLIERS[args.intensity])
    print(render_plan(planned))
    budget_s = sum(p.startup_budget_s for p in planned)
    if args.budget_minutes is not None and budget_s > args.budget_minutes * 60:
        print(
            f"servegate: error: start-ups alone may take {budget_s / 60:.0f} min, over the budget of "
            f"{args.budget_minutes:.0f} min: select fewer suites (--suite) or fewer restarts",
            file=sys.stderr,
        )
        return 1
    return 0


def _schema(args: argparse.Namespace) -> int:
    from servegate.suite import suite_json_schema

    print(json.dumps(suite_json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servegate",
        description="Render servegate session results (the results-<stamp>.json a pytest run writes); check and plan "
        "suites before a run.",
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
    preflight = sub.add_parser(
        "preflight",
        help="check every server's flags and env with the vLLM that will run it (its parser and env registry)",
    )
    preflight.add_argument("suites", nargs="+", help="suite YAML files")
    preflight.add_argument("--launcher", choices=("local", "docker"), help="as pytest's --launcher")
    preflight.add_argument("--vllm-python", help="as pytest's --vllm-python (local launches)")
    preflight.add_argument(
        "--gpu", choices=("rocm", "cuda", "cpu"), help="docker GPU passthrough for the checker (default: detected)"
    )
    preflight.set_defaults(func=_preflight)
    planner = sub.add_parser("plan", help="print the server starts, requests and start-up budget of a selection")
    planner.add_argument("suites", nargs="+", help="suite YAML files")
    planner.add_argument("--suite", action="append", help="only these suites (repeatable; default: all)")
    planner.add_argument("--restarts", help="as pytest's --restarts (auto, N or MIN:MAX; counted at its maximum)")
    planner.add_argument("--intensity", choices=("quick", "default", "thorough"), default="default")
    planner.add_argument(
        "--budget-minutes", type=float, help="exit 1 when the worst-case start-ups alone exceed this (the job timeout)"
    )
    planner.set_defaults(func=_plan)
    schema = sub.add_parser("schema", help="print the JSON Schema of suite files (for editors: suite.schema.json)")
    schema.set_defaults(func=_schema)
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
