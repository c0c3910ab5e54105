"""A plotly FigureWidget that redraws while an experiment trains.

Metrics arrive as dicts (one per logged step). ``LivePlot`` keeps them and
redraws at most ``max_fps`` times a second, with one ``batch_update`` per
redraw, so a fast training loop never floods the browser.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots


@dataclass
class Plot:
    """One subplot: a title and the metric keys drawn in it as lines.

    ``labels`` optionally renames keys in the legend; ``log_y`` uses a log axis.
    """

    title: str
    keys: Sequence[str]
    log_y: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    y_range: tuple[float, float] | None = None


class LivePlot:
    """Subplots side by side, one line per metric key, redrawn throttled."""

    def __init__(self, plots: Sequence[Plot], x_key: str = "step", x_title: str | None = None,
                 max_fps: float = 5.0, height: int = 340) -> None:
        if not plots:
            raise ValueError("plots must name at least one Plot")
        self.plots = list(plots)
        self.x_key = x_key
        self.min_interval = 1.0 / max_fps
        self.figure = go.FigureWidget(make_subplots(
            rows=1, cols=len(self.plots), subplot_titles=[p.title for p in self.plots]))
        self._trace_keys: list[str] = []
        for col, plot in enumerate(self.plots, start=1):
            for key in plot.keys:
                self.figure.add_scatter(x=[], y=[], mode="lines", name=plot.labels.get(key, key),
                                        row=1, col=col)
                self._trace_keys.append(key)
            if plot.log_y:
                self.figure.update_yaxes(type="log", row=1, col=col)
            if plot.y_range is not None:
                self.figure.update_yaxes(range=list(plot.y_range), row=1, col=col)
            self.figure.update_xaxes(title_text=x_title or x_key, row=1, col=col)
        self.figure.update_layout(height=height, margin=dict(l=40, r=20, t=40, b=40),
                                  legend=dict(orientation="h", y=-0.25))
        self._rows: list[Mapping[str, float]] = []
        self._last_draw = 0.0
        self.redraws = 0

    def reset(self) -> None:
        """Forget all points and clear the lines."""
        self._rows = []
        self.redraw()

    def append(self, row: Mapping[str, float]) -> bool:
        """Add one row of metrics; redraw if the last redraw is old enough.

        Returns True when it redrew.
        """
        self._rows.append(row)
        if time.monotonic() - self._last_draw >= self.min_interval:
            self.redraw()
            return True
        return False

    def redraw(self) -> None:
        """Push every line's points to the figure in one batch update."""
        with self.figure.batch_update():
            for trace, key in zip(self.figure.data, self._trace_keys):
                points = [(r[self.x_key], r[key]) for r in self._rows
                          if key in r and _finite(r[key])]
                trace.x = [p[0] for p in points]
                trace.y = [p[1] for p in points]
        self._last_draw = time.monotonic()
        self.redraws += 1


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return False
