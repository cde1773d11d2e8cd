"""``servegate merge``: the results of N shards (``pytest --shard I/N`` on N runners) as one session.

One results session with every shard's cases, one family-wise gate over all of their rows, one HTML report,
one JUnit file for one CI verdict (servegate.junit_verdict), and one history entry. Shards are checked before
anything is written: all N present once, from one planned session (same family size and gate mode), no case
twice.

The gate: each shard decided its rows in the whole session's family (the plugin plans M over every selected case
before it splits them, and the sequential gate's boundaries depend only on M, the budget and each case's own
looks), so the verdicts are those of an unsplit run. The merge keeps them, after checking that every shard planned
the same family; shards that planned different families are refused instead of re-decided.
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

from servegate.gate import gate_failed
from servegate.junit_verdict import EXIT_FAIL, EXIT_PASS, EXIT_UNUSABLE
from servegate.record import Case, Session, ShardInfo, ShardSource
from servegate.results import session_record, write_results


class MergeError(Exception):
    """The shards cannot be joined into one session; the message names the files and what is wrong."""


def merge_sessions(shards: list[tuple[Path, Session]]) -> Session:
    """One session from the shards' sessions (each read from its results file)."""
    plans, family, mode, count = _check_shards(shards)
    cases: list[Case] = []
    seen: dict[str, Path] = {}
    for path, session in shards:
        for case in session.cases:
            if case.id in seen:
                raise MergeError(f"case {case.id} is in both {seen[case.id]} and {path}: shards must not overlap")
            seen[case.id] = path
            cases.append(case.model_copy(deep=True))
    cases.sort(key=lambda case: case.id)
    environment = dict(shards[0][1].environment)
    environment["command"] = "servegate merge " + " ".join(str(path) for path, _ in shards)
    environment["shards"] = f"{count} (planned family {family}, gate {mode})"
    merged = session_record(cases, environment)
    merged.created = max(session.created for _, session in shards)
    merged.shards = [
        ShardSource(
            file=str(path),
            index=plan.index,
            created=session.created,
            hardware=session.environment.get("hardware"),
            command=session.environment.get("command"),
        )
        for (path, session), plan in zip(shards, plans, strict=True)
    ]
    merged.gate_mode = mode
    return merged


def _check_shards(shards: list[tuple[Path, Session]]) -> tuple[list[ShardInfo], int, str, int]:
    """Each shard's plan, in order, and the family size, gate mode and shard count they share."""
    plans = [session.shard for _, session in shards]
    missing = [str(path) for (path, _), plan in zip(shards, plans, strict=True) if plan is None]
    if missing:
        raise MergeError(f"not shard results (no 'shard' key; run pytest with --shard I/N): {', '.join(missing)}")
    plans = [plan for plan in plans if plan is not None]
    counts = {plan.count for plan in plans}
    if len(counts) != 1:
        raise MergeError(f"shards of different splits ({' vs '.join(f'N={n}' for n in sorted(counts))})")
    count = counts.pop()
    indices = sorted(plan.index for plan in plans)
    if indices != list(range(1, count + 1)):
        absent = sorted(set(range(1, count + 1)) - set(indices))
        twice = sorted({i for i in indices if indices.count(i) > 1})
        raise MergeError(
            f"need shards 1..{count} once each: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(f'{i}/{count}' for i in absent)}" if absent else "",
                    f"given twice {', '.join(f'{i}/{count}' for i in twice)}" if twice else "",
                )
                if part
            )
        )
    families = {plan.planned_family for plan in plans}
    modes = {plan.gate for plan in plans}
    if len(families) != 1 or len(modes) != 1:
        raise MergeError(
            f"shards planned different sessions (family sizes {sorted(families)}, gate modes {sorted(modes)}): "
            "they ran other suite files, markers or options; merge only shards of one run"
        )
    return plans, families.pop(), modes.pop(), count


def session_failed(session: Session) -> bool:
    """The merged session's gate decision in the shards' mode, by the rule a single session uses."""
    mode = session.gate_mode or "default"
    return mode != "off" and gate_failed([row for case in session.cases for row in case.gate], mode)


def merge_junit(paths: list[Path], session: Session, out: Path) -> Path:
    """The shards' JUnit files as one, plus a test case for the family-wise gate of the merged session.

    A missing or unreadable shard file is an error: that shard's session did not finish, and a merged verdict
    without it would pass what never ran."""
    root = ET.Element("testsuites")
    for path in paths:
        try:
            shard_root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise MergeError(f"{path}: shard JUnit file unusable ({exc}); that shard did not finish") from exc
        suites = [shard_root] if shard_root.tag == "testsuite" else list(shard_root.iter("testsuite"))
        for suite in suites:
            suite.set("name", f"{suite.get('name', 'pytest')} [{path.name}]")
            root.append(suite)
    gate = ET.SubElement(root, "testsuite", name="servegate merge", tests="1")
    case = ET.SubElement(gate, "testcase", classname="servegate.merge", name="family-wise gate")
    if session_failed(session):
        failing = [f"{c.id} {row.metric}: {row.reason}" for c in session.cases for row in c.gate if row.verdict != "OK"]
        ET.SubElement(case, "failure", message="regression gate failed over the merged family").text = "\n".join(
            failing
        )
        gate.set("failures", "1")
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("merge", help="join shard results (pytest --shard I/N) into one session and one verdict")
    parser.add_argument("results", nargs="+", help="every shard's results JSON")
    parser.add_argument("-o", "--output", required=True, help="the merged results JSON (the HTML goes beside it)")
    parser.add_argument("--junit", nargs="+", default=[], help="every shard's JUnit XML: merged beside the JSON")
    parser.add_argument(
        "--history-url",
        default=None,
        help="history database for the merged session (default: $SERVEGATE_HISTORY_URL or history.sqlite "
        "beside the output)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from servegate.cli import load_session
    from servegate.history import HistoryError
    from servegate.history.record import record_session
    from servegate.history.store import default_url
    from servegate.report.html import write_html_report

    paths = [Path(p) for p in args.results]
    try:
        merged = merge_sessions([(path, load_session(path)) for path in paths])
    except MergeError as exc:
        print(f"servegate merge: error: {exc}")
        return EXIT_UNUSABLE
    out = Path(args.output)
    url = args.history_url or default_url(out.parent)
    try:
        note = record_session(merged, url)
        merged.history = note.to_dict()
        history_lines = note.lines(merged)
    except HistoryError as exc:
        history_lines = [f"history NOT recorded: {exc}"]
    write_results(out, merged)
    html = write_html_report(merged, out.with_suffix(".html"))
    print(f"merged {len(paths)} shards, {len(merged.cases)} cases: {out}")
    print(f"HTML report: {html}")
    for line in history_lines:
        print(line)
    if args.junit:
        try:
            junit = merge_junit([Path(p) for p in args.junit], merged, out.with_suffix(".junit.xml"))
        except MergeError as exc:
            print(f"servegate merge: error: {exc}")
            return EXIT_UNUSABLE
        print(f"JUnit: {junit} (verdict: python -m servegate.junit_verdict {junit})")
    failed = session_failed(merged)
    print(f"gate ({merged.gate_mode}) over all {len(paths)} shards: {'FAILED' if failed else 'passed'}")
    return EXIT_FAIL if failed else EXIT_PASS
