"""A plotly figure that redraws while an experiment trains.

Metrics arrive as dicts (one per logged step). ``LivePlot`` keeps them and
redraws at most ``max_fps`` times a second, with one batched update per
redraw, so a fast training loop never floods the browser.

Two modes draw the same figure:

* ``"widget"``: a plotly ``FigureWidget`` (needs the ``anywidget`` front-end,
  which JupyterLab and Notebook 7 have);
* ``"static"``: a plain figure shown inside an ``ipywidgets.Output`` and
  replaced at each redraw. It needs no custom widget, so it works in VS Code
  and Colab, which do not render ``FigureWidget``.

``plot_mode()`` picks one: ``DNI_LITE_PLOT=static`` or ``=widget`` forces it,
otherwise ``static`` inside VS Code or Colab and ``widget`` elsewhere.
``snapshot_png()`` draws the current figure as a PNG (with matplotlib) so a
committed notebook shows its final figures where no kernel runs.
"""
from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import LineStyle, Styles, default_label, is_reference, layer_of, variant_of

MODES = ("widget", "static")
FEW_POINTS = 25          # fewer points than this: draw markers too


def plot_mode() -> str:
    """``"widget"`` or ``"static"``: the environment variable, else what the front-end renders."""
    forced = os.environ.get("DNI_LITE_PLOT", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"DNI_LITE_PLOT must be one of {MODES}, got {forced!r}")
        return forced
    in_colab = "google.colab" in sys.modules
    in_vscode = any(k.startswith("VSCODE_") for k in os.environ)
    return "static" if in_colab or in_vscode else "widget"


@dataclass
class Plot:
    """One subplot: a title, the metric keys drawn in it, and how its y axis reads.

    ``y_title`` is the axis title with its unit (default: the title);
    ``labels`` renames keys in the legend and hover text; ``log_y`` uses a log
    axis; ``y_range`` fixes the axis; ``zoom_tail`` (a fraction) fits the y
    axis to the last part of the x range, where final values differ;
    ``integer_y`` for counts. ``x_keys`` draws a metric against another
    metric than the figure's x (for example each method against its own
    training seconds), with ``x_title`` as this subplot's x-axis title.
    """

    title: str
    keys: Sequence[str]
    y_title: str = ""
    log_y: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    y_range: tuple[float, float] | None = None
    zoom_tail: float | None = None
    integer_y: bool = False
    x_keys: Mapping[str, str] = field(default_factory=dict)
    x_title: str = ""

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError(f"plot {self.title!r}: keys must name at least one metric")
        unknown = set(self.x_keys) - set(self.keys)
        if unknown:
            raise ValueError(f"plot {self.title!r}: x_keys names metrics it does not draw: {sorted(unknown)}")
        if self.zoom_tail is not None and not 0 < self.zoom_tail <= 1:
            raise ValueError(f"zoom_tail must be in (0, 1], got {self.zoom_tail}")


@dataclass
class _Line:
    key: str
    plot: int
    label: str
    style: LineStyle
    layer: str | None
    x_key: str | None = None     # None: the figure's x


class LivePlot:
    """Subplots side by side, one line per metric key, one colour per method, redrawn throttled.

    Args:
        plots: the subplots.
        x_key: the metric used as the x axis; ``x_title`` its axis title with unit.
        x_measured: the x values are separate measurements (depths, widths):
            markers only, no line drawn between them.
        max_fps: at most this many redraws per second.
        mode: ``"widget"`` or ``"static"`` (default: ``plot_mode()``).
    """

    def __init__(self, plots: Sequence[Plot], x_key: str = "step", x_title: str | None = None,
                 x_measured: bool = False, max_fps: float = 5.0, height: int = 360,
                 mode: str | None = None) -> None:
        if not plots:
            raise ValueError("plots must name at least one Plot")
        self.mode = plot_mode() if mode is None else mode
        self.plots = list(plots)
        self.x_key = x_key
        self.x_title = x_title or x_key
        self.x_measured = x_measured
        self.min_interval = 1.0 / max_fps
        self.lines = _lines(self.plots)
        self.names = _group_names(self.lines)
        self.diverged: dict[str, Any] = {}
        fig = make_subplots(rows=1, cols=len(self.plots), subplot_titles=[p.title for p in self.plots],
                            horizontal_spacing=0.08 if len(self.plots) > 1 else 0.2)
        shown: set[str] = set()
        for line in self.lines:
            fig.add_scatter(x=[], y=[], mode="lines", name=self.names[line.style.group],
                            legendgroup=line.style.group, showlegend=line.style.group not in shown,
                            line=dict(color=line.style.colour, dash=line.style.dash, width=2),
                            marker=dict(color=line.style.colour, size=7),
                            hovertemplate=f"{line.label}: %{{y:.4g}} at {self._x_title(line.plot)} "
                                          "%{x}<extra></extra>",
                            meta={"key": line.key, "layer": line.layer},
                            row=1, col=line.plot + 1)
            shown.add(line.style.group)
        for col, plot in enumerate(self.plots, start=1):
            fig.update_yaxes(title_text=plot.y_title or plot.title, exponentformat="power",
                             type="log" if plot.log_y else "linear", row=1, col=col)
            if plot.y_range is not None:
                fig.update_yaxes(range=list(plot.y_range), row=1, col=col)
            if plot.integer_y:
                fig.update_yaxes(tickformat="d", rangemode="tozero", row=1, col=col)
            fig.update_xaxes(title_text=self._x_title(col - 1), exponentformat="power", row=1, col=col,
                             type="category" if x_measured and not plot.x_keys else "linear")
        fig.update_layout(height=height, autosize=True, margin=dict(l=60, r=20, t=40, b=50),
                          legend=dict(orientation="h", y=-0.3), template="plotly_white")
        self.figure, self.widget = figure_in_mode(fig, self.mode)
        self._rows: list[Mapping[str, float]] = []
        self._last_draw = 0.0
        self.redraws = 0

    def _x_title(self, plot: int) -> str:
        return self.plots[plot].x_title or self.x_title

    # -- data -----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all points and divergence marks and clear the lines."""
        self._rows = []
        self.diverged = {}
        self.redraw()

    def append(self, row: Mapping[str, float]) -> bool:
        """Add one row of metrics; redraw if the last redraw is old enough. True when it redrew."""
        self._rows.append(row)
        if time.monotonic() - self._last_draw >= self.min_interval:
            self.redraw()
            return True
        return False

    def mark_diverged(self, group: str, where: Any) -> None:
        """End ``group``'s lines here and say so in the legend."""
        self.diverged.setdefault(group, where)

    def _points(self, line: _Line) -> tuple[list[Any], list[float]]:
        """The plotted (x, y) of one line: finite values only, and > 0 on a log axis."""
        log = self.plots[line.plot].log_y
        x_key = line.x_key or self.x_key
        xs, ys = [], []
        for r in self._rows:
            value = r.get(line.key)
            if finite(value) and (value > 0 or not log) and x_key in r and r[x_key] is not None:
                xs.append(r[x_key])
                ys.append(float(value))
        return xs, ys

    # -- drawing ----------------------------------------------------------------------
    def redraw(self) -> None:
        """Push every line's points to the figure in one update."""
        if self.mode == "widget":
            with self.figure.batch_update():
                self._update_figure()
        else:
            self._update_figure()
        names = self._names()
        if names != [trace.name for trace in self.figure.data]:
            # every name in one restyle: a front end given only the changed trace's
            # name has been seen to drop the others' (legend entries "trace 0")
            self.figure.plotly_restyle({"name": names})
        if self.mode == "static":
            show_static(self.widget, self.figure)
        self._last_draw = time.monotonic()
        self.redraws += 1

    def _update_figure(self) -> None:
        ranges: dict[int, list[float]] = {}
        for trace, line in zip(self.figure.data, self.lines):
            xs, ys = self._points(line)
            trace.x, trace.y = xs, ys
            trace.mode = "markers" if self.x_measured else (
                "lines+markers" if len(xs) < FEW_POINTS else "lines")
            plot = self.plots[line.plot]
            if plot.zoom_tail and xs:
                cut = xs[0] + (1 - plot.zoom_tail) * (xs[-1] - xs[0])
                ranges.setdefault(line.plot, []).extend(y for x, y in zip(xs, ys) if x >= cut)
        for index, values in ranges.items():
            self.figure.update_yaxes(range=_padded(values, self.plots[index].log_y),
                                     row=1, col=index + 1)
        for index, plot in enumerate(self.plots):
            if plot.integer_y:      # whole-number ticks only: 0, 1, 2 ... (or every few)
                top = max((y for ln in self.lines if ln.plot == index
                           for y in self._points(ln)[1] if y is not None), default=1)
                self.figure.update_yaxes(tick0=0, dtick=max(1, math.ceil(top / 6)), row=1, col=index + 1)

    def _names(self) -> list[str]:
        """Each trace's legend name; a diverged method's says where it diverged."""
        names = []
        for line in self.lines:
            name = self.names[line.style.group]
            if line.style.group in self.diverged:
                name += f" (diverged at {self.x_key} {self.diverged[line.style.group]})"
            names.append(name)
        return names

    def snapshot_png(self, width_px: int = 1100) -> bytes:
        """The figure as it is now, drawn with matplotlib: for readers without a kernel."""
        from matplotlib import ticker
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width_px / 100, 3.6), dpi=100)
        axes = fig.subplots(1, len(self.plots), squeeze=False)
        for index, (ax, plot) in enumerate(zip(axes[0], self.plots)):
            for trace, line in zip(self.figure.data, self.lines):
                if line.plot != index or not trace.x:
                    continue
                xs = [str(x) for x in trace.x] if self.x_measured else list(trace.x)
                ax.plot(xs, list(trace.y), color=line.style.colour,
                        linestyle=_MPL_DASH.get(line.style.dash, "-"),
                        marker="o" if "markers" in trace.mode else None, markersize=4,
                        linewidth=0 if trace.mode == "markers" else 1.6,
                        label=trace.name if trace.showlegend is not False else None)
            ax.set_title(plot.title, fontsize=10)
            ax.set_xlabel(self._x_title(index), fontsize=9)
            ax.set_ylabel(plot.y_title or plot.title, fontsize=9)
            if plot.log_y:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
                ax.yaxis.set_minor_formatter(ticker.NullFormatter())
            yrange = self.figure.layout[_axis_name("yaxis", index)].range
            if yrange is not None and not plot.log_y:
                ax.set_ylim(*yrange)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
        handles = {}
        for ax in axes[0]:
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
        if handles:
            fig.legend(handles.values(), handles.keys(), loc="lower center",
                       ncol=min(len(handles), 4), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.08 + 0.05 * ((len(handles) - 1) // 4), 1, 1))
        return png(fig)


_MPL_DASH = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-.", "longdash": "--"}


def _lines(plots: Sequence[Plot]) -> list[_Line]:
    styles = Styles()
    lines = []
    for index, plot in enumerate(plots):
        layered: dict[str, list[str]] = {}
        for key in plot.keys:
            if layer_of(key) is not None:
                layered.setdefault(variant_of(key), []).append(key)
        for key in plot.keys:
            siblings = layered.get(variant_of(key), [key])
            position = siblings.index(key) if key in siblings else 0
            style = styles.line(key, position, len(siblings) if layer_of(key) else 1)
            label = plot.labels.get(key) or default_label(key)
            lines.append(_Line(key, index, label, style, layer_of(key), plot.x_keys.get(key)))
    return lines


def _group_names(lines: Sequence[_Line]) -> dict[str, str]:
    """One legend name per method: the label of its whole-model line, else of a layer line."""
    names: dict[str, str] = {}
    for line in lines:
        if line.layer is None or is_reference(line.key):
            names.setdefault(line.style.group, line.label)
    for line in lines:
        names.setdefault(line.style.group,
                         re.sub(r",?\s*(layer|boundary)\s*\S+$", "", line.label) or line.label)
    return names


def _padded(values: list[float], log: bool) -> list[float]:
    low, high = min(values), max(values)
    if log:
        low, high = math.log10(low), math.log10(high)
    pad = 0.08 * (high - low) or 0.05 * (abs(high) or 1.0)
    return [low - pad, high + pad]


def _axis_name(kind: str, index: int) -> str:
    return kind if index == 0 else f"{kind}{index + 1}"


def static_bundle(figure: go.Figure) -> dict[str, Any]:
    """What a front-end without plotly's widget renders: plotly's JSON, and HTML for Colab."""
    return {"application/vnd.plotly.v1+json": json.loads(figure.to_json()),
            "text/html": figure.to_html(full_html=False, include_plotlyjs="cdn"),
            "text/plain": f"<figure: {', '.join(a.text for a in figure.layout.annotations)}>"}


def figure_in_mode(figure: go.Figure, mode: str) -> tuple[go.Figure, widgets.DOMWidget]:
    """(the figure to update, the widget to show) for ``mode``: a FigureWidget, or an Output."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "widget":
        widget = go.FigureWidget(figure)
        return widget, widget
    return figure, widgets.Output(layout=widgets.Layout(width="100%"))


def show_static(output: widgets.Output, figure: go.Figure) -> None:
    """Replace what ``output`` shows with ``figure`` (the static mode's redraw)."""
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": static_bundle(figure)},)


def png(fig: Any) -> bytes:
    """A matplotlib ``Figure`` as PNG bytes (made without pyplot: no backend, no display)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def png_base64(data: bytes) -> str:
    """PNG bytes as the base64 text a notebook's ``image/png`` output holds."""
    return base64.b64encode(data).decode("ascii")


def finite(value: Any) -> bool:
    """A number that is not NaN or infinite (False for None and non-numbers)."""
    try:
        return math.isfinite(value)
    except TypeError:
        return False
