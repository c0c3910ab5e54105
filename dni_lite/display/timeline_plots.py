"""Pictures of the timeline simulator: a Gantt chart per scheme and a speed-up curve.

``LockingPanel`` puts bounded widgets (K, costs, delay, minibatches,
micro-batches) over one
plotly FigureWidget. The simulation takes milliseconds, so every widget
change re-simulates and redraws at once (``observe``); there is no Run button.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..experiments.timeline import (MODE_NAMES, MODES, Costs, LockingSettings, Timeline, compare,
                                    simulate, speedup_curve)
from ..validate import check_int
from .controls import bind, float_slider, int_slider
from .live_plot import figure_in_mode, plot_mode, png, png_base64, show_static

COLOURS = {"forward": "#1f77b4", "backward": "#d62728", "synthesizer": "#2ca02c",
           "idle": "#d9d9d9"}
# 1F1B has the same curve as GPipe at equal costs: drawn dashed over it
CURVE_COLOURS = {"backprop": "#555555", "gpipe": "#1f77b4", "1f1b": "#17becf",
                 "decoupled": "#ff7f0e", "unlocked": "#9467bd"}
MAX_K = 8
# the K line is what K busy workers give when no delay is charged to backprop;
# delays slow backprop, and then the unlocked schemes can exceed it
IDEAL_NAME = "K × (all workers busy, no delay)"


def gantt_traces(timeline: Timeline) -> dict[str, dict[str, list]]:
    """Bar data (``y``, ``base``, ``x`` = duration) for each kind of task and for idle time."""
    k = timeline.costs.modules
    bars: dict[str, dict[str, list]] = {kind: {"y": [], "base": [], "x": []} for kind in COLOURS}
    for iv in timeline.intervals:
        bars[iv.kind]["y"].append(_worker_label(iv.worker))
        bars[iv.kind]["base"].append(iv.start)
        bars[iv.kind]["x"].append(iv.duration)
    for w in range(k):
        for start, end in timeline.idle_intervals(w):
            bars["idle"]["y"].append(_worker_label(w))
            bars["idle"]["base"].append(start)
            bars["idle"]["x"].append(end - start)
    return bars


def locking_figure(timelines: dict[str, Timeline], curve_ks: list[int],
                   curve: dict[str, list[float]]) -> go.Figure:
    """One Gantt chart per scheme (left) and speed-up over backprop versus K (right)."""
    rows = len(MODES)
    fig = go.Figure(make_subplots(
        rows=rows, cols=2, column_widths=[0.68, 0.32], horizontal_spacing=0.09,
        vertical_spacing=0.06, shared_xaxes=True,
        specs=[[{}, {"rowspan": rows}]] + [[{}, None]] * (rows - 1),
        subplot_titles=[MODE_NAMES[MODES[0]], "speed-up over backprop vs K",
                        *[MODE_NAMES[m] for m in MODES[1:]]]))
    for row, mode in enumerate(MODES, start=1):
        for kind, colour in COLOURS.items():
            fig.add_bar(y=[], x=[], base=[], orientation="h", name=kind, marker_color=colour,
                        marker_line_width=0.5, marker_line_color="white",
                        legendgroup=kind, showlegend=(row == 1), row=row, col=1)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    for mode in MODES:
        fig.add_scatter(x=[], y=[], mode="lines+markers", name=MODE_NAMES[mode],
                        line_color=CURVE_COLOURS[mode], row=1, col=2,
                        line_dash="dash" if mode == "1f1b" else "solid")
    fig.add_scatter(x=[], y=[], mode="lines", name=IDEAL_NAME, line_dash="dot",
                    line_color="#aaaaaa", row=1, col=2)
    fig.update_xaxes(title_text="time", row=rows, col=1)
    fig.update_xaxes(title_text="K (modules = workers)", row=1, col=2)
    fig.update_yaxes(title_text="speed-up", row=1, col=2)
    fig.update_layout(height=760, barmode="overlay", bargap=0.25,
                      margin=dict(l=60, r=20, t=40, b=40),
                      legend=dict(orientation="h", y=-0.12))
    update_locking_figure(fig, timelines, curve_ks, curve)
    return fig


def update_locking_figure(fig: go.Figure, timelines: dict[str, Timeline],
                          curve_ks: list[int], curve: dict[str, list[float]]) -> None:
    """Replace the data of a figure made by ``locking_figure`` in one batch update."""
    with fig.batch_update():
        i = 0
        in_legend: set[str] = set()
        for mode in MODES:
            bars = gantt_traces(timelines[mode])
            for kind in COLOURS:
                fig.data[i].y, fig.data[i].base, fig.data[i].x = (
                    bars[kind]["y"], bars[kind]["base"], bars[kind]["x"])
                # the legend entry sits on the first chart that has such bars (backprop
                # has no synthesizer bars, and an empty trace shows no legend entry)
                fig.data[i].showlegend = bool(bars[kind]["x"]) and kind not in in_legend
                if bars[kind]["x"]:
                    in_legend.add(kind)
                i += 1
        for mode in MODES:
            fig.data[i].x, fig.data[i].y = curve_ks, curve[mode]
            i += 1
        fig.data[i].x, fig.data[i].y = curve_ks, curve_ks


def two_system_figure(costs: Costs, windows: int = 4, names: tuple[str, str] = (
        "locked: BPTT through both", "DNI-joined"), workers: tuple[str, str] = (
        "fast network", "slow network")) -> go.Figure:
    """Gantt charts of ``windows`` windows of a two-module system under backprop (locked) and
    update-decoupled training, from ``costs`` (notebook 08's hierarchy on two workers)."""
    if costs.modules != 2:
        raise ValueError(f"costs must describe two modules, got {costs.modules}")
    check_int("windows", windows, 1, 50)
    timelines = [simulate(costs, "backprop", windows), simulate(costs, "decoupled", windows)]
    fig = go.Figure(make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.16,
                                  subplot_titles=[f"{name}: {t.makespan / windows * 1e3:.1f} ms per window"
                                                  for name, t in zip(names, timelines)]))
    relabel = {_worker_label(w): workers[w] for w in range(2)}
    in_legend: set[str] = set()
    for row, timeline in enumerate(timelines, start=1):
        for kind, bars in gantt_traces(timeline).items():
            fig.add_bar(y=[relabel[y] for y in bars["y"]], x=[x * 1e3 for x in bars["x"]],
                        base=[b * 1e3 for b in bars["base"]], orientation="h", name=kind,
                        marker_color=COLOURS[kind], marker_line_width=0.5, marker_line_color="white",
                        legendgroup=kind, showlegend=bool(bars["x"]) and kind not in in_legend,
                        row=row, col=1)
            if bars["x"]:
                in_legend.add(kind)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    fig.update_xaxes(title_text="milliseconds (measured costs per window, simulated schedule)", row=2, col=1)
    fig.update_layout(height=360, barmode="overlay", bargap=0.25, margin=dict(l=100, r=20, t=40, b=40),
                      legend=dict(orientation="h", y=-0.3))
    return fig


class LockingPanel:
    """Sliders for K, costs, delay, minibatches and micro-batches over the Gantt charts and the curve.

    Moving a slider re-simulates all five schemes and redraws the figure;
    ``readout`` states each scheme's speed-up and mean idle fraction.
    """

    def __init__(self, settings: LockingSettings = LockingSettings(),
                 mode: str | None = None) -> None:
        self.defaults = settings
        self.controls = {
            "modules": int_slider("K (modules)", 1, MAX_K),
            "forward": float_slider("forward cost", 0.1, 5.0, 0.1),
            "backward": float_slider("backward cost", 0.1, 5.0, 0.1),
            "synth": float_slider("synthesizer cost", 0.0, 2.0, 0.1),
            "delay": float_slider("communication delay", 0.0, 3.0, 0.1),
            "minibatches": int_slider("minibatches", 1, 32),
            "micro_batches": int_slider("micro-batches (GPipe, 1F1B)", 1, 16),
        }
        bind(self.controls, settings)
        self.readout = widgets.HTML()
        self.timelines, self.curve = self._simulate()
        self.mode = plot_mode() if mode is None else mode
        self.figure, self.plot_widget = figure_in_mode(
            locking_figure(self.timelines, list(range(1, MAX_K + 1)), self.curve), self.mode)
        if self.mode == "static":
            show_static(self.plot_widget, self.figure)
        self._write_readout()
        for w in self.controls.values():
            w.observe(self._on_change, names="value")
        box = widgets.Box(list(self.controls.values()),
                          layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        self.widget = widgets.VBox([widgets.HTML("<b>Who waits for whom</b>"), box,
                                    self.readout, self.plot_widget],
                                   layout=widgets.Layout(width="100%"))

    def settings(self) -> LockingSettings:
        """The settings the sliders describe."""
        return self.defaults.replace(**{name: w.value for name, w in self.controls.items()})

    def costs(self) -> Costs:
        """The costs the sliders describe."""
        s = self.settings()
        return Costs.uniform(s.modules, s.forward, s.backward, s.synth, s.delay)

    def _simulate(self) -> tuple[dict[str, Timeline], dict[str, list[float]]]:
        s = self.settings()
        timelines = compare(self.costs(), s.minibatches, s.micro_batches)
        curve = speedup_curve(range(1, MAX_K + 1), s.forward, s.backward, s.synth, s.delay,
                              s.minibatches, s.micro_batches)
        return timelines, curve

    def _on_change(self, _change: Any = None) -> None:
        self.timelines, self.curve = self._simulate()
        update_locking_figure(self.figure, self.timelines, list(range(1, MAX_K + 1)), self.curve)
        if self.mode == "static":
            show_static(self.plot_widget, self.figure)
        self._write_readout()

    def _write_readout(self) -> None:
        parts = []
        for mode, t in self.timelines.items():
            idle = sum(t.idle_fraction) / len(t.idle_fraction)
            parts.append(f"<b>{html.escape(MODE_NAMES[mode])}</b>: speed-up {t.speedup:.2f}x, "
                         f"mean idle {100 * idle:.0f}%")
        self.readout.value = " &nbsp;·&nbsp; ".join(parts)

    @property
    def readout_text(self) -> str:
        """The readout line as plain text."""
        return html.unescape(self.readout.value.replace("<b>", "").replace("</b>", "")
                             .replace("&nbsp;", " "))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = f"Who waits for whom: {self.readout_text}"
        try:       # the figure as a picture, for readers of the saved notebook
            bundle["image/png"] = png_base64(self.snapshot_png())
        except Exception:
            pass
        return bundle

    def snapshot_png(self) -> bytes:
        """The Gantt charts and the speed-up curve drawn with matplotlib, as a PNG."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 7.6), dpi=90)
        grid = fig.add_gridspec(len(MODES), 2, width_ratios=[0.68, 0.32], hspace=0.6,
                                wspace=0.18)
        first = None
        for row, mode in enumerate(MODES):
            ax = fig.add_subplot(grid[row, 0], sharex=first)
            first = first or ax
            for kind, bars in gantt_traces(self.timelines[mode]).items():
                ax.barh(bars["y"], bars["x"], left=bars["base"], color=COLOURS[kind],
                        edgecolor="white", linewidth=0.4, height=0.75,
                        label=kind if row == len(MODES) - 1 else None)
            ax.invert_yaxis()
            ax.set_title(MODE_NAMES[mode], fontsize=9)
            ax.tick_params(labelsize=7)
        ax.set_xlabel("time", fontsize=8)
        fig.legend(loc="lower left", ncol=4, fontsize=8, frameon=False)
        ax = fig.add_subplot(grid[:, 1])
        ks = list(range(1, MAX_K + 1))
        for mode in MODES:
            ax.plot(ks, self.curve[mode], marker="o", color=CURVE_COLOURS[mode],
                    label=MODE_NAMES[mode], linestyle="--" if mode == "1f1b" else "-")
        ax.plot(ks, ks, linestyle=":", color="#aaaaaa", label=IDEAL_NAME)
        ax.set_title("speed-up over backprop vs K", fontsize=9)
        ax.set_xlabel("K (modules = workers)", fontsize=8)
        ax.set_ylabel("speed-up", fontsize=8)
        ax.legend(fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
        return png(fig)


def _worker_label(worker: int) -> str:
    check_int("worker", worker, 0)
    return f"worker {worker + 1}"
