"""Bounded widgets for experiment settings.

Each factory returns an ipywidget that can only hold valid values (sliders
with limits, dropdowns with fixed options), so a student cannot type a
setting the experiment would reject.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import ipywidgets as widgets

_STYLE = {"description_width": "initial"}
_LAYOUT = {"width": "300px"}


def int_slider(description: str, value: int, low: int, high: int, step: int = 1) -> widgets.IntSlider:
    """An integer slider on ``[low, high]``."""
    if not low <= value <= high:
        raise ValueError(f"value must be in [{low}, {high}], got {value!r}")
    return widgets.IntSlider(value=value, min=low, max=high, step=step, description=description,
                             continuous_update=False, style=_STYLE, layout=_LAYOUT)


def float_slider(description: str, value: float, low: float, high: float,
                 step: float = 0.01) -> widgets.FloatSlider:
    """A float slider on ``[low, high]``."""
    if not low <= value <= high:
        raise ValueError(f"value must be in [{low}, {high}], got {value!r}")
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                               continuous_update=False, style=_STYLE, layout=_LAYOUT)


def log_slider(description: str, value: float, low: float, high: float) -> widgets.FloatLogSlider:
    """A log-scale slider on ``[low, high]`` (both > 0), for learning rates."""
    if not 0 < low <= value <= high:
        raise ValueError(f"value must be in [{low}, {high}] with low > 0, got {value!r}")
    return widgets.FloatLogSlider(value=value, base=10, min=math.log10(low), max=math.log10(high),
                                  step=0.05, description=description, readout_format=".2g",
                                  continuous_update=False, style=_STYLE, layout=_LAYOUT)


def dropdown(description: str, options: Sequence[Any], value: Any) -> widgets.Dropdown:
    """A choice among fixed options (``(label, value)`` pairs or plain values)."""
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    if value not in values:
        raise ValueError(f"value must be one of {values}, got {value!r}")
    return widgets.Dropdown(options=list(options), value=value, description=description,
                            style=_STYLE, layout=_LAYOUT)


def toggle(description: str, value: bool) -> widgets.Checkbox:
    """An on/off switch."""
    return widgets.Checkbox(value=bool(value), description=description, indent=False,
                            style=_STYLE, layout=_LAYOUT)
