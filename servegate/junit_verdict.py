"""The CI job's verdict from pytest's JUnit XML, not from pytest's exit code.

Why: a process exit code can lie. Any code running inside the pytest process (a vLLM import, a multiprocessing
child sharing our atexit path, a library calling ``os._exit(0)`` on shutdown) can end the process with status 0
after tests failed; vLLM's own AMD CI had green jobs with failing tests for exactly this reason. The JUnit file is
written by pytest's junitxml plugin at session end, so:

* failures or errors in it -> red;
* no file, an empty or unparseable file -> red (the session never finished, e.g. ``os._exit`` before the
  report: that is precisely the run that must not pass);
* zero tests, or only skipped tests -> red by default (``-m mi300x`` on a runner whose GPUs vanished skips
  everything; a gate that ran nothing has not passed). ``--allow-skipped-only`` relaxes the latter;
* ``--min-tests N``: fewer executed tests than expected -> red (a collection that silently shrank).

Usage (after ``pytest ... --junitxml=results/junit.xml``, whatever pytest's exit status was)::

    python -m servegate.junit_verdict results/junit.xml [--min-tests N] [--allow-skipped-only]

Exit status 0 = pass, 1 = fail, 2 = unusable input; one summary line and the failing test ids are printed.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_UNUSABLE = 2


@dataclass
class JobVerdict:
    """Counts from the JUnit file and the decision; ``reasons`` say why a run is red."""

    path: Path
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    unusable: bool = False

    @property
    def executed(self) -> int:
        return self.tests - self.skipped

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def exit_code(self) -> int:
        if self.unusable:
            return EXIT_UNUSABLE
        return EXIT_PASS if self.passed else EXIT_FAIL

    def summary(self) -> str:
        head = "PASS" if self.passed else "FAIL"
        counts = (
            f"{self.tests} tests, {self.executed - self.failures - self.errors} passed, {self.failures} failed, "
            f"{self.errors} errors, {self.skipped} skipped"
        )
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"junit verdict {head} ({self.path}): {counts}{why}"


def evaluate(path: Path, min_tests: int = 1, allow_skipped_only: bool = False) -> JobVerdict:
    """Read ``path`` and decide. Counts come from the ``<testcase>`` elements themselves, not the suite
    attributes, so a hand-edited or truncated header cannot hide a failure."""
    path = Path(path)
    verdict = JobVerdict(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        verdict.unusable = True
        verdict.reasons.append("no JUnit file: the pytest session did not finish (crash, os._exit, kill)")
        return verdict
    except (ET.ParseError, OSError) as exc:
        verdict.unusable = True
        verdict.reasons.append(f"JUnit file unreadable or truncated ({exc})")
        return verdict
    if root.tag not in ("testsuites", "testsuite"):
        verdict.unusable = True
        verdict.reasons.append(f"not a JUnit file: root element <{root.tag}>")
        return verdict
    for case in root.iter("testcase"):
        verdict.tests += 1
        case_id = _case_id(case)
        if case.find("failure") is not None:
            verdict.failures += 1
            verdict.failed_ids.append(f"FAILED {case_id}")
        elif case.find("error") is not None:
            verdict.errors += 1
            verdict.failed_ids.append(f"ERROR {case_id}")
        elif case.find("skipped") is not None:
            verdict.skipped += 1
    # A collection error is reported as a suite-level error with no testcase in some pytest versions.
    suite_errors = sum(int(s.get("errors", "0") or 0) for s in _suites(root))
    if suite_errors > verdict.errors:
        verdict.errors = suite_errors
    if verdict.failures:
        verdict.reasons.append(f"{verdict.failures} failed")
    if verdict.errors:
        verdict.reasons.append(f"{verdict.errors} errors")
    if verdict.tests == 0:
        verdict.reasons.append("zero tests: nothing was collected or the report was cut short")
    elif verdict.executed == 0:
        if not allow_skipped_only:
            verdict.reasons.append("every test was skipped (wrong runner or hardware not detected?)")
    elif verdict.executed < min_tests:
        verdict.reasons.append(f"only {verdict.executed} tests ran, at least {min_tests} expected")
    return verdict


def _suites(root: ET.Element) -> list[ET.Element]:
    return [root] if root.tag == "testsuite" else list(root.iter("testsuite"))


def _case_id(case: ET.Element) -> str:
    classname, name = case.get("classname", ""), case.get("name", "?")
    return f"{classname}::{name}" if classname else name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m servegate.junit_verdict",
        description="CI verdict from pytest's JUnit XML (immune to a child process's os._exit(0)).",
    )
    parser.add_argument("junit", type=Path, help="the file written by pytest --junitxml=...")
    parser.add_argument("--min-tests", type=int, default=1, help="fewest executed (non-skipped) tests to pass")
    parser.add_argument("--allow-skipped-only", action="store_true", help="a run where everything skipped passes")
    args = parser.parse_args(argv)
    verdict = evaluate(args.junit, args.min_tests, args.allow_skipped_only)
    for line in verdict.failed_ids:
        print(line)
    print(verdict.summary())
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
