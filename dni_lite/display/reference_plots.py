"""Committed reference runs drawn beside a notebook's live run, and the paper's numbers.

A reference run (``dni_lite.reproduce``) is longer than anything a notebook
can afford; these figures put its curves (solid, averaged over its seeds) next
to the short run the reader just made (dotted) and, where the paper reports a
number, a horizontal line, each named in the legend so no line is mistaken for
another.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import NAMES, REFERENCE_COLOUR, Styles, variant_of


def mean_rows(runs: Sequence[Mapping[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """``key`` against ``x``, averaged over runs of equal length (the seeds of one configuration)."""
    if not runs:
        raise ValueError("runs must hold at least one reference run")
    length = min(len(r["rows"]) for r in runs)
    xs = [runs[0]["rows"][i][x] for i in range(length)]
    ys = [sum(r["rows"][i][key] for r in runs) / len(runs) for i in range(length)]
    return xs, ys


def reference_figure(title: str, keys: Sequence[str], reference: Sequence[Mapping[str, Any]],
                     live: Sequence[Mapping[str, Any]] = (), xs: Sequence[str] = ("step",),
                     x_titles: Sequence[str] = ("training steps",), y_title: str = "",
                     lines: Mapping[str, float] | None = None, reference_name: str = "reference",
                     labels: Mapping[str, str] | None = None, height: int = 360) -> go.Figure:
    """One subplot per x axis in ``xs``: each key's reference curve (solid), the live run's
    (dotted) and the horizontal ``lines`` (``{legend name: y}``, grey). ``labels`` names the
    keys' methods (default: the course's name for each). An x key may name the variant, as
    ``"seconds/{variant}"`` does: each method against its own seconds."""
    if len(xs) != len(x_titles):
        raise ValueError(f"x_titles must name each of the {len(xs)} x axes, got {len(x_titles)}")
    fig = make_subplots(rows=1, cols=len(xs), shared_yaxes=True)
    styles = Styles()
    for col, x in enumerate(xs, start=1):
        right = 0.0                                        # where the horizontal lines end
        for key in keys:
            name = (labels or {}).get(key) or NAMES.get(variant_of(key), variant_of(key))
            colour = styles.colour(variant_of(key))
            x_key = x.format(variant=variant_of(key))     # "seconds/{variant}": each its own clock
            rx, ry = mean_rows(reference, key, x_key)
            right = max(right, max(rx))
            fig.add_scatter(x=rx, y=ry, mode="lines", name=f"{name}, {reference_name}", legendgroup=key,
                            showlegend=col == 1, line=dict(color=colour), row=1, col=col)
            if live and key in live[0]:
                fig.add_scatter(x=[r[x_key] for r in live], y=[r[key] for r in live], mode="lines",
                                name=f"{name}, this notebook's run", legendgroup=key + "/live",
                                showlegend=col == 1, line=dict(color=colour, dash="dot"), row=1, col=col)
        for i, (label, y) in enumerate((lines or {}).items()):
            fig.add_scatter(x=[0, right], y=[y, y], mode="lines", name=label, legendgroup=label, showlegend=col == 1,
                            line=dict(color=REFERENCE_COLOUR, dash=["dash", "dashdot", "longdash"][i % 3],
                                      width=1), row=1, col=col)
        fig.update_xaxes(title_text=x_titles[col - 1], row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_layout(title=title, height=height, margin=dict(t=50, b=40))
    return fig
