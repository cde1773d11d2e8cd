"""The HTML report: one self-contained file (inline CSS, inline PNG plots) rendered from a results record.

It reads the typed ``servegate.record.Session`` (what ``load_results`` returns), never a raw dict: only the record's
own dict-valued fields (server and load configuration, environment, findings, server metrics, steady window,
energy, history) are read as dicts.

It must open on an air-gapped machine and in a CI artifact viewer, so nothing is fetched at view time. Every part
beyond a level's summary (multi-level sweeps, gate verdicts, server metrics, energy, cold-start phases, A/B arms,
correctness outputs) is optional: a renderer that finds no data returns "" and the section is skipped. All text
from the record goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from servegate.baseline import atomic_write_text
from servegate.history.plot import render_history
from servegate.metrics import Distribution
from servegate.record import Case, GateRow, Level, LevelStatus, Session, Stat
from servegate.report import plots
from servegate.results import is_share
from servegate.roofline import Floors, floors_for_case

FloorsFor = Callable[[Case], Floors | None]

LATENCY_NAMES = ("ttft", "itl", "tpot", "e2el")
CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f7f8fa; --card:#fff; --accent:#2f6fb0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width: 1320px; margin: 0 auto; padding: 20px 24px 60px; }
header.run { background:#102a43; color:#f0f4f8; padding:18px 24px; }
header.run h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header.run .sub { color:#bcccdc; font-size:13px; }
h2 { font-size:18px; margin:0 0 6px; word-break: break-all; }
h3 { font-size:14.5px; margin:22px 0 8px; color:#334e68; border-bottom:1px solid var(--line); padding-bottom:3px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:18px 20px;
               margin:18px 0; box-shadow:0 1px 2px rgba(16,42,67,.05); }
table { border-collapse:collapse; font-size:12.5px; margin:4px 0 8px; }
th, td { padding:4px 7px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { white-space:normal; vertical-align:bottom; }
td.wrap { white-space:normal; text-align:left; min-width:22em; max-width:48em; overflow-wrap:anywhere; }
th { background:#f0f4f8; color:#334e68; font-weight:600; }
td.l, th.l { text-align:left; }
tbody tr:nth-child(even) td { background:#fafbfc; }
.kv td { text-align:left; } .kv td:first-child { color:var(--muted); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:11.5px; font-weight:600;
         background:#e4e7eb; color:#334e68; margin-right:4px; }
.s-OK, .v-OK { background:#def7ec; color:#03543f; } .v-IMPROVED { background:#def7ec; color:#03543f; }
.s-DEGRADED, .v-INCONCLUSIVE { background:#fdf6b2; color:#723b13; }
.s-SATURATED { background:#e1effe; color:#1e429f; } .s-FAILING, .v-REGRESSED { background:#fde8e8; color:#9b1c1c; }
.meta { color:var(--muted); font-size:12.5px; margin:2px 0 10px; word-break: break-all; }
.grid { display:grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap:12px; }
.grid img { width:100%; height:auto; } img.wide { max-width:100%; height:auto; }
.grid img, img.wide { border:1px solid var(--line); border-radius:6px; background:#fff; }
.pm { display:block; color:var(--muted); font-size:10.5px; line-height:1.1; white-space:normal; }
.wide-ci { display:block; color:#9b1c1c; font-size:10.5px; line-height:1.1; white-space:normal; }
pre.out { white-space:pre-wrap; overflow-wrap:anywhere; margin:0; padding:2px 4px; font-size:11px; }
.note { color:var(--muted); font-size:12px; margin:4px 0; }
.scroll { overflow-x:auto; }
details summary { cursor:pointer; color:var(--accent); margin-top:14px; }
pre { background:#f0f4f8; padding:10px; border-radius:6px; font-size:11.5px; overflow-x:auto; }
nav.toc a { color:var(--accent); text-decoration:none; } nav.toc td { text-align:left; }
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers for humans: thousands separators for big ones, 3 significant digits otherwise, n/a for gaps."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return esc(x)
    if not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


WIDE_CI = 2.0  # an interval whose ends are more than 2x apart cannot tell a change of that size from noise


def seconds(x: Any) -> str:
    """Durations to the hundredth of a second: 7.36e-05 s of trimming is 0.00 s to a reader."""
    return f"{x:.2f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def ci_is_wide(s: Stat | None) -> bool:
    if s is None:
        return False
    lo, hi, mean = s.ci_low, s.ci_high, s.mean
    if not all(math.isfinite(v) for v in (lo, hi, mean)) or not mean:
        return False
    return lo <= 0 or hi / lo > WIDE_CI


def ci_text(s: Stat | None) -> str:
    """Mean and its 95% CI as printed bounds (they may be asymmetric), with a word when the CI is too wide."""
    if s is None:
        return "n/a"
    lo, hi, mean = s.ci_low, s.ci_high, s.mean
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f'{fmt(mean)}<span class="pm">n={esc(s.n)}, no CI</span>'
    wide = '<span class="wide-ci">CI too wide to mean much</span>' if ci_is_wide(s) else ""
    return f'{fmt(mean)}<span class="pm">[{fmt(lo)}, {fmt(hi)}]</span>{wide}'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1, cls: str = "", wrap: Sequence[int] = ()
) -> str:
    """Cells are pre-escaped HTML; the first ``left`` columns are left-aligned (labels), ``wrap`` columns hold
    prose (reasons, values of any length) that wraps instead of running past the table's edge."""

    def kind(i: int) -> str:
        return "wrap" if i in wrap else "l" if i < left else ""

    head = "".join(f'<th class="{"l" if i < left or i in wrap else ""}">{h}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{kind(i)}">{c}</td>' for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def img(chart: plots.Chart, alt: str, cls: str = "", unit: str = "", metric: str = "") -> str:
    """The chart with its panels' value-axis facts (and the unit and metric it shows) as data attributes, so a
    browser test can hold the picture against the table beside it."""
    facts = esc(json.dumps([p.to_list() for p in chart.panels]))
    extra = (f' data-unit="{esc(unit)}"' if unit else "") + (f' data-metric="{esc(metric)}"' if metric else "")
    return f'<img class="{cls}" alt="{esc(alt)}" data-panels="{facts}"{extra} src="{chart.uri}">'


# ---------------------------------------------------------------------------------------------------------------
# Reading a case


def levels_of(case: Case) -> list[Level]:
    """The case's load levels in sweep order, each as its first start measured it (a start that stopped early has
    fewer)."""
    seen: dict[str, Level] = {}
    for start in case.starts:
        for lv in start.levels:
            seen.setdefault(lv.label, lv)
    return list(seen.values())


def mean_of(case: Case, label: str | None, metric: str) -> float | None:
    s = case.stat(label, metric)
    return s.mean if s else None


def triple(s: Stat | None) -> tuple[float, float, float]:
    """Mean and CI ends for a chart; NaN where there is no statistic."""
    return (s.mean, s.ci_low, s.ci_high) if s else (math.nan, math.nan, math.nan)


def level_summaries(case: Case, label: str) -> list[tuple[int, Level]]:
    """(start index, level) for every start that measured level ``label``."""
    return [(start.index, lv) for start in case.starts for lv in start.levels if lv.label == label]


def status_of(case: Case, label: str | None) -> LevelStatus | None:
    """The level's status as the record stores it (servegate.status, computed once at record time)."""
    return case.status.get(label) if label is not None else None


def status_badge(case: Case, label: str | None) -> str:
    st = status_of(case, label)
    if st is None:
        return ""
    out = badge(st.status, f"s-{st.status}")
    if st.status == "OK" and any(ci_is_wide(case.stat(label, m)) for m in STATUS_METRICS):
        out += '<span class="wide-ci">from the means; the CIs are too wide to confirm it</span>'
    return out


STATUS_METRICS = ("e2el_p99_ms", "total_token_throughput")  # what the status label reads


def gate_rows(case: Case) -> list[GateRow]:
    """The gate's rows, then an A/B arm's rows against the first arm."""
    return [*case.gate, *case.ab]


def badge(text: str, kind: str = "") -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def anchor(case: Case) -> str:
    return "case-" + "".join(ch if ch.isalnum() else "-" for ch in case.id)


# ---------------------------------------------------------------------------------------------------------------
# Sections


def render_header(session: Session) -> str:
    env = session.environment
    fingerprint = env.get("fingerprint") if isinstance(env.get("fingerprint"), dict) else None
    rows = [(esc(k), value_text(v)) for k, v in env.items() if k != "fingerprint" and not is_empty(v)]
    parts = [
        '<header class="run"><h1>servegate report</h1><div class="sub">'
        f"created {esc(session.created)} · servegate {esc(session.servegate_version)} · "
        f"schema {esc(session.schema_version)} · {len(session.cases)} case(s)</div></header><main>"
    ]
    card = ['<section class="card" id="run"><h2>Run</h2>']
    if fingerprint:
        shown = [(esc(k), value_text(v)) for k, v in fingerprint.items() if not is_empty(v)]
        card.append("<h3>Fingerprint</h3>" + table(["field", "value"], shown, 1, "kv", wrap=(1,)))
    if rows:
        card.append("<h3>Environment</h3>" + table(["field", "value"], rows, 1, "kv", wrap=(1,)))
    card.append(render_overview(session))
    card.append("</section>")
    return "".join(parts + card)


def is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, dict, tuple)) and not value)


def value_text(value: Any) -> str:
    """A fingerprint or environment value for a person: numbers rounded (``23.5``, not ``23.54016876220703``)."""
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, (list, dict)):
        return esc(json.dumps(value, default=str))
    return esc(value)


def render_overview(session: Session) -> str:
    rows = []
    for case in session.cases:
        levels = levels_of(case)
        last = levels[-1].label if levels else None
        gates = gate_rows(case)
        verdicts = ("REGRESSED", "INCONCLUSIVE", "OK", "IMPROVED")
        counts = {v: sum(1 for g in gates if g.verdict == v) for v in verdicts}
        gate = " ".join(badge(f"{n} {v}", f"v-{v}") for v, n in counts.items() if n) or '<span class="note">—</span>'
        rows.append(
            (
                f'<a href="#{anchor(case)}">{esc(case.id)}</a>',
                esc(case.hardware),
                esc(case.arm or ""),
                str(len(case.starts)),
                str(len(levels)),
                ci_text(case.stat(last, "output_throughput")),
                status_badge(case, last) + correctness_badge(case),
                gate,
            )
        )
    headers = ["case", "hardware", "arm", "starts", "levels", "output tok/s (last level)", "status", "gate"]
    return '<h3>Cases</h3><nav class="toc">' + table(headers, rows, 3) + "</nav>"


def render_case(case: Case, floors: Floors | None) -> str:
    server = case.server
    load = case.load
    levels = levels_of(case)
    badges = [badge(case.hardware or "?"), badge(f"suite {case.suite}"), badge(f"{len(case.starts)} starts")]
    if case.arm:
        badges.append(badge(f"arm {case.arm}", "s-SATURATED"))
    quant = server.get("quantization") or server.get("dtype")
    meta = (
        f"model {esc(server.get('model'))} · {esc(quant)} · TP {esc(server.get('tensor_parallel_size'))} · "
        f"attention {esc(server.get('attention_backend') or 'default')} · launcher {esc(server.get('launcher'))}"
        f"{' · image ' + esc(server.get('image')) if server.get('image') else ''}<br>"
        f"load {esc(load.get('profile'))} · {esc(load.get('num_requests'))} requests · "
        f"{fmt(load.get('prompt_tokens'))} in / {fmt(load.get('output_tokens'))} out tokens · "
        f"levels {esc(', '.join(lv.label for lv in levels))}"
    )
    parts = [
        f'<section class="card" id="{anchor(case)}"><h2>{esc(case.id)}</h2>{"".join(badges)}'
        f'<div class="meta">{meta}</div>'
    ]
    bound = case.client_bound_levels()
    if bound:
        parts.append(
            f'<p class="note">{badge("CLIENT-BOUND", "v-REGRESSED")} the numbers of these levels may measure the '
            f"client, not the server: {esc('; '.join(bound))}</p>"
        )
    if len(levels) > 1:
        parts += [render_level_table(case, levels), render_sweep_plots(case, levels, floors)]
    elif levels:
        parts += [render_single(case, levels[0])]
    parts += [
        render_correctness(case),
        render_distributions(case, levels),
        render_gate(case),
        render_capacity(case),
        render_pareto(case),
        render_workload_levels(case, levels),
        render_floor(case, levels, floors),
        render_server_metrics(case, levels),
        render_startup(case),
        render_config(case),
        "</section>",
    ]
    return "".join(parts)


def render_level_table(case: Case, levels: list[Level]) -> str:
    rows = []
    for lv in levels:
        label = lv.label
        st = status_of(case, label)
        sat = " " + badge("saturation onset", "s-SATURATED") if st and st.saturation_onset else ""
        rows.append(
            (
                esc(label),
                esc(lv.concurrency if lv.concurrency is not None else f"{lv.rate} req/s"),
                esc(st.phase if st else ""),
                status_badge(case, label) + sat,
                ci_text(case.stat(label, "total_token_throughput")),
                ci_text(case.stat(label, "output_throughput")),
                fmt(st.gain_vs_previous if st else None),
                ci_text(case.stat(label, "ttft_median_ms")),
                ci_text(case.stat(label, "ttft_p99_ms")),
                ci_text(case.stat(label, "itl_median_ms")),
                ci_text(case.stat(label, "itl_p99_ms")),
                ci_text(case.stat(label, "e2el_p99_ms")),
                fmt(st.p99_vs_baseline if st else None),
                ci_text(case.stat(label, "success_rate")),
            )
        )
    headers = [
        "level",
        "conc.",
        "phase",
        "status",
        "total tok/s",
        "output tok/s",
        "gain ×prev",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "ITL p50 ms",
        "ITL p99 ms",
        "E2EL p99 ms",
        "p99 ×base",
        "success",
    ]
    return (
        "<h3>Load levels (mean, 95% CI over server starts)</h3>"
        + table(headers, rows, 4)
        + '<p class="note">Status per seed 003 Table 7, phase-relative (§5.1): FAILING success &lt; 95% (any phase); '
        "DEGRADED E2EL p99 &gt; 2× the concurrency-1 baseline p99 (SCALING only); SATURATED throughput &lt; 1.05× "
        "the previous level (SATURATION only); else OK. The saturation-onset marker applies the 1.05× rule to any "
        "sweep.</p>"
    )


def _series(case: Case, labels: Sequence[str], metric: str) -> plots.Series:
    ts = [triple(case.stat(lab, metric)) for lab in labels]
    return ([t[0] for t in ts], [t[1] for t in ts], [t[2] for t in ts])


LOAD_PHASES = ("BASELINE", "SCALING", "SATURATION")  # levels on one load axis; WARMUP and STRESS are not


def sweep_levels(case: Case, levels: list[Level]) -> list[Level]:
    """The levels a line against load may join: load phases only, and of a case with several swept steps (a
    capacity search, then a brute-force sweep) the step with the most levels, so no line doubles back."""
    loaded = [lv for lv in levels if (st := status_of(case, lv.label)) is None or st.phase in LOAD_PHASES]
    steps: dict[str, list[Level]] = {}
    for lv in loaded:
        steps.setdefault(lv.label.rsplit("/", 1)[0] if "/" in lv.label else "", []).append(lv)
    return max(steps.values(), key=len) if len(steps) > 1 else loaded


def render_sweep_plots(case: Case, levels: list[Level], floors: Floors | None) -> str:
    every = len(levels)
    levels = sweep_levels(case, levels)
    if len(levels) < 2:
        return ""
    shown = (
        f'<p class="note">Drawn against load: {esc(", ".join(lv.label for lv in levels))} (the table has '
        "every level).</p>"
        if len(levels) < every
        else ""
    )
    labels = [lv.label for lv in levels]
    by_conc = all(lv.concurrency for lv in levels)
    x = [float((lv.concurrency if by_conc else lv.rate) or i + 1) for i, lv in enumerate(levels)]
    xlabel = "concurrency" if by_conc else "request rate (req/s)"
    marks = {i: st.status for i, lv in enumerate(levels) if (st := status_of(case, lv.label)) and st.status != "OK"}
    charts = [
        plots.sweep_chart(
            x,
            {
                "total tok/s": _series(case, labels, "total_token_throughput"),
                "output tok/s": _series(case, labels, "output_throughput"),
            },
            "Throughput vs load (95% CI)",
            "tokens/s",
            xlabel,
            markers=marks,
        ),
        plots.sweep_chart(
            x,
            {"TTFT p50": _series(case, labels, "ttft_median_ms"), "TTFT p99": _series(case, labels, "ttft_p99_ms")},
            "Time to first token",
            "ms",
            xlabel,
            log_y=True,
            floor=floors.prefill_floor_ms if floors else None,
            floor_label="prefill floor",
        ),
        plots.sweep_chart(
            x,
            {"ITL p50": _series(case, labels, "itl_median_ms"), "ITL p99": _series(case, labels, "itl_p99_ms")},
            "Inter-token latency",
            "ms",
            xlabel,
            log_y=True,
            floor=floors.itl_floor_ms if floors else None,
            floor_label="decode floor",
        ),
        plots.sweep_chart(
            x,
            {"E2EL p50": _series(case, labels, "e2el_median_ms"), "E2EL p99": _series(case, labels, "e2el_p99_ms")},
            "End-to-end request latency",
            "ms",
            xlabel,
            log_y=True,
        ),
    ]
    return "<h3>Scaling</h3>" + shown + '<div class="grid">' + "".join(img(c, "sweep chart") for c in charts) + "</div>"


def render_single(case: Case, level: Level) -> str:
    label = level.label
    lat: dict[str, list[tuple[str, float, float, float]]] = {}
    for key, name in (("ttft", "TTFT ms"), ("itl", "ITL ms"), ("tpot", "TPOT ms"), ("e2el", "E2EL ms")):
        for stat_name, suffix in (("median", "p50"), ("p99", "p99")):
            if s := case.stat(label, f"{key}_{stat_name}_ms"):
                lat.setdefault(name, []).append((suffix, *triple(s)))
    thr: dict[str, list[tuple[str, float, float, float]]] = {}
    for group, metric, name in (
        ("throughput tok/s", "output_throughput", "output"),
        ("throughput tok/s", "total_token_throughput", "total"),
        ("requests/s", "request_throughput", "req/s"),
    ):
        if s := case.stat(label, metric):
            thr.setdefault(group, []).append((name, *triple(s)))
    headline = []
    for metric, s in case.stats.items():
        per_start = ", ".join(fmt(v) for v in case.values.get(metric, []))
        headline.append((esc(metric), ci_text(s), fmt(s.cov * 100) + "%", per_start))
    status_html = ""
    if st := status_of(case, label):
        status_html = (
            f'<p>Status: {status_badge(case, label)} <span class="note">phase '
            f"{esc(st.phase)} (seed 003 Table 7; a single level has no baseline or previous level, "
            "so only OK / FAILING can apply)</span></p>"
        )
    charts = []
    if lat:
        charts.append(plots.point_panels(lat, f"Latency at {label}: mean of per-start p50 / p99, 95% CI"))
    if thr:
        charts.append(plots.point_panels(thr, f"Throughput at {label} (mean, 95% CI)"))
    return (
        status_html
        + "".join(img(c, "single-level chart", "wide") for c in charts)
        + "<details><summary>All metrics (mean, 95% CI, CoV, per start)</summary>"
        + table(["metric", "mean [95% CI]", "CoV", "per start"], headline, 1)
        + "</details>"
    )


def render_distributions(case: Case, levels: list[Level]) -> str:
    """Per-start percentile profiles at the headline level (the last one, as ``StartResult.summary`` defines)."""
    if not levels:
        return ""
    label = levels[-1].label
    per_start: dict[str, dict[str, dict[str, float]]] = {}
    for index, lv in level_summaries(case, label):
        by_metric = {}
        for name in LATENCY_NAMES:
            dist: Distribution = getattr(lv.summary, name)
            pts = {k: v for k, v in dist.percentiles.items() if math.isfinite(v)}
            if pts:
                by_metric[name] = pts
        if by_metric:
            per_start[f"start {index + 1}"] = by_metric
    if not per_start:
        return ""
    uri = plots.per_start_percentiles(per_start, f"Latency distributions per server start at {label}")
    return "<h3>Latency distributions</h3>" + img(uri, "per-start percentiles", "wide")


def render_gate(case: Case) -> str:
    rows = gate_rows(case)
    if not rows:
        return ""
    tested = [r for r in rows if r.ratio is not None and math.isfinite(r.ratio)]
    forest = (
        img(plots.forest_plot(tested, "Ratio current / reference with CI, by verdict"), "forest plot", "wide")
        if tested
        else '<p class="note">No row was compared, so there is no ratio to plot.</p>'
    )
    trs = [
        (
            esc(r.metric),
            fmt(r.baseline_mean),
            fmt(r.current_mean),
            fmt(r.ratio),
            f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
            badge(r.verdict, f"v-{r.verdict}"),
            esc(r.reason),
        )
        for r in rows
    ]
    headers = ["metric", "reference", "current", "ratio", "CI", "verdict", "reason"]
    title = "A/B comparison" if case.arm else "Gate"
    return f"<h3>{title}</h3>" + forest + table(headers, trs, 1, wrap=(6,))


def _findings(case: Case, kind: str) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Per-start findings of one kind ("capacity", "pareto") by key ("capacity" or "<step>/capacity")."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for start in case.starts:
        for key, value in start.findings.items():
            if key.rsplit("/", 1)[-1] == kind and isinstance(value, dict):
                out.setdefault(key, []).append((start.index, value))
    return out


def _level_values(case: Case, start_index: int, prefix: str, metric: str) -> dict[int, float]:
    """Concurrency -> a summary metric (``RunSummary.flat`` names, as limits are written), for the levels of one
    start whose label starts with ``prefix``."""
    return {
        lv.concurrency: value
        for start in case.starts
        if start.index == start_index
        for lv in start.levels
        if lv.label.startswith(prefix)
        and lv.concurrency is not None
        and (value := lv.summary.flat().get(metric)) is not None
    }


def render_capacity(case: Case) -> str:
    parts = []
    for key, starts in _findings(case, "capacity").items():
        step = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        s = case.stats.get(f"{step}capacity_at_slo")
        limits = starts[0][1].get("limits") or []
        rows = [
            (
                esc(i + 1),
                esc(f.get("boundary")),
                esc(f.get("first_failing") or "-"),
                fmt(f.get("capacity")),
                badge("CLIFF", "v-REGRESSED") if f.get("cliff") else "",
                fmt(f.get("cliff_factor")),
                esc(", ".join(str(p.get("level")) for p in f.get("probes") or [])),
                esc(f.get("text")),
            )
            for i, f in starts
        ]
        capacity_ci = triple(s)
        charts = []
        for metric, bound in _binding_limits(case, [i for i, _ in starts], step, limits):
            per_start = [sorted(_level_values(case, i, step, metric).items()) for i, _ in starts]
            title = (
                f"{metric} <= {fmt(bound)} (of {', '.join(limits)})"
                if len(limits) > 1
                else f"Capacity under {limits[0]}"
            )
            charts.append(
                img(plots.capacity_chart(per_start, metric, bound, capacity_ci, title), "capacity chart", "wide")
            )
        chart = "".join(charts)
        parts.append(
            f"<h3>Capacity under the SLO{(' (' + esc(step.rstrip('/')) + ')') if step else ''}</h3>"
            f'<p class="note">limits: {esc(", ".join(limits))}. capacity_at_slo (gated, higher is better): '
            f"<b>{ci_text(s) if s else 'n/a'}</b> over {len(starts)} starts; interpolated between the last level that "
            "holds and the first that breaks, where the most binding limited metric crosses its bound.</p>"
            + chart
            + table(
                ["start", "holds at", "breaks at", "capacity", "", "growth ×", "levels measured", "search"], rows, 1
            )
        )
    return "".join(parts)


def _binding_limits(case: Case, start_indexes: list[int], step: str, limits: list[str]) -> list[tuple[str, float]]:
    """The limits worth a chart: those some start's measured levels break (they set the boundary), or the first
    limit when none breaks. A chart of a limit that never came near its bound would hide why capacity is what it is."""
    parsed = []
    for text in limits:
        parts = text.split()
        if len(parts) == 3 and parts[1] == "<=":
            try:
                parsed.append((parts[0], float(parts[2])))
            except ValueError:
                continue
    breaking = [
        (metric, bound)
        for metric, bound in parsed
        if any(v > bound for i in start_indexes for v in _level_values(case, i, step, metric).values())
    ]
    return breaking or parsed[:1]


def render_pareto(case: Case) -> str:
    parts = []
    target = case.load.get("pareto_interactivity")
    for key, starts in _findings(case, "pareto").items():
        step = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        s = case.stats.get(f"{step}throughput_per_gpu_at_interactivity")
        per_start = [
            (
                [(p["label"], p["interactivity"], p["throughput_per_gpu"]) for p in f.get("points") or []],
                list(f.get("front") or []),
            )
            for _, f in starts
        ]
        uri = plots.pareto_chart(per_start, target, s.mean if s else None, "Interactivity vs throughput per GPU")
        rows = [
            (
                esc(i + 1),
                esc(p["label"]),
                fmt(p["interactivity"]),
                fmt(p["throughput_per_gpu"]),
                "front" if p["label"] in (f.get("front") or []) else "",
            )
            for i, f in starts
            for p in f.get("points") or []
        ]
        reading = (
            f"throughput per GPU at {fmt(target)} tok/s/user (gated): <b>{ci_text(s)}</b>"
            if s and target
            else "no interactivity target set (pareto_interactivity): the front is reported, not gated"
        )
        parts.append(
            f"<h3>Interactivity vs throughput{(' (' + esc(step.rstrip('/')) + ')') if step else ''}</h3>"
            f'<p class="note">{reading}</p>'
            + img(uri, "Pareto front", "wide")
            + "<details><summary>points</summary>"
            + table(["start", "level", "tok/s/user", "tok/s/GPU", ""], rows, 2)
            + "</details>"
        )
    return "".join(parts)


def render_workload_levels(case: Case, levels: list[Level]) -> str:
    """Per level and start: steady-state trimming, over-saturation, prefix-cache and spec-decode rates, energy."""
    rows = []
    for lv in levels:
        for index, level in level_summaries(case, lv.label):
            summary = level.summary
            steady = summary.steady
            sm = summary.server_metrics
            energy = summary.energy
            positions = sorted(k for k in sm if k.startswith("spec_acceptance_pos"))
            rows.append(
                (
                    esc(lv.label),
                    esc(index + 1),
                    ("applied" if steady.get("applied") else "detected") if steady else "",
                    seconds(steady.get("head_trimmed_s")),
                    seconds(steady.get("tail_trimmed_s")),
                    f"{esc(steady.get('requests_inside'))}/{esc(steady.get('requests_total'))}" if steady else "",
                    badge("OVER-SATURATED", "v-REGRESSED") if summary.oversaturation else "",
                    fmt(sm.get("prefix_cache_hit_rate") * 100)
                    if sm.get("prefix_cache_hit_rate") is not None
                    else "n/a",
                    fmt(sm.get("spec_acceptance_rate")),
                    fmt(sm.get("spec_mean_acceptance_length")),
                    esc(" ".join(f"{fmt(sm[k])}" for k in positions)),
                    esc(energy.get("status", "")),
                    fmt(energy.get("power_mean_w")),
                    fmt(energy.get("power_peak_w")),
                    fmt(energy.get("tokens_per_joule")),
                )
            )
    headers = [
        "level",
        "start",
        "steady window",
        "warmup trimmed s",
        "cool-down trimmed s",
        "requests kept",
        "",
        "prefix-cache hit rate %",
        "spec accept rate",
        "spec mean accept len",
        "per position",
        "energy",
        "power mean W",
        "power peak W",
        "tokens/J",
    ]
    # One energy status shared by every row (e.g. "not measured: no GPU power meter on cpu ...") is said once, below.
    energy_col = headers.index("energy")
    statuses = {r[energy_col] for r in rows}
    energy_note = ""
    if len(statuses) == 1 and rows:
        energy_note = f" Energy: {next(iter(statuses))}." if next(iter(statuses)) else ""
        rows = [tuple("" if c == energy_col else v for c, v in enumerate(r)) for r in rows]
    # Only the columns this case has data for: a column of n/a is noise, a table of them is no section at all.
    keep = [0, 1, *(c for c in range(2, len(headers)) if any(r[c] not in ("", "n/a") for r in rows))]
    if len(keep) == 2:
        return ""
    headers = [headers[c] for c in keep]
    rows = [tuple(r[c] for c in keep) for r in rows]
    return (
        "<h3>Steady state, prefix cache, speculative decoding, energy</h3>"
        '<p class="note">Steady window: MSER-5 on per-request latency plus the in-flight ramp; "applied" levels '
        "are measured on the window only, "
        '"detected" ones report what trimming would remove. Rates are deltas of the server\'s /metrics counters '
        f"over the level; energy is GPU board power sampled with amd-smi / nvidia-smi.{energy_note}</p>"
        + '<div class="scroll">'
        + table(headers, rows, 3)
        + "</div>"
    )


def render_floor(case: Case, levels: list[Level], floors: Floors | None) -> str:
    if floors is None or (floors.itl_floor_ms is None and floors.prefill_floor_ms is None):
        return ""
    rows = []
    for lv in levels:
        itl = mean_of(case, lv.label, "itl_median_ms")
        ttft = mean_of(case, lv.label, "ttft_median_ms")
        rows.append(
            (
                esc(lv.label),
                fmt(itl),
                fmt(floors.itl_floor_ms),
                fmt(itl / floors.itl_floor_ms) + "×" if itl and floors.itl_floor_ms else "n/a",
                fmt(ttft),
                fmt(floors.prefill_floor_ms),
                fmt(ttft / floors.prefill_floor_ms) + "×" if ttft and floors.prefill_floor_ms else "n/a",
            )
        )
    basis = (
        f"decode floor = {fmt(floors.active_params / 1e9)} B active params × {fmt(floors.bytes_per_param)} B/param ÷ "
        f"({fmt(floors.hbm_tbps)} TB/s × TP {floors.tp}); prefill floor = 2 × active params × "
        f"{esc(floors.prompt_tokens)} prompt tokens ÷ ({fmt(floors.peak_tflops)} TFLOP/s × TP {floors.tp}). "
        "Lower bounds (seed 000: 144 GB ÷ 5.3 TB/s ≈ 27 ms); attention, KV reads and scheduling come on top."
    )
    headers = [
        "level",
        "ITL p50 ms",
        "decode floor ms",
        "ITL / floor",
        "TTFT p50 ms",
        "prefill floor ms",
        "TTFT / floor",
    ]
    return "<h3>Physical floor</h3>" + table(headers, rows, 1) + f'<p class="note">{basis}</p>'


def _metric_unit(key: str) -> tuple[str, float]:
    """Column header unit and scale of a server metric: shares (KV-cache usage, hit rates) in %, counts as is."""
    if "kv_cache_usage" in key or is_share(key):
        return "%", 100.0
    return "", 1.0


def render_server_metrics(case: Case, levels: list[Level]) -> str:
    """vLLM's own /metrics per level: one table in the units the charts use; a chart only where it shows a
    change (two or more levels, not all zero): a chart of one value is a table cell."""
    per_level: list[tuple[str, list[dict[str, float]]]] = []
    for lv in levels:
        ms = [x.summary.server_metrics for _, x in level_summaries(case, lv.label)]
        ms = [m for m in ms if m]
        if ms:
            per_level.append((lv.label, ms))
    if not per_level:
        return ""
    keys: list[str] = []
    for _, ms in per_level:
        for m in ms:
            keys += [
                k for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys
            ]
    means = {k: [_mean([m.get(k) for m in ms]) for _, ms in per_level] for k in keys}
    # One row per metric, one column per level: vLLM exports more gauges and counters than a page has columns.
    rows = []
    for k in keys:
        unit, scale = _metric_unit(k)
        head = f'<span data-metric="{esc(k)}" data-unit="{unit}">{esc(k)}{" (" + unit + ")" if unit else ""}</span>'
        rows.append((head, *(fmt(v * scale) if v is not None else "n/a" for v in means[k])))
    out = [
        "<h3>Server-side metrics (vLLM /metrics, mean over starts)</h3>",
        table(["metric", *(esc(lab) for lab, _ in per_level)], rows),
    ]
    labels = [lab for lab, _ in per_level]
    charts = []
    for needle, title, unit_label in (
        ("kv_cache_usage", "Peak KV-cache usage per level", "% of KV cache"),
        ("preempt", "Preemptions per level", "count"),
    ):
        key = next((k for k in keys if needle in k), None)
        if key is None or len(labels) < 2 or not any(means[key]):
            continue
        unit, scale = _metric_unit(key)
        values = [v * scale if v is not None else math.nan for v in means[key]]
        charts.append(
            img(
                plots.level_bars(labels, {key: values}, title, unit_label),
                "server metrics chart",
                unit=unit,
                metric=key,
            )
        )
    quiet = [k for k in keys if not any(means[k])]
    if quiet:
        out.append(f'<p class="note">Zero at every level: {esc(", ".join(quiet))}.</p>')
    if charts:
        out.append('<div class="grid">' + "".join(charts) + "</div>")
    return "".join(out)


def _mean(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


STARTUP_FIELDS = (
    ("vllm_version", "vLLM"),
    ("time_to_ready_s", "ready s"),
    ("model_load_s", "weights load s"),
    ("compile_s", "compile s"),
    ("engine_init_s", "engine init s"),
    ("kv_cache_tokens", "KV cache tokens"),
    ("max_concurrency", "max concurrency"),
    ("attention_backend", "attention"),
)


def render_startup(case: Case) -> str:
    """What each start's log said (a table of the facts some start has), and the cold-start suite's phases."""
    fields = [(k, n) for k, n in STARTUP_FIELDS if any(getattr(s.facts, k) is not None for s in case.starts)]
    if not fields:
        return ""
    rows = [(f"start {esc(s.index + 1)}", *(fmt(getattr(s.facts, k)) for k, _ in fields)) for s in case.starts]
    headers, wrap = ["start", *(n for _, n in fields)], ()
    if any("compile_cache" in s.facts.extra for s in case.starts):  # vLLM's log: written, loaded, load failed
        headers, wrap = [*headers, "compile cache"], (len(headers),)
        rows = [(*row, esc(s.facts.extra.get("compile_cache", "-"))) for row, s in zip(rows, case.starts, strict=True)]
    out = ["<h3>Server start-up</h3>", table(headers, rows, wrap=wrap)]
    phases: dict[str, dict[str, float]] = {}
    for s in case.starts:
        p = s.facts.extra.get("phases")  # suites/test_cold_start.py: phase -> seconds
        if isinstance(p, dict):
            phases[f"start {s.index + 1}"] = {str(k): float(v) for k, v in p.items() if isinstance(v, (int, float))}
    if phases:
        out.append(img(plots.stacked_phases(phases, "Cold-start phases per server start"), "cold-start phases", "wide"))
    return "".join(out)


def correctness_badge(case: Case) -> str:
    c = case.correctness
    if c is None:
        return ""
    if c.across_starts or c.golden_mismatches:
        return badge("OUTPUTS DIFFER", "v-REGRESSED")
    if c.golden_status == "compared":
        return badge("OUTPUTS EQUAL", "v-OK")
    return badge(c.golden_status.upper(), "v-INCONCLUSIVE")


def render_correctness(case: Case) -> str:
    """Greedy outputs: equal across starts and to the golden file, or where they differ, prompt by prompt."""
    c = case.correctness
    if c is None:
        return ""
    prompts, outputs, across, status = c.prompts, c.outputs, c.across_starts, c.golden_status
    golden: list[str | None] = list(c.golden_outputs or [None] * len(prompts))
    differing = {
        i for i, (want, got) in enumerate(zip(golden, outputs, strict=False)) if want is not None and want != got
    }
    rows = [
        (
            esc(i + 1),
            f'<pre class="out">{esc(p)}</pre>',
            f'<pre class="out">{esc(o)}</pre>',
            ("differs from the golden file" if i in differing else "equal" if status == "compared" else esc(status)),
        )
        for i, (p, o) in enumerate(zip(prompts, outputs, strict=False))
    ]
    summary = (
        f"{len(prompts)} prompts, greedy (temperature 0, fixed seed), {esc(c.max_tokens)} tokens each; "
        f"across {esc(c.starts)} server starts: "
        + ("equal" if not across else f"{len(across)} differences")
        + "; golden file "
        + esc(c.golden)
        + ": "
        + esc(status)
    )
    details = "".join(f"<li>{esc(line)}</li>" for line in [*across, *c.golden_mismatches])
    return (
        "<h3>Correctness</h3>"
        + correctness_badge(case)
        + f'<p class="note">{summary}</p>'
        + (f"<ul>{details}</ul>" if details else "")
        + table(["#", "prompt", "output (start 1)", "golden file"], rows, 1, wrap=(1, 2))
    )


def render_config(case: Case) -> str:
    blob = {"server": case.server, "load": case.load}
    logs = [s.log_path for s in case.starts if s.log_path]
    return (
        "<details><summary>Server and load configuration, logs</summary><pre>"
        + esc(json.dumps(blob, indent=2, default=str))
        + "</pre>"
        + "".join(f'<div class="note">log: {esc(p)}</div>' for p in logs)
        + "</details>"
    )


def render_ab(session: Session) -> str:
    """Cases with an ``arm``, grouped by ``ab_group`` (or load id): the arms' headline metrics side by side."""
    groups: dict[str, list[Case]] = {}
    for case in session.cases:
        if case.arm:
            groups.setdefault(case.ab_group or case.load_id or "A/B", []).append(case)
    out = []
    metrics = [
        ("output_throughput", "output tok/s"),
        ("ttft_median_ms", "TTFT p50 ms"),
        ("itl_median_ms", "ITL p50 ms"),
        ("e2el_p99_ms", "E2EL p99 ms"),
    ]
    for group, cases in groups.items():
        arms: dict[str, list[tuple[float, float, float]]] = {}
        rows = []
        for case in sorted(cases, key=lambda c: str(c.arm)):
            levels = levels_of(case)
            last = levels[-1].label if levels else None
            arms[f"arm {case.arm}"] = [triple(case.stat(last, m)) for m, _ in metrics]
            rows.append(
                (
                    esc(case.arm),
                    f'<a href="#{anchor(case)}">{esc(case.id)}</a>',
                    *(ci_text(case.stat(last, m)) for m, _ in metrics),
                )
            )
        out.append(f"<h3>A/B: {esc(group)}</h3>")
        drawn = [k for k in range(len(metrics)) if sum(math.isfinite(t[k][0]) for t in arms.values()) >= 2]
        if drawn:  # a panel needs two arms with a value; the table below has every number
            picked = {arm: [t[k] for k in drawn] for arm, t in arms.items()}
            chart = plots.arms_chart([metrics[k][1] for k in drawn], picked, f"{group}: arms, mean with 95% CI")
            out.append(img(chart, "arms", "wide"))
        out.append(table(["arm", "case", *(n for _, n in metrics)], rows, 2))
    if not out:
        return ""
    return '<section class="card" id="ab"><h2>A/B comparisons</h2>' + "".join(out) + "</section>"


def case_floors(case: Case) -> Floors | None:
    """The case's physical floors from its model, hardware and load (``servegate.roofline``)."""
    return floors_for_case({"server": case.server, "hardware": case.hardware, "load": case.load})


def render_html(session: Session, floors_for: FloorsFor | None = None) -> str:
    """The whole report as one string. ``floors_for`` maps a case to its physical floors (default: roofline's)."""
    floors_for = floors_for or case_floors
    body = [render_header(session), render_ab(session), render_history(session)]
    for case in session.cases:
        body.append(render_case(case, floors_for(case)))
    footer = (
        f'<p class="note">Rendered by servegate at {esc(time.strftime("%Y-%m-%d %H:%M:%S"))}. Means ± 95% t '
        "CI half-width over independent server starts (design.md).</p></main>"
    )
    title = f"servegate report {esc(session.created)}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        + "".join(body)
        + footer
        + "</body></html>\n"
    )


def write_html_report(session: Session, path: Path, floors_for: FloorsFor | None = None) -> Path:
    """Atomic, so a CI artifact collector never picks up half a report; returns the path the user should open."""
    path = Path(path)
    atomic_write_text(path, render_html(session, floors_for))
    return path
