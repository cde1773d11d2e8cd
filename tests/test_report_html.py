"""The HTML report as a reader gets it: every section present, plots real images, nothing fetched at view time."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from servegate.record import Case, Correctness, Session
from servegate.report import plots
from servegate.report.html import anchor, render_html, write_html_report
from servegate.results import case_status, load_results, stats_of
from servegate.roofline import floors_for_case

DATA = Path(__file__).parent / "data" / "results"
IMG_SRC = re.compile(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def load(name: str) -> Session:
    return load_results(DATA / name)  # version-1 files are upgraded on the way, as a user's old file would be


@pytest.fixture(scope="module")
def synthetic() -> Session:
    return load("synthetic-mi300x-sweep.json")


@pytest.fixture(scope="module")
def real() -> Session:
    return load("real-cpu-tiny-llama.json")


def floors(case: Case):
    models = {"meta-llama/Llama-3.1-8B-Instruct": {"total_params": 8.03e9}}
    spec = {"mi300x": {"hbm_tbps": 5.3, "bf16_tflops": 1307.4}}
    return floors_for_case({"server": case.server, "hardware": case.hardware, "load": case.load}, models.get, spec.get)


@pytest.fixture(scope="module")
def synthetic_html(synthetic: Session) -> str:
    return render_html(synthetic, floors)


@pytest.fixture(scope="module")
def real_html(real: Session) -> str:
    return render_html(real, lambda _case: None)


@pytest.fixture(scope="module")
def main() -> Session:
    return load("real-cpu-main-subset.json")


@pytest.fixture(scope="module")
def main_html(main: Session) -> str:
    return render_html(main, floors)


def images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b64))) for b64 in IMG_SRC.findall(page)]


@pytest.mark.parametrize("page_fixture", ["synthetic_html", "real_html"])
def test_structure_and_plots(page_fixture: str, request: pytest.FixtureRequest) -> None:
    page = request.getfixturevalue(page_fixture)
    doc = request.getfixturevalue(page_fixture.replace("_html", ""))
    assert page.startswith("<!DOCTYPE html>") and "<h1>servegate report</h1>" in page
    assert page.count('<section class="card" id="case-') == len(doc.cases)
    for case in doc.cases:
        assert f">{case.id}</h2>" in page
    pictures = images(page)
    assert len(pictures) >= 3 * len(doc.cases)
    for b64, pic in zip(IMG_SRC.findall(page), pictures, strict=True):
        assert len(base64.b64decode(b64)) > 8_000  # a real chart, not an empty canvas
        assert pic.width > 300 and pic.height > 150
        assert len(pic.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10


@pytest.mark.parametrize("page_fixture", ["synthetic_html", "real_html"])
def test_no_network_at_view_time(page_fixture: str, request: pytest.FixtureRequest) -> None:
    page = request.getfixturevalue(page_fixture)
    assert not re.search(r"https?://", page, re.I)
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "<script" not in page and "<link" not in page


def test_forest_plot_only_with_gate_data(synthetic_html: str, real_html: str, synthetic: Session) -> None:
    assert synthetic_html.count('alt="forest plot"') == sum(1 for c in synthetic.cases if c.gate or c.ab)
    assert 'alt="forest plot"' not in real_html
    for verdict in {g.verdict for c in synthetic.cases for g in [*c.gate, *c.ab]}:
        assert f"v-{verdict}" in synthetic_html


def test_status_labels_follow_the_data(synthetic: Session, synthetic_html: str) -> None:
    sweep = next(c for c in synthetic.cases if len(c.starts[0].levels) > 1)
    failing = [key for key, s in sweep.stats.items() if key.endswith("/success_rate") and s.mean < 0.95]
    assert failing, "the synthetic sweep should contain a failing level"
    for key in failing:
        label = key.split("/")[0]
        row = re.search(rf"<tr><td class=\"l\">{label}</td>.*?</tr>", synthetic_html)
        assert row and "s-FAILING" in row.group(0)
    assert "Load levels" in synthetic_html and "BASELINE" in synthetic_html


def test_optional_sections_render_when_present(synthetic_html: str) -> None:
    for title in ("A/B comparisons", "Physical floor", "Server-side metrics", "Server start-up"):
        assert title in synthetic_html
    assert 'alt="cold-start phases"' in synthetic_html


def test_optional_sections_skip_cleanly_when_absent(real_html: str) -> None:
    for title in ("A/B comparisons", "Physical floor", "Server-side metrics", "<h3>Gate", "Telemetry"):
        assert title not in real_html
    assert "Server start-up" in real_html  # the real run has startup facts


def test_text_is_escaped(real: Session) -> None:
    doc = real.model_copy(deep=True)
    doc.cases[0].id = "<script>alert(1)</script>"
    doc.environment["argv"] = ["<img src=x onerror=alert(1)>"]
    page = render_html(doc, lambda _c: None)
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_minimal_and_partial_records_render() -> None:
    """A case with no start, and one whose only start measured no level (the server died before the first)."""
    bare = {"suite": "s", "hardware": "cpu", "server": {}, "server_id": "x", "load": {}, "load_id": "y"}
    empty = {"values": {}, "stats": {}, "status": {}}
    session = Session.model_validate(
        {
            "schema_version": 2,
            "servegate_version": "0",
            "created": "2026-01-01T00:00:00Z",
            "environment": {},
            "cases": [
                {"id": "x", **bare, **empty, "starts": []},
                {"id": "y", **bare, **empty, "starts": [{"index": 0, "facts": {}, "levels": [], "server_lost": "c1"}]},
            ],
        }
    )
    page = render_html(session)
    assert page.count('<section class="card" id="case-') == 2


def test_write_html_report(tmp_path: Path, real: Session) -> None:
    out = write_html_report(real, tmp_path / "sub" / "r.html")
    assert out == tmp_path / "sub" / "r.html" and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# Run in the page by the browser test only (the report itself carries no script): what a person would notice.
CHECKS_JS = r"""
(() => {
  const problems = [];
  const short = (t) => t.replace(/\s+/g, " ").trim().slice(0, 90);
  const number = (t) => { const m = t.replace(/,/g, "").match(/-?\d+(\.\d+)?(e[-+]?\d+)?/i); return m ? +m[0] : NaN; };
  const cells = document.querySelectorAll("td, th");
  for (const el of cells) {
    if (el.scrollWidth > el.clientWidth + 1) problems.push("text clipped in a cell: " + short(el.textContent));
  }
  for (const el of document.querySelectorAll(".scroll")) {
    if (el.scrollWidth > el.clientWidth + 1) problems.push("table runs past its card: " + short(el.textContent));
  }
  const images = document.querySelectorAll("img[data-panels]");
  for (const im of images) {
    const name = im.alt + " (" + short(im.closest("section").querySelector("h2").textContent) + ")";
    if (!(im.naturalWidth > 300)) problems.push("chart not drawn: " + name);
    const panels = JSON.parse(im.dataset.panels);
    for (const [low, high, dataLow, dataHigh, points] of panels) {
      const eps = 1e-9 * Math.max(Math.abs(high), Math.abs(low), 1);
      if (low < 0) problems.push(`value axis below zero (${low}) in ${name}`);
      if (dataHigh > high + eps) problems.push(`cut off at the top (${dataHigh} > ${high}) in ${name}`);
      if (dataLow < low - eps) problems.push(`cut off at the bottom (${dataLow} < ${low}) in ${name}`);
      if (points !== null && points < 2) problems.push(`a chart of ${points} value(s): ${name}`);
    }
    if (im.dataset.metric) {
      const head = im.closest("section").querySelector(`span[data-metric="${im.dataset.metric}"]`);
      if (!head) {
        problems.push("no table column or row beside " + name);
        continue;
      }
      if (head.dataset.unit !== (im.dataset.unit || "")) {
        problems.push(`units differ for ${im.dataset.metric}: chart ${im.dataset.unit}, table ${head.dataset.unit}`);
      }
      const cell = head.closest("th, td");
      const col = [...cell.parentNode.children].indexOf(cell);
      const cells = cell.closest("thead")  // the metric heads a column, or (transposed) a row
        ? [...cell.closest("table").tBodies[0].rows].map((r) => r.cells[col])
        : [...cell.parentNode.children].slice(1);
      const values = cells.map((c) => number(c.textContent)).filter(Number.isFinite);
      const top = Math.max(...panels.map((p) => p[3]));
      const max = Math.max(...values);
      if (Math.abs(max - top) > 0.01 * Math.abs(top)) {
        problems.push(`chart top ${top} but table max ${max} for ${im.dataset.metric}`);
      }
    }
  }
  const out = document.createElement("pre");
  out.id = "servegate-checks";
  out.textContent = JSON.stringify({problems, images: images.length, cells: cells.length});
  document.body.appendChild(out);
})();
"""
CHECKS_OUT = re.compile(r'<pre id="servegate-checks">(.*?)</pre>', re.S)


def chromium_or_skip() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):  # .ci/run installs it: missing is a failure
            pytest.fail("chromium not installed on the CI machine; .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed; the HTML structure tests above still ran")
    return chromium


def chromium(browser: str, tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,3000",
        *args,
        url,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


def seen_in_chromium(browser: str, tmp_path: Path, page: str, name: str) -> dict:
    """``page`` loaded in Chromium with CHECKS_JS run over the laid-out page: its findings."""
    path = tmp_path / f"{name}.html"
    path.write_text(page.replace("</body>", f"<script>{CHECKS_JS}</script></body>"), encoding="utf-8")
    dom = chromium(browser, tmp_path, path.as_uri(), "--dump-dom", "--virtual-time-budget=10000").stdout
    found = CHECKS_OUT.search(dom)
    assert found, f"the checks did not run in {name}: {dom[-500:]}"
    return json.loads(html.unescape(found.group(1)))


def one_start(session: Session) -> Session:
    """Degenerate: every case cut to its first start (no CI anywhere), statistics and labels recomputed."""
    out = session.model_dump()
    for case in out["cases"]:
        case["starts"] = case["starts"][:1]
        case["values"] = {k: v[:1] for k, v in case["values"].items()}
        case["stats"] = stats_of(case["values"])
        case["status"] = case_status(case["starts"], case["stats"], case["load"]["profile"])
    return Session.model_validate(out)


def zero_counts_not_compared(session: Session) -> Session:
    """Degenerate: one level per case, every server counter zero, every gate row NOT COMPARED."""
    out = session.model_dump()
    for case in out["cases"]:
        last = case["starts"][0]["levels"][-1]["label"] if case["starts"] and case["starts"][0]["levels"] else None
        for start in case["starts"]:
            start["levels"] = [lv for lv in start["levels"] if lv["label"] == last]
            for lv in start["levels"]:
                metrics = lv["summary"].get("server_metrics") or {}
                lv["summary"]["server_metrics"] = {k: 0 for k, v in metrics.items() if isinstance(v, (int, float))}
        prefix = f"{last}/"
        if any(k.startswith(prefix) for k in case["values"]):  # a sweep: keep its last level's metrics, unprefixed
            case["values"] = {k.removeprefix(prefix): v for k, v in case["values"].items() if k.startswith(prefix)}
        case["stats"] = stats_of(case["values"])
        case["status"] = case_status(case["starts"], case["stats"], case["load"]["profile"])
        case["gate"] = [
            {
                **row,
                "verdict": "NOT COMPARED",
                "ratio": None,
                "ci_low": None,
                "ci_high": None,
                "reason": "no baseline for this hardware: record one with --update-baselines",
            }
            for row in case["gate"]
        ]
    return Session.model_validate(out)


@pytest.mark.parametrize("which", ["synthetic", "main", "main_one_start", "main_zero_counts_not_compared"])
def test_chromium_shows_the_report_as_a_person_would_read_it(
    which: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Laid out by a real browser at 1400 px: no text clipped in a cell or past a card, every chart drawn, no value
    axis below zero, no whisker cut off, no chart of a single value, a chart's unit and top equal to the table's
    beside it."""
    browser = chromium_or_skip()
    base, _, variant = which.partition("_")
    doc = request.getfixturevalue(base)
    if variant:
        doc = one_start(doc) if variant == "one_start" else zero_counts_not_compared(doc)
        page = render_html(doc, floors)
    else:
        page = request.getfixturevalue(f"{base}_html")
    seen = seen_in_chromium(browser, tmp_path, page, which)
    assert seen["problems"] == []
    assert seen["images"] >= len(doc.cases) and seen["cells"] > 20 * len(doc.cases)


def test_the_browser_checks_see_what_a_person_would(tmp_path: Path) -> None:
    """The checks above fail on the faults a reader found: a clipped reason, a chart in % beside a table in
    fractions, an axis from -0.04 for a count of 0, a chart of one value, a whisker past the top."""
    browser = chromium_or_skip()
    chart = plots.level_bars(["c1", "c2"], {"kv": [39.0, 12.0]}, "KV", "%")
    kv_facts = html.escape(json.dumps([p.to_list() for p in chart.panels]))
    bad_facts = html.escape(json.dumps([[-0.04, 0.04, 0, 0, 1], [0, 10, 0, 12, 2]]))
    reason = "a long verdict reason " * 8
    page = (
        '<html><body><section class="card"><h2>bad</h2><div class="scroll" style="width:300px;overflow-x:auto">'
        '<table><thead><tr><th><span data-metric="kv" data-unit="">kv</span></th></tr></thead><tbody>'
        f'<tr><td style="white-space:nowrap">{reason}</td></tr><tr><td>0.39</td></tr></tbody></table></div>'
        '<table style="table-layout:fixed;width:120px"><tbody><tr>'
        f'<td style="white-space:nowrap;overflow:hidden">{reason}</td></tr></tbody></table>'
        f'<img alt="kv" data-unit="%" data-metric="kv" data-panels="{kv_facts}" src="{chart.uri}">'
        f'<img alt="preemptions" data-panels="{bad_facts}" src="{chart.uri}"></section></body></html>'
    )
    problems = " | ".join(seen_in_chromium(browser, tmp_path, page, "bad")["problems"])
    for fault in (
        "text clipped in a cell",
        "table runs past its card",
        "units differ for kv",
        "chart top 39",
        "value axis below zero (-0.04)",
        "a chart of 1 value",
        "cut off at the top (12 > 10)",
    ):
        assert fault in problems


def test_chromium_screenshot_is_a_rendered_page(tmp_path: Path, synthetic: Session) -> None:
    browser = chromium_or_skip()
    page = write_html_report(synthetic, tmp_path / "r.html", floors)
    shot = tmp_path / "r.png"
    chromium(browser, tmp_path, page.as_uri(), f"--screenshot={shot}")
    pic = Image.open(shot).convert("RGB")
    assert pic.size == (1400, 3000)
    assert len(pic.getcolors(maxcolors=1 << 20) or []) > 200  # charts and text, not a blank or error page


def test_browser_test_fails_in_ci_when_chromium_is_missing(tmp_path: Path) -> None:
    """In CI a missing browser must not turn the browser test into a quiet skip."""
    env = {**os.environ, "PATH": str(tmp_path), "CI": "true"}  # a PATH without chromium
    test = f"{Path(__file__).resolve()}::test_chromium_screenshot_is_a_rendered_page"
    cmd = [sys.executable, "-m", "pytest", test, "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "chromium not installed on the CI machine" in proc.stdout


def test_a_version_1_file_is_upgraded_at_load(real: Session) -> None:
    """An old results file still renders: its intervals and status labels are computed as this version does."""
    assert real.schema_version == 2 and real.upgraded_from_schema == 1
    case = real.cases[0]
    assert all(s.ci_method for s in case.stats.values())
    assert case.stats["ttft_p99_ms"].ci_low > 0 and set(case.status) == {"c8"}


def test_correctness_outputs_are_shown(real: Session) -> None:
    doc = real.model_copy(deep=True)
    doc.cases[0].correctness = Correctness(
        prompts=["The capital of France is", "1, 2, 3,"],
        outputs=["Paris.", " 4, 5"],
        max_tokens=8,
        starts=2,
        across_starts=[],
        golden="baselines/x.golden.json",
        golden_status="compared",
        golden_mismatches=["prompt 1 '1, 2, 3,': differs at char 2"],
        golden_outputs=["Paris.", " 4, 6"],
    )
    page = render_html(doc, lambda _c: None)
    section = page[page.index("<h3>Correctness</h3>") :]
    assert "OUTPUTS DIFFER" in page[: page.index("<h3>Correctness</h3>")]  # in the overview, too
    assert "The capital of France is" in section and "Paris." in section
    assert section.count("differs from the golden file") == 1 and "differs at char 2" in section


def test_the_main_job_report_shows_every_section_with_real_data(main: Session, main_html: str) -> None:
    """A real run of the progressive, KV-saturation, correctness, workloads and capacity suites (tests/data)."""
    for heading in (
        "Load levels",
        "Server-side metrics",
        "Correctness",
        "Capacity under the SLO",
        "Interactivity vs throughput",
        "Steady state, prefix cache",
        "warmup trimmed s",
        "prefix-cache hit rate %",
    ):
        assert heading in main_html, heading
    alts = re.findall(r'<img[^>]*alt="([^"]+)"', main_html)
    for alt in ("capacity chart", "Pareto front", "sweep chart", "server metrics chart"):
        assert alt in alts, alt
    assert "Telemetry" not in main_html


def test_terminal_and_html_show_the_stored_status(main: Session, main_html: str) -> None:
    """One label per level, decided when the results were written: the terminal and the HTML both print it."""
    from servegate.report.terminal import render_case

    checked = 0
    for case in main.cases:
        terminal = "\n".join(render_case(case))
        section = main_html[main_html.index(f'<section class="card" id="{anchor(case)}">') :]
        section = section[: section.index("</section>")]
        for label, st in case.status.items():
            if len(case.status) > 1:
                line = next(x for x in terminal.splitlines() if x.strip().startswith(label + " "))
                assert line.rstrip().endswith(
                    f"{st.status} {st.phase}" + (" (saturation onset)" if st.saturation_onset else "")
                )
                row = re.search(rf'<tr><td class="l">{re.escape(label)}</td>.*?</tr>', section)
                assert row and f">{st.phase}<" in row.group(0) and f"s-{st.status}" in row.group(0)
                checked += 1
    progressive = next(c for c in main.cases if c.suite == "progressive")
    assert progressive.status["WARMUP"].phase == "WARMUP"  # not the concurrency-1 BASELINE guess
    assert checked >= 7
