"""The ``servegate`` command: reports from a results file, and errors that say what is wrong with it."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servegate.cli import main
from servegate.results import SCHEMA_VERSION, load_results, upgrade_document, write_results

DATA = Path(__file__).parent / "data" / "results"
REAL = DATA / "real-cpu-tiny-llama.json"


def test_report_default_output_next_to_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "results-x.json"
    shutil.copy(REAL, src)
    assert main(["report", str(src)]) == 0
    out = tmp_path / "results-x.html"
    assert capsys.readouterr().out.strip() == str(out.resolve())
    assert "cpu/tiny-llama/c8-in128-out64" in out.read_text(encoding="utf-8")


def test_report_explicit_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "report.html"
    assert main(["report", str(REAL), "-o", str(out)]) == 0
    assert out.exists() and str(out.resolve()) in capsys.readouterr().out


def test_show_prints_the_terminal_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(REAL)]) == 0
    text = capsys.readouterr().out
    assert "cpu/tiny-llama/c8-in128-out64" in text and "TTFT p50" in text


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_invalid_json_names_line_and_cause(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(DATA / "real-cpu-tiny-llama-redaction-damaged.json")]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON (line 24" in err and "***" in err


def test_schema_mismatch_says_found_and_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(REAL.read_text(encoding="utf-8"))
    doc["schema_version"] = SCHEMA_VERSION + 41
    bad = tmp_path / "future.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"schema_version {SCHEMA_VERSION + 41} found" in err and f"reads schema_version {SCHEMA_VERSION}" in err


def test_not_a_results_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "x.json"
    other.write_text("[1, 2]", encoding="utf-8")
    assert main(["show", str(other)]) == 2
    assert "not a servegate results document" in capsys.readouterr().err


def test_python_dash_m_and_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "servegate", "report", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "--output" in proc.stdout and "results" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "servegate"], capture_output=True, text=True)
    assert proc.returncode == 2 and "COMMAND" in proc.stderr


def _real() -> dict:
    return json.loads(REAL.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(cases={"a": 1}), "cases: input should be a valid list"),
        (lambda d: d["cases"][0].pop("starts"), "cases[0].starts: field required"),
        (lambda d: d["cases"][0]["starts"][0].update(levels="c1"), "cases[0].starts[0].levels: input should be"),
        (lambda d: d["cases"][0]["starts"][0]["levels"][0].pop("summary"), "levels[0].summary: field required"),
        (lambda d: d["cases"][0].update(values={"ttft_median_ms": ["fast"]}), "cases[0].values.ttft_median_ms[0]"),
        (  # on a file of this version: a version-1 file's statistics are recomputed at load
            lambda d: upgrade_document(d)["cases"][0].update(stats={"x": {"mean": 1}}),
            "cases[0].stats.x.ci_low: field required",
        ),
        (lambda d: d["cases"][0].update(gate=[{"metric": "x"}]), "cases[0].gate[0].verdict: field required"),
        (lambda d: d["cases"].append(7), "cases[1]: input should be a valid dictionary"),
    ],
    ids=[
        "cases-not-list",
        "no-starts",
        "levels-not-list",
        "no-summary",
        "value-string",
        "stat-partial",
        "gate-row",
        "case-not-object",
    ],
)
@pytest.mark.parametrize("command", ["show", "report"])
def test_valid_json_of_the_wrong_shape_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, mutate, where: str
) -> None:
    doc = _real()
    mutate(doc)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"servegate: error: {path}: not a servegate results document of the expected shape: ")
    assert where in err, err
    assert not (tmp_path / "odd.html").exists()


def test_results_json_is_strict_and_non_finite_numbers_come_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = load_results(REAL)  # a session of this version: an old file's statistics are recomputed
    case = session.cases[0]
    key = next(iter(case.values))
    case.values[key][0] = math.nan
    case.stats[key].cov = math.inf
    path = write_results(tmp_path / "r.json", session)
    text = path.read_text()
    strict = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the results JSON"))
    assert strict["cases"][0]["values"][key][0] is None
    assert strict["non_finite"]["paths"] == [["cases", 0, "values", key, 0], ["cases", 0, "stats", key, "cov"]]
    assert "no successful request" in strict["non_finite"]["reason"]
    back = load_results(path)
    assert math.isnan(back.cases[0].values[key][0]) and back.cases[0].stats[key].cov == math.inf
    assert back.non_finite is not None and len(back.non_finite.paths) == 2
    assert main(["show", str(path)]) == 0 and "n/a" in capsys.readouterr().out
