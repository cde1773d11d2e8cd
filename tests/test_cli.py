"""The ``servegate`` command: reports from a results file, and errors that say what is wrong with it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servegate.cli import main
from servegate.results import SCHEMA_VERSION

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
