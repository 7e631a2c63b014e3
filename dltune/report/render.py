"""The report drawn twice from the same data: interactive plotly figures in one self-contained
report.html (plotly.js inlined, so it opens offline), and the same figures as PNG files by
matplotlib. Parallel coordinates are Optuna's own (optuna.visualization, in both forms)."""
from __future__ import annotations

import html
import io
import warnings
from collections.abc import Callable
from typing import Any

from dltune.report import figures as F
from dltune.report.experiment import Experiment

TOP_K = 10


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- plotly -------------------------------------------------------------------------------

def lines_figure(series: list[F.Series], x_title: str, y_title: str, legend_by_end: bool, by_name: bool = False) -> Any:
    """Curves coloured by how their trial ended (legend_by_end), or best-so-far steps, one legend
    entry per series where ``by_name``."""
    import plotly.graph_objects as go

    fig = go.Figure()
    shown: set[str] = set()
    for s in series:
        label, colour = F.ENDS[s.end][0], F.colour_of(s)
        fig.add_trace(go.Scatter(x=s.x, y=s.y, mode="lines+markers" if len(s.x) < 2 else "lines", name=label if legend_by_end else s.name,
                                 legendgroup=s.end, showlegend=by_name or (legend_by_end and s.end not in shown), line={"color": colour, "shape": "hv" if not legend_by_end else "linear"},
                                 hovertemplate=f"trial {s.name}<br>%{{x}}: %{{y:.4g}}<extra></extra>" if legend_by_end else None))
        shown.add(s.end)
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, margin={"t": 30}, height=380)
    return fig


def _timeline(segs: list[F.Segment]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for end, (label, colour) in F.ENDS.items():
        mine = [s for s in segs if s.how == end]
        if mine:
            fig.add_trace(go.Bar(orientation="h", base=[s.start for s in mine], x=[max(s.end - s.start, 1e-3) for s in mine], y=[f"slot {s.slot + 1}" for s in mine],
                                 name=label, marker_color=colour, text=[s.trial_id for s in mine], hovertemplate="trial %{text}<br>%{base:.1f} s + %{x:.1f} s<extra></extra>"))
    slots = max((s.slot for s in segs), default=0) + 1
    fig.update_layout(barmode="overlay", xaxis_title="seconds since the first trial started", margin={"t": 30}, height=120 + 28 * slots,
                      yaxis={"categoryorder": "array", "categoryarray": [f"slot {i}" for i in range(slots, 0, -1)]})
    return fig


def importance_figure(found: dict[str, float], axis: str = "fANOVA importance") -> Any:
    import plotly.graph_objects as go

    names = list(found)[::-1]
    fig = go.Figure(go.Bar(orientation="h", x=[found[n] for n in names], y=names, marker_color="#1f77b4"))
    fig.update_layout(xaxis_title=axis, margin={"t": 30}, height=120 + 30 * len(names))
    return fig


# --- matplotlib ---------------------------------------------------------------------------

def _png(draw: Callable[[Any], None], size: tuple[float, float] = (7.5, 4.0)) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def lines_png(series: list[F.Series], x_title: str, y_title: str, legend_by_end: bool, by_name: bool = False) -> bytes:
    def draw(ax: Any) -> None:
        shown: set[str] = set()
        for s in series:
            label, colour = F.ENDS[s.end][0], F.colour_of(s)
            ax.plot(s.x, s.y, color=colour, drawstyle="default" if legend_by_end else "steps-post", marker="o" if len(s.x) < 2 else None, alpha=0.8,
                    label=s.name if by_name else label if legend_by_end and s.end not in shown else None)
            shown.add(s.end)
        ax.set_xlabel(x_title)
        ax.set_ylabel(y_title)
        if legend_by_end or by_name:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside, and not loc="best": its search is slow over many curves
    return _png(draw)


def _png_timeline(segs: list[F.Segment]) -> bytes:
    def draw(ax: Any) -> None:
        for end, (label, colour) in F.ENDS.items():
            mine = [s for s in segs if s.how == end]
            for slot in sorted({s.slot for s in mine}):  # one collection per slot: thousands of bars draw in a blink
                ax.broken_barh([(s.start, max(s.end - s.start, 1e-3)) for s in mine if s.slot == slot], (slot + 0.6, 0.8), color=colour,
                               label=label if slot == min(s.slot for s in mine) else None)
        ax.set_yticks(range(1, max(s.slot for s in segs) + 2))
        ax.invert_yaxis()
        ax.set_xlabel("seconds since the first trial started")
        ax.set_ylabel("worker slot")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside, and not loc="best": its search is slow over many curves
    return _png(draw)


def importance_png(found: dict[str, float], axis: str = "fANOVA importance") -> bytes:
    def draw(ax: Any) -> None:
        names = list(found)[::-1]
        ax.barh(names, [found[n] for n in names], color="#1f77b4")
        ax.set_xlabel(axis)
    return _png(draw, (7.5, 1.2 + 0.4 * len(found)))


def _png_parallel(study: Any) -> bytes:
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib figures experimental
        ax = plot_parallel_coordinate(study)
    try:
        ax.figure.set_size_inches(9, 4.5)
        buf = io.BytesIO()
        ax.figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(ax.figure)  # Optuna draws through pyplot; leave no figure open behind


# --- the page -----------------------------------------------------------------------------

def _unit(cost: str) -> str:
    """A cost's axis label: cpu_seconds -> CPU-seconds."""
    return cost.replace("_", "-").replace("gpu", "GPU").replace("cpu", "CPU")


def build(exp: Experiment, pngs: bool = True) -> tuple[str, dict[str, bytes]]:
    """(report.html's text, {PNG file name: bytes}); without ``pngs``, the page alone."""
    from optuna.visualization import plot_parallel_coordinate

    wall, compute = F.best_so_far(exp)
    curves = F.learning_curves(exp)
    segs = F.segments(exp)
    model = F.cost_model(exp)
    slots = int(exp.summary.get("concurrency") or (max((s.slot for s in segs), default=-1) + 1))
    idle = F.idle_fraction(segs, slots)
    study, no_study = F.study_of(exp)
    found = F.importances(study) if study is not None else {}
    unit = _unit(model.cost)
    metric = exp.metric

    wall_axis = "seconds since the first trial started"
    no_value = f"nothing to draw: no trial reported {metric}"
    # (div id, heading, plotly figure, PNG file, PNG drawing, note); a figure of None has nothing to draw
    sections: list[tuple[str, str, Callable[[], Any] | None, str, Callable[[], bytes], str]] = [
        ("best-wall", f"Best {metric} so far, against wall time", (lambda: lines_figure([wall], wall_axis, metric, False)) if wall.x else None,
         "best_so_far_wall.png", lambda: lines_png([wall], wall_axis, metric, False), "" if wall.x else no_value),
        ("best-compute", f"Best {metric} so far, against compute spent ({unit})", (lambda: lines_figure([compute], unit, metric, False)) if compute.x else None,
         "best_so_far_compute.png", lambda: lines_png([compute], unit, metric, False), "" if compute.x else no_value),
        ("curves", f"Learning curves ({len(curves)} trials), coloured by how each ended", (lambda: lines_figure(curves, "epoch", metric, True)) if curves else None,
         "learning_curves.png", lambda: lines_png(curves, "epoch", metric, True), "" if curves else "no trial has reported yet"),
        ("timeline", "Trials over worker slots", (lambda: _timeline(segs)) if segs else None, "timeline.png", lambda: _png_timeline(segs),
         f"{len(segs)} runs of {len(exp.trials)} trials on {slots} slots; idle {idle:.0%} of slot time" if idle is not None else "no trial has reported yet"),
        ("parcoords", f"Parameters against each trial's best {metric}", (lambda: plot_parallel_coordinate(study)) if study is not None else None,
         "parallel_coordinates.png", lambda: _png_parallel(study), no_study),
        ("importance", f"Parameter importance for {metric}", (lambda: importance_figure(found)) if found else None,
         "importance.png", lambda: importance_png(found), no_study),
    ]
    drawn: dict[str, bytes] = {}
    body = [f"<h1>dltune search: {html.escape(exp.name)}</h1>", _plan(exp, unit), _best(exp)]
    for div_id, heading, figure, png_name, png, note in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if note:
            body.append(f'<p class="note" id="{div_id}-note">{html.escape(note)}</p>')
        if figure is not None:
            body.append(figure().to_html(full_html=False, include_plotlyjs=False, div_id=div_id))
            if pngs:
                drawn[png_name] = png()
    body.append(_top_k(exp))
    return page(exp.name, body), drawn


def build_comparison(exps: list[Experiment]) -> tuple[str, bytes]:
    """(compare.html's text, its PNG): the best-so-far of several searches on one plot, against
    compute and against wall time. The searches must share their metric and mode."""
    metric = exps[0].metric
    units = {F.cost_model(e).cost for e in exps}
    unit = _unit(units.pop()) if len(units) == 1 else "cost (each search's own)"
    walls, computes = [], []
    for i, exp in enumerate(exps):
        wall, compute = F.best_so_far(exp)
        label = f"{exp.name} ({exp.summary.get('searcher', '?')} + {exp.summary.get('scheduler', '?')})"
        walls.append(F.Series(label, wall.x, wall.y, "completed", F.PALETTE[i % len(F.PALETTE)]))
        computes.append(F.Series(label, compute.x, compute.y, "completed", F.PALETTE[i % len(F.PALETTE)]))
    body = [f"<h1>dltune: {len(exps)} searches compared on {html.escape(metric)}</h1>",
            "<ul>" + "".join(f"<li>{html.escape(s.name)}: best {_fmt(F.best_value(e))}</li>" for s, e in zip(walls, exps)) + "</ul>"]
    for div_id, heading, series, axis in (("compare-compute", f"Best {metric} so far, against compute ({unit})", computes, unit),
                                          ("compare-wall", f"Best {metric} so far, against wall time", walls, "seconds since the first trial started")):
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body.append(lines_figure(series, axis, metric, False, by_name=True).to_html(full_html=False, include_plotlyjs=False, div_id=div_id))
    return page("comparison", body), lines_png(computes, unit, metric, False, by_name=True)


def page(title: str, body: list[str]) -> str:
    import plotly.offline

    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dltune report: " + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}.note{color:#555}</style>"
            f"<script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _plan(exp: Experiment, unit: str) -> str:
    s = exp.summary
    method = s.get("searcher", "?") + (f" ({s['sampler']})" if s.get("sampler") else "") + f" + {s.get('scheduler', '?')}"
    rows = [("method", method), ("why", s.get("reason", "")), ("status", s.get("status", "")),
            ("trials", ", ".join(f"{s[k]} {k}" for k in ("completed", "early_stopped", "time_budget", "compute_budget", "not_started", "error", "running", "pending")
                        if s.get(k)) or "0"),
            ("concurrent trials", s.get("concurrency", "")),
            ("each trial holds", ", ".join(f"{k} {v:g}" for k, v in sorted((s.get("resources_per_trial") or {}).items()) if v and k != "memory")),
            ("wall time", f"{s['wall_time_s']:.0f} s" if "wall_time_s" in s else "")]
    if s.get("budget"):
        rows.append(("compute budget", f"{s['budget']['spent']:g} of {s['budget']['total']:g} {unit}"))
    if s.get("failures"):
        rows.append(("failures", s["failures"]))
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows if v != "")
    return f'<table id="plan">{cells}</table>'


def _best(exp: Experiment) -> str:
    best = F.best_value(exp)
    if best is None:
        return f'<p id="best">No trial reported {html.escape(exp.metric)}: there is no best result.</p>'
    return (f'<p id="best">Best {html.escape(exp.metric)} ({exp.mode}): <b id="best-value" data-value="{best!r}">{best:.6g}</b>'
            f' over {len(exp.trials)} trials.</p>')


def _top_k(exp: Experiment) -> str:
    ranked = F.ranked(exp)[:TOP_K]
    if not ranked:
        return ""
    keys = sorted({k for _, t in ranked for k in t.config})
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["rank", "trial", f"best {exp.metric}", "epochs", "ended", *keys, "run dir", "TensorBoard run"])
    rows = []
    for i, (best, t) in enumerate(ranked, 1):
        epochs = t.reports[-1].get("epoch") or t.reports[-1].get("training_iteration")
        cells = [i, t.trial_id, _fmt(best), epochs, F.ENDS[F.end_of(t)][0], *(_fmt(t.config.get(k, "")) for k in keys), t.run_dir, f"tensorboard/{t.trial_id}"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f'<h2>Top {len(ranked)} trials</h2><table id="top-k"><tr>{head}</tr>' + "".join(rows) + "</table>"
